/* deliver_request.h: the agent side of the delivery protocol with qmgr
 * (doc/PROTOCOLS.md, "Delivery agents"), shared by every delivery agent
 * (smtp, local, and any new one: lmtp, virtual, pipe). An agent's author
 * writes only the delivery itself, and main() (lib/server.h) calls, for
 * each connection from qmgr, the agent's serve function, which makes
 * these calls in this order:
 *
 *   struct deliver_request rq;
 *   if (deliver_request_read(fd, &rq, MAX, timeout) < 0)     -- warned
 *       { deliver_request_free(&rq); return; }
 *   if (deliver_request_open(&rq, &why) < 0)                  -- every
 *       recipient gets 4.3.0 with why as its reason
 *   for each recipient i:
 *       deliver_request_record(&rq, i)   NULL: not a record of this file
 *                                        (4.3.0), ->done: already final
 *       ... deliver, reading the content with deliver_request_scan ...
 *       deliver_request_mark(&rq, i, ...) before qmgr hears of a 2 or 5
 *       log_delivery(...)                 (log_delivery.h: one line per
 *                                        delivery, the only place it is
 *                                        formatted)
 *       deliver_request_result(&rq, i, &result)
 *   deliver_request_reply(fd, &rq, site_failed, timeout);
 *   deliver_request_free(&rq);
 *
 * The queue file is opened once, by name, with safe_open's checks (no link
 * followed; a plain file of mail_owner's with one link); everything after
 * that, marks included, uses rq.fd or a safe_reopen() of it, so a name
 * swapped meanwhile changes nothing.
 *
 * smtp/smtp_request.c is the example of an agent with a next hop (it
 * sends site_failed), local/local_request.c of one that delivers on this
 * host and hands children a read-only descriptor of the queue file. */
#ifndef TERN_DELIVER_REQUEST_H
#define TERN_DELIVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "queue.h"
#include "strbuf.h"

/* Request flags. DELIVER_FLAG_PASSED: the request comes from another agent
 * (deliver_pass.h, local's mailbox_transport), not qmgr: each recipient is
 * the address to deliver to, which may differ from that of the R record
 * at its offset (an alias's target), and the R record is the caller's to
 * mark: deliver_request_record matches it by offset alone and
 * deliver_request_mark leaves it as it is. */
#define DELIVER_FLAG_PASSED 0x01
/* DELIVER_FLAG_VERIFY: the message is an address verification probe
 * (verify/verify.c): the agent finds out whether it could deliver to each
 * recipient and reports that as the outcome, but delivers nothing (smtp
 * and lmtp end the transaction after the RCPT reply; local and virtual
 * look the recipient up without writing). qmgr hands the outcomes to the
 * verify service instead of bouncing. */
#define DELIVER_FLAG_VERIFY 0x02

/* One recipient as qmgr sent it (strings point into the request frame). */
struct deliver_rcpt {
    const char *address, *orcpt, *notify;
    off_t offset;                 /* of its R record in the queue file */
};

struct deliver_request {
    /* from qmgr (strings point into frame) */
    const char *queue_id, *queue_path, *transport, *nexthop, *sender;
    long long flags;
    struct deliver_rcpt *rcpts;
    size_t nrcpt;                 /* recipients read completely */
    long long start_usec;         /* when the request frame was read */
    /* the queue file, after deliver_request_open */
    int fd;                       /* O_RDWR, -1 until opened; owned here */
    struct qmessage msg;          /* its envelope and recipient records */
    struct strbuf frame;          /* the request frame as read */
    struct strbuf reply;          /* result frames waiting to be sent */
};

/* The outcome of one recipient, as the result frame carries it. */
struct deliver_result {
    int status;                   /* 2 sent, 4 deferred, 5 bounced */
    const char *dsn;              /* X.Y.Z */
    const char *relay;            /* host[addr]:port, "local", "none" */
    const char *reason;           /* one line */
    long long delay_connect_usec, delay_transfer_usec;
    const char *action;           /* NULL, or for status 2: delivered, relayed, notified */
};

/* Say {protocol=delivery}, read one request frame within timeout seconds
 * and check it: at most rcpt_max recipients, a valid queue ID, and a
 * queue_path that is a queue directory and that ID (active/, deferred/,
 * incoming/ or hold/, nothing else). 0 ok; -1 after a warning (the caller
 * sends nothing back: qmgr sees the connection close). rq is initialised
 * either way; free it with deliver_request_free. */
int deliver_request_read(int fd, struct deliver_request *rq, size_t rcpt_max, int timeout);

/* Open the queue file (see the top), load its envelope into rq->msg and
 * require it complete. 0 ok; -1 with why set to the reason every
 * recipient is deferred with ("refusing queue file PATH: ...", "cannot
 * open queue file ...", "cannot read queue file ...", "queue file PATH is
 * incomplete"). */
int deliver_request_open(struct deliver_request *rq, struct strbuf *why);

/* The R record recipient i names: the one at its offset with its address,
 * done or pending; NULL when the file has none (qmgr and the file
 * disagree, which is a 4.3.0). Only such records may be marked done. */
const struct qrcpt *deliver_request_record(const struct deliver_request *rq, size_t i);

/* Stream the message content to fn, chunk by chunk (qfile_read_content):
 * 0 ok, -1 on a read error, corruption or when fn returned non-zero. */
int deliver_request_scan(const struct deliver_request *rq,
                         int (*fn)(const char *data, size_t len, void *ctx), void *ctx);

/* Mark recipient i done in the queue file when status is final (2 or 5);
 * call it before the outcome is logged or reported, so that a crash never
 * delivers twice. 0 marked or nothing to mark; -1 when the mark could not
 * be written: warned, and why holds "REASON (queue file update failed:
 * ERROR)", the text of the 4.3.0 deferral the outcome must become. */
int deliver_request_mark(struct deliver_request *rq, size_t i, int status, const char *reason,
                         struct strbuf *why);

/* Queue the result frame of recipient i (in request order). */
void deliver_request_result(struct deliver_request *rq, size_t i, const struct deliver_result *r);

/* Send the queued result frames and the closing {done, site_failed}
 * frame. site_failed: 1 when the next hop itself failed (doc/PROTOCOLS.md),
 * else 0; -1 for an agent without a next hop that could fail (local):
 * the field is left out, which qmgr reads as 0. A failure to send is
 * warned; qmgr then defers the recipients itself. */
void deliver_request_reply(int fd, struct deliver_request *rq, int site_failed, int timeout);

void deliver_request_free(struct deliver_request *rq);

/* The status= word of a delivery log line for a request with these flags:
 * delivery_status_name's ("sent", "deferred", "bounced"), or for a probe
 * (DELIVER_FLAG_VERIFY)
 * Postfix's "deliverable", "deferred", "undeliverable". */
const char *deliver_request_status_name(long long flags, int status);

#endif
