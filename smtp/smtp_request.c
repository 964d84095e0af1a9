/* smtp_request.c: the delivery protocol with qmgr (doc/PROTOCOLS.md,
 * "Delivery agents"): the request is read and checked against the queue
 * file it names, the message is delivered, then every final recipient is
 * marked done in the queue file BEFORE the result is reported, each result
 * is logged in Postfix's shape, and one frame per recipient goes back.
 * Only then is the session kept for the next request or closed. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "address.h"
#include "attr.h"
#include "log.h"
#include "resolve.h"
#include "safe_open.h"
#include "smtp.h"
#include "util.h"

#define SMTP_RCPT_MAX 100000      /* recipients in one request, whatever the frame limit */

/* ---- outcomes ---- */

static void rcpt_vset(struct smtp_rcpt *r, int status, const char *dsn, const char *relay,
                      const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static void rcpt_vset(struct smtp_rcpt *r, int status, const char *dsn, const char *relay,
                      const char *fmt, va_list ap)
{
    char text[SMTP_REASON_MAX];
    vsnprintf(text, sizeof(text), fmt, ap);
    r->status = status;
    str_copy(r->dsn, sizeof(r->dsn), dsn);
    sb_set(&r->relay, relay ? relay : "none");
    sb_set(&r->reason, text);
}

void smtp_rcpt_set(struct smtp_request *rq, size_t i, int status, const char *dsn,
                   const char *relay, const char *fmt, ...)
{
    if (rq->rcpts[i].status)
        return;
    va_list ap;
    va_start(ap, fmt);
    rcpt_vset(&rq->rcpts[i], status, dsn, relay, fmt, ap);
    va_end(ap);
}

void smtp_rcpt_set_all(struct smtp_request *rq, int status, const char *dsn, const char *relay,
                       const char *fmt, ...)
{
    for (size_t i = 0; i < rq->nrcpt; i++) {
        if (rq->rcpts[i].status)
            continue;
        va_list ap;
        va_start(ap, fmt);
        rcpt_vset(&rq->rcpts[i], status, dsn, relay, fmt, ap);
        va_end(ap);
    }
}

size_t smtp_undecided(const struct smtp_request *rq)
{
    size_t n = 0;
    for (size_t i = 0; i < rq->nrcpt; i++)
        n += rq->rcpts[i].status == 0;
    return n;
}

/* ---- the request ---- */

static void request_free(struct smtp_request *rq)
{
    for (size_t i = 0; i < rq->nrcpt; i++) {
        sb_free(&rq->rcpts[i].reason);
        sb_free(&rq->rcpts[i].relay);
        free(rq->rcpts[i].rcpt_to);
    }
    free(rq->rcpts);
    free(rq->envid);
    free(rq->ret);
    if (rq->qfd >= 0)
        close(rq->qfd);
}

static int read_rcpts(struct attr_reader *r, struct smtp_request *rq)
{
    long long n, offset;
    if (attr_get_int(r, "nrcpt", 1, SMTP_RCPT_MAX, &n) < 0)
        return -1;
    rq->rcpts = xcalloc((size_t)n, sizeof(*rq->rcpts));
    for (long long i = 0; i < n; i++) {
        struct smtp_rcpt *rc = &rq->rcpts[i];
        sb_init(&rc->reason, SMTP_REASON_MAX);
        sb_init(&rc->relay, SMTP_RELAY_MAX);
        rq->nrcpt++;
        if (attr_get_str(r, "rcpt", &rc->address) < 0 || attr_get_str(r, "orcpt", &rc->orcpt) < 0
            || attr_get_str(r, "notify", &rc->notify) < 0
            || attr_get_int(r, "offset", 1, (long long)1 << 40, &offset) < 0)
            return -1;
        rc->offset = (off_t)offset;
    }
    return 0;
}

/* "active/ID" (or deferred/, incoming/) and nothing else: the agent opens
 * only queue files, by a name qmgr cannot use to point elsewhere. */
static bool queue_path_ok(const char *path, const char *id)
{
    static const char *const dirs[] = { QDIR_ACTIVE, QDIR_DEFERRED, QDIR_INCOMING };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        size_t n = strlen(dirs[i]);
        if (strncmp(path, dirs[i], n) == 0 && path[n] == '/' && strcmp(path + n + 1, id) == 0)
            return true;
    }
    return false;
}

static int read_request(struct attr_reader *r, struct smtp_request *rq, const char **why)
{
    long long flags;
    *why = "malformed request";
    if (attr_get_str(r, "queue_id", &rq->queue_id) < 0 || attr_get_str(r, "queue_path", &rq->queue_path) < 0
        || attr_get_str(r, "transport", &rq->transport) < 0 || attr_get_str(r, "nexthop", &rq->nexthop) < 0
        || attr_get_str(r, "sender", &rq->sender) < 0
        || attr_get_int(r, "flags", 0, 0x7fffffff, &flags) < 0 || read_rcpts(r, rq) < 0
        || attr_reader_done(r) < 0)
        return -1;
    if (!queue_id_valid(rq->queue_id) || !queue_path_ok(rq->queue_path, rq->queue_id)) {
        *why = "bad queue_id or queue_path";
        return -1;
    }
    if (!*rq->nexthop) {
        *why = "empty nexthop";
        return -1;
    }
    return 0;
}

