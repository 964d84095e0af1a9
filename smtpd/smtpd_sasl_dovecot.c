/* smtpd_sasl_dovecot.c: the "dovecot" authentication back-end of AUTH:
 * the client side of Dovecot's authentication protocol (dovecot_auth.h)
 * over smtpd_sasl_path, in the event loop. Each smtpd process keeps one
 * connection, made at start and again when needed, and runs the requests
 * of all its sessions over it, told apart by their ids; a session waits
 * for its answer while the others go on. Every request has a time limit
 * (smtpd_sasl_dovecot_timeout). A server that is missing, goes away,
 * stalls or says something malformed makes every waiting request a
 * temporary failure (454), never a success. The mechanisms offered are
 * those of the server's last handshake. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "dovecot_auth.h"
#include "log.h"
#include "smtpd.h"
#include "smtpd_sasl.h"
#include "strbuf.h"
#include "util.h"

#define MECHS_MAX 32
#define REQUEST_LINE_MAX 16384

enum conn_state { DC_DOWN, DC_HANDSHAKE, DC_READY };

struct smtpd_dovecot_request {
    struct smtpd_session *s;
    unsigned long id;
    struct smtpd_dovecot_request *prev, *next;
    char *pending_line;          /* the AUTH line, until the handshake is done */
    struct event *timer;
};

static struct {
    struct event_base *base;
    char *path;
    const char *service;
    long timeout;
    unsigned generation;         /* of the connection, for callbacks that outlive one */
    struct bufferevent *bev;
    enum conn_state state;
    bool version_ok;
    struct { char name[24]; unsigned flags; } mechs[MECHS_MAX], new_mechs[MECHS_MAX];
    size_t nmechs, nnew;
    bool have_mechs;
    struct smtpd_dovecot_request *reqs;
    unsigned long next_id;
    bool warned_down;
} dc;

/* ---- requests ---- */

