/* smtpd_session.c: the life of one SMTP connection inside the event loop:
 * greeting (and the pre-greeting talker check), reading command lines with a
 * length bound, replies in order with one write per pipelined batch, error
 * counting with a non-blocking error delay, timeouts, flow control against
 * clients that do not read, and the disconnect statistics. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "log.h"
#include "metrics_client.h"
#include "server.h"
#include "smtpd.h"
#include "smtpd_milter.h"
#include "smtpd_limits.h"
#include "smtpd_sasl.h"
#include "smtpd_proxy.h"
#include "soft_bounce.h"
#include "util.h"

#define REPLY_LIMIT 8192             /* one formatted reply */
#define DELAYED_LIMIT (64 * 1024)    /* replies held during the error delay */
#define OUTPUT_HIGH (64 * 1024)      /* stop reading while this much is unsent */
#define INPUT_HIGH_MIN (64 * 1024)   /* read no further ahead than this */
#define CONTENT_LIMIT (256 * 1024)   /* decoded content before it goes to cleanup */
#define SAMPLE_MAX 100               /* bytes of client input shown in logs */
#define LINGER_SECONDS 2             /* wait for the client to close after our last reply */
#define LINGER_BYTES_MAX (1024 * 1024)

static struct strbuf line_buf = STRBUF_INIT(0);

static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_write_cb(struct bufferevent *bev, void *arg);
static void session_event_cb(struct bufferevent *bev, short what, void *arg);

/* ---- peer description ---- */

static void normalize_v4mapped(struct sockaddr_storage *ss)
{
    static const unsigned char prefix[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (ss->ss_family != AF_INET6 || memcmp(in6->sin6_addr.s6_addr, prefix, 12) != 0)
        return;
    struct sockaddr_in in4;
    memset(&in4, 0, sizeof(in4));
    in4.sin_family = AF_INET;
    in4.sin_port = in6->sin6_port;
    memcpy(&in4.sin_addr, in6->sin6_addr.s6_addr + 12, 4);
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, &in4, sizeof(in4));
}

static void describe_peer(struct smtpd_session *s)
{
    socklen_t len = sizeof(s->peer);
    str_copy(s->client_addr, sizeof(s->client_addr), "unknown");
    str_copy(s->client_port, sizeof(s->client_port), "0");
    if (getpeername(s->fd, (struct sockaddr *)&s->peer, &len) == 0) {
        normalize_v4mapped(&s->peer);
        const void *a = NULL;
        unsigned port = 0;
        if (s->peer.ss_family == AF_INET) {
            a = &((struct sockaddr_in *)&s->peer)->sin_addr;
            port = ntohs(((struct sockaddr_in *)&s->peer)->sin_port);
        } else if (s->peer.ss_family == AF_INET6) {
            a = &((struct sockaddr_in6 *)&s->peer)->sin6_addr;
            port = ntohs(((struct sockaddr_in6 *)&s->peer)->sin6_port);
        }
        if (a && inet_ntop(s->peer.ss_family, a, s->client_addr, sizeof(s->client_addr)))
            snprintf(s->client_port, sizeof(s->client_port), "%u", port);
    }
    len = sizeof(s->local);
    if (getsockname(s->fd, (struct sockaddr *)&s->local, &len) == 0)
        normalize_v4mapped(&s->local);
    /* No DNS yet: only the loopback addresses get a name. */
    bool loopback = strcmp(s->client_addr, "127.0.0.1") == 0 || strcmp(s->client_addr, "::1") == 0;
    s->client_name = loopback ? "localhost" : "unknown";
    snprintf(s->client_desc, sizeof(s->client_desc), "%s[%s]", s->client_name, s->client_addr);
}

/* ---- replies ---- */

/* "CODE-line" for all but the last line of text, "CODE line" for the last. */
static void format_reply(struct strbuf *out, int code, const char *text)
{
    for (;;) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        if (sb_appendf(out, "%d%c%.*s\r\n", code, nl ? '-' : ' ', (int)n, text) < 0)
            return;
        if (!nl)
            return;
        text = nl + 1;
    }
}

