/* smtp_request.c: the smtp agent's use of the delivery protocol
 * (lib/global/deliver_request.h): the request is read and checked against the
 * queue file it names, the message is delivered, then every final
 * recipient is marked done in the queue file BEFORE the result is
 * reported, each result is logged (lib/global/log_delivery.h), and one frame per
 * recipient goes back. Only then is the session kept for the next request
 * or closed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "log.h"
#include "log_delivery.h"
#include "resolve.h"
#include "smtp.h"
#include "soft_bounce.h"
#include "util.h"

#define SMTP_RCPT_MAX 100000      /* recipients in one request, whatever the frame limit */

/* ---- outcomes ---- */

/* The verdict for the recipients first..end-1 that have none yet: the
 * first verdict a recipient gets stands. */
static void rcpts_vset(struct smtp_request *rq, size_t first, size_t end, int status, const char *dsn,
                       const char *relay, const char *fmt, va_list ap)
    __attribute__((format(printf, 7, 0)));
static void rcpts_vset(struct smtp_request *rq, size_t first, size_t end, int status, const char *dsn,
                       const char *relay, const char *fmt, va_list ap)
{
    char text[SMTP_REASON_MAX];
    vsnprintf(text, sizeof(text), fmt, ap);
    for (size_t i = first; i < end; i++) {
        struct smtp_rcpt *r = &rq->rcpts[i];
        if (r->status)
            continue;
        str_copy(r->dsn, sizeof(r->dsn), dsn);
        r->status = soft_bounce_status(status, r->dsn);
        sb_set(&r->relay, relay ? relay : "none");
        sb_set(&r->reason, text);
    }
}

void smtp_rcpt_set(struct smtp_request *rq, size_t i, int status, const char *dsn,
                   const char *relay, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rcpts_vset(rq, i, i + 1, status, dsn, relay, fmt, ap);
    va_end(ap);
}

void smtp_rcpt_set_all(struct smtp_request *rq, int status, const char *dsn, const char *relay,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rcpts_vset(rq, 0, rq->nrcpt, status, dsn, relay, fmt, ap);
    va_end(ap);
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
        free(rq->rcpts[i].probe_reply);
    }
    free(rq->rcpts);
    free(rq->sts);
    free(rq->envid);
    free(rq->ret);
}

