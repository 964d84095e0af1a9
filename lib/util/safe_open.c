/* safe_open.c: opening files in directories an unprivileged uid can write
 * without following what may have been planted there, and taking an
 * unprivileged uid's effective ids for a moment (safe_open.h). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safe_open.h"
#include "strbuf.h"
#include "util.h"

int safe_check_fd(int fd, const char *path, uid_t owner, struct stat *st, struct strbuf *err)
{
    struct stat local;
    if (!st)
        st = &local;
    int bad = 0;
    const char *why = NULL;
    if (fstat(fd, st) < 0) {
        bad = errno;
        why = strerror(bad);
    } else if (!S_ISREG(st->st_mode)) {
        bad = EINVAL;
        why = "not a regular file";
    } else if (st->st_nlink != 1) {
        bad = EMLINK;
        why = "a file with more than one hard link";
    } else if (owner != SAFE_ANY_OWNER && st->st_uid != owner) {
        bad = EPERM;
        if (err)
            sb_appendf(err, "%s: owned by uid %ld, not by uid %ld", path, (long)st->st_uid,
                       (long)owner);
        errno = bad;
        return -1;
    }
    if (!bad)
        return 0;
    if (err)
        sb_appendf(err, "%s: %s", path, why);
    errno = bad;
    return -1;
}

int safe_open(const char *path, int flags, mode_t mode, uid_t owner, struct stat *st,
              struct strbuf *err)
{
    if (flags & O_TRUNC) {
        if (err)
            sb_appendf(err, "%s: refusing to truncate before the file is checked", path);
        errno = EINVAL;
        return -1;
    }
    int fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode);
    if (fd < 0) {
        int saved = errno;
        if (err)
            sb_appendf(err, "%s: %s", path,
                       saved == ELOOP ? "a symbolic link (not followed)" : strerror(saved));
        errno = saved;
        return -1;
    }
    if (safe_check_fd(fd, path, owner, st, err) < 0 || set_nonblock(fd, false) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int safe_reopen(int fd, int flags, struct strbuf *err)
{
    char self[64];
    struct stat want, got;
    snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
    if (fstat(fd, &want) < 0)
        goto fail;
    int copy = open(self, (flags & ~(O_CREAT | O_TRUNC)) | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (copy < 0)
        goto fail;
    if (fstat(copy, &got) < 0 || got.st_dev != want.st_dev || got.st_ino != want.st_ino
        || set_nonblock(copy, false) < 0) {
        close(copy);
        errno = EINVAL;
        goto fail;
    }
    return copy;
fail:
    if (err)
        sb_appendf(err, "cannot open descriptor %d again: %s", fd, strerror(errno));
    return -1;
}

/* ---- effective ids for a moment ---- */

static bool assumed;
static gid_t *saved_groups;
static int saved_ngroups;
static uid_t saved_euid;
static gid_t saved_egid;

int ids_assume(uid_t uid, gid_t gid)
{
    if (geteuid() != 0 || assumed)
        return 0;
    int n = getgroups(0, NULL);
    if (n < 0)
        return -1;
    free(saved_groups);
    saved_groups = xcalloc((size_t)n + 1, sizeof(gid_t));
    if ((saved_ngroups = getgroups(n, saved_groups)) < 0)
        return -1;
    saved_euid = geteuid();
    saved_egid = getegid();
    if (setgroups(1, &gid) < 0 || setegid(gid) < 0 || seteuid(uid) < 0) {
        int saved = errno;
        (void)!seteuid(saved_euid);
        (void)!setegid(saved_egid);
        (void)!setgroups((size_t)saved_ngroups, saved_groups);
        errno = saved;
        return -1;
    }
    assumed = true;
    return 0;
}

int ids_restore(void)
{
    if (!assumed)
        return 0;
    if (seteuid(saved_euid) < 0 || setegid(saved_egid) < 0
        || setgroups((size_t)saved_ngroups, saved_groups) < 0)
        return -1;
    assumed = false;
    return 0;
}
