/* file_watch.c: noticing that a certificate or key file changed on disk
 * (see file_watch.h). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_watch.h"
#include "log.h"
#include "util.h"

#define WATCH_MAX 64

static struct watch {
    char *what, *path;
    int fd;                 /* the file the name led to */
    int link_fd;            /* the name itself when it is a symbolic link, else -1 */
    struct stat st, link_st;    /* at file_watch_add */
} watches[WATCH_MAX];
static int nwatches;
static bool changed;

void file_watch_add(const char *what, const char *path)
{
    if (!path || !*path || nwatches >= WATCH_MAX)
        return;
    for (int i = 0; i < nwatches; i++)
        if (strcmp(watches[i].path, path) == 0)
            return;
    /* O_PATH: the descriptors serve fstat() only; a process that runs as
     * mail_owner keeps no way to read a root-only key file through them
     * (and a FIFO put there is not opened). */
    struct stat st, lst;
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
        close(fd);
        return;
    }
    int lfd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (lfd >= 0 && (fstat(lfd, &lst) < 0 || !S_ISLNK(lst.st_mode))) {
        close(lfd);
        lfd = -1;
    }
    struct watch *w = &watches[nwatches++];
    w->what = xstrdup(what);
    w->path = xstrdup(path);
    w->fd = fd;
    w->st = st;
    w->link_fd = lfd;
    if (lfd >= 0)
        w->link_st = lst;
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* Replaced by a rename or removed (no link left), rewritten in place (size,
 * mtime) or its inode changed (ctime: mode, owner, links). */
static bool stat_changed(int fd, const struct stat *then)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return false;       /* cannot happen on a descriptor we hold */
    return st.st_nlink == 0 || st.st_size != then->st_size
           || !same_time(&st.st_mtim, &then->st_mtim) || !same_time(&st.st_ctim, &then->st_ctim);
}

bool file_watch_changed(void)
{
    if (changed)
        return true;
    for (int i = 0; i < nwatches && !changed; i++) {
        struct watch *w = &watches[i];
        /* No name is looked up: the daemon may be chrooted, or kept out of
         * the directory (certbot's live/ is root's only), and a lookup that
         * fails must never look like a change. A symbolic link pointed at
         * a renewed file is a new link: the old one, held here, is gone. */
        if (stat_changed(w->fd, &w->st) || (w->link_fd >= 0 && stat_changed(w->link_fd, &w->link_st))) {
            msg_info("%s %s has changed: restarting to read it again", w->what, w->path);
            changed = true;
        }
    }
    return changed;
}