static void request_unlink(struct smtpd_dovecot_request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (dc.reqs == r)
        dc.reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void request_free(struct smtpd_dovecot_request *r)
{
    request_unlink(r);
    if (r->timer)
        event_free(r->timer);
    free(r->pending_line);
    free(r);
}

void smtpd_dovecot_request_cancel(struct smtpd_dovecot_request *r)
{
    if (r)
        request_free(r);
}

/* Give the session its answer; r is gone afterwards. */
static void request_answer(struct smtpd_dovecot_request *r, enum smtpd_sasl_status st, const char *text)
{
    struct smtpd_session *s = r->s;
    if (st != SASL_MORE)
        request_free(r);
    smtpd_sasl_backend_answer(s, st, text);
}

static void arm_timer(struct smtpd_dovecot_request *r)
{
    struct timeval tv = { dc.timeout > 0 ? dc.timeout : 1, 0 };
    evtimer_add(r->timer, &tv);
}

/* ---- the connection ---- */

static void conn_broken(const char *why)
{
    if (dc.bev) {
        bufferevent_free(dc.bev);
        dc.bev = NULL;
    }
    bool had_requests = dc.reqs != NULL;
    dc.state = DC_DOWN;
    if (had_requests || !dc.warned_down)
        msg_warn("SASL: connection to %s: %s", dc.path, why);
    dc.warned_down = true;
    /* take the whole list first: answering may start new requests */
    struct smtpd_dovecot_request *list = dc.reqs;
    dc.reqs = NULL;
    while (list) {
        struct smtpd_dovecot_request *r = list;
        list = r->next;
        r->prev = r->next = NULL;
        if (list)
            list->prev = NULL;
        request_answer(r, SASL_TEMP, "Connection lost to authentication server");
    }
}

static void handshake_line(struct dovecot_line *l)
{
    switch (l->type) {
    case DOVECOT_VERSION:
        if (l->major != 1) {
            conn_broken("authentication server protocol version is not 1");
            return;
        }
        dc.version_ok = true;
        return;
    case DOVECOT_MECH:
        if (dc.nnew < MECHS_MAX) {
            str_copy(dc.new_mechs[dc.nnew].name, sizeof(dc.new_mechs[0].name), l->mech);
            dc.new_mechs[dc.nnew++].flags = l->mech_flags;
        }
        return;
    case DOVECOT_DONE:
        if (!dc.version_ok) {
            conn_broken("no VERSION before DONE");
            return;
        }
        memcpy(dc.mechs, dc.new_mechs, sizeof(dc.mechs));
        dc.nmechs = dc.nnew;
        dc.have_mechs = true;
        dc.state = DC_READY;
        dc.warned_down = false;
        for (struct smtpd_dovecot_request *r = dc.reqs; r; r = r->next)
            if (r->pending_line) {
                bufferevent_write(dc.bev, r->pending_line, strlen(r->pending_line));
                free(r->pending_line);
                r->pending_line = NULL;
            }
        return;
    case DOVECOT_OK:
    case DOVECOT_FAIL:
    case DOVECOT_CONT:
        conn_broken("answer before the handshake was done");
        return;
    default:
        return;
    }
}

static struct smtpd_dovecot_request *request_find(unsigned long id)
{
    for (struct smtpd_dovecot_request *r = dc.reqs; r; r = r->next)
        if (r->id == id && !r->pending_line)
            return r;
    return NULL;
}

static void answer_line(struct dovecot_line *l)
{
    if (l->type != DOVECOT_OK && l->type != DOVECOT_FAIL && l->type != DOVECOT_CONT)
        return;
    struct smtpd_dovecot_request *r = request_find(l->id);
    if (!r)
        return;         /* a request we gave up on */
    if (l->type == DOVECOT_OK) {
        if (!l->user) {
            request_answer(r, SASL_TEMP, "authentication server gave no user name");
            return;
        }
        request_answer(r, SASL_DONE, l->user);
    } else if (l->type == DOVECOT_FAIL) {
        request_answer(r, l->temp ? SASL_TEMP : SASL_FAIL,
                       l->reason ? l->reason : "authentication failure");
    } else {
        arm_timer(r);
        request_answer(r, SASL_MORE, l->data);
    }
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    unsigned gen = dc.generation;
    /* answering a session may end this connection and start another */
    while (dc.bev == bev && dc.generation == gen) {    /* lines bounded by the watermark */
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
        if (eol.pos < 0) {
            if (evbuffer_get_length(in) > DOVECOT_LINE_MAX)
                conn_broken("line too long from the authentication server");
            return;
        }
        size_t len = (size_t)eol.pos;
        if (len > DOVECOT_LINE_MAX) {
            conn_broken("line too long from the authentication server");
            return;
        }
        char *line = xmalloc(len + 2);
        evbuffer_remove(in, line, len + 1);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        struct dovecot_line l;
        if (dovecot_parse_line(line, len, &l) < 0) {
            free(line);
            conn_broken("malformed line from the authentication server");
            return;
        }
        if (dc.state == DC_HANDSHAKE)
            handshake_line(&l);
        else
            answer_line(&l);
        free(line);
    }
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    if (what & BEV_EVENT_CONNECTED)
        return;
    conn_broken((what & BEV_EVENT_EOF) ? "connection closed by the authentication server"
                : (what & BEV_EVENT_TIMEOUT) ? "timeout" : strerror(errno));
}

static bool conn_start(void)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (str_copy(sun.sun_path, sizeof(sun.sun_path), dc.path) >= sizeof(sun.sun_path)) {
        msg_warn("SASL: smtpd_sasl_path is too long: %s", dc.path);
        return false;
    }
    dc.bev = bufferevent_socket_new(dc.base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!dc.bev)
        return false;
    bufferevent_setcb(dc.bev, conn_read_cb, NULL, conn_event_cb, NULL);
    bufferevent_setwatermark(dc.bev, EV_READ, 0, 4 * DOVECOT_LINE_MAX);
    bufferevent_enable(dc.bev, EV_READ | EV_WRITE);
    dc.generation++;
    dc.state = DC_HANDSHAKE;
    dc.version_ok = false;
    dc.nnew = 0;
    if (bufferevent_socket_connect(dc.bev, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int saved = errno;
        bufferevent_free(dc.bev);
        dc.bev = NULL;
        dc.state = DC_DOWN;
        if (!dc.warned_down || dc.reqs)
            msg_warn("SASL: connect to %s: %s", dc.path, strerror(saved));
        dc.warned_down = true;
        return false;
    }
    struct strbuf hello = STRBUF_INIT(256);
    dovecot_format_hello(&hello, (unsigned long)getpid());
    bufferevent_write(dc.bev, hello.data, hello.len);
    sb_free(&hello);
    return true;
}

void smtpd_dovecot_client_init(struct event_base *base, const char *path, const char *service,
                               long timeout)
{
    dc.service = service;
    dc.base = base;
    dc.path = xstrdup(path);
    dc.timeout = timeout;
    conn_start();      /* so that the mechanisms are known by the first EHLO */
}

void smtpd_dovecot_client_mechs(void (*fn)(const char *name, unsigned flags, void *ctx), void *ctx)
{
    if (!dc.have_mechs) {
        fn("PLAIN", SASL_MECH_PLAINTEXT, ctx);
        fn("LOGIN", SASL_MECH_PLAINTEXT, ctx);
        return;
    }
    static const struct { unsigned from, to; } map[] = {
        { DOVECOT_MECH_ANONYMOUS, SASL_MECH_ANONYMOUS },
        { DOVECOT_MECH_PLAINTEXT, SASL_MECH_PLAINTEXT },
        { DOVECOT_MECH_DICTIONARY, SASL_MECH_DICTIONARY },
        { DOVECOT_MECH_ACTIVE, SASL_MECH_ACTIVE },
        { DOVECOT_MECH_FORWARD_SECRECY, SASL_MECH_FWD_SECRECY },
        { DOVECOT_MECH_MUTUAL_AUTH, SASL_MECH_MUTUAL },
    };
    for (size_t i = 0; i < dc.nmechs; i++) {
        if (dc.mechs[i].flags & DOVECOT_MECH_PRIVATE)
            continue;
        unsigned flags = 0;
        for (size_t k = 0; k < sizeof(map) / sizeof(map[0]); k++)
            if (dc.mechs[i].flags & map[k].from)
                flags |= map[k].to;
        fn(dc.mechs[i].name, flags, ctx);
    }
}

static void request_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_dovecot_request *r = arg;
    msg_warn("SASL: %s: no answer from the authentication server at %s in time",
             r->s->client_desc, dc.path);
    bool stuck = r->pending_line != NULL;     /* never got past the handshake */
    request_answer(r, SASL_TEMP, "Authentication server timed out");
    if (stuck && dc.state != DC_READY)
        conn_broken("timeout during the handshake");
}