/* ---- the queue file ---- */

/* Text that goes into an SMTP command: no control characters, bounded. */
static bool address_sendable(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f)
            return false;
    return n <= ADDRESS_MAX_LEN;
}

/* The address for RCPT TO, as the resolver sent it here: with sender
 * routing in a local domain resolved ("user%remote.example@localhost" is
 * "user@remote.example"); otherwise exactly as the queue file has it. */
static char *rcpt_to(const char *address)
{
    struct resolve_result r;
    char *out = NULL;
    if (resolve_text(address, &r) == 0 && r.class != RESOLVE_BAD && (r.flags & RESOLVE_F_HOPPED))
        out = xstrdup(r.address);
    resolve_result_free(&r);
    return out ? out : xstrdup(address);
}

/* Each recipient must be a pending R record of this file at its offset. */
static void match_recipients(struct smtp_request *rq, const struct qmessage *m)
{
    for (size_t i = 0; i < rq->nrcpt; i++) {
        struct smtp_rcpt *r = &rq->rcpts[i];
        const struct qrcpt *q = NULL;
        for (size_t k = 0; k < m->nrcpts && !q; k++)
            if (m->rcpts[k].offset == r->offset)
                q = &m->rcpts[k];
        if (!q || strcmp(q->address, r->address) != 0) {
            msg_warn("%s: recipient <%s> at offset %lld is not in queue file %s", rq->queue_id,
                     r->address, (long long)r->offset, rq->queue_path);
            smtp_rcpt_set(rq, i, 4, "4.3.0", NULL, "queue file and delivery request disagree");
        } else if (q->done) {
            r->already_done = true;
            smtp_rcpt_set(rq, i, 2, "2.0.0", NULL, "recipient was already delivered or returned");
        } else {
            r->rcpt_to = rcpt_to(r->address);
            if (!address_sendable(r->rcpt_to))
                smtp_rcpt_set(rq, i, 5, "5.1.3", NULL, "bad recipient address syntax");
        }
    }
}

static int scan_chunk(const char *data, size_t len, void *ctx)
{
    smtp_content_scan(ctx, data, len);
    return 0;
}

/* Open the file, take the envelope facts the dialogue needs, and scan the
 * content once (size on the wire, 8-bit bytes). -1 when the file is unusable. */
static int open_message(struct smtp_request *rq)
{
    struct qmessage m;
    struct strbuf err = STRBUF_INIT(1024);
    /* opened once (no link followed, a plain file of ours with one link);
     * the envelope, the content and the done marks all use this descriptor */
    rq->qfd = safe_open(rq->queue_path, O_RDWR, 0, geteuid(), NULL, &err);
    if (rq->qfd < 0 || qmessage_load_fd(rq->qfd, rq->queue_id, &m, &err) < 0) {
        if (rq->qfd < 0)
            msg_warn("%s: cannot open queue file %s", rq->queue_id, sb_str(&err));
        else
            msg_warn("%s: cannot read queue file %s: %s", rq->queue_id, rq->queue_path,
                     sb_str(&err));
        sb_free(&err);
        return -1;
    }
    sb_free(&err);
    int rc = -1;
    if (!m.complete || m.content_offset <= 0) {
        msg_warn("%s: queue file %s is incomplete", rq->queue_id, rq->queue_path);
    } else if (qfile_read_content(rq->qfd, m.content_offset, scan_chunk, &rq->content) < 0) {
        msg_warn("%s: cannot read the content of queue file %s", rq->queue_id, rq->queue_path);
    } else {
        const char *body = qmessage_attr(&m, "body"), *utf8 = qmessage_attr(&m, "smtputf8");
        const char *envid = qmessage_attr(&m, "envid"), *ret = qmessage_attr(&m, "ret");
        rq->content_offset = m.content_offset;
        rq->arrival_usec = m.arrival_usec;
        rq->body_8bitmime = body && strcasecmp(body, "8BITMIME") == 0;
        rq->smtputf8 = utf8 && strcasecmp(utf8, "yes") == 0;
        rq->envid = envid ? xstrdup(envid) : NULL;
        rq->ret = ret ? xstrdup(ret) : NULL;
        match_recipients(rq, &m);
        rc = 0;
    }
    qmessage_free(&m);
    return rc;
}

/* ---- results ---- */

