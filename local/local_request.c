/* local_request.c: the server side of the delivery protocol
 * (doc/PROTOCOLS.md, "Delivery agents") for the local agent: read one
 * request, open the queue file, collect its Delivered-To: headers, deliver
 * each recipient, mark every final outcome done in the queue file before
 * anyone hears of it, log in Postfix's shape, and send one result frame per
 * recipient and the closing frame. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "address.h"
#include "attr.h"
#include "config.h"
#include "local.h"
#include "log.h"
#include "queue.h"
#include "safe_open.h"
#include "server.h"
#include "util.h"

struct request {
    const char *queue_id, *queue_path, *transport, *nexthop, *sender;
    struct local_request_rcpt *rcpts;
    size_t nrcpt;
};

struct outcome {
    struct local_result res;
    long long usec;              /* time spent on this recipient */
};

/* ---- logging ---- */

void local_log_delivery(const struct local_message *msg, const char *to, const char *orig_to,
                        const struct local_result *res)
{
    static const char *const names[] = { [2] = "sent", [4] = "deferred", [5] = "bounced" };
    long long now = now_usec();
    long long before = msg->arrival_usec > 0 && msg->arrival_usec < msg->request_usec
                       ? msg->request_usec - msg->arrival_usec : 0;
    char total[32], a[32], b[32], c[32], d[32];
    format_delay(total, sizeof(total), before + (now - msg->request_usec));
    format_delay(a, sizeof(a), before);
    format_delay(b, sizeof(b), 0);
    format_delay(c, sizeof(c), 0);
    format_delay(d, sizeof(d), now - msg->request_usec);
    char *to_clean = local_printable(xstrdup(to));
    char *orig_clean = orig_to ? local_printable(xstrdup(orig_to)) : NULL;
    msg_info("%s: to=<%s>, %s%s%srelay=local, delay=%s, delays=%s/%s/%s/%s, dsn=%s, status=%s (%s)",
             msg->id, to_clean, orig_clean ? "orig_to=<" : "", orig_clean ? orig_clean : "",
             orig_clean ? ">, " : "", total, a, b, c, d, res->dsn,
             res->status >= 2 && res->status <= 5 && names[res->status] ? names[res->status] : "?",
             res->reason);
    free(to_clean);
    free(orig_clean);
}

/* ---- the request ---- */

static int read_rcpts(struct attr_reader *r, struct request *rq)
{
    long long n, offset;
    if (attr_get_int(r, "nrcpt", 1, LOCAL_RCPT_MAX, &n) < 0)
        return -1;
    rq->rcpts = xcalloc((size_t)n, sizeof(*rq->rcpts));
    for (long long i = 0; i < n; i++) {
        struct local_request_rcpt *rc = &rq->rcpts[i];
        if (attr_get_str(r, "rcpt", &rc->address) < 0 || attr_get_str(r, "orcpt", &rc->orcpt) < 0
            || attr_get_str(r, "notify", &rc->notify) < 0
            || attr_get_int(r, "offset", 1, (long long)1 << 40, &offset) < 0)
            return -1;
        if (strlen(rc->address) > ADDRESS_MAX_LEN)
            return -1;
        rc->offset = offset;
        rq->nrcpt++;
    }
    return 0;
}

/* "active/ID" (or deferred/, incoming/, hold/) and nothing else: the agent
 * opens only queue files, whatever the request says. */
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

static int read_request(const struct strbuf *in, struct request *rq, const char **why)
{
    struct attr_reader r;
    long long flags;
    *why = "malformed request";
    if (attr_reader_init(&r, in->data, in->len) < 0
        || attr_get_str(&r, "queue_id", &rq->queue_id) < 0
        || attr_get_str(&r, "queue_path", &rq->queue_path) < 0
        || attr_get_str(&r, "transport", &rq->transport) < 0
        || attr_get_str(&r, "nexthop", &rq->nexthop) < 0
        || attr_get_str(&r, "sender", &rq->sender) < 0
        || attr_get_int(&r, "flags", 0, 0x7fffffff, &flags) < 0 || read_rcpts(&r, rq) < 0
        || attr_reader_done(&r) < 0)
        return -1;
    if (!queue_id_valid(rq->queue_id) || !queue_path_ok(rq->queue_path, rq->queue_id)) {
        *why = "bad queue_id or queue_path";
        return -1;
    }
    return 0;
}

