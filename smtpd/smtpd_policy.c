/* smtpd_policy.c: check_policy_service, Postfix's policy delegation
 * protocol, so that existing policy servers (postgrey, policyd-spf, ...)
 * work unchanged: smtpd sends "name=value" lines and an empty line over
 * UNIX (unix:path, relative to the queue directory) or TCP
 * (inet:host:port), and the server answers "action=..." and an empty line;
 * the action is an access(5) result. Requests run in the event loop; an
 * answered connection is kept for the next request (up to
 * smtpd_policy_service_max_idle and _max_ttl). A server that cannot be
 * reached, is too slow (smtpd_policy_service_timeout) or answers nonsense
 * is tried smtpd_policy_service_try_limit times, then
 * smtpd_policy_service_default_action applies (451 4.3.5 by default):
 * never an accept. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "chroot.h"
#include "config.h"
#include "endpoint.h"
#include "log.h"
#include "server.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "strbuf.h"
#include "util.h"

#define POLICY_REPLY_MAX 8192
#define POLICY_SERVICES_MAX 32

struct policy_conn {
    struct smtpd_policy_service *svc;
    struct bufferevent *bev;
    long long born;
    struct event *idle_ev;
    struct smtpd_policy_request *req;     /* the request it carries, NULL when idle */
    bool reused;
};

struct smtpd_policy_service {
    char *endpoint;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct policy_conn *idle;
};

struct smtpd_policy_request {
    struct smtpd_check_job *j;
    struct smtpd_policy_service *svc;
    struct policy_conn *conn;
    struct strbuf text;
    int tries;
    struct event *retry_ev;
    const char *fail_why;           /* a failure to report from the timer */
};

static struct {
    long timeout, max_idle, max_ttl, retry_delay;
    int try_limit;
    const char *default_action, *context;
} pcfg;

static struct smtpd_policy_service services[POLICY_SERVICES_MAX];
static size_t nservices;
static unsigned long instance_counter;

void smtpd_policy_init(void)
{
    pcfg.timeout = cfg_time(P_smtpd_policy_service_timeout);
    pcfg.max_idle = cfg_time(P_smtpd_policy_service_max_idle);
    pcfg.max_ttl = cfg_time(P_smtpd_policy_service_max_ttl);
    pcfg.retry_delay = cfg_time(P_smtpd_policy_service_retry_delay);
    long tries = cfg_int(P_smtpd_policy_service_try_limit);
    pcfg.try_limit = tries < 1 ? 1 : tries > 10 ? 10 : (int)tries;
    pcfg.default_action = cfg_str(P_smtpd_policy_service_default_action);
    pcfg.context = cfg_str(P_smtpd_policy_service_policy_context);
    if (pcfg.timeout <= 0)
        pcfg.timeout = 1;
}

struct smtpd_policy_service *smtpd_policy_service_get(const char *endpoint)
{
    for (size_t i = 0; i < nservices; i++)
        if (strcmp(services[i].endpoint, endpoint) == 0)
            return &services[i];
    if (nservices == POLICY_SERVICES_MAX)
        return NULL;
    struct smtpd_policy_service *p = &services[nservices];
    memset(p, 0, sizeof(*p));
    if (!endpoint_resolve(endpoint, "localhost", &p->addr, &p->addrlen))
        return NULL;
    p->endpoint = xstrdup(endpoint);
    nservices++;
    return p;
}

/* ---- connections ---- */

static void conn_free(struct policy_conn *c)
{
    if (c->svc->idle == c)
        c->svc->idle = NULL;
    if (c->idle_ev)
        event_free(c->idle_ev);
    bufferevent_free(c->bev);
    free(c);
}

static void idle_expired(evutil_socket_t fd, short what, void *arg)
{
    conn_free(arg);
}

static void idle_event(struct bufferevent *bev, short what, void *arg)
{
    conn_free(arg);     /* the server closed an idle connection */
}

/* An answered connection waits for the next request, unless one already
 * waits or it is old. */
static void conn_release(struct policy_conn *c)
{
    c->req = NULL;
    struct smtpd_policy_service *svc = c->svc;
    if (svc->idle || now_usec() - c->born > pcfg.max_ttl * 1000000LL
        || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        conn_free(c);
        return;
    }
    svc->idle = c;
    bufferevent_setcb(c->bev, NULL, NULL, idle_event, c);
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    bufferevent_enable(c->bev, EV_READ);
    if (!c->idle_ev)
        c->idle_ev = evtimer_new(server_event_base(), idle_expired, c);
    struct timeval tv = { pcfg.max_idle, 0 };
    evtimer_add(c->idle_ev, &tv);
}

/* ---- requests ---- */

