/* setgid_config.c: loading the configuration in a set-group-ID program
 * (tern-drop, tern-mailq). The configuration decides which directories
 * the program touches with the setgid_group's rights, so one the caller
 * names must be an administrator's. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "setgid_config.h"
#include "strbuf.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
/* Sanitizer builds of the set-group-ID programs, which all link this file:
 * LeakSanitizer cannot stop a set-group-ID process to scan it, and such a
 * process ignores ASAN_OPTIONS. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=0";
}
#endif

/* An administrator's configuration: the directory and main.cf belong to
 * root, and nobody else may change them. */
static bool admin_owned(int dfd)
{
    struct stat d, f;
    return fstat(dfd, &d) == 0 && d.st_uid == 0 && !(d.st_mode & 022)
        && fstatat(dfd, "main.cf", &f, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(f.st_mode)
        && f.st_uid == 0 && !(f.st_mode & 022);
}

enum setgid_config_status setgid_config_enter(const char *confdir, struct strbuf *err)
{
    bool privileged = getegid() != getgid() && getuid() != 0;
    if (!confdir) {
        const char *env = privileged ? NULL : cfg_env_confdir();
        confdir = env ? env : TERN_SYSCONFDIR;
    }
    int dfd = open(confdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        sb_appendf(err, "cannot open the configuration directory %s: %s", confdir, strerror(errno));
        return SETGID_CONFIG_ERROR;
    }
    if (privileged && strcmp(confdir, TERN_SYSCONFDIR) != 0 && !admin_owned(dfd)) {
        close(dfd);
        sb_appendf(err, "configuration directory %s: only root may use one that is not root's "
                   "own (it and its main.cf must belong to root and be writable by root only)",
                   confdir);
        return SETGID_CONFIG_DENIED;
    }
    if (fchdir(dfd) < 0) {
        sb_appendf(err, "cannot enter %s: %s", confdir, strerror(errno));
        close(dfd);
        return SETGID_CONFIG_ERROR;
    }
    close(dfd);
    struct strbuf why = STRBUF_INIT(4096);
    if (cfg_load(".", &why) < 0) {
        sb_appendf(err, "%s/main.cf: %s", confdir, sb_str(&why));
        sb_free(&why);
        return SETGID_CONFIG_ERROR;
    }
    sb_free(&why);
    const char *qdir = cfg_str(P_queue_directory);
    if (qdir[0] != '/' || chdir(qdir) < 0) {
        sb_appendf(err, "cannot enter queue_directory %s: %s", qdir,
                   qdir[0] != '/' ? "not an absolute path" : strerror(errno));
        return SETGID_CONFIG_ERROR;
    }
    return SETGID_CONFIG_OK;
}
