/* queue_admin.c: the queue changes shared by `tern`'s queue commands and
 * the quarantine (queue_admin.h): qmgr's admin requests, moving a message
 * into deferred/ due now, removing a message's delivery logs. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "attr.h"
#include "queue.h"
#include "queue_admin.h"
#include "queue_flush.h"
#include "strbuf.h"
#include "util.h"

#define QMGR_REPLY_LIMIT 1024
#define QMGR_TIMEOUT 10
#define QMGR_TRIES 5          /* qmgr may be restarting: a few tries, a second apart */

int queue_admin_ask_qmgr(const char *op, const char *id)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/qmgr", QDIR_PUBLIC);
    int fd = -1;
    for (int i = 0; i < QMGR_TRIES && fd < 0; i++) {
        fd = unix_connect(path, QMGR_TIMEOUT);
        if (fd < 0 && i + 1 < QMGR_TRIES)
            sleep(1);
    }
    if (fd < 0)
        return -1;
    struct strbuf out = STRBUF_INIT(QMGR_REPLY_LIMIT), in = STRBUF_INIT(QMGR_REPLY_LIMIT);
    struct attr_writer w;
    struct attr_reader r;
    long long status = -1;
    attr_begin(&w, &out);
    attr_put_str(&w, "admin", op);
    attr_put_str(&w, "id", id);
    if (attr_end(&w) < 0 || attr_expect_protocol(fd, "qmgr", QMGR_REPLY_LIMIT, QMGR_TIMEOUT) < 0
        || attr_write(fd, &out, QMGR_TIMEOUT) < 0
        || attr_read(fd, &in, QMGR_REPLY_LIMIT, QMGR_TIMEOUT) < 0
        || attr_reader_init(&r, in.data, in.len) < 0
        || attr_get_int(&r, "status", 0, 100, &status) < 0)
        status = -1;
    close(fd);
    sb_free(&out);
    sb_free(&in);
    return (int)status;
}

int queue_admin_move_due(const char *from, const char *to, struct strbuf *err)
{
    sb_reset(err);
    int fd = queue_due_open(from, err);
    if (fd < 0)
        return -1;
    if (rename(from, to) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return queue_due_set(fd);
}

void queue_admin_remove_logs(const char *id)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", QDIR_DEFER_LOG, id);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%s", QDIR_BOUNCE_LOG, id);
    unlink(path);
}