static void request_send(struct smtpd_policy_request *p);

static void request_end(struct smtpd_policy_request *p, const char *action, size_t len)
{
    struct smtpd_check_job *j = p->j;
    if (action) {
        j->async_status = 1;
        size_t n = len < sizeof(j->async_text) - 1 ? len : sizeof(j->async_text) - 1;
        memcpy(j->async_text, action, n);
        j->async_text[n] = 0;
    } else {
        j->async_status = 0;
    }
    if (p->retry_ev)
        event_free(p->retry_ev);
    sb_free(&p->text);
    free(p);
    smtpd_check_job_continue(j);
}

static void request_failed(struct smtpd_policy_request *p, const char *why);

static void retry_timer(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_policy_request *p = arg;
    if (p->fail_why) {
        const char *why = p->fail_why;
        p->fail_why = NULL;
        request_failed(p, why);
    } else {
        request_send(p);
    }
}

/* Failures found while sending are reported from the loop: the caller
 * expects its answer later, never from inside smtpd_policy_check(). */
static void fail_later(struct smtpd_policy_request *p, const char *why)
{
    p->fail_why = why;
    if (!p->retry_ev)
        p->retry_ev = evtimer_new(server_event_base(), retry_timer, p);
    struct timeval tv = { 0, 0 };
    evtimer_add(p->retry_ev, &tv);
}

static void request_failed(struct smtpd_policy_request *p, const char *why)
{
    bool reused = p->conn && p->conn->reused;
    if (p->conn) {
        conn_free(p->conn);
        p->conn = NULL;
    }
    msg_warn("problem talking to server %s: %s", p->svc->endpoint, why);
    /* a kept connection the server had closed costs no try */
    if (!reused)
        p->tries++;
    if (p->tries >= pcfg.try_limit) {
        request_end(p, NULL, 0);
        return;
    }
    if (reused) {
        request_send(p);
        return;
    }
    if (!p->retry_ev)
        p->retry_ev = evtimer_new(server_event_base(), retry_timer, p);
    struct timeval tv = { pcfg.retry_delay, 0 };
    evtimer_add(p->retry_ev, &tv);
}

static void conn_read(struct bufferevent *bev, void *arg)
{
    struct policy_conn *c = arg;
    struct smtpd_policy_request *p = c->req;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    const char *buf = (const char *)evbuffer_pullup(in, (ssize_t)len);
    const char *action;
    size_t alen, used;
    int rc = smtpd_policy_reply_parse(buf, len, POLICY_REPLY_MAX, &action, &alen, &used);
    if (rc == 0)
        return;
    if (rc < 0) {
        request_failed(p, "malformed reply");
        return;
    }
    char *copy = xstrndup(action, alen);
    evbuffer_drain(in, used);
    p->conn = NULL;
    conn_release(c);
    request_end(p, copy, strlen(copy));
    free(copy);
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
    struct policy_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    request_failed(c->req, (what & BEV_EVENT_TIMEOUT) ? "timeout"
                   : (what & BEV_EVENT_EOF) ? "connection closed" : strerror(errno));
}

static void request_send(struct smtpd_policy_request *p)
{
    struct smtpd_policy_service *svc = p->svc;
    struct policy_conn *c = svc->idle;
    if (c) {
        svc->idle = NULL;
        evtimer_del(c->idle_ev);
        c->reused = true;
    } else {
        c = xcalloc(1, sizeof(*c));
        c->svc = svc;
        c->born = now_usec();
        c->bev = bufferevent_socket_new(server_event_base(), -1, BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev || bufferevent_socket_connect(c->bev, (struct sockaddr *)&svc->addr,
                                                  (int)svc->addrlen) < 0) {
            if (c->bev)
                bufferevent_free(c->bev);
            free(c);
            p->conn = NULL;
            /* a path outside queue_directory cannot be reached from the chroot */
            fail_later(p, chroot_active() && svc->addr.ss_family == AF_UNIX
                          ? "cannot connect (this smtpd is chrooted: the socket must be under "
                            "queue_directory)" : "cannot connect");
            return;
        }
    }
    c->req = p;
    p->conn = c;
    bufferevent_setcb(c->bev, conn_read, NULL, conn_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, POLICY_REPLY_MAX + 1);
    struct timeval tv = { pcfg.timeout, 0 };
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    bufferevent_write(c->bev, p->text.data, p->text.len);
}

void smtpd_policy_request_cancel(struct smtpd_policy_request *p)
{
    if (!p)
        return;
    if (p->conn)
        conn_free(p->conn);     /* its answer would belong to nobody */
    if (p->retry_ev)
        event_free(p->retry_ev);
    sb_free(&p->text);
    free(p);
}