/* ---- the queue file ---- */

static int scan_chunk(const char *data, size_t len, void *ctx)
{
    struct delivered_scan *s = ctx;
    delivered_scan_feed(s, data, len);
    return s->done ? 1 : 0;      /* stop reading after the header */
}

static void message_close(struct local_message *msg)
{
    if (msg->fd >= 0)
        close(msg->fd);
    if (msg->mark_fd >= 0)
        close(msg->mark_fd);
    for (size_t i = 0; i < msg->ndelivered; i++)
        free(msg->delivered_to[i]);
    free(msg->delivered_to);
    free(msg->sender);
    msg->fd = msg->mark_fd = -1;
    msg->delivered_to = NULL;
    msg->sender = NULL;
    msg->ndelivered = 0;
}

void local_queue_owner(uid_t *uid, gid_t *gid)
{
    static uid_t owner_uid;
    static gid_t owner_gid;
    static bool known;
    if (!known) {
        owner_uid = geteuid();
        owner_gid = getegid();
        if (owner_uid == 0 && user_ids(cfg_str(P_mail_owner), &owner_uid, &owner_gid) < 0)
            msg_fatal("mail_owner account \"%s\" does not exist", cfg_str(P_mail_owner));
        known = true;
    }
    *uid = owner_uid;
    *gid = owner_gid;
}

/* The queue file is opened once, by name, in a directory mail_owner can
 * write: without following a link, and only a plain file of mail_owner's
 * with one link (a link to a file of root's is refused, not read). Every
 * later reader uses descriptors of that one open file: msg->fd (read-only:
 * the envelope, the Delivered-To: scan, every copy, resubmission; children
 * inherit it) and msg->mark_fd (done-marking, parent only). A name swapped
 * meanwhile changes nothing. */
static int queue_file_open(struct local_message *msg, const char *path, struct strbuf *err)
{
    uid_t owner;
    gid_t group;
    local_queue_owner(&owner, &group);
    msg->mark_fd = safe_open(path, O_RDWR, 0, owner, NULL, err);
    if (msg->mark_fd < 0)
        return -1;
    msg->fd = safe_reopen(msg->mark_fd, O_RDONLY, err);
    return msg->fd < 0 ? -1 : 0;
}

static int message_open(struct local_message *msg, const struct request *rq, struct qmessage *qm,
                        struct local_result *fail)
{
    struct strbuf err = STRBUF_INIT(1024);
    int rc = -1;
    if (queue_file_open(msg, rq->queue_path, &err) < 0) {
        bool planted = errno == ELOOP || errno == EINVAL || errno == EMLINK || errno == EPERM;
        result_set(fail, 4, "4.3.0", "%s queue file %s", planted ? "refusing" : "cannot open",
                   sb_str(&err));
        goto out;
    }
    if (qmessage_load_fd(msg->fd, rq->queue_id, qm, &err) < 0) {
        result_set(fail, 4, "4.3.0", "cannot read queue file %s: %s", rq->queue_path,
                   sb_str(&err));
        goto out;
    }
    if (!qm->complete || qm->content_offset <= 0) {
        result_set(fail, 4, "4.3.0", "queue file %s is incomplete", rq->queue_path);
        goto out;
    }
    msg->sender = xstrdup(qm->sender);
    msg->arrival_usec = qm->arrival_usec;
    msg->content_offset = qm->content_offset;
    msg->content_size = qm->content_size;
    struct delivered_scan scan;
    delivered_scan_init(&scan);
    qfile_read_content(msg->fd, qm->content_offset, scan_chunk, &scan);
    delivered_scan_finish(&scan);
    msg->delivered_to = scan.values;
    msg->ndelivered = scan.nvalues;
    scan.values = NULL;
    scan.nvalues = 0;
    delivered_scan_free(&scan);
    rc = 0;
out:
    sb_free(&err);
    return rc;
}

/* The request must name real, pending recipient records of this file:
 * only those may be marked done. */
static const struct qrcpt *find_record(const struct qmessage *qm, const struct local_request_rcpt *r)
{
    for (size_t i = 0; i < qm->nrcpts; i++)
        if ((long long)qm->rcpts[i].offset == r->offset && strcmp(qm->rcpts[i].address, r->address) == 0)
            return &qm->rcpts[i];
    return NULL;
}

