/* smtpd_limits.c: the limits an internet-facing smtpd puts on each client.
 * Connection count and rate, message, recipient and AUTH rates are counted by the
 * anvil service for all smtpd processes together, as in Postfix; a session
 * asks anvil without blocking the event loop (it pauses, and the command
 * runs again once the answer is in), and when anvil cannot answer the limit
 * is skipped rather than the client refused. Clients matching
 * smtpd_client_event_limit_exceptions are never counted. Two deadlines keep
 * slow clients from holding a session: smtpd_per_record_deadline (a whole
 * line within smtpd_timeout) and smtpd_session_time_limit (the whole
 * session). */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "anvil_client.h"
#include "config.h"
#include "log.h"
#include "match_list.h"
#include "queue.h"
#include "server.h"
#include "smtpd.h"
#include "smtpd_limits.h"
#include "strbuf.h"
#include "util.h"

#define SESSION_LIMIT_RETRY 1   /* seconds: the session limit waits for our own components */

static struct {
    struct anvil_client *anvil;     /* NULL: no limit is set */
    struct match_list *exceptions;
    long conn_count, conn_rate, msg_rate, rcpt_rate, newtls_rate, auth_rate;
    bool per_record;
    long session_limit;
} lim;

struct smtpd_limits {
    struct smtpd_session *s;
    bool exempt;                    /* never counted */
    unsigned counted_on;            /* anvil connection that counted us, 0 none */
    struct anvil_pending *pending;
    enum anvil_request_type asked;
    enum smtp_verb redo_verb;       /* the command to run again with the answer */
    char *redo_arg;
    bool granted;                   /* that run passes the check */
    void (*tls_answer)(struct smtpd_session *s, bool ok);  /* waiting for the new TLS rate */
    bool reading;
    struct event *record_ev, *session_ev;
};

/* As root, before any chroot: the exceptions may name files and tables. */
void smtpd_limits_pre_init(void)
{
    struct strbuf err = STRBUF_INIT(4096);
    lim.exceptions = match_list_open("smtpd_client_event_limit_exceptions",
                                     cfg_str(P_smtpd_client_event_limit_exceptions),
                                     MATCH_NETWORKS, 0, &err);
    if (!lim.exceptions)
        msg_fatal("main.cf: %s", sb_str(&err));
    sb_free(&err);
}

void smtpd_limits_init(struct event_base *base)
{
    if (!lim.exceptions)
        smtpd_limits_pre_init();     /* started without the pre-init step */
    lim.conn_count = cfg_int(P_smtpd_client_connection_count_limit);
    lim.conn_rate = cfg_int(P_smtpd_client_connection_rate_limit);
    lim.msg_rate = cfg_int(P_smtpd_client_message_rate_limit);
    lim.rcpt_rate = cfg_int(P_smtpd_client_recipient_rate_limit);
    lim.newtls_rate = cfg_int(P_smtpd_client_new_tls_session_rate_limit);
    lim.auth_rate = cfg_int(P_smtpd_client_auth_rate_limit);
    lim.per_record = cfg_bool(P_smtpd_per_record_deadline);
    lim.session_limit = cfg_time(P_smtpd_session_time_limit);
    /* smtpd's working directory is the queue directory (see smtpd.c). */
    if (lim.conn_count > 0 || lim.conn_rate > 0 || lim.msg_rate > 0 || lim.rcpt_rate > 0
        || lim.newtls_rate > 0 || lim.auth_rate > 0)
        lim.anvil = anvil_client_create(base, QDIR_PRIVATE "/" ANVIL_SERVICE);
}

/* ---- asking anvil ---- */

static bool ask(struct smtpd_limits *l, enum anvil_request_type type, anvil_reply_fn fn)
{
    l->pending = anvil_client_ask(lim.anvil, type, server_service_name(), l->s->client_addr,
                                  fn, l);
    return l->pending != NULL;
}

static void connect_refuse(struct smtpd_session *s, const char *what, long n)
{
    msg_warn("%s limit exceeded: %ld from %s for service %s", what, n, s->client_desc,
             server_service_name());
    smtpd_session_close_with(s, 421, "4.7.0 %s Error: too many connections from %s",
                             smtpd_cfg.myhostname, s->client_addr);
    smtpd_session_finish_if_done(s);
}

static void connect_answer(void *ctx, const struct anvil_reply *rep)
{
    struct smtpd_limits *l = ctx;
    struct smtpd_session *s = l->s;
    l->pending = NULL;
    s->pause &= ~PAUSE_LIMITS;
    if (rep && rep->status == ANVIL_STAT_OK) {
        l->counted_on = anvil_client_connection(lim.anvil);
        if (lim.conn_count > 0 && rep->count > lim.conn_count) {
            connect_refuse(s, "Connection concurrency", rep->count);
            return;
        }
        if (lim.conn_rate > 0 && rep->rate > lim.conn_rate) {
            connect_refuse(s, "Connection rate", rep->rate);
            return;
        }
    }
    smtpd_session_start_greeting(s);
}

