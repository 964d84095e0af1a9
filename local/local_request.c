/* local_request.c: the local agent's use of the delivery protocol
 * (lib/global/deliver_request.h): read one request, open the queue file, collect
 * its Delivered-To: headers, deliver each recipient, mark every final
 * outcome done before anyone hears of it, and report. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver_request.h"
#include "local.h"
#include "log.h"
#include "log_delivery.h"
#include "safe_open.h"
#include "util.h"

struct outcome {
    struct delivery_status res;
    long long usec;              /* time spent on this recipient */
};

void local_log_delivery(const struct local_message *msg, const char *to, const char *orig_to,
                        const struct delivery_status *res)
{
    long long now = now_usec();
    struct delivery_delays delays = {
        .queued = delivery_queue_delay(msg->arrival_usec, msg->request_usec),
        .transfer = now - msg->request_usec,
    };
    log_delivery(msg->id, to, orig_to, "local", 0, &delays, res->dsn,
                 deliver_request_status_name(msg->probe ? DELIVER_FLAG_VERIFY : 0, res->status),
                 res->reason);
}

/* ---- the queue file ---- */

static void message_close(struct local_message *msg)
{
    if (msg->fd >= 0)
        close(msg->fd);
    for (size_t i = 0; i < msg->ndelivered; i++)
        free(msg->delivered_to[i]);
    free(msg->delivered_to);
    free(msg->sender);
    msg->fd = msg->mark_fd = -1;
    msg->delivered_to = NULL;
    msg->sender = NULL;
    msg->ndelivered = 0;
}

/* The request's one descriptor of the queue file (deliver_request.h) is
 * msg->mark_fd (done-marking, parent only); msg->fd is a read-only
 * descriptor of the same open file for the envelope, the Delivered-To:
 * scan, every copy and resubmission, which children inherit. */
static int message_open(struct local_message *msg, struct deliver_request *rq,
                        struct delivery_status *fail)
{
    struct strbuf err = STRBUF_INIT(0);
    int rc = -1;
    if (deliver_request_open(rq, &err) < 0) {
        delivery_status_set(fail, 4, "4.3.0", "%s", sb_str(&err));
        goto out;
    }
    msg->mark_fd = rq->fd;
    msg->fd = safe_reopen(rq->fd, O_RDONLY, &err);
    if (msg->fd < 0) {
        delivery_status_set(fail, 4, "4.3.0", "cannot open queue file %s", sb_str(&err));
        goto out;
    }
    msg->sender = xstrdup(rq->msg.sender);
    msg->arrival_usec = rq->msg.arrival_usec;
    msg->content_offset = rq->msg.content_offset;
    msg->content_size = rq->msg.content_size;
    const char *requiretls = qmessage_attr(&rq->msg, "requiretls");
    msg->requiretls = requiretls && strcmp(requiretls, "yes") == 0;
    struct mailbox_delivered_scan scan;
    mailbox_delivered_scan_request(&scan, rq);
    msg->delivered_to = scan.values;
    msg->ndelivered = scan.nvalues;
    scan.values = NULL;
    scan.nvalues = 0;
    mailbox_delivered_scan_free(&scan);
    rc = 0;
out:
    sb_free(&err);
    return rc;
}

/* A final outcome must be on disk before anyone hears of it. */
static void mark_final(struct deliver_request *rq, size_t i, struct delivery_status *res)
{
    struct strbuf why = STRBUF_INIT(0);
    if (deliver_request_mark(rq, i, res->status, res->reason, &why) < 0)
        delivery_status_set(res, 4, "4.3.0", "%s", sb_str(&why));
    sb_free(&why);
}

static void deliver_all(struct local_message *msg, struct deliver_request *rq,
                        struct outcome *out)
{
    void *dups = local_dup_filter_new();
    for (size_t i = 0; i < rq->nrcpt; i++) {
        const struct deliver_rcpt *r = &rq->rcpts[i];
        const struct qrcpt *rec = deliver_request_record(rq, i);
        long long start = now_usec();
        msg->seq++;
        if (!rec) {
            delivery_status_set(&out[i].res, 4, "4.3.0", "recipient not found in queue file %s",
                                rq->queue_path);
            local_log_delivery(msg, r->address, NULL, &out[i].res);
        } else if (rec->done) {
            delivery_status_set(&out[i].res, 2, "2.0.0", "already delivered");
        } else {
            local_recipient_deliver(msg, r, dups, &out[i].res);
            mark_final(rq, i, &out[i].res);
        }
        out[i].usec = now_usec() - start;
    }
    local_dup_filter_free(dups);
}

static void send_results(int fd, struct deliver_request *rq, const struct outcome *out)
{
    for (size_t i = 0; i < rq->nrcpt; i++) {
        struct deliver_result r = {
            .status = out[i].res.status, .dsn = out[i].res.dsn, .relay = "local",
            .reason = out[i].res.reason, .delay_transfer_usec = out[i].usec,
        };
        deliver_request_result(rq, i, &r);
    }
    deliver_request_reply(fd, rq, -1, local_cfg.ipc_timeout);
}

void local_request_serve(int fd)
{
    struct deliver_request rq;
    struct local_message msg = { .fd = -1, .mark_fd = -1 };
    static unsigned long deliveries;
    local_child_set_client(fd);
    if (deliver_request_read(fd, &rq, LOCAL_RCPT_MAX, local_cfg.ipc_timeout) < 0)
        goto done;
    msg.request_usec = rq.start_usec;
    msg.seq = deliveries;
    str_copy(msg.id, sizeof(msg.id), rq.queue_id);
    msg.queue_path = rq.queue_path;
    msg.passed = rq.flags & DELIVER_FLAG_PASSED;
    msg.probe = rq.flags & DELIVER_FLAG_VERIFY;
    struct outcome *out = xcalloc(rq.nrcpt, sizeof(*out));
    struct delivery_status fail;
    if (message_open(&msg, &rq, &fail) < 0) {
        msg_warn("%s: %s", msg.id, fail.reason);
        for (size_t i = 0; i < rq.nrcpt; i++) {
            out[i].res = fail;
            local_log_delivery(&msg, rq.rcpts[i].address, NULL, &fail);
        }
    } else {
        deliver_all(&msg, &rq, out);
    }
    deliveries = msg.seq;
    send_results(fd, &rq, out);
    free(out);
done:
    message_close(&msg);
    deliver_request_free(&rq);
}
