/* module.c: loading a module from daemon_directory (see module.h): the
 * file is checked (plain, root's or our own, writable by its owner only)
 * before dlopen. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "module.h"
#include "strbuf.h"

static bool module_file_ok(const char *path, struct strbuf *err)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        sb_appendf(err, "cannot find the module %s: %s", path, strerror(errno));
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

void *module_load(const char *file, struct strbuf *err)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", cfg_str(P_daemon_directory), file)
        >= (int)sizeof(path)) {
        sb_appendf(err, "daemon_directory is too long");
        return NULL;
    }
    if (!module_file_ok(path, err))
        return NULL;
    /* kept loaded for the life of the process: a module's libraries may
     * not be unloadable */
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        sb_appendf(err, "cannot load %s: %s", path, why ? why : "unknown error");
    }
    return handle;
}

void *module_symbol(void *handle, const char *file, const char *symbol, struct strbuf *err)
{
    void *p = dlsym(handle, symbol);
    if (!p)
        sb_appendf(err, "the module %s has no %s", file, symbol);
    return p;
}
