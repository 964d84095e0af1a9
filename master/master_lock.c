/* master_lock.c: the pid/lock file data_directory/master.pid. master holds
 * a write lock on it for its whole life, so two masters never share a
 * queue, and `tern` finds the running master's pid through the lock.
 * data_directory belongs to mail_owner, so master.pid is opened without
 * following a link and used only when it is master's own plain file with
 * one link: what mail_owner planted there is refused, never written. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "safe_open.h"
#include "strbuf.h"
#include "util.h"

static int lock_fd = -1;
static char *lock_path;

static void pid_file_path(const struct master_params *p, struct strbuf *path)
{
    sb_appendf(path, "%s/master.pid", p->data_dir);
}

/* pid of the process holding the lock, 0 when none does. */
pid_t master_lock_holder(const struct master_params *p)
{
    struct strbuf path = STRBUF_INIT(0);
    pid_file_path(p, &path);
    pid_t pid = lock_holder_pid(path.data);
    sb_free(&path);
    return pid;
}

int master_lock(const struct master_params *p, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT(0);
    pid_file_path(p, &path);
    struct strbuf why = STRBUF_INIT(1024);
    int fd = safe_open(path.data, O_RDWR | O_CREAT, 0644, geteuid(), NULL, &why);
    if (fd < 0) {
        if (errno == ELOOP || errno == EINVAL || errno == EMLINK || errno == EPERM)
            sb_appendf(err, "refusing the lock file %s; master writes only a plain file of its "
                       "own there: find out who put this there, remove it, and start again",
                       sb_str(&why));
        else
            sb_appendf(err, "cannot open the lock file %s", sb_str(&why));
        sb_free(&why);
        sb_free(&path);
        return -1;
    }
    sb_free(&why);
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl(fd, F_SETLK, &fl) < 0) {
        int saved = errno;
        close(fd);
        pid_t holder = master_lock_holder(p);
        if (saved == EAGAIN || saved == EACCES)
            sb_appendf(err, "the Tern mail system is already running (master pid %ld)",
                       (long)holder);
        else
            sb_appendf(err, "cannot lock %s: %s", path.data, strerror(saved));
        sb_free(&path);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        sb_appendf(err, "cannot write the lock file %s: %s", path.data, strerror(errno));
        close(fd);
        sb_free(&path);
        return -1;
    }
    lock_fd = fd;
    lock_path = xstrdup(path.data);
    sb_free(&path);
    return 0;
}

/* Removed before the lock goes, so nobody reads a stale pid from it; as
 * mail_owner, whose directory it is in. */
void master_unlock(void)
{
    if (lock_fd < 0)
        return;
    master_owner_begin(&ms.p);
    unlink(lock_path);
    master_owner_end(&ms.p);
    close(lock_fd);
    lock_fd = -1;
    free(lock_path);
    lock_path = NULL;
}