/* ---- the request ---- */

static void attr(struct strbuf *b, const char *name, const char *value)
{
    sb_appendf(b, "%s=", name);
    for (const char *v = value ? value : ""; *v; v++)
        sb_appendc(b, (unsigned char)*v < 32 ? ' ' : *v);
    sb_appendc(b, '\n');
}

static void build_request(struct smtpd_check_job *j, struct strbuf *b)
{
    struct smtpd_session *s = j->s;
    struct smtpd_check_state *c = s->check;
    char num[64], port[16], saddr[INET6_ADDRSTRLEN] = "";
    const struct address *snd = smtpd_check_sender(j);
    if (!c->instance[0])
        snprintf(c->instance, sizeof(c->instance), "%x.%lx.%lx", (unsigned)getpid(),
                 (unsigned long)now_usec() & 0xffffffUL, ++instance_counter);
    unsigned sport = 0;
    if (s->local.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&s->local)->sin_addr, saddr, sizeof(saddr));
        sport = ntohs(((struct sockaddr_in *)&s->local)->sin_port);
    } else if (s->local.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&s->local)->sin6_addr, saddr, sizeof(saddr));
        sport = ntohs(((struct sockaddr_in6 *)&s->local)->sin6_port);
    }
    attr(b, "request", "smtpd_access_policy");
    attr(b, "protocol_state", s->where ? s->where : "CONNECT");
    attr(b, "protocol_name", s->esmtp ? "ESMTP" : "SMTP");
    attr(b, "helo_name", j->helo_arg ? j->helo_arg : s->helo_name);
    attr(b, "queue_id", "");
    attr(b, "sender", snd ? snd->address : "");
    attr(b, "recipient", j->rcpt ? j->rcpt : "");
    snprintf(num, sizeof(num), "%zu", s->nrcpt);
    attr(b, "recipient_count", num);
    attr(b, "client_address", s->client_addr);
    attr(b, "client_name", c->name);
    attr(b, "reverse_client_name", c->reverse_name);
    attr(b, "instance", c->instance);
    attr(b, "sasl_method", s->sasl_method);
    attr(b, "sasl_username", s->sasl_username);
    attr(b, "sasl_sender", "");
    snprintf(num, sizeof(num), "%lld", s->in_mail && s->mail.size > 0 ? s->mail.size : 0);
    attr(b, "size", num);
    /* as Postfix: names of a trusted certificate, fingerprints of any */
    bool trusted = s->tls_active && s->tls_ccert_trusted, present = s->tls_active && s->tls_ccert_present;
    attr(b, "ccert_subject", trusted ? s->tls_ccert_subject : "");
    attr(b, "ccert_issuer", trusted ? s->tls_ccert_issuer : "");
    attr(b, "ccert_fingerprint", present ? s->tls_ccert_fprint : "");
    attr(b, "ccert_pubkey_fingerprint", present ? s->tls_ccert_pkey_fprint : "");
    attr(b, "encryption_protocol", s->tls_active ? s->tls_protocol : "");
    attr(b, "encryption_cipher", s->tls_active ? s->tls_cipher : "");
    snprintf(num, sizeof(num), "%d", s->tls_active ? s->tls_cipher_bits : 0);
    attr(b, "encryption_keysize", num);
    attr(b, "etrn_domain", "");
    attr(b, "stress", "");
    attr(b, "client_port", s->client_port);
    attr(b, "policy_context", pcfg.context);
    attr(b, "server_address", saddr);
    snprintf(port, sizeof(port), "%u", sport);
    attr(b, "server_port", port);
    attr(b, "mail_version", "3.7.0");
    attr(b, "compatibility_level", "3.6");
    sb_appendc(b, '\n');
}

enum smtpd_check_result smtpd_policy_check(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    char what[300];
    snprintf(what, sizeof(what), "check_policy_service %s", r->arg);
    if (!j->resumed) {
        struct smtpd_policy_request *p = xcalloc(1, sizeof(*p));
        p->j = j;
        p->svc = r->policy;
        sb_init(&p->text, 65536);
        build_request(j, &p->text);
        j->preq = p;
        request_send(p);
        return CHK_WAIT;
    }
    if (j->async_status != 1) {
        msg_warn("%s: no usable answer from %s; using smtpd_policy_service_default_action",
                 j->s->client_desc, r->arg);
        return smtpd_check_apply_action(j, pcfg.default_action, what, smtpd_check_reply_name(j),
                                        smtpd_check_reply_class(j));
    }
    return smtpd_check_apply_action(j, j->async_text, what, smtpd_check_reply_name(j),
                                    smtpd_check_reply_class(j));
}
