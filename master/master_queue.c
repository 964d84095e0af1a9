/* master_queue.c: the queue directory tree master makes before any daemon
 * runs: each subdirectory of queue.h with its owner and mode, and
 * data_directory for master's own files. Existing directories are put
 * right, so a wrong mode never outlives a restart. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "queue.h"
#include "strbuf.h"

/* Create path (one level) or check it; set owner (when root) and mode.
 * follow: the path itself may be a symbolic link to a directory (only for
 * queue_directory, which may live on another disk). */
static int ensure_dir(const struct master_params *p, const char *path, mode_t mode,
                      uid_t uid, gid_t gid, bool follow, struct strbuf *err)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        sb_appendf(err, "cannot create directory %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if ((follow ? stat(path, &st) : lstat(path, &st)) < 0 || !S_ISDIR(st.st_mode)) {
        sb_appendf(err, "%s exists but is not a directory", path);
        return -1;
    }
    if (p->root && (st.st_uid != uid || st.st_gid != gid) && chown(path, uid, gid) < 0) {
        sb_appendf(err, "cannot change the owner of %s: %s", path, strerror(errno));
        return -1;
    }
    if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0) {
        sb_appendf(err, "cannot change the mode of %s to %04o: %s", path, (unsigned)mode,
                   strerror(errno));
        return -1;
    }
    return 0;
}

int master_prepare_queue(const struct master_params *p, struct strbuf *err)
{
    /* The top belongs to root so that mail_owner cannot swap the tree. */
    if (ensure_dir(p, p->queue_dir, 0755, 0, 0, true, err) < 0)
        return -1;
    struct strbuf path = STRBUF_INIT(0);
    int rc = 0;
    for (size_t i = 0; i < queue_dirs_count && rc == 0; i++) {
        sb_reset(&path);
        sb_appendf(&path, "%s/%s", p->queue_dir, queue_dirs[i].name);
        gid_t gid = queue_dirs[i].group_is_setgid ? p->setgid_gid : p->owner_gid;
        rc = ensure_dir(p, path.data, queue_dirs[i].mode, p->owner_uid, gid, false, err);
    }
    sb_free(&path);
    if (rc == 0)
        rc = ensure_dir(p, p->data_dir, 0700, p->owner_uid, p->owner_gid, false, err);
    return rc;
}
