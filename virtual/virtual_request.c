/* virtual_request.c: the virtual agent's use of the delivery protocol
 * (lib/global/deliver_request.h): read one request, open the queue file,
 * collect its Delivered-To: headers, look each recipient up and deliver it
 * in a child with its uid and gid,
 * mark every final outcome done before anyone hears of it, log it in
 * local's shape (relay=virtual) and report. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "address.h"
#include "deliver_request.h"
#include "log.h"
#include "log_delivery.h"
#include "safe_open.h"
#include "soft_bounce.h"
#include "util.h"
#include "virtual.h"

struct outcome {
    struct delivery_status st;
    long long usec;              /* time spent on this recipient */
};

static void log_outcome(const struct deliver_request *rq, const struct deliver_rcpt *r,
                        const struct delivery_status *st)
{
    long long now = now_usec();
    struct delivery_delays delays = {
        .queued = delivery_queue_delay(rq->msg.arrival_usec, rq->start_usec),
        .transfer = now - rq->start_usec,
    };
    log_delivery(rq->queue_id, r->address, delivery_orig_to(r->orcpt, r->address), "virtual", 0,
                 &delays, st->dsn, deliver_request_status_name(rq->flags, st->status), st->reason);
}

/* Outcomes get soft_bounce and lose bytes that must not reach a log line
 * or a notice. */
static void finish_status(struct delivery_status *st)
{
    st->status = soft_bounce_status(st->status, st->dsn);
    str_sanitize(st->reason);
}

/* One recipient: a mail loop (the message was delivered to this very
 * address before: 5.4.6, as Postfix), its tables, then the delivery as
 * its uid; for an address verification probe (DELIVER_FLAG_VERIFY) the
 * tables alone: a mailbox they name is deliverable, nothing is written. */
static void deliver_one(struct virtual_delivery *d, const struct mailbox_delivered_scan *seen,
                        const struct deliver_rcpt *r, bool probe, struct delivery_status *st)
{
    struct address a;
    const char *why = NULL;
    if (address_parse(r->address, strlen(r->address), ADDR_ALLOW_BARE | ADDR_ALLOW_UTF8, &a, &why)
            != ADDR_OK || !*a.domain) {
        delivery_status_set(st, 5, "5.1.3", "bad address syntax: %s", why ? why : "no domain");
        return;
    }
    struct virtual_mailbox mb;
    /* Delivered-To: lower-cased, as local's and Postfix's */
    char *delivered = str_lower(xstrdup(a.address));
    if (mailbox_delivered_seen(seen->values, seen->nvalues, delivered)) {
        delivery_status_set(st, 5, "5.4.6", "mail forwarding loop for %s", a.address);
    } else if (virtual_lookup(&virtual_cfg, a.local_lc, a.domain, &mb, st) == 0) {
        if (probe) {
            delivery_status_set(st, 2, "2.0.0", "delivers to mailbox %s", mb.path);
        } else {
            d->delivered_to = delivered;
            d->address = a.address;
            virtual_deliver(d, &mb, st);
        }
    }
    free(delivered);
    address_free(&a);
}

/* A final outcome must be on disk before anyone hears of it. */
static void mark_final(struct deliver_request *rq, size_t i, struct delivery_status *st)
{
    struct strbuf why = STRBUF_INIT(0);
    if (deliver_request_mark(rq, i, st->status, st->reason, &why) < 0)
        delivery_status_set(st, 4, "4.3.0", "%s", sb_str(&why));
    sb_free(&why);
}

static void deliver_all(struct deliver_request *rq, int ro_fd, struct outcome *out)
{
    static unsigned long seq;
    struct virtual_delivery d = {
        .msg = { .fd = ro_fd, .content_offset = rq->msg.content_offset,
                 .content_size = rq->msg.content_size, .sender = rq->msg.sender },
    };
    struct mailbox_delivered_scan seen;
    mailbox_delivered_scan_request(&seen, rq);   /* the message's Delivered-To: values */
    for (size_t i = 0; i < rq->nrcpt; i++) {
        const struct deliver_rcpt *r = &rq->rcpts[i];
        const struct qrcpt *rec = deliver_request_record(rq, i);
        long long start = now_usec();
        d.msg.seq = ++seq;
        /* X-Original-To: the address as the mail arrived, as Postfix's virtual writes it */
        const char *orig = delivery_orig_to(r->orcpt, r->address);
        d.msg.orig_to = orig ? orig : r->address;
        if (!rec) {
            delivery_status_set(&out[i].st, 4, "4.3.0", "recipient not found in queue file %s",
                                rq->queue_path);
            log_outcome(rq, r, &out[i].st);
        } else if (rec->done) {
            delivery_status_set(&out[i].st, 2, "2.0.0", "already delivered");
        } else {
            deliver_one(&d, &seen, r, (rq->flags & DELIVER_FLAG_VERIFY) != 0, &out[i].st);
            finish_status(&out[i].st);
            mark_final(rq, i, &out[i].st);
            log_outcome(rq, r, &out[i].st);
        }
        out[i].usec = now_usec() - start;
    }
    mailbox_delivered_scan_free(&seen);
}

void virtual_request_serve(int fd)
{
    struct deliver_request rq;
    if (deliver_request_read(fd, &rq, VIRTUAL_RCPT_MAX, virtual_cfg.ipc_timeout) < 0) {
        deliver_request_free(&rq);
        return;
    }
    struct outcome *out = xcalloc(rq.nrcpt, sizeof(*out));
    struct strbuf why = STRBUF_INIT(0);
    int ro_fd = -1;
    if (deliver_request_open(&rq, &why) == 0) {
        ro_fd = safe_reopen(rq.fd, O_RDONLY, &why);
        if (ro_fd < 0) {
            struct strbuf detail = STRBUF_INIT(0);
            sb_appendf(&detail, "cannot open queue file %s", sb_str(&why));
            sb_set(&why, sb_str(&detail));
            sb_free(&detail);
        }
    }
    if (ro_fd < 0) {
        msg_warn("%s: %s", rq.queue_id, sb_str(&why));
        for (size_t i = 0; i < rq.nrcpt; i++) {
            delivery_status_set(&out[i].st, 4, "4.3.0", "%s", sb_str(&why));
            finish_status(&out[i].st);
            log_outcome(&rq, &rq.rcpts[i], &out[i].st);
        }
    } else {
        deliver_all(&rq, ro_fd, out);
        close(ro_fd);
    }
    for (size_t i = 0; i < rq.nrcpt; i++) {
        struct deliver_result r = {
            .status = out[i].st.status, .dsn = out[i].st.dsn, .relay = "virtual",
            .reason = out[i].st.reason, .delay_transfer_usec = out[i].usec,
            .action = out[i].st.status == 2 ? "delivered" : NULL,
        };
        deliver_request_result(&rq, i, &r);
    }
    deliver_request_reply(fd, &rq, -1, virtual_cfg.ipc_timeout);
    sb_free(&why);
    free(out);
    deliver_request_free(&rq);
}
