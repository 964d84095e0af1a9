/* console.c: the web console, an HTTP/1.1 server for administrators, and
 * for users with their own quarantine and lists (see
 * console.h). One long-running process as mail_owner, started by master
 * on a loopback listener of master.cf, serves every connection in its
 * event loop, so that the logins (sessions) it keeps in memory are seen by
 * every connection. Everything a client sends is bounded: the head by
 * HTTP_HEAD_LIMIT (431), the body by console_body_limit (413), the time
 * for a request and for its answer by console_timeout (408), the number
 * of connections by console_connection_limit. One request per connection
 * (Connection: close): browsers open another. With console_tls = yes the
 * connection is TLS with smtpd's certificate and key, loaded as root.
 *
 * A page may block the loop briefly (a question to the metrics collector
 * or qmgr, each bounded by its own timeout, a password hash): the console
 * serves a few administrators, not the world. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config.h"
#include "console.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define DRAIN_SECONDS 1          /* reading what follows an answer before closing */
#define DRAIN_BYTES (256 * 1024)

enum conn_state { READ_HEAD, READ_BODY, WAITING, WRITING, DRAINING };

struct conn {
    int fd;
    struct bufferevent *bev;
    struct event *delay;
    struct event *life;          /* the absolute end of each stage, however slow the peer */
    char client[INET6_ADDRSTRLEN];
    char local[INET6_ADDRSTRLEN];      /* the address the request came to */
    bool tls;
    enum conn_state state;
    long long deadline_ms;       /* for the whole request */
    size_t received, drained;
    struct http_request *req;
    size_t body_len;
    struct strbuf answer;
};

static SSL_CTX *tls_ctx;

/* ---- TLS ---- */

static void tls_pre_init(void)
{
    if (!cfg_bool(P_console_tls))
        return;
    const char *cert = cfg_str(P_smtpd_tls_cert_file), *key = cfg_str(P_smtpd_tls_key_file);
    if (!*cert)
        msg_fatal("console_tls = yes needs smtpd_tls_cert_file (and smtpd_tls_key_file)");
    tls_ctx = SSL_CTX_new(TLS_server_method());
    if (!tls_ctx || SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION) != 1
        || SSL_CTX_use_certificate_chain_file(tls_ctx, cert) != 1
        || SSL_CTX_use_PrivateKey_file(tls_ctx, *key ? key : cert, SSL_FILETYPE_PEM) != 1
        || SSL_CTX_check_private_key(tls_ctx) != 1) {
        char why[256];
        ERR_error_string_n(ERR_get_error(), why, sizeof(why));
        msg_fatal("console: cannot load the certificate %s and key %s: %s", cert, *key ? key : cert, why);
    }
    SSL_CTX_set_options(tls_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
}

/* ---- connections ---- */

static void conn_free(struct conn *c)
{
    if (c->delay)
        event_free(c->delay);
    if (c->life)
        event_free(c->life);
    if (c->bev)
        bufferevent_free(c->bev);      /* closes fd */
    else
        close(c->fd);
    free(c->req);
    sb_free(&c->answer);
    free(c);
    server_client_done();
}

static void format_answer(struct conn *c, struct console_reply *rep)
{
    struct strbuf *out = &c->answer;
    sb_appendf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", rep->status,
               http_status_text(rep->status), rep->type, rep->body.len);
    /* the pages need nothing from elsewhere and no script at all; the
     * referrer policy keeps the Origin of the console's own forms (a
     * browser sends "null" under no-referrer, which origin_ok refuses) */
    sb_appends(out, "Connection: close\r\nCache-Control: no-store\r\n"
                    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
                    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'\r\n"
                    "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
                    "Referrer-Policy: same-origin\r\n");
    if (c->tls)
        sb_appends(out, "Strict-Transport-Security: max-age=31536000\r\n");
    sb_append(out, rep->headers.data ? rep->headers.data : "", rep->headers.len);
    sb_appends(out, "\r\n");
    sb_append(out, rep->body.data ? rep->body.data : "", rep->body.len);
}