/* MAIL or RCPT had to wait: refuse it, or run it again to go on. */
static void event_answer(void *ctx, const struct anvil_reply *rep)
{
    struct smtpd_limits *l = ctx;
    struct smtpd_session *s = l->s;
    char *arg = l->redo_arg;
    bool mail = l->asked == ANVIL_REQ_MESSAGE;
    bool auth = l->asked == ANVIL_REQ_AUTH;
    long limit = auth ? lim.auth_rate : mail ? lim.msg_rate : lim.rcpt_rate;
    l->pending = NULL;
    l->redo_arg = NULL;
    if (s->state != ST_CLOSING) {
        if (auth && rep && rep->status == ANVIL_STAT_OK && rep->rate > limit) {
            msg_warn("AUTH command rate limit exceeded: %ld from %s for service %s", rep->rate,
                     s->client_desc, server_service_name());
            smtpd_session_reply(s, 450, "4.7.1 Error: too many AUTH commands from %s", s->client_addr);
        } else if (rep && rep->status == ANVIL_STAT_OK && rep->rate > limit) {
            msg_warn("%s rate limit exceeded: %ld from %s for service %s",
                     mail ? "Message delivery request" : "Recipient address", rep->rate,
                     s->client_desc, server_service_name());
            smtpd_session_reply(s, 452, "4.3.2 Error: too %s from %s",
                                mail ? "much mail" : "many recipients", s->client_addr);
        } else {
            l->granted = true;
            smtpd_command_resume(s, l->redo_verb, arg);
            l->granted = false;
        }
    }
    free(arg);
    smtpd_session_resume(s, PAUSE_LIMITS);
    smtpd_session_finish_if_done(s);
}

static bool event_wait(struct smtpd_session *s, enum smtp_verb verb,
                       enum anvil_request_type type, long limit, const char *arg)
{
    struct smtpd_limits *l = s->limits;
    if (!l || !lim.anvil || l->exempt || limit <= 0)
        return false;
    if (l->granted) {
        l->granted = false;
        return false;
    }
    if (!ask(l, type, event_answer))
        return false;       /* anvil is not there: no limit */
    l->asked = type;
    l->redo_verb = verb;
    l->redo_arg = xstrdup(arg);
    s->pause |= PAUSE_LIMITS;
    return true;
}

bool smtpd_limits_mail_wait(struct smtpd_session *s, const char *arg)
{
    return event_wait(s, SMTP_MAIL, ANVIL_REQ_MESSAGE, lim.msg_rate, arg);
}

bool smtpd_limits_rcpt_wait(struct smtpd_session *s, const char *arg)
{
    return event_wait(s, SMTP_RCPT, ANVIL_REQ_RECIPIENT, lim.rcpt_rate, arg);
}

/* ---- new TLS sessions ---- */

static void newtls_answer(void *ctx, const struct anvil_reply *rep)
{
    struct smtpd_limits *l = ctx;
    struct smtpd_session *s = l->s;
    void (*fn)(struct smtpd_session *, bool) = l->tls_answer;
    l->pending = NULL;
    l->tls_answer = NULL;
    s->pause &= ~PAUSE_LIMITS;
    if (s->state != ST_CLOSING) {
        bool ok = !(rep && rep->status == ANVIL_STAT_OK && rep->rate >= lim.newtls_rate);
        if (!ok)
            msg_warn("New TLS session rate limit exceeded: %ld from %s for service %s",
                     rep->rate, s->client_desc, server_service_name());
        fn(s, ok);
    }
    smtpd_session_resume(s, 0);
    smtpd_session_finish_if_done(s);
}

bool smtpd_limits_newtls_wait(struct smtpd_session *s, void (*answer)(struct smtpd_session *s, bool ok))
{
    struct smtpd_limits *l = s->limits;
    if (!l || !lim.anvil || l->exempt || lim.newtls_rate <= 0)
        return false;
    if (!ask(l, ANVIL_REQ_NEWTLS_STATUS, newtls_answer))
        return false;       /* anvil is not there: no limit */
    l->tls_answer = answer;
    s->pause |= PAUSE_LIMITS;
    return true;
}

void smtpd_limits_newtls_count(struct smtpd_session *s)
{
    struct smtpd_limits *l = s->limits;
    if (!l || !lim.anvil || l->exempt || lim.newtls_rate <= 0)
        return;
    anvil_client_ask(lim.anvil, ANVIL_REQ_NEWTLS, server_service_name(), s->client_addr,
                     NULL, NULL);
}

