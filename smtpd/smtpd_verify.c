/* smtpd_verify.c: reject_unverified_recipient and reject_unverified_sender,
 * Postfix's address verification by probe: smtpd asks the verify service
 * (verify/verify.c over private/verify; lib/global/verify_proto.h) about
 * the address, which answers from its cache or sends a probe. A new
 * address's first answer is "unknown" (probe under way): smtpd asks again
 * every address_verify_poll_delay, address_verify_poll_count times in
 * all, without stopping the event loop, and then answers:
 *
 *   deliverable     nothing: the next restriction decides;
 *   undeliverable   unverified_*_reject_code (450; 550 for a gateway),
 *                   "<addr>: Recipient address rejected: unverified
 *                   address: REPLY THE PROBE GOT" (or
 *                   unverified_*_reject_reason);
 *   deferred, still unknown, or the service cannot be asked:
 *                   unverified_*_tempfail_action (defer_if_permit) with
 *                   unverified_*_defer_code (450) "... unverified address:
 *                   Address verification in progress" or the reason:
 *                   never an accept of an address that may bounce. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "attr.h"
#include "config.h"
#include "evframe.h"
#include "log.h"
#include "server.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "util.h"
#include "verify_proto.h"

#define VERIFY_STEP_TIMEOUT 10        /* seconds for connecting and each answer */
#define VERIFY_POLL_MAX 20            /* address_verify_poll_count is held below this */
#define VERIFY_IN_PROGRESS "Address verification in progress"
#define VERIFY_UNAVAILABLE "Address verification service unavailable"

struct smtpd_verify_request {
    struct smtpd_check_job *j;
    struct bufferevent *bev;
    struct event *poll_ev;
    char *address;
    int polls_left;
    bool greeted;
};

/* One connection per question: the next poll starts afresh. */
static void request_close(struct smtpd_verify_request *v)
{
    struct bufferevent *bev = v->bev;
    v->bev = NULL;
    v->greeted = false;
    if (bev)
        bufferevent_free(bev);
}

void smtpd_verify_cancel(struct smtpd_verify_request *v)
{
    if (!v)
        return;
    if (v->poll_ev)
        event_free(v->poll_ev);
    request_close(v);
    free(v->address);
    free(v);
}

/* The final answer (status -1: none could be had): evaluate on. */
static void request_end(struct smtpd_verify_request *v, int status, const char *reason)
{
    v->j->async_status = status;
    str_copy(v->j->async_text, sizeof(v->j->async_text), reason);
    v->j->vreq = NULL;
    struct smtpd_check_job *j = v->j;
    smtpd_verify_cancel(v);
    smtpd_check_job_continue(j);
}

static bool request_start(struct smtpd_verify_request *v);

static void poll_again(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_verify_request *v = arg;
    if (!request_start(v))
        request_end(v, -1, VERIFY_UNAVAILABLE);
}