static void local_addr(const struct smtpd_session *s, char *buf, size_t bufsz)
{
    const void *a = NULL;
    if (s->local.ss_family == AF_INET)
        a = &((const struct sockaddr_in *)&s->local)->sin_addr;
    else if (s->local.ss_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)&s->local)->sin6_addr;
    if (!a || !inet_ntop(s->local.ss_family, a, buf, (socklen_t)bufsz))
        buf[0] = 0;
}

struct smtpd_dovecot_request *smtpd_dovecot_auth_start(struct smtpd_session *s, const char *mech,
                                                       const char *resp)
{
    char lip[INET6_ADDRSTRLEN];
    local_addr(s, lip, sizeof(lip));
    const char *rip = strcmp(s->client_addr, "unknown") == 0 ? "" : s->client_addr;
    if (dc.state == DC_DOWN && !conn_start())
        return NULL;
    struct smtpd_dovecot_request *r = xcalloc(1, sizeof(*r));
    r->s = s;
    r->id = ++dc.next_id;
    struct strbuf line = STRBUF_INIT(REQUEST_LINE_MAX);
    if (dovecot_format_auth(&line, r->id, mech, dc.service, lip, rip, s->tls_active,
                            resp) < 0) {
        sb_free(&line);
        free(r);
        return NULL;
    }
    r->timer = evtimer_new(dc.base, request_timeout, r);
    r->next = dc.reqs;
    if (dc.reqs)
        dc.reqs->prev = r;
    dc.reqs = r;
    if (dc.state == DC_READY)
        bufferevent_write(dc.bev, line.data, line.len);
    else
        r->pending_line = xstrdup(sb_str(&line));
    sb_free(&line);
    arm_timer(r);
    return r;
}

void smtpd_dovecot_auth_continue(struct smtpd_dovecot_request *r, const char *resp)
{
    struct strbuf line = STRBUF_INIT(REQUEST_LINE_MAX);
    if (dc.state == DC_READY && dovecot_format_cont(&line, r->id, resp) == 0)
        bufferevent_write(dc.bev, line.data, line.len);
    /* otherwise the timer answers */
    sb_free(&line);
    arm_timer(r);
}