bool smtpd_limits_auth_wait(struct smtpd_session *s, const char *arg)
{
    return event_wait(s, SMTP_AUTH, ANVIL_REQ_AUTH, lim.auth_rate, arg);
}

/* ---- deadlines ---- */

static void arm(struct event *ev, long seconds)
{
    struct timeval tv = { seconds, 0 };
    evtimer_add(ev, &tv);
}

/* Time only counts while we wait for the client: while smtpd itself holds
 * the session (greeting delay, cleanup, anvil, error delay) it starts over. */
static void record_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_limits *l = arg;
    struct smtpd_session *s = l->s;
    if (s->state == ST_CLOSING)
        return;
    if (s->pause) {
        arm(l->record_ev, smtpd_cfg.timeout);
        return;
    }
    msg_info("timeout after %s from %s", s->where, s->client_desc);
    s->verb = SMTP_VERB_NONE;
    smtpd_session_close_with(s, 421, "4.4.2 %s Error: timeout exceeded", smtpd_cfg.myhostname);
    smtpd_session_finish_if_done(s);
}

static void session_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_limits *l = arg;
    struct smtpd_session *s = l->s;
    if (s->state == ST_CLOSING)
        return;
    /* A message being committed gets its verdict first: cutting in could
     * leave a queued message unacknowledged, and the client would send it
     * again. */
    if (s->pause & (PAUSE_CLEANUP | PAUSE_LIMITS)) {
        arm(l->session_ev, SESSION_LIMIT_RETRY);
        return;
    }
    msg_info("session time limit exceeded after %s from %s", s->where, s->client_desc);
    s->verb = SMTP_VERB_NONE;
    smtpd_session_close_with(s, 421, "4.4.2 %s Error: session time limit exceeded",
                             smtpd_cfg.myhostname);
    smtpd_session_finish_if_done(s);
}

void smtpd_limits_input(struct smtpd_session *s)
{
    struct smtpd_limits *l = s->limits;
    if (!l || !l->record_ev)
        return;
    struct evbuffer *in = bufferevent_get_input(s->bev);
    /* A BDAT chunk is bytes, not lines: any progress counts. Elsewhere
     * unprocessed input never holds a whole line while reading is on (lines
     * are taken as soon as they are complete), so a line end here is new. */
    if (s->state == ST_BDAT ? evbuffer_get_length(in) > 0
                            : evbuffer_search(in, "\n", 1, NULL).pos >= 0)
        arm(l->record_ev, smtpd_cfg.timeout);
}

void smtpd_limits_reading(struct smtpd_session *s, bool on)
{
    struct smtpd_limits *l = s->limits;
    if (!l || !l->record_ev)
        return;
    if (on && !l->reading)
        arm(l->record_ev, smtpd_cfg.timeout);
    l->reading = on;
}

static void start_deadlines(struct smtpd_limits *l)
{
    struct event_base *base = l->s->base;
    if (lim.per_record) {
        l->record_ev = evtimer_new(base, record_deadline, l);
        if (l->record_ev)
            arm(l->record_ev, smtpd_cfg.timeout);
    }
    if (lim.session_limit > 0) {
        l->session_ev = evtimer_new(base, session_deadline, l);
        if (l->session_ev)
            arm(l->session_ev, lim.session_limit);
    }
}

/* ---- session start and end ---- */

bool smtpd_limits_connect(struct smtpd_session *s)
{
    struct smtpd_limits *l = xcalloc(1, sizeof(*l));
    l->s = s;
    s->limits = l;
    start_deadlines(l);
    if (!lim.anvil)
        return false;
    /* a failed table lookup counts the client, as one not listed */
    l->exempt = match_list_addr(lim.exceptions, s->client_addr) > 0;
    if (l->exempt || !ask(l, ANVIL_REQ_CONNECT, connect_answer))
        return false;
    s->pause |= PAUSE_LIMITS;
    return true;
}

void smtpd_limits_session_end(struct smtpd_session *s)
{
    struct smtpd_limits *l = s->limits;
    if (!l)
        return;
    anvil_pending_cancel(l->pending);
    /* anvil forgets a connection's counts when it closes: only the
     * connection that counted this client may be told it is gone. */
    if (l->counted_on && anvil_client_connection(lim.anvil) == l->counted_on)
        anvil_client_ask(lim.anvil, ANVIL_REQ_DISCONNECT, server_service_name(), s->client_addr,
                         NULL, NULL);
    if (l->record_ev)
        event_free(l->record_ev);
    if (l->session_ev)
        event_free(l->session_ev);
    free(l->redo_arg);
    free(l);
    s->limits = NULL;
}