void smtpd_session_begin_command(struct smtpd_session *s, enum smtp_verb v)
{
    s->verb = v;
    s->verb_counted = false;
    s->where = smtp_verb_name(v);
    s->cmd_total[v]++;
}

/* The first final reply to a command decides whether it succeeded. */
static void count_reply(struct smtpd_session *s, int code)
{
    if (code == 354 || code == 334 || s->verb_counted || s->verb == SMTP_VERB_NONE)
        return;
    s->verb_counted = true;
    if (code < 400)
        s->cmd_ok[s->verb]++;
}

static void tarpit_done(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_session *s = arg;
    bufferevent_write(s->bev, s->delayed.data, s->delayed.len);
    sb_reset(&s->delayed);
    s->pause &= ~PAUSE_TARPIT;
    if (s->close_after_delay)
        smtpd_session_close(s);
    else
        smtpd_session_resume(s, 0);
    smtpd_session_finish_if_done(s);
}

static void start_tarpit(struct smtpd_session *s)
{
    struct timeval tv = { smtpd_cfg.error_sleep, 0 };
    if (!s->tarpit_ev)
        s->tarpit_ev = evtimer_new(s->base, tarpit_done, s);
    s->pause |= PAUSE_TARPIT;
    evtimer_add(s->tarpit_ev, &tv);
    bufferevent_disable(s->bev, EV_READ);
}

/* Send now, or hold back while the error delay runs. */
static void emit_reply(struct smtpd_session *s, const struct strbuf *r)
{
    if (s->pause & PAUSE_TARPIT) {
        if (sb_append(&s->delayed, r->data, r->len) < 0)
            s->close_after_delay = true;   /* a client this far behind is gone */
        return;
    }
    if (smtpd_cfg.error_sleep > 0 && s->errors > smtpd_cfg.soft_error_limit) {
        sb_append(&s->delayed, r->data, r->len);
        start_tarpit(s);
        return;
    }
    bufferevent_write(s->bev, r->data, r->len);
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) > OUTPUT_HIGH)
        s->pause |= PAUSE_OUTPUT;
}

/* Send a reply; false, and nothing is sent, once the session is closing. */
static bool __attribute__((format(printf, 3, 0)))
vreply(struct smtpd_session *s, int code, const char *fmt, va_list ap)
{
    if (s->state == ST_CLOSING)
        return false;
    struct strbuf text = STRBUF_INIT(REPLY_LIMIT), r = STRBUF_INIT(REPLY_LIMIT + 1024);
    sb_vappendf(&text, fmt, ap);
    code = soft_bounce_reply(code, text.len ? text.data : NULL);
    format_reply(&r, code, sb_str(&text));
    count_reply(s, code);
    bool counts = code >= 400 && code != 421;
    if (counts)
        s->errors++;
    emit_reply(s, &r);
    sb_free(&text);
    sb_free(&r);
    if (counts && s->errors >= smtpd_cfg.hard_error_limit && s->state != ST_CLOSING) {
        msg_info("too many errors after %s from %s", s->where, s->client_desc);
        smtpd_session_close_with(s, 421, "4.7.0 %s Error: too many errors", smtpd_cfg.myhostname);
    }
    return true;
}

void smtpd_session_reply(struct smtpd_session *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply(s, code, fmt, ap);
    va_end(ap);
}

void smtpd_session_close(struct smtpd_session *s)
{
    s->state = ST_CLOSING;
    bufferevent_disable(s->bev, EV_READ);
}

void smtpd_session_close_with(struct smtpd_session *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool sent = vreply(s, code, fmt, ap);
    va_end(ap);
    if (!sent)
        return;
    if (s->pause & PAUSE_TARPIT)
        s->close_after_delay = true;
    else
        smtpd_session_close(s);
}

/* ---- input ---- */