static long console_timeout_seconds(void)
{
    return cfg_time(P_console_timeout) < 1 ? 1 : cfg_time(P_console_timeout);
}

/* The stage that starts now (reading the request, the TLS handshake,
 * waiting, writing, draining) ends within ms, even for a peer that sends
 * or takes a byte just before each idle timeout: a slow client cannot
 * hold one of the console_connection_limit connections for longer. */
static void arm_life(struct conn *c, long long ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    if (c->life)
        evtimer_add(c->life, &tv);
}

static void send_answer(struct conn *c)
{
    arm_life(c, 1000LL * console_timeout_seconds());
    c->state = WRITING;
    if (bufferevent_write(c->bev, c->answer.data, c->answer.len) < 0) {
        conn_free(c);
        return;
    }
    sb_free(&c->answer);
    bufferevent_enable(c->bev, EV_WRITE);
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
    send_answer(arg);
}

static void answer(struct conn *c, struct console_reply *rep)
{
    format_answer(c, rep);
    bufferevent_disable(c->bev, EV_READ);
    arm_life(c, rep->delay_ms + 1000LL * console_timeout_seconds());
    if (rep->delay_ms > 0) {
        struct timeval tv = { rep->delay_ms / 1000, (rep->delay_ms % 1000) * 1000 };
        c->state = WAITING;
        c->delay = evtimer_new(bufferevent_get_base(c->bev), on_delay, c);
        if (c->delay && evtimer_add(c->delay, &tv) == 0)
            return;
    }
    send_answer(c);
}

static void reply_init(struct console_reply *rep)
{
    *rep = (struct console_reply){ .status = 200, .type = "text/html; charset=utf-8" };
    sb_init(&rep->headers, 64 * 1024);
    sb_init(&rep->body, CONSOLE_PAGE_LIMIT);
}

static void reply_free(struct console_reply *rep)
{
    sb_free(&rep->headers);
    sb_free(&rep->body);
}

/* An answer without a page: the status and its reason as plain text. */
static void refuse(struct conn *c, int status)
{
    struct console_reply rep;
    reply_init(&rep);
    rep.status = status;
    rep.type = "text/plain; charset=utf-8";
    sb_appendf(&rep.body, "%d %s\n", status, http_status_text(status));
    if (status == 405)
        sb_appends(&rep.headers, "Allow: GET, POST\r\n");
    answer(c, &rep);
    reply_free(&rep);
}

/* The Host header names this console: localhost, the address the request
 * came to, myhostname or a name of console_hostnames, with any port. A
 * page of another site whose name was pointed at this host (DNS
 * rebinding) sends its own name, and gets nothing. */
static bool host_ok(const struct conn *c)
{
    const char *host = http_request_header(c->req, "Host");
    if (!host)
        return false;
    char name[256];
    const char *end;
    if (*host == '[') {
        end = strchr(host, ']');
        host++;
    } else {
        end = strchr(host, ':');
    }
    size_t n = end ? (size_t)(end - host) : strlen(host);
    if (n == 0 || n >= sizeof(name))
        return false;
    memcpy(name, host, n);
    name[n] = 0;
    if (strcasecmp(name, "localhost") == 0 || strcmp(name, "127.0.0.1") == 0 || strcmp(name, "::1") == 0
        || strcasecmp(name, c->local) == 0 || strcasecmp(name, cfg_str(P_myhostname)) == 0)
        return true;
    size_t count;
    char **names = cfg_list_split(cfg_str(P_console_hostnames), &count);
    bool found = false;
    for (size_t i = 0; i < count && !found; i++)
        found = strcasecmp(names[i], name) == 0;
    cfg_list_free(names, count);
    return found;
}

/* A POST from a browser names the page's origin: it must be this console
 * (as the Host header names it), so that no other site can post a form
 * here, not even the login form, which has no session token yet. A
 * client that sends no Origin (not a browser) is judged by its token. */
