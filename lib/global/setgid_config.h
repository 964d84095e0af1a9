/* setgid_config.h: how the set-group-ID programs (tern-drop, tern-mailq)
 * load a configuration without giving their caller the setgid_group's
 * rights over a directory of the caller's choosing (setgid_config.c). */
#ifndef TERN_SETGID_CONFIG_H
#define TERN_SETGID_CONFIG_H

struct strbuf;

enum setgid_config_status {
    SETGID_CONFIG_OK = 0,
    SETGID_CONFIG_ERROR,       /* cannot open or read it, or no queue_directory */
    SETGID_CONFIG_DENIED,      /* a configuration the caller may not use */
};

/* Load CONFDIR/main.cf (NULL: cfg_env_confdir() when the caller gains
 * nothing by it, else the installed default) and enter queue_directory.
 * A configuration other than the default is used only when that gives the
 * caller nothing: when the caller is root, or when the program is not
 * running set-group-ID, or when the directory and its main.cf belong to
 * root and only root may write them. The directory is entered before
 * main.cf is read, so it cannot be swapped under us. */
enum setgid_config_status setgid_config_enter(const char *confdir, struct strbuf *err);

#endif