/* A final outcome must be on disk before anyone hears of it. */
static void mark_final(const struct local_message *msg, const struct local_request_rcpt *r,
                       struct local_result *res)
{
    if (res->status != 2 && res->status != 5)
        return;
    if (qfile_mark_done(msg->mark_fd, (off_t)r->offset) == 0)
        return;
    int saved = errno;
    msg_warn("%s: cannot mark recipient <%s> done: %s; it will be tried again", msg->id,
             r->address, strerror(saved));
    char text[LOCAL_REASON_MAX];
    snprintf(text, sizeof(text), "%s (queue file update failed: %s)", res->reason, strerror(saved));
    result_set(res, 4, "4.3.0", "%s", text);
}

static void deliver_all(struct local_message *msg, const struct request *rq,
                        const struct qmessage *qm, struct outcome *out)
{
    void *dups = local_dup_filter_new();
    for (size_t i = 0; i < rq->nrcpt; i++) {
        const struct local_request_rcpt *r = &rq->rcpts[i];
        const struct qrcpt *rec = find_record(qm, r);
        long long start = now_usec();
        msg->seq++;
        if (!rec) {
            result_set(&out[i].res, 4, "4.3.0", "recipient not found in queue file %s",
                       rq->queue_path);
            local_log_delivery(msg, r->address, NULL, &out[i].res);
        } else if (rec->done) {
            result_set(&out[i].res, 2, "2.0.0", "already delivered");
        } else {
            local_recipient_deliver(msg, r, dups, &out[i].res);
            mark_final(msg, r, &out[i].res);
        }
        out[i].usec = now_usec() - start;
    }
    local_dup_filter_free(dups);
}

static void send_results(int fd, const struct local_message *msg, const struct outcome *out,
                         size_t n)
{
    struct strbuf frames = STRBUF_INIT(0);
    struct attr_writer w;
    for (size_t i = 0; i < n; i++) {
        attr_begin(&w, &frames);
        attr_put_int(&w, "index", (long long)i);
        attr_put_int(&w, "status", out[i].res.status);
        attr_put_str(&w, "dsn", out[i].res.dsn);
        attr_put_str(&w, "relay", "local");
        attr_put_str(&w, "reason", out[i].res.reason);
        attr_put_int(&w, "delay_connect", 0);
        attr_put_int(&w, "delay_transfer", out[i].usec / 1000);
        attr_end(&w);
    }
    attr_begin(&w, &frames);
    attr_put_int(&w, "done", (long long)n);
    if (attr_end(&w) < 0 || attr_write(fd, &frames, local_cfg.ipc_timeout) < 0)
        msg_warn("%s: cannot send the delivery results to the queue manager: %m", msg->id);
    sb_free(&frames);
}

void local_request_serve(int fd)
{
    struct strbuf in = STRBUF_INIT(0);
    struct request rq = { 0 };
    struct local_message msg = { .fd = -1, .mark_fd = -1 };
    struct qmessage qm = { 0 };
    const char *why;
    static unsigned long deliveries;
    local_child_set_client(fd);
    if (attr_send_protocol(fd, "delivery", local_cfg.ipc_timeout) < 0
        || attr_read(fd, &in, (size_t)cfg_size(P_ipc_frame_limit), local_cfg.ipc_timeout) < 0) {
        msg_warn("cannot read a delivery request: %m");
        goto done;
    }
    if (read_request(&in, &rq, &why) < 0) {
        msg_warn("%s from the queue manager", why);
        goto done;
    }
    msg.request_usec = now_usec();
    msg.seq = deliveries;
    str_copy(msg.id, sizeof(msg.id), rq.queue_id);
    struct outcome *out = xcalloc(rq.nrcpt, sizeof(*out));
    struct local_result fail;
    if (message_open(&msg, &rq, &qm, &fail) < 0) {
        msg_warn("%s: %s", msg.id, fail.reason);
        for (size_t i = 0; i < rq.nrcpt; i++) {
            out[i].res = fail;
            local_log_delivery(&msg, rq.rcpts[i].address, NULL, &fail);
        }
    } else {
        deliver_all(&msg, &rq, &qm, out);
    }
    deliveries = msg.seq;
    send_results(fd, &msg, out, rq.nrcpt);
    free(out);
done:
    qmessage_free(&qm);
    message_close(&msg);
    free(rq.rcpts);
    sb_free(&in);
}