static void log_result(const struct smtp_request *rq, const struct smtp_rcpt *r,
                       long long conn, long long xfer, long long now)
{
    static const char *const names[] = { [2] = "sent", [4] = "deferred", [5] = "bounced" };
    char total[32], a[32], b[32], c[32], d[32];
    long long before = rq->arrival_usec > 0 && rq->arrival_usec < rq->start_usec
                       ? rq->start_usec - rq->arrival_usec : 0;
    format_delay(total, sizeof(total), before + (now - rq->start_usec));
    format_delay(a, sizeof(a), before);
    format_delay(b, sizeof(b), 0);
    format_delay(c, sizeof(c), conn);
    format_delay(d, sizeof(d), xfer);
    struct strbuf orig = STRBUF_INIT(ADDRESS_MAX_LEN + 32);
    if (strncasecmp(r->orcpt, "rfc822;", 7) == 0 && strcasecmp(r->orcpt + 7, r->address) != 0)
        sb_appendf(&orig, "orig_to=<%s>, ", r->orcpt + 7);
    char use[32] = "";
    if (r->conn_use >= 2)       /* as Postfix: the Nth delivery over one connection */
        snprintf(use, sizeof(use), ", conn_use=%u", r->conn_use);
    msg_info("%s: to=<%s>, %srelay=%s%s, delay=%s, delays=%s/%s/%s/%s, dsn=%s, status=%s (%s)",
             rq->queue_id, r->address, sb_str(&orig), sb_str(&r->relay), use, total, a, b, c, d,
             r->dsn, names[r->status], sb_str(&r->reason));
    sb_free(&orig);
}

/* A final outcome must be on disk before anyone hears of it. */
static void mark_final(struct smtp_request *rq, struct smtp_rcpt *r)
{
    if ((r->status != 2 && r->status != 5) || r->already_done)
        return;
    if (qfile_mark_done(rq->qfd, r->offset) == 0)
        return;
    int saved = errno;
    msg_warn("%s: cannot mark recipient <%s> done in %s: %s; it will be tried again", rq->queue_id,
             r->address, rq->queue_path, strerror(saved));
    char text[SMTP_REASON_MAX];
    snprintf(text, sizeof(text), "%s (queue file update failed: %s)", sb_str(&r->reason), strerror(saved));
    r->status = 4;
    str_copy(r->dsn, sizeof(r->dsn), "4.3.0");
    sb_set(&r->reason, text);
}

/* Mark, log and report every recipient; then the closing frame. */
static void finish(int fd, struct smtp_request *rq)
{
    long long now = now_usec();
    long long conn = (rq->xfer_start_usec ? rq->xfer_start_usec : now) - rq->start_usec;
    long long xfer = rq->xfer_start_usec ? now - rq->xfer_start_usec : 0;
    struct strbuf out = STRBUF_INIT(0);
    struct attr_writer w;
    for (size_t i = 0; i < rq->nrcpt; i++) {
        struct smtp_rcpt *r = &rq->rcpts[i];
        if (!r->status)
            smtp_rcpt_set(rq, i, 4, "4.3.0", NULL, "internal error: no outcome");
        mark_final(rq, r);
        log_result(rq, r, conn, xfer, now);
        attr_begin(&w, &out);
        attr_put_int(&w, "index", (long long)i);
        attr_put_int(&w, "status", r->status);
        attr_put_str(&w, "dsn", r->dsn);
        attr_put_str(&w, "relay", sb_str(&r->relay));
        attr_put_str(&w, "reason", sb_str(&r->reason));
        attr_put_int(&w, "delay_connect", conn / 1000);
        attr_put_int(&w, "delay_transfer", xfer / 1000);
        if (r->status == 2)      /* for NOTIFY=SUCCESS: who reports the success */
            attr_put_str(&w, "action", r->notify_passed ? "notified" : "relayed");
        attr_end(&w);
    }
    attr_begin(&w, &out);
    attr_put_int(&w, "done", (long long)rq->nrcpt);
    attr_put_int(&w, "site_failed", rq->site_failed ? 1 : 0);
    if (attr_end(&w) < 0 || attr_write(fd, &out, smtp_cfg.ipc_timeout) < 0)
        msg_warn("%s: cannot send the delivery results to the queue manager: %m", rq->queue_id);
    sb_free(&out);
}

void smtp_serve(int fd)
{
    struct smtp_request rq = { .qfd = -1 };
    struct strbuf in = STRBUF_INIT(0);
    struct attr_reader r = { .error = NULL };
    const char *why = "cannot read the request";
    rq.start_usec = now_usec();
    if (attr_send_protocol(fd, "delivery", smtp_cfg.ipc_timeout) < 0
        || attr_read(fd, &in, smtp_cfg.ipc_frame_limit, smtp_cfg.ipc_timeout) < 0) {
        msg_warn("cannot read a delivery request from the queue manager: %m");
        goto done;
    }
    rq.start_usec = now_usec();
    if (attr_reader_init(&r, in.data, in.len) < 0 || read_request(&r, &rq, &why) < 0) {
        msg_warn("bad delivery request from the queue manager: %s%s%s", why, r.error ? ": " : "",
                 r.error ? r.error : "");
        goto done;
    }
    if (open_message(&rq) < 0)
        smtp_rcpt_set_all(&rq, 4, "4.3.0", NULL, "cannot read the queue file");
    else if (!address_sendable(rq.sender))
        smtp_rcpt_set_all(&rq, 5, "5.1.7", NULL, "bad sender address syntax");
    else if (smtp_undecided(&rq) > 0)
        smtp_deliver(&rq);
    finish(fd, &rq);
    smtp_cache_settle();
done:
    request_free(&rq);
    sb_free(&in);
}