bool smtpd_session_input_pending(struct smtpd_session *s)
{
    char c;
    if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
        return true;
    if (s->tls_bev)     /* the socket holds TLS records, not commands */
        return SSL_pending(bufferevent_openssl_get_ssl(s->bev)) > 0;
    return recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

void smtpd_session_pending_sample(struct smtpd_session *s, char *buf, size_t bufsz)
{
    char raw[SAMPLE_MAX];
    ssize_t n = evbuffer_copyout(bufferevent_get_input(s->bev), raw, sizeof(raw));
    if (n <= 0 && !s->tls_bev)
        n = recv(s->fd, raw, sizeof(raw), MSG_PEEK | MSG_DONTWAIT);
    size_t o = 0;
    for (ssize_t i = 0; i < n && o + 3 < bufsz; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '\r' || c == '\n') {
            buf[o++] = '\\';
            buf[o++] = c == '\r' ? 'r' : 'n';
        } else {
            buf[o++] = (c >= 32 && c < 127) ? (char)c : '?';
        }
    }
    if (bufsz)
        buf[o < bufsz ? o : bufsz - 1] = 0;
}

static void line_too_long(struct smtpd_session *s)
{
    if (smtpd_sasl_line_too_long(s))
        return;
    smtpd_session_begin_command(s, SMTP_UNKNOWN);
    smtpd_session_reply(s, 500, "5.5.2 Error: line too long");
}

/* One command line from the input; returns true when something was consumed. */
static bool read_command(struct smtpd_session *s, struct evbuffer *in)
{
    size_t avail = evbuffer_get_length(in);
    struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
    if (eol.pos < 0) {
        if (avail <= smtpd_cfg.line_limit + 1 && !s->discard_line)
            return false;
        evbuffer_drain(in, avail);
        if (!s->discard_line) {
            s->discard_line = true;
            line_too_long(s);
        }
        return avail > 0;
    }
    size_t len = (size_t)eol.pos;
    if (s->discard_line || len > smtpd_cfg.line_limit + 1) {
        evbuffer_drain(in, len + 1);
        if (!s->discard_line)
            line_too_long(s);
        s->discard_line = false;
        return true;
    }
    sb_reset(&line_buf);
    char *tmp = xmalloc(len + 1);
    evbuffer_remove(in, tmp, len + 1);
    bool crlf = len > 0 && tmp[len - 1] == '\r';
    sb_append(&line_buf, tmp, crlf ? len - 1 : len);
    free(tmp);
    s->line_crlf = crlf;
    if (line_buf.len > smtpd_cfg.line_limit) {
        line_too_long(s);
        return true;
    }
    if (!crlf && smtpd_cfg.bare_lf == BARE_LF_REJECT) {
        smtpd_session_begin_command(s, SMTP_UNKNOWN);
        smtpd_session_reply(s, 500, "5.5.2 Error: bare <LF> received");
        return true;
    }
    if (smtpd_cfg.bare_cr == BARE_LF_REJECT && memchr(line_buf.data, '\r', line_buf.len)) {
        smtpd_session_begin_command(s, SMTP_UNKNOWN);
        smtpd_session_reply(s, 500, "5.5.2 Error: bare <CR> received");
        return true;
    }
    smtpd_command_dispatch(s, line_buf.data, line_buf.len);
    return true;
}

static void update_reading(struct smtpd_session *s)
{
    if (s->tls_handshaking)     /* the TLS bufferevent reads the handshake itself */
        return;
    if (s->state == ST_CLOSING || s->pause)
        bufferevent_disable(s->bev, EV_READ);
    else
        bufferevent_enable(s->bev, EV_READ);
    smtpd_limits_reading(s, !(s->state == ST_CLOSING || s->pause));
}

/* Work through buffered input until it runs out or something pauses us. */
static void session_process(struct smtpd_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    while (s->state != ST_CLOSING && !s->pause) {
        bool progress = false;
        if (s->state == ST_CMD)
            progress = read_command(s, in);
        else if (s->state == ST_DATA)
            progress = smtpd_data_feed(s, in);
        else if (s->state == ST_BDAT)
            progress = smtpd_bdat_feed(s, in);
        if (!progress)
            break;
    }
    update_reading(s);
}

