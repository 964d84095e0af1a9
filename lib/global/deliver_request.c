/* deliver_request.c: the agent side of the delivery protocol with qmgr
 * (deliver_request.h, doc/PROTOCOLS.md "Delivery agents"): reading and
 * checking the request, opening the queue file once, marking recipients
 * done and sending the result frames, for every delivery agent. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "deliver_request.h"
#include "log_delivery.h"
#include "log.h"
#include "mail_owner.h"
#include "safe_open.h"
#include "server.h"
#include "util.h"

static int read_rcpts(struct attr_reader *r, struct deliver_request *rq, size_t rcpt_max)
{
    long long n, offset;
    if (attr_get_int(r, "nrcpt", 1, (long long)rcpt_max, &n) < 0)
        return -1;
    rq->rcpts = xcalloc((size_t)n, sizeof(*rq->rcpts));
    /* nrcpt counts only recipients read completely: a request that ends
     * early is refused as a whole, never delivered in part */
    for (long long i = 0; i < n; i++) {
        struct deliver_rcpt *rc = &rq->rcpts[i];
        if (attr_get_str(r, "rcpt", &rc->address) < 0 || attr_get_str(r, "orcpt", &rc->orcpt) < 0
            || attr_get_str(r, "notify", &rc->notify) < 0
            || attr_get_int(r, "offset", 1, (long long)1 << 40, &offset) < 0)
            return -1;
        rc->offset = (off_t)offset;
        rq->nrcpt++;
    }
    return 0;
}

/* "active/ID" (or deferred/, incoming/, hold/) and nothing else: an agent
 * opens only queue files, by a name qmgr cannot use to point elsewhere.
 * hold/ is a queue directory like the others (mail_owner's, the same
 * safe_open checks apply); qmgr itself sends only active/. */
static bool queue_path_ok(const char *path, const char *id)
{
    static const char *const dirs[] = { QDIR_ACTIVE, QDIR_DEFERRED, QDIR_INCOMING, QDIR_HOLD };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        size_t n = strlen(dirs[i]);
        if (strncmp(path, dirs[i], n) == 0 && path[n] == '/' && strcmp(path + n + 1, id) == 0)
            return true;
    }
    return false;
}

static int parse_request(struct deliver_request *rq, size_t rcpt_max, const char **why,
                         const char **detail)
{
    struct attr_reader r = { .error = NULL };
    *why = "malformed request";
    *detail = NULL;
    int rc = attr_reader_init(&r, rq->frame.data, rq->frame.len);
    if (rc < 0)
        *why = "cannot read the request";
    if (rc == 0
        && (attr_get_str(&r, "queue_id", &rq->queue_id) < 0
            || attr_get_str(&r, "queue_path", &rq->queue_path) < 0
            || attr_get_str(&r, "transport", &rq->transport) < 0
            || attr_get_str(&r, "nexthop", &rq->nexthop) < 0
            || attr_get_str(&r, "sender", &rq->sender) < 0
            || attr_get_int(&r, "flags", 0, 0x7fffffff, &rq->flags) < 0
            || read_rcpts(&r, rq, rcpt_max) < 0 || attr_reader_done(&r) < 0))
        rc = -1;
    if (rc < 0) {
        *detail = r.error;
        return -1;
    }
    if (!queue_id_valid(rq->queue_id) || !queue_path_ok(rq->queue_path, rq->queue_id)) {
        *why = "bad queue_id or queue_path";
        return -1;
    }
    return 0;
}

int deliver_request_read(int fd, struct deliver_request *rq, size_t rcpt_max, int timeout)
{
    memset(rq, 0, sizeof(*rq));
    rq->fd = -1;
    sb_init(&rq->frame, 0);
    sb_init(&rq->reply, 0);
    rq->start_usec = now_usec();
    if (attr_send_protocol(fd, "delivery", timeout) < 0
        || attr_read(fd, &rq->frame, (size_t)cfg_size(P_ipc_frame_limit), timeout) < 0) {
        msg_warn("cannot read a delivery request from the queue manager: %m");
        return -1;
    }
    rq->start_usec = now_usec();
    const char *why, *detail;
    if (parse_request(rq, rcpt_max, &why, &detail) < 0) {
        msg_warn("bad delivery request from the queue manager: %s%s%s", why, detail ? ": " : "",
                 detail ? detail : "");
        return -1;
    }
    return 0;
}

