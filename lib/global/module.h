/* module.h: loadable modules in daemon_directory (module.c). Code whose
 * libraries are large (libpq, libldap, libcurl and what they pull in) is
 * built as a module and loaded only by the processes that use it: every
 * daemon starts often (max_use), and linking those libraries into each of
 * them cost every start more CPU than a small message costs to receive.
 *
 * A module is opened by its full path in daemon_directory, and only when
 * the file is a plain file owned by root or by this process's user that
 * nobody else may write: a process that runs as root (tern, master) must
 * not load code another account could have put there. Its directory (and
 * daemon_directory, when the module is a link) must be root's alone as
 * well, so that nothing can be put in its place after the check. It is
 * loaded before
 * a chroot and before the system call filter, and stays loaded for the
 * life of the process. */
#ifndef TERN_MODULE_H
#define TERN_MODULE_H

struct strbuf;

/* daemon_directory/file, checked and loaded: its handle, or NULL with the
 * reason in err. */
void *module_load(const char *file, struct strbuf *err);

/* The address of symbol in a loaded module (file: for the message), or
 * NULL with the reason in err. */
void *module_symbol(void *handle, const char *file, const char *symbol, struct strbuf *err);

#endif