static void handle_answer(struct smtpd_verify_request *v, const struct verify_answer *ans)
{
    request_close(v);
    if (ans->status != VERIFY_STAT_TODO || --v->polls_left <= 0) {
        request_end(v, ans->status, ans->reason);
        return;
    }
    long delay = cfg_time(P_address_verify_poll_delay);
    struct timeval tv = { delay < 1 ? 1 : delay, 0 };
    if (!v->poll_ev)
        v->poll_ev = evtimer_new(v->j->s->base, poll_again, v);
    if (!v->poll_ev || evtimer_add(v->poll_ev, &tv) < 0)
        request_end(v, ans->status, ans->reason);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_verify_request *v = arg;
    unsigned char *frame;
    for (;;) {
        ssize_t size = evframe_take(bufferevent_get_input(bev), attr_frame_size, VERIFY_FRAME_LIMIT,
                                    &frame);
        if (size == 0)
            return;
        if (size < 0) {
            msg_warn("unable to talk to %s: oversized answer", VERIFY_SOCKET);
            request_end(v, -1, VERIFY_UNAVAILABLE);
            return;
        }
        if (!v->greeted) {
            struct attr_reader r;
            const char *proto;
            struct strbuf out = STRBUF_INIT(VERIFY_FRAME_LIMIT);
            bool ok = attr_reader_init(&r, frame, (size_t)size) == 0
                      && attr_get_str(&r, "protocol", &proto) == 0 && attr_reader_done(&r) == 0
                      && strcmp(proto, VERIFY_PROTOCOL) == 0
                      && verify_encode_query(&out, v->address, 1) == 0
                      && bufferevent_write(bev, out.data, out.len) == 0;
            sb_free(&out);
            free(frame);
            if (!ok) {
                msg_warn("unable to talk to %s: unexpected greeting", VERIFY_SOCKET);
                request_end(v, -1, VERIFY_UNAVAILABLE);
                return;
            }
            v->greeted = true;
            continue;
        }
        struct verify_answer ans;
        int rc = verify_decode_answer(frame, (size_t)size, &ans);
        free(frame);
        if (rc < 0) {
            msg_warn("unable to talk to %s: malformed answer", VERIFY_SOCKET);
            request_end(v, -1, VERIFY_UNAVAILABLE);
        } else {
            handle_answer(v, &ans);
        }
        return;
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtpd_verify_request *v = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    msg_warn("unable to talk to %s: %s", VERIFY_SOCKET,
             (what & BEV_EVENT_TIMEOUT) ? "timeout" : (what & BEV_EVENT_EOF) ? "connection closed"
                                                                             : strerror(errno));
    request_end(v, -1, VERIFY_UNAVAILABLE);
}

/* Connect and ask; false (warned) when it cannot even be started. */
static bool request_start(struct smtpd_verify_request *v)
{
    const char *why = "";
    v->bev = evframe_connect_unix(v->j->s->base, VERIFY_SOCKET, VERIFY_FRAME_LIMIT,
                                  VERIFY_STEP_TIMEOUT, read_cb, event_cb, v, &why);
    if (!v->bev)
        msg_warn("unable to talk to %s: %s", VERIFY_SOCKET, why);
    return v->bev != NULL;
}

/* unverified_*_tempfail_action for a result that is not final. */
static enum smtpd_check_result tempfail(struct smtpd_check_job *j, bool sender, const char *addr,
                                        const char *text)
{
    const char *action = cfg_str(sender ? P_unverified_sender_tempfail_action
                                        : P_unverified_recipient_tempfail_action);
    int code = cfg_reply_code(sender ? P_unverified_sender_defer_code
                                     : P_unverified_recipient_defer_code);
    const char *dsn = sender ? "4.1.7" : "4.1.1";
    const char *cls = sender ? "Sender address" : "Recipient address";
    if (strcmp(action, "dunno") == 0)
        return CHK_DUNNO;
    if (strcmp(action, "defer") == 0)
        return smtpd_check_reject(j, code, dsn, "<%s>: %s rejected: unverified address: %s", addr,
                                  cls, text);
    if (strcmp(action, "defer_if_permit") != 0)
        msg_warn("%s = %s: not defer_if_permit, defer or dunno; using defer_if_permit",
                 sender ? "unverified_sender_tempfail_action" : "unverified_recipient_tempfail_action",
                 action);
    return smtpd_check_defer_if_permit(j, code, dsn, "<%s>: %s rejected: unverified address: %s",
                                       addr, cls, text);
}

enum smtpd_check_result smtpd_verify_check(struct smtpd_check_job *j,
                                           const struct smtpd_restriction *r)
{
    bool sender = r->type == R_REJECT_UNVERIFIED_SENDER;
    const struct address *a = sender ? smtpd_check_sender(j) : smtpd_check_recipient(j);
    if (!a || !*a->address)          /* no such address here, or the null sender */
        return CHK_DUNNO;
    if (!j->resumed) {
        struct smtpd_verify_request *v = xcalloc(1, sizeof(*v));
        v->j = j;
        v->address = xstrdup(a->address);
        long polls = cfg_int(P_address_verify_poll_count);
        v->polls_left = polls < 1 ? 1 : polls > VERIFY_POLL_MAX ? VERIFY_POLL_MAX : (int)polls;
        if (!request_start(v)) {
            smtpd_verify_cancel(v);
            return tempfail(j, sender, a->address, VERIFY_UNAVAILABLE);
        }
        j->vreq = v;
        return CHK_WAIT;
    }
    switch (j->async_status) {
    case VERIFY_STAT_OK:
        return CHK_DUNNO;
    case VERIFY_STAT_BOUNCE: {
        const char *reason = cfg_str(sender ? P_unverified_sender_reject_reason
                                            : P_unverified_recipient_reject_reason);
        int code = cfg_reply_code(sender ? P_unverified_sender_reject_code
                                         : P_unverified_recipient_reject_code);
        const char *cls = sender ? "Sender address" : "Recipient address";
        if (*reason)
            return smtpd_check_reject(j, code, sender ? "5.1.7" : "5.1.1", "<%s>: %s rejected: %s",
                                      a->address, cls, reason);
        return smtpd_check_reject(j, code, sender ? "5.1.7" : "5.1.1",
                                  "<%s>: %s rejected: unverified address: %s", a->address, cls,
                                  *j->async_text ? j->async_text : "undeliverable address");
    }
    case VERIFY_STAT_DEFER:
        return tempfail(j, sender, a->address, *j->async_text ? j->async_text : VERIFY_IN_PROGRESS);
    case VERIFY_STAT_TODO:
        return tempfail(j, sender, a->address, VERIFY_IN_PROGRESS);
    default:
        return tempfail(j, sender, a->address, VERIFY_UNAVAILABLE);
    }
}
