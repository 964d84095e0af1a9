/* file_watch.c: noticing that a certificate or key file changed on disk
 * (see file_watch.h). */
#include <errno.h>
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
    int fd;
    struct stat st;         /* at file_watch_add */
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
    /* O_NONBLOCK: a FIFO put there must not stop the process. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;
    if (fd < 0)
        return;
    if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
        close(fd);
        return;
    }
    struct watch *w = &watches[nwatches++];
    w->what = xstrdup(what);
    w->path = xstrdup(path);
    w->fd = fd;
    w->st = st;
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static bool watch_changed(const struct watch *w, bool by_name)
{
    struct stat st;
    if (fstat(w->fd, &st) < 0)
        return false;
    if (st.st_nlink == 0 || st.st_size != w->st.st_size || !same_time(&st.st_mtim, &w->st.st_mtim)
        || !same_time(&st.st_ctim, &w->st.st_ctim))
        return true;
    /* The name now leads elsewhere (a link re-pointed, a file renamed over
     * one that another name still holds). A name that cannot be looked up
     * any more (a directory closed to mail_owner, a chroot) tells nothing. */
    if (by_name && stat(w->path, &st) == 0
        && (st.st_dev != w->st.st_dev || st.st_ino != w->st.st_ino))
        return true;
    return false;
}

bool file_watch_changed(bool by_name)
{
    if (changed)
        return true;
    for (int i = 0; i < nwatches; i++)
        if (watch_changed(&watches[i], by_name)) {
            msg_info("%s %s has changed: restarting to read it again", watches[i].what,
                     watches[i].path);
            changed = true;
            break;
        }
    return changed;
}