static bool origin_ok(const struct conn *c)
{
    const char *origin = http_request_header(c->req, "Origin");
    const char *host = http_request_header(c->req, "Host");
    if (!origin)
        return true;
    const char *scheme = c->tls ? "https://" : "http://";
    size_t n = strlen(scheme);
    return host && strncmp(origin, scheme, n) == 0 && strcmp(origin + n, host) == 0;
}

static void dispatch(struct conn *c, const char *body)
{
    struct console_request req = {
        .http = c->req, .body = body, .body_len = c->body_len, .client = c->client, .tls = c->tls,
    };
    struct console_reply rep;
    reply_init(&rep);
    req.session = console_session_find(c->req);
    bool path_known;
    const struct console_route *r = console_route_find(c->req->method, c->req->path, &path_known);
    if (!host_ok(c)) {
        msg_warn("console: %s %s from %s for another host name; refused", c->req->method, c->req->path,
                 c->client);
        console_error_page(&rep, &req, 400, "This console is not served under that name "
                                            "(console_hostnames).");
    } else if (!r) {
        console_error_page(&rep, &req, path_known ? 405 : 404,
                           path_known ? "This page does not take that method." : "There is no such page.");
        if (path_known)
            sb_appends(&rep.headers, "Allow: GET, POST\r\n");
    } else if (strcmp(r->method, "POST") == 0 && !origin_ok(c)) {
        msg_warn("console: POST %s from %s with a foreign Origin; refused", c->req->path, c->client);
        console_error_page(&rep, &req, 403, "This form did not come from this console: nothing was changed.");
    } else if (r->access != CONSOLE_PUBLIC && !req.session) {
        if (strcmp(r->method, "GET") == 0)
            console_redirect(&rep, "/login");
        else
            console_error_page(&rep, &req, 403, "Log in first.");
    } else if (r->access == CONSOLE_ADMIN && !req.session->admin) {
        msg_info("console: %s (%s) refused %s %s: not an administrator", req.session->user, c->client,
                 c->req->method, c->req->path);
        console_error_page(&rep, &req, 403, "This page is for administrators (console_admins).");
    } else if (strcmp(r->method, "POST") == 0 && r->access != CONSOLE_PUBLIC
               && !console_session_csrf_ok(&req)) {
        msg_warn("console: %s (%s): POST %s without the right form token; refused", req.session->user,
                 c->client, c->req->path);
        console_error_page(&rep, &req, 403, "The form is stale or did not come from this console: "
                                            "nothing was changed. Reload the page and try again.");
    } else {
        r->handle(&req, &rep);
    }
    answer(c, &rep);
    reply_free(&rep);
}

/* The head is complete in the first len bytes of the input: parse it and
 * decide whether a body follows. false when answered already. */
static bool take_head(struct conn *c, const char *head, size_t len)
{
    c->req = xmalloc(sizeof(*c->req));
    int code = http_request_parse(c->req, head, len);
    if (code) {
        refuse(c, code);
        return false;
    }
    long long cl = c->req->content_length;
    if (strcmp(c->req->method, "POST") == 0 && cl < 0) {
        refuse(c, 411);
        return false;
    }
    if (cl > cfg_int(P_console_body_limit)) {
        refuse(c, 413);
        return false;
    }
    c->body_len = cl < 0 ? 0 : (size_t)cl;
    c->state = READ_BODY;
    return true;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    if (c->state == DRAINING) {
        c->drained += len;
        evbuffer_drain(in, len);
        if (c->drained > DRAIN_BYTES)
            conn_free(c);
        return;
    }
    if (c->state != READ_HEAD && c->state != READ_BODY) {
        evbuffer_drain(in, len);
        return;
    }
    if (now_usec() / 1000 > c->deadline_ms) {
        refuse(c, 408);
        return;
    }
    c->received = len;
    if (c->state == READ_HEAD) {
        size_t look = len < HTTP_HEAD_LIMIT + 4 ? len : HTTP_HEAD_LIMIT + 4;
        const char *p = (const char *)evbuffer_pullup(in, (ssize_t)look);
        size_t head = p ? http_head_length(p, look) : 0;
        if (!head) {
            if (len > HTTP_HEAD_LIMIT)
                refuse(c, 431);
            return;
        }
        if (!take_head(c, p, head))
            return;
        evbuffer_drain(in, head);
        len -= head;
    }
    if (len < c->body_len)
        return;
    const char *body = c->body_len ? (const char *)evbuffer_pullup(in, (ssize_t)c->body_len) : "";
    dispatch(c, body ? body : "");
}

