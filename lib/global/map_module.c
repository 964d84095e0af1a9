/* map_module.c: the table types whose client libraries are large (pgsql:
 * libpq with Kerberos and OpenSSL; ldap: libldap with GnuTLS, SASL and
 * their dependencies) live in loadable modules in daemon_directory,
 * map_pgsql.so and map_ldap.so, loaded the first time a process opens
 * such a table. Every daemon starts often (max_use), and linking those
 * libraries into each of them cost more CPU at every start than a small
 * message costs to receive; now only the processes that use such a table
 * pay for it, as with Postfix's dynamic maps.
 *
 * The module is opened by its full path in daemon_directory, a directory
 * of root's, and only when the file is a plain file owned by root or by
 * this process's user and writable by nobody else: a process that runs
 * as root (tern, master) must not load code another account could have
 * put there. Tables are opened before a chroot and before the system
 * call filter, so the loading happens outside both. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "maps_impl.h"

typedef int (*map_open_fn)(struct map *m, struct strbuf *err);

static bool module_file_ok(const char *path, struct strbuf *err)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        sb_appendf(err, "cannot find the module %s for this table type: %s", path, strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid())
        || (st.st_mode & (S_IWGRP | S_IWOTH))) {
        sb_appendf(err, "refusing to load %s: not a plain file of root's that only its owner may "
                   "write", path);
        return false;
    }
    return true;
}

int map_module_open(const char *type, struct map *m, struct strbuf *err)
{
    char path[4096], symbol[64];
    snprintf(symbol, sizeof(symbol), "map_%s_open", type);
    if (snprintf(path, sizeof(path), "%s/map_%s.so", cfg_str(P_daemon_directory), type)
        >= (int)sizeof(path)) {
        sb_appendf(err, "daemon_directory is too long");
        return -1;
    }
    if (!module_file_ok(path, err))
        return -1;
    /* kept loaded for the life of the process: tables of the type may be
     * opened again, and a module's library may not be unloadable */
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        sb_appendf(err, "cannot load %s: %s", path, why ? why : "unknown error");
        return -1;
    }
    map_open_fn open_fn;
    *(void **)&open_fn = dlsym(handle, symbol);
    if (!open_fn) {
        sb_appendf(err, "%s has no %s", path, symbol);
        return -1;
    }
    return open_fn(m, err);
}