/* The agent's view of a request read and checked by deliver_request.c. */
static void request_take(struct smtp_request *rq, struct deliver_request *dr)
{
    rq->dr = dr;
    rq->start_usec = dr->start_usec;
    rq->rcpts = xcalloc(dr->nrcpt, sizeof(*rq->rcpts));
    rq->nrcpt = dr->nrcpt;
    for (size_t i = 0; i < dr->nrcpt; i++) {
        struct smtp_rcpt *rc = &rq->rcpts[i];
        sb_init(&rc->reason, SMTP_REASON_MAX);
        sb_init(&rc->relay, SMTP_RELAY_MAX);
        rc->address = dr->rcpts[i].address;
        rc->orcpt = dr->rcpts[i].orcpt;
        rc->notify = dr->rcpts[i].notify;
        rc->offset = dr->rcpts[i].offset;
    }
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
static void match_recipients(struct smtp_request *rq)
{
    for (size_t i = 0; i < rq->nrcpt; i++) {
        struct smtp_rcpt *r = &rq->rcpts[i];
        const struct qrcpt *q = deliver_request_record(rq->dr, i);
        if (!q) {
            msg_warn("%s: recipient <%s> at offset %lld is not in queue file %s", rq->dr->queue_id,
                     r->address, (long long)r->offset, rq->dr->queue_path);
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
    struct strbuf why = STRBUF_INIT(0);
    int rc = deliver_request_open(rq->dr, &why);
    const struct qmessage *m = &rq->dr->msg;
    if (rc < 0) {
        msg_warn("%s: %s", rq->dr->queue_id, sb_str(&why));
    } else if (deliver_request_scan(rq->dr, scan_chunk, &rq->content) < 0) {
        msg_warn("%s: cannot read the content of queue file %s", rq->dr->queue_id,
                 rq->dr->queue_path);
        rc = -1;
    } else {
        const char *body = qmessage_attr(m, "body"), *utf8 = qmessage_attr(m, "smtputf8");
        const char *envid = qmessage_attr(m, "envid"), *ret = qmessage_attr(m, "ret");
        rq->qfd = rq->dr->fd;
        rq->content_offset = m->content_offset;
        rq->arrival_usec = m->arrival_usec;
        rq->body_8bitmime = body && strcasecmp(body, "8BITMIME") == 0;
        rq->smtputf8 = utf8 && strcasecmp(utf8, "yes") == 0;
        rq->envid = envid ? xstrdup(envid) : NULL;
        rq->ret = ret ? xstrdup(ret) : NULL;
        const char *requiretls = qmessage_attr(m, "requiretls");
        rq->requiretls = requiretls && strcasecmp(requiretls, "yes") == 0;
        /* RFC 8689 section 4.2.1: the requirement holds for a message with a
         * sender; a notice (from <>) is not held back for it (section 5) */
        rq->requiretls_enforced = rq->requiretls && *rq->dr->sender;
        match_recipients(rq);
    }
    sb_free(&why);
    return rc;
}

/* ---- results ---- */

/* A final outcome must be on disk before anyone hears of it. */
static void mark_final(struct smtp_request *rq, size_t i)
{
    struct smtp_rcpt *r = &rq->rcpts[i];
    struct strbuf why = STRBUF_INIT(0);
    if (!r->already_done
        && deliver_request_mark(rq->dr, i, r->status, sb_str(&r->reason), &why) < 0) {
        char text[SMTP_REASON_MAX];   /* cut to what a reason may hold */
        str_copy(text, sizeof(text), sb_str(&why));
        r->status = 4;
        str_copy(r->dsn, sizeof(r->dsn), "4.3.0");
        sb_set(&r->reason, text);
    }
    sb_free(&why);
}

/* Mark, log and report every recipient; then the closing frame. */
static void finish(int fd, struct smtp_request *rq)
{
    long long now = now_usec();
    long long conn = (rq->xfer_start_usec ? rq->xfer_start_usec : now) - rq->start_usec;
    long long xfer = rq->xfer_start_usec ? now - rq->xfer_start_usec : 0;
    struct delivery_delays delays = {
        .queued = delivery_queue_delay(rq->arrival_usec, rq->start_usec),
        .connect = conn,
        .transfer = xfer,
    };
    for (size_t i = 0; i < rq->nrcpt; i++) {
        struct smtp_rcpt *r = &rq->rcpts[i];
        if (!r->status)
            smtp_rcpt_set(rq, i, 4, "4.3.0", NULL, "internal error: no outcome");
        mark_final(rq, i);
        log_delivery(rq->dr->queue_id, r->address, delivery_orig_to(r->orcpt, r->address),
                     sb_str(&r->relay), r->conn_use, &delays, r->dsn,
                     deliver_request_status_name(rq->dr->flags, r->status), sb_str(&r->reason));
        struct deliver_result res = {
            .status = r->status, .dsn = r->dsn, .relay = sb_str(&r->relay),
            .reason = sb_str(&r->reason), .delay_connect_usec = conn, .delay_transfer_usec = xfer,
            /* for NOTIFY=SUCCESS: who reports the success */
            .action = r->status != 2 ? NULL : r->notify_passed ? "notified" : "relayed",
        };
        deliver_request_result(rq->dr, i, &res);
    }
    deliver_request_reply(fd, rq->dr, rq->site_failed ? 1 : 0, smtp_cfg.ipc_timeout);
}

void smtp_serve(int fd)
{
    struct deliver_request dr;
    struct smtp_request rq = { .qfd = -1 };
    if (deliver_request_read(fd, &dr, SMTP_RCPT_MAX, smtp_cfg.ipc_timeout) < 0)
        goto done;
    if (!*dr.nexthop) {
        msg_warn("bad delivery request from the queue manager: empty nexthop");
        goto done;
    }
    request_take(&rq, &dr);
    if (open_message(&rq) < 0)
        smtp_rcpt_set_all(&rq, 4, "4.3.0", NULL, "cannot read the queue file");
    else if (!address_sendable(dr.sender))
        smtp_rcpt_set_all(&rq, 5, "5.1.7", NULL, "bad sender address syntax");
    else if (smtp_undecided(&rq) > 0)
        smtp_deliver(&rq);
    finish(fd, &rq);
    smtp_cache_settle();
done:
    request_free(&rq);
    deliver_request_free(&dr);
}