/* The answer is out: stop writing, and read what the client still sends
 * until it closes (briefly), so that closing with unread input does not
 * reset the connection before the client has read the answer. */
static void on_written(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->state != WRITING)
        return;
    if (c->tls) {
        conn_free(c);
        return;
    }
    c->state = DRAINING;
    arm_life(c, 1000LL * DRAIN_SECONDS);
    shutdown(c->fd, SHUT_WR);
    struct timeval tv = { DRAIN_SECONDS, 0 };
    bufferevent_set_timeouts(bev, &tv, NULL);
    bufferevent_enable(bev, EV_READ);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;         /* the TLS handshake is done */
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && c->received > 0
        && (c->state == READ_HEAD || c->state == READ_BODY)) {
        refuse(c, 408);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        unsigned long e = c->tls ? bufferevent_get_openssl_error(bev) : 0;
        if (e) {
            char why[256];
            ERR_error_string_n(e, why, sizeof(why));
            msg_info("console: TLS with %s failed: %s", c->client, why);
        }
    }
    conn_free(c);
}

static void address_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, (socklen_t)size);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, (socklen_t)size);
}

static void local_address(int fd, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    str_copy(buf, size, "");
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        address_text(&ss, buf, size);
}

static void peer_address(int fd, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    str_copy(buf, size, "unknown");
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    address_text(&ss, buf, size);
}

static void on_life_end(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if ((c->state == READ_HEAD || c->state == READ_BODY) && c->received > 0)
        refuse(c, 408);              /* a request begun: told why, in its own stage */
    else
        conn_free(c);
}

static void console_accept(int fd, struct event_base *base)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->state = READ_HEAD;
    sb_init(&c->answer, CONSOLE_PAGE_LIMIT + 64 * 1024);
    peer_address(fd, c->client, sizeof(c->client));
    local_address(fd, c->local, sizeof(c->local));
    long timeout = console_timeout_seconds();
    c->deadline_ms = now_usec() / 1000 + 1000LL * timeout;
    c->life = evtimer_new(base, on_life_end, c);
    if (!c->life) {
        msg_warn("console: cannot serve %s: out of memory", c->client);
        conn_free(c);
        return;
    }
    arm_life(c, 1000LL * timeout);
    if (tls_ctx) {
        SSL *ssl = SSL_new(tls_ctx);
        set_nonblock(fd, true);
        c->bev = ssl ? bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                      BEV_OPT_CLOSE_ON_FREE)
                     : NULL;
        if (!c->bev) {
            msg_warn("console: cannot start TLS with %s: out of memory", c->client);
            if (ssl)
                SSL_free(ssl);
            conn_free(c);
            return;
        }
        /* a browser may close without TLS's close_notify: that is no error */
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        c->tls = true;
    } else {
        c->bev = server_client_bufferevent(fd, base, BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev) {
            event_free(c->life);
            sb_free(&c->answer);
            free(c);
            return;
        }
    }
    struct timeval tv = { timeout, 0 };
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_setcb(c->bev, on_read, on_written, on_event, c);
    bufferevent_enable(c->bev, EV_READ);
}

/* ---- life cycle ---- */

static void console_pre_init(void)
{
    tls_pre_init();
    console_auth_pre_init();
}

static void console_post_init(struct event_base *base)
{
    console_session_init();
}

static int console_client_limit(void)
{
    return cfg_int(P_console_connection_limit) < 1 ? 1 : (int)cfg_int(P_console_connection_limit);
}

SERVER_MAIN("console",
            .mode = SERVER_EVENT, .accept_event = console_accept, .client_limit = console_client_limit,
            .pre_init = console_pre_init, .post_init = console_post_init,
            .long_running = true)
