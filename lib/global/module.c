/* module.c: loading a module from daemon_directory (see module.h): the
 * file and its directory are checked (root's or our own, writable by
 * their owner only) before dlopen. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "module.h"
#include "strbuf.h"

/* Only root (or our own user) could have put what is at path there, or
 * change it: it is theirs and writable by no one else; dir: path is the
 * directory of the module (named in the message), not the module. */
static bool owner_only(const char *path, const char *module, bool dir, struct strbuf *err)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        sb_appendf(err, "cannot find the module %s: %s", module, strerror(errno));
        return false;
    }
    bool ok = (dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode))
              && (st.st_uid == 0 || st.st_uid == geteuid()) && !(st.st_mode & (S_IWGRP | S_IWOTH));
    if (!ok && dir)
        sb_appendf(err, "refusing to load %s: its directory %s is not root's alone (owned by root "
                   "and writable by no one else)", module, path);
    else if (!ok)
        sb_appendf(err, "refusing to load %s: not a plain file of root's that only its owner may "
                   "write", module);
    return ok;
}

void *module_load(const char *file, struct strbuf *err)
{
    char path[4096];
    const char *dir = cfg_str(P_daemon_directory);
    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path)) {
        sb_appendf(err, "daemon_directory is too long");
        return NULL;
    }
    /* The file, the folder it is in and daemon_directory (the file may be
     * a symbolic link, as in a build tree) must all be root's alone: then
     * no other account can put anything in the module's place between
     * the check and the load. */
    char *real = realpath(path, NULL);
    if (!real) {
        sb_appendf(err, "cannot find the module %s: %s", path, strerror(errno));
        return NULL;
    }
    char *slash = strrchr(real, '/');
    char real_dir[4096];
    snprintf(real_dir, sizeof(real_dir), "%.*s", slash && slash > real ? (int)(slash - real) : 1,
             slash && slash > real ? real : "/");
    void *handle = NULL;
    if (owner_only(dir, path, true, err) && owner_only(real_dir, path, true, err)
        && owner_only(real, path, false, err)) {
        /* kept loaded for the life of the process: a module's libraries
         * may not be unloadable */
        handle = dlopen(real, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            const char *why = dlerror();
            sb_appendf(err, "cannot load %s: %s", path, why ? why : "unknown error");
        }
    }
    free(real);
    return handle;
}

void *module_symbol(void *handle, const char *file, const char *symbol, struct strbuf *err)
{
    void *p = dlsym(handle, symbol);
    if (!p)
        sb_appendf(err, "the module %s has no %s", file, symbol);
    return p;
}
