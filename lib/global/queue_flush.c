/* queue_flush.c: making deferred mail due now and waking qmgr, for `tern
 * flush` (tern/tern_manage.c) and the flush service behind ETRN
 * (flush/flush.c). A deferred file is made due by setting its times to
 * now on a descriptor opened without following a link, so that nothing
 * put in its place in the queue is ever touched; qmgr then takes it at its
 * next scan of deferred/, which the wake-up asks for at once. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attr.h"
#include "log.h"
#include "queue.h"
#include "queue_flush.h"
#include "queue_scan.h"
#include "safe_open.h"
#include "strbuf.h"

#define QMGR_WAKE_LIMIT 1024
#define QMGR_WAKE_TIMEOUT 10      /* seconds to connect and to write */

int queue_due_open(const char *path, struct strbuf *err)
{
    return safe_open(path, O_RDONLY, 0, geteuid(), NULL, err);
}

int queue_due_set(int fd)
{
    int rc = futimens(fd, NULL);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int queue_flush_file(const char *path, struct strbuf *err)
{
    int fd = queue_due_open(path, err);
    if (fd < 0)
        return -1;
    if (queue_due_set(fd) < 0) {
        sb_appendf(err, "%s: cannot set its times: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

struct domain_flush {
    struct queue_filter filter;
    size_t flushed, failed;
    struct strbuf err;
};

static int flush_one(struct queued *q, void *ctx)
{
    struct domain_flush *f = ctx;
    if (!queue_filter_match(&f->filter, q))
        return 0;
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", queue_state_dir(QS_DEFERRED), q->id);
    sb_reset(&f->err);
    if (queue_flush_file(path, &f->err) == 0) {
        f->flushed++;
    } else if (errno != ENOENT) {      /* gone meanwhile: qmgr took it already */
        msg_warn("%s: cannot make it due now: %s", q->id, sb_str(&f->err));
        f->failed++;
    }
    return 0;
}

void queue_flush_domain(const char *domain, size_t *flushed, size_t *failed)
{
    struct domain_flush f = {
        .filter = { .domain = domain, .state = QS_DEFERRED },
        .err = STRBUF_INIT(1024),
    };
    queue_walk_state(QS_DEFERRED, flush_one, &f);
    sb_free(&f.err);
    *flushed = f.flushed;
    *failed = f.failed;
}

int queue_wake_qmgr(const char *queue)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/qmgr", QDIR_PUBLIC);
    int fd = unix_connect(path, QMGR_WAKE_TIMEOUT);
    if (fd < 0)
        return -1;
    struct strbuf out = STRBUF_INIT(QMGR_WAKE_LIMIT);
    /* qmgr's greeting is not waited for (doc/PROTOCOLS.md): the frame
     * stays in the socket until qmgr reads it */
    int rc = attr_frame_str(&out, "wakeup", queue) == 0
             && attr_write(fd, &out, QMGR_WAKE_TIMEOUT) == 0 ? 0 : -1;
    close(fd);
    sb_free(&out);
    return rc;
}
