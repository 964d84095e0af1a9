/* discard.c: the discard delivery agent, as Postfix's discard(8): it
 * delivers nothing and marks every recipient of a request delivered, with
 * the request's next hop as the reason (a transport_maps entry
 * "discard:text" logs "status=sent (text)"); a leading X.Y.Z in that text
 * is the status code, with its class made 2. An empty next hop gives
 * "discarded". It reads no content and runs as mail_owner; like every
 * agent it marks a recipient done in the queue file before qmgr hears of
 * it (lib/global/deliver_request.h). */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "deliver_request.h"
#include "dsn.h"
#include "log.h"
#include "log_delivery.h"
#include "server.h"
#include "util.h"

#define DISCARD_RCPT_MAX 100000
#define DISCARD_REASON_MAX 1024

static int discard_ipc_timeout;

/* The status code and text the next hop gives. */
static void discard_reason(const char *nexthop, char dsn[16], char reason[DISCARD_REASON_MAX])
{
    size_t n = dsn_prefix_len(nexthop, "2345");
    const char *text = nexthop;
    str_copy(dsn, 16, "2.0.0");
    if (n > 0) {
        memcpy(dsn, nexthop, n);
        dsn[n] = 0;
        dsn[0] = '2';
        text = nexthop + n;
        while (*text == ' ')
            text++;
    }
    str_copy(reason, DISCARD_REASON_MAX, *text ? text : "discarded");
    str_sanitize(reason);
}

static void discard_serve(int fd)
{
    struct deliver_request rq;
    struct strbuf why = STRBUF_INIT(0);
    if (deliver_request_read(fd, &rq, DISCARD_RCPT_MAX, discard_ipc_timeout) < 0)
        goto done;
    char dsn[16], reason[DISCARD_REASON_MAX], open_failed[DISCARD_REASON_MAX];
    discard_reason(rq.nexthop, dsn, reason);
    bool opened = deliver_request_open(&rq, &why) == 0;
    if (!opened) {
        msg_warn("%s: %s", rq.queue_id, sb_str(&why));
        str_copy(open_failed, sizeof(open_failed), sb_str(&why));
    }
    struct delivery_delays delays = {
        .queued = opened ? delivery_queue_delay(rq.msg.arrival_usec, rq.start_usec) : 0,
    };
    for (size_t i = 0; i < rq.nrcpt; i++) {
        const struct deliver_rcpt *r = &rq.rcpts[i];
        const struct qrcpt *rec = opened ? deliver_request_record(&rq, i) : NULL;
        int status = 2;
        const char *d = dsn, *text = reason;
        if (!opened) {
            status = 4, d = "4.3.0", text = open_failed;
        } else if (!rec) {
            status = 4, d = "4.3.0", text = "queue file and delivery request disagree";
        } else if (!rec->done && deliver_request_mark(&rq, i, 2, reason, &why) < 0) {
            status = 4, d = "4.3.0", text = sb_str(&why);
        }
        delays.transfer = now_usec() - rq.start_usec;
        if (!rec || !rec->done)
            log_delivery(rq.queue_id, r->address, delivery_orig_to(r->orcpt, r->address), "none",
                         0, &delays, d, delivery_status_name(status), text);
        struct deliver_result res = {
            .status = status, .dsn = d, .relay = "none", .reason = text,
            .delay_transfer_usec = delays.transfer,
            .action = status == 2 ? "delivered" : NULL,   /* nothing goes further */
        };
        deliver_request_result(&rq, i, &res);
    }
    deliver_request_reply(fd, &rq, -1, discard_ipc_timeout);
done:
    sb_free(&why);
    deliver_request_free(&rq);
}

static void discard_post_init(struct event_base *base)
{
    discard_ipc_timeout = (int)cfg_time(P_ipc_timeout);
}

SERVER_MAIN("discard", .mode = SERVER_SINGLE, .serve = discard_serve,
            .post_init = discard_post_init)