void smtpd_session_resume(struct smtpd_session *s, unsigned pause_bit)
{
    s->pause &= ~pause_bit;
    session_process(s);
}

/* ---- transaction and session end ---- */

void smtpd_session_mail_reset(struct smtpd_session *s)
{
    if (s->cleanup) {
        smtpd_cleanup_free(s->cleanup);
        s->cleanup = NULL;
    }
    smtpd_proxy_end(s);         /* QUIT to the proxy filter, or close mid-message */
    smtp_mail_args_free(&s->mail);
    for (size_t i = 0; i < s->nrcpt; i++) {
        free(s->rcpts[i].address);
        free(s->rcpts[i].orcpt);
        free(s->rcpts[i].notify);
    }
    free(s->rcpts);
    s->rcpts = NULL;
    s->nrcpt = s->caprcpt = 0;
    s->in_mail = false;
    s->bdat_mode = false;
    s->queue_id[0] = 0;
    s->too_big = false;
    s->pause &= ~(PAUSE_CLEANUP | PAUSE_BACKLOG);
    sb_reset(&s->content);
    memset(&s->peek, 0, sizeof(s->peek));
    smtpd_check_mail_reset(s);
    smtpd_milter_mail_reset(s);
}

static void log_disconnect(struct smtpd_session *s)
{
    struct strbuf line = STRBUF_INIT(2048);
    unsigned ok = 0, total = 0;
    sb_appendf(&line, "disconnect from %s", s->client_desc);
    for (int v = SMTP_HELO; v < SMTP_VERB_COUNT; v++) {
        if (!s->cmd_total[v])
            continue;
        ok += s->cmd_ok[v];
        total += s->cmd_total[v];
        if (s->cmd_ok[v] == s->cmd_total[v])
            sb_appendf(&line, " %s=%u", smtp_verb_stat_name(v), s->cmd_total[v]);
        else
            sb_appendf(&line, " %s=%u/%u", smtp_verb_stat_name(v), s->cmd_ok[v], s->cmd_total[v]);
    }
    if (ok == total)
        sb_appendf(&line, " commands=%u", total);
    else
        sb_appendf(&line, " commands=%u/%u", ok, total);
    msg_info("%s", sb_str(&line));
    sb_free(&line);
}

static void session_free(struct smtpd_session *s)
{
    log_disconnect(s);
    smtpd_milter_session_end(s);
    smtpd_limits_session_end(s);
    smtpd_session_mail_reset(s);
    smtpd_check_session_end(s);
    smtpd_etrn_session_end(s);
    smtpd_sasl_session_end(s);
    if (s->tarpit_ev)
        event_free(s->tarpit_ev);
    if (s->greet_ev)
        event_free(s->greet_ev);
    if (s->bev)
        bufferevent_free(s->bev);
    if (!s->tls_bev)            /* a TLS bufferevent closed the socket itself */
        close(s->fd);
    sb_free(&s->content);
    sb_free(&s->delayed);
    free(s->helo_name);
    free(s->sasl_username);
    free(s);
    server_client_done();
}

/* While lingering, the client's further input is read and thrown away. */
static void linger_read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    s->linger_bytes += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
    if (s->linger_bytes > LINGER_BYTES_MAX)
        session_free(s);
}

static void linger_event_cb(struct bufferevent *bev, short what, void *arg)
{
    session_free(arg);
}

/* Closing a socket that still has unread input makes the kernel send a
 * reset, which can destroy our last reply before the client reads it. So
 * half-close, and read until the client closes too (bounded in time and
 * bytes). */
static void start_linger(struct smtpd_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    struct timeval tv = { LINGER_SECONDS, 0 };
    s->lingering = true;
    shutdown(s->fd, SHUT_WR);
    s->linger_bytes = evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_setcb(s->bev, linger_read_cb, NULL, linger_event_cb, s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, 0);
    bufferevent_set_timeouts(s->bev, &tv, NULL);
    bufferevent_enable(s->bev, EV_READ);
}

