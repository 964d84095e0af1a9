/* master_setup.c: what master prepares before any daemon runs: the queue
 * directory tree with its owners and modes, and the pid/lock file that keeps
 * two masters off one queue. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "queue.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

static int lock_fd = -1;
static char *lock_path;

static void ensure_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, bool set_owner)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        msg_fatal("cannot create directory %s: %m", path);
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        msg_fatal("%s exists but is not a directory", path);
    if (set_owner && (st.st_uid != uid || st.st_gid != gid) && chown(path, uid, gid) < 0)
        msg_fatal("cannot chown %s: %m", path);
    if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0)
        msg_fatal("cannot chmod %s: %m", path);
}

void master_prepare_queue(void)
{
    const char *qdir = cfg_str(P_queue_directory);
    bool root = geteuid() == 0;
    uid_t uid = geteuid();
    gid_t gid = getegid(), drop_gid = getegid();
    if (root) {
        const char *owner = cfg_str(P_mail_owner);
        const char *group = cfg_str(P_setgid_group);
        if (user_ids(owner, &uid, &gid) < 0)
            msg_fatal("mail_owner account \"%s\" does not exist; run `tern setup` to create it", owner);
        struct group *gr = getgrnam(group);
        if (!gr)
            msg_fatal("setgid_group \"%s\" does not exist; run `tern setup` to create it", group);
        drop_gid = gr->gr_gid;
    }
    if (mkdir(qdir, 0755) < 0 && errno != EEXIST)
        msg_fatal("cannot create queue_directory %s: %m", qdir);
    struct strbuf path = STRBUF_INIT(4096);
    for (size_t i = 0; i < queue_dirs_count; i++) {
        sb_reset(&path);
        sb_appendf(&path, "%s/%s", qdir, queue_dirs[i].name);
        ensure_dir(path.data, queue_dirs[i].mode, uid,
                   queue_dirs[i].group_is_setgid ? drop_gid : gid, root);
    }
    ensure_dir(cfg_str(P_data_directory), 0700, uid, gid, root);
    sb_free(&path);
}

int master_lock(struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT(4096);
    sb_appendf(&path, "%s/master.pid", cfg_str(P_data_directory));
    int fd = open(path.data, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        sb_appendf(err, "cannot open lock file %s: %s", path.data, strerror(errno));
        sb_free(&path);
        return -1;
    }
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl(fd, F_SETLK, &fl) < 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = 0;
        buf[strcspn(buf, "\n")] = 0;
        sb_appendf(err, "the Tern mail system is already running (master pid %s)", buf);
        close(fd);
        sb_free(&path);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        sb_appendf(err, "cannot write lock file %s: %s", path.data, strerror(errno));
        close(fd);
        sb_free(&path);
        return -1;
    }
    lock_fd = fd;
    lock_path = xstrdup(path.data);
    sb_free(&path);
    return 0;
}

void master_unlock(void)
{
    if (lock_fd >= 0) {
        unlink(lock_path);
        close(lock_fd);
        lock_fd = -1;
    }
}
