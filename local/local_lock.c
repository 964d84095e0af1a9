/* local_lock.c: the two mailbox locks mail readers expect: a dot-lock file
 * (MAILBOX.lock, created exclusively; for readers that only know that one)
 * and a kernel fcntl() lock on the open mailbox. Both are tried a bounded
 * number of times; a caller that cannot get them defers the delivery. A
 * lock file that is not the recipient's (or root's) was planted by someone
 * else: it is reported at once instead of being waited for. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "local.h"
#include "util.h"

static void lock_name(struct strbuf *out, const char *path)
{
    sb_init(out, 8192);
    sb_appendf(out, "%s.lock", path);
}

static void pause_seconds(int seconds)
{
    struct timespec ts = { seconds, 0 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int local_dotlock_acquire(const char *path, int attempts, int delay, long stale_after,
                          uid_t owner, struct stat *found)
{
    struct strbuf lock;
    lock_name(&lock, path);
    int rc = -1, err = EAGAIN;
    bool removed_stale = false;
    for (int i = 0; i < attempts; i++) {
        int fd = open(sb_str(&lock), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
            rc = removed_stale ? 1 : 0;
            break;
        }
        if (errno != EEXIST) {
            err = errno;
            break;
        }
        struct stat st;
        if (lstat(sb_str(&lock), &st) < 0)
            continue;           /* removed meanwhile: try again at once */
        /* A lock left by a crashed writer would block the mailbox forever. */
        if (stale_after > 0 && time(NULL) - st.st_mtime > stale_after
            && unlink(sb_str(&lock)) == 0) {
            if (found)
                *found = st;
            removed_stale = true;
            continue;
        }
        /* Only the recipient's mail readers and root lock this mailbox:
         * anything else is a planted file, and waiting for it is useless. */
        if (!S_ISREG(st.st_mode) || (st.st_uid != owner && st.st_uid != 0)) {
            if (found)
                *found = st;
            rc = -2;
            break;
        }
        if (i + 1 < attempts)
            pause_seconds(delay);
    }
    sb_free(&lock);
    if (rc == -1)
        errno = err;
    return rc;
}

void local_dotlock_release(const char *path)
{
    struct strbuf lock;
    lock_name(&lock, path);
    (void)unlink(sb_str(&lock));
    sb_free(&lock);
}

int local_fcntl_lock(int fd, int attempts, int delay)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    for (int i = 0; i < attempts; i++) {
        if (fcntl(fd, F_SETLK, &fl) == 0)
            return 0;
        if (errno != EAGAIN && errno != EACCES && errno != EINTR)
            return -1;
        if (i + 1 < attempts)
            pause_seconds(delay);
    }
    errno = EAGAIN;
    return -1;
}