bool smtpd_session_finish_if_done(struct smtpd_session *s)
{
    if (s->state != ST_CLOSING || (s->pause & PAUSE_TARPIT) || s->lingering)
        return false;
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
        return false;
    if (s->cleanup) {               /* no commit can follow now */
        smtpd_cleanup_free(s->cleanup);
        s->cleanup = NULL;
    }
    start_linger(s);
    return false;
}

/* ---- event callbacks ---- */

static void session_read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;
    smtpd_limits_input(s);
    session_process(s);
    smtpd_session_finish_if_done(s);
}

static void session_write_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;
    if (s->tls_starting && !(s->pause & PAUSE_TARPIT) && s->state != ST_CLOSING
        && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
        s->tls_starting = false;       /* "220 Ready to start TLS" is out */
        s->pause &= ~PAUSE_OUTPUT;     /* and everything before it */
        if (!smtpd_session_start_tls(s))
            session_free(s);
        return;
    }
    if (s->pause & PAUSE_OUTPUT)
        smtpd_session_resume(s, PAUSE_OUTPUT);
    smtpd_session_finish_if_done(s);
}

static void session_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtpd_session *s = arg;
    if (s->tls_handshaking) {
        if (what & BEV_EVENT_CONNECTED) {
            smtpd_tls_handshake_done(s);
            smtpd_session_finish_if_done(s);
        } else {
            smtpd_tls_handshake_failed(s, what);
            session_free(s);
        }
        return;
    }
    if (what & BEV_EVENT_CONNECTED)
        return;
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && s->state != ST_CLOSING) {
        msg_info("timeout after %s from %s", s->where, s->client_desc);
        s->verb = SMTP_VERB_NONE;
        smtpd_session_close_with(s, 421, "4.4.2 %s Error: timeout exceeded", smtpd_cfg.myhostname);
        smtpd_session_finish_if_done(s);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        msg_info("timeout after %s from %s", s->where, s->client_desc);
    else if (!s->quit_seen && s->state != ST_CLOSING)
        msg_info("lost connection after %s from %s", s->where, s->client_desc);
    session_free(s);
}

/* ---- connection start ---- */

static void greet(struct smtpd_session *s)
{
    if (smtpd_cfg.forbid_unauth_pipelining && smtpd_session_input_pending(s)) {
        char sample[2 * SAMPLE_MAX + 1];
        smtpd_session_pending_sample(s, sample, sizeof(sample));
        msg_info("improper command pipelining after CONNECT from %s: %s", s->client_desc, sample);
        smtpd_session_close_with(s, 554, "5.5.0 Error: SMTP protocol synchronization");
        return;
    }
    if (!smtpd_check_greet_denied(s))
        smtpd_session_reply(s, 220, "%s", smtpd_cfg.banner);
    smtpd_session_resume(s, PAUSE_GREET);
}

static void greet_timer(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_session *s = arg;
    greet(s);
    smtpd_session_finish_if_done(s);
}

void smtpd_session_accept(int fd, struct event_base *base)
{
    struct smtpd_session *s = xcalloc(1, sizeof(*s));
    s->fd = fd;
    s->base = base;
    set_nonblock(fd, true);
    set_cloexec(fd, true);
    /* Not BEV_OPT_CLOSE_ON_FREE: STARTTLS replaces the bufferevent on the
     * same socket; session_free() closes it. */
    s->bev = server_client_bufferevent(fd, base, 0);
    if (!s->bev) {
        free(s);
        return;
    }
    describe_peer(s);
    s->client_trusted = smtpd_check_client_trusted((struct sockaddr *)&s->peer);
    sb_init(&s->content, CONTENT_LIMIT);
    sb_init(&s->delayed, DELAYED_LIMIT);
    s->mail.size = -1;
    s->where = "CONNECT";
    s->state = ST_CMD;
    s->pause = PAUSE_GREET;
    size_t high = smtpd_cfg.line_limit * 2 > INPUT_HIGH_MIN ? smtpd_cfg.line_limit * 2 : INPUT_HIGH_MIN;
    bufferevent_setwatermark(s->bev, EV_READ, 0, high);
    struct timeval tv = { smtpd_cfg.timeout, 0 };
    bufferevent_set_timeouts(s->bev, &tv, &tv);
    bufferevent_setcb(s->bev, session_read_cb, session_write_cb, session_event_cb, s);
    bufferevent_enable(s->bev, EV_WRITE);
    smtpd_check_connect(s, smtpd_session_connected);   /* the client's name, and its restrictions */
}