int deliver_request_open(struct deliver_request *rq, struct strbuf *why)
{
    struct strbuf err = STRBUF_INIT(1024);
    uid_t owner;
    gid_t group;
    int rc = -1;
    sb_reset(why);
    mail_owner_ids(&owner, &group);
    rq->fd = safe_open(rq->queue_path, O_RDWR, 0, owner, NULL, &err);
    if (rq->fd < 0) {
        bool planted = errno == ELOOP || errno == EINVAL || errno == EMLINK || errno == EPERM;
        sb_appendf(why, "%s queue file %s", planted ? "refusing" : "cannot open", sb_str(&err));
    } else if (qmessage_load_fd(rq->fd, rq->queue_id, &rq->msg, &err) < 0) {
        sb_appendf(why, "cannot read queue file %s: %s", rq->queue_path, sb_str(&err));
    } else if (!rq->msg.complete || rq->msg.content_offset <= 0) {
        sb_appendf(why, "queue file %s is incomplete", rq->queue_path);
    } else {
        rc = 0;
    }
    sb_free(&err);
    return rc;
}

const struct qrcpt *deliver_request_record(const struct deliver_request *rq, size_t i)
{
    const struct deliver_rcpt *r = &rq->rcpts[i];
    bool passed = rq->flags & DELIVER_FLAG_PASSED;
    for (size_t k = 0; k < rq->msg.nrcpts; k++)
        if (rq->msg.rcpts[k].offset == r->offset
            && (passed || strcmp(rq->msg.rcpts[k].address, r->address) == 0))
            return &rq->msg.rcpts[k];
    return NULL;
}

int deliver_request_scan(const struct deliver_request *rq,
                         int (*fn)(const char *data, size_t len, void *ctx), void *ctx)
{
    return qfile_read_content(rq->fd, rq->msg.content_offset, fn, ctx);
}

int deliver_request_mark(struct deliver_request *rq, size_t i, int status, const char *reason,
                         struct strbuf *why)
{
    const struct deliver_rcpt *r = &rq->rcpts[i];
    if ((status != 2 && status != 5) || (rq->flags & DELIVER_FLAG_PASSED))
        return 0;           /* passed: the agent that passed it marks it */
    if (qfile_mark_done(rq->fd, r->offset) == 0)
        return 0;
    int saved = errno;
    sb_reset(why);
    msg_warn("%s: cannot mark recipient <%s> done in %s: %s; it will be tried again",
             rq->queue_id, r->address, rq->queue_path, strerror(saved));
    sb_appendf(why, "%s (queue file update failed: %s)", reason, strerror(saved));
    return -1;
}

void deliver_request_result(struct deliver_request *rq, size_t i, const struct deliver_result *r)
{
    struct attr_writer w;
    attr_begin(&w, &rq->reply);
    attr_put_int(&w, "index", (long long)i);
    attr_put_int(&w, "status", r->status);
    attr_put_str(&w, "dsn", r->dsn);
    attr_put_str(&w, "relay", r->relay);
    attr_put_str(&w, "reason", r->reason);
    attr_put_int(&w, "delay_connect", r->delay_connect_usec / 1000);
    attr_put_int(&w, "delay_transfer", r->delay_transfer_usec / 1000);
    if (r->action)
        attr_put_str(&w, "action", r->action);
    attr_end(&w);
}

void deliver_request_reply(int fd, struct deliver_request *rq, int site_failed, int timeout)
{
    struct attr_writer w;
    attr_begin(&w, &rq->reply);
    attr_put_int(&w, "done", (long long)rq->nrcpt);
    if (site_failed >= 0)
        attr_put_int(&w, "site_failed", site_failed ? 1 : 0);
    if (attr_end(&w) < 0 || attr_write(fd, &rq->reply, timeout) < 0)
        msg_warn("%s: cannot send the delivery results to the queue manager: %m", rq->queue_id);
}

void deliver_request_free(struct deliver_request *rq)
{
    if (rq->fd >= 0)
        close(rq->fd);
    rq->fd = -1;
    qmessage_free(&rq->msg);
    free(rq->rcpts);
    rq->rcpts = NULL;
    rq->nrcpt = 0;
    sb_free(&rq->frame);
    sb_free(&rq->reply);
}

const char *deliver_request_status_name(long long flags, int status)
{
    if (!(flags & DELIVER_FLAG_VERIFY))
        return delivery_status_name(status);
    return status == 2 ? "deliverable" : status == 5 ? "undeliverable" : "deferred";
}