void smtpd_session_connected(struct smtpd_session *s)
{
    msg_info("connect from %s", s->client_desc);
    metrics_add(M_SMTPD_CONNECTIONS, 1, NULL);
    if (smtpd_limits_connect(s))
        return;             /* the greeting waits for anvil's count */
    smtpd_session_start_greeting(s);
}

void smtpd_session_start_greeting(struct smtpd_session *s)
{
    if (smtpd_tls_server_wrappermode() && !s->tls_active) {
        smtpd_tls_wrapper_start(s);   /* back here once the handshake is done */
        return;
    }
    /* the milters' connect event comes first */
    if (smtpd_milter_connect_wait(s, smtpd_session_start_greeting))
        return;
    if (smtpd_cfg.greet_pause > 0) {
        struct timeval gp = { smtpd_cfg.greet_pause, 0 };
        s->greet_ev = evtimer_new(s->base, greet_timer, s);
        evtimer_add(s->greet_ev, &gp);
        return;
    }
    greet(s);
    smtpd_session_finish_if_done(s);
}

/* ---- TLS ---- */

static void set_session_buffers(struct smtpd_session *s)
{
    size_t high = smtpd_cfg.line_limit * 2 > INPUT_HIGH_MIN ? smtpd_cfg.line_limit * 2 : INPUT_HIGH_MIN;
    struct timeval tv = { smtpd_cfg.timeout, 0 };
    bufferevent_setwatermark(s->bev, EV_READ, 0, high);
    bufferevent_set_timeouts(s->bev, &tv, &tv);
    bufferevent_setcb(s->bev, session_read_cb, session_write_cb, session_event_cb, s);
}

bool smtpd_session_start_tls(struct smtpd_session *s)
{
    struct strbuf err = STRBUF_INIT(1024);
    SSL *ssl = smtpd_tls_server_new_ssl(&err);
    if (!ssl) {
        msg_warn("%s: %s", s->client_desc, sb_str(&err));
        sb_free(&err);
        return false;
    }
    sb_free(&err);
    struct evbuffer *in = bufferevent_get_input(s->bev);
    if (evbuffer_get_length(in) > 0) {
        /* Commands sent with STARTTLS in one packet were never encrypted:
         * running them inside TLS would let a man in the middle inject them. */
        char sample[2 * SAMPLE_MAX + 1];
        smtpd_session_pending_sample(s, sample, sizeof(sample));
        msg_info("improper command pipelining after STARTTLS from %s: %s; %zu byte(s) discarded",
                 s->client_desc, sample, evbuffer_get_length(in));
    }
    bufferevent_free(s->bev);
    s->bev = bufferevent_openssl_socket_new(s->base, s->fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (!s->bev) {
        msg_warn("%s: cannot set up a TLS session: out of memory", s->client_desc);
        SSL_free(ssl);
        /* Back to clear text, so that the caller can still say goodbye. */
        s->bev = bufferevent_socket_new(s->base, s->fd, 0);
        if (!s->bev)
            msg_fatal("%s: out of memory", s->client_desc);
        set_session_buffers(s);
        bufferevent_enable(s->bev, EV_WRITE);
        return false;
    }
    s->tls_bev = true;
    s->tls_handshaking = true;
    s->pause |= PAUSE_TLS;
    bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
    set_session_buffers(s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    return true;
}

const char *smtpd_session_protocol(const struct smtpd_session *s)
{
    static const char *names[8] = { "SMTP", "SMTPA", "SMTPS", "SMTPSA",
                                    "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA" };
    return names[(s->esmtp ? 4 : 0) | (s->tls_active ? 2 : 0) | (s->sasl_username ? 1 : 0)];
}
