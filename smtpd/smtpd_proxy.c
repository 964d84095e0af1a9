/* smtpd_proxy.c: smtpd's asynchronous SMTP client of the before-queue
 * proxy filter (smtpd_proxy_filter; doc/ARCHITECTURE.md has the path of a
 * message). It has the shape of the cleanup client (smtpd_cleanup.c): a
 * bufferevent in the session's event loop, one command in flight at a
 * time, every outcome delivered to the session through one callback.
 *
 * Without speed_adjust the filter is connected when the client's MAIL FROM
 * has passed smtpd's own checks, and each MAIL, RCPT and DATA goes on to it
 * as the client gives it. With speed_adjust the content is first spooled
 * to an unnamed file in the queue's tmp/ (as the milter content is) and
 * the whole transaction is played to the filter at the end of data.
 *
 * The filter's replies are untrusted input: they are read by the smtp
 * client's reply reader (lib/global/smtp_reply.c: lines cut at a bound, lines
 * counted, codes that must agree, text sanitized), a reply's bytes are
 * bounded, and what is relayed to the client is a bounded copy. The
 * content is written by the same DATA encoder as the smtp client's. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "chroot.h"
#include "config.h"
#include "endpoint.h"
#include "evframe.h"
#include "log.h"
#include "queue.h"
#include "received_header.h"
#include "smtp_command.h"
#include "smtpd.h"
#include "smtpd_proxy.h"
#include "strbuf.h"
#include "smtp_reply.h"
#include "util.h"

#define PROXY_REPLY_BYTES_MAX (256 * 1024) /* bytes of one reply read (long lines are cut) */
#define PROXY_RELAY_LINES 20            /* lines of one reply relayed to the client */
#define PROXY_RELAY_TEXT 4000           /* bytes of one reply relayed */
#define PROXY_BACKLOG_HIGH (256 * 1024) /* pause the client above this */
#define PROXY_BACKLOG_LOW (64 * 1024)   /* resume below this */
#define PROXY_PIECE 65536               /* spool bytes encoded per step */
#define PROXY_XFORWARD_LINE 500         /* an XFORWARD command stays under 512 bytes */

enum proxy_state {
    PX_SPOOLING,    /* speed_adjust: content goes to the spool file, no connection yet */
    PX_CONNECTING, PX_GREETING, PX_EHLO, PX_XFORWARD, PX_MAIL, PX_RCPT, PX_DATA,
    PX_IDLE,        /* connected, waiting for the client's next command */
    PX_STREAMING,   /* DATA was answered 354: content goes to the filter */
    PX_ENDING,      /* "." sent: waiting for the final answer */
    PX_QUITTING,    /* QUIT sent; the session has let go */
    PX_DEAD,        /* failed; the failure is told at the next command */
};

/* The filter's EHLO keywords that change what we send (SMTP_FEAT_*). */
#define EXT_SIZE SMTP_FEAT_SIZE
#define EXT_8BITMIME SMTP_FEAT_8BITMIME
#define EXT_DSN SMTP_FEAT_DSN
#define EXT_SMTPUTF8 SMTP_FEAT_SMTPUTF8
#define EXT_REQUIRETLS SMTP_FEAT_REQUIRETLS

static const struct name_code xforward_names[] = {
    { "name", 0x01 }, { "addr", 0x02 }, { "port", 0x04 }, { "proto", 0x08 },
    { "helo", 0x10 }, { "source", 0x20 }, { "login", 0x40 }, { NULL, 0 },
};

static struct {
    bool enabled;
    bool usable;                /* the endpoint could be parsed and resolved */
    const char *endpoint;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    long timeout;
    const char *ehlo;
    bool speed_adjust;
} pcfg;

struct smtpd_proxy {
    struct smtpd_session *s;    /* NULL once the session has let go */
    struct bufferevent *bev;    /* NULL until connected (speed_adjust) */
    enum proxy_state state;
    bool replay;                /* speed_adjust: the whole transaction at the end */
    unsigned ext, xforward;     /* what the filter's EHLO offered */
    struct strbuf xf_cmds;      /* XFORWARD commands still to send, "\n" after each */
    size_t rcpt_next;           /* replay: the next recipient to send */
    smtpd_proxy_next next;      /* who gets the reply to the command in flight */
    int busy;                   /* inside a session callback: freeing waits */
    bool doomed;                /* free once the callback returns */
    /* the reply being read, and what of it the client is told */
    struct smtp_reply reply;
    struct strbuf in;           /* bytes read, not yet taken as reply lines */
    bool skip_to_lf;            /* the rest of a line that was cut */
    size_t reply_bytes;
    struct strbuf text;
    /* content */
    struct smtp_encoder enc;
    bool paused_client;         /* we reported a backlog; resume when drained */
    int spool_fd;
    off_t spool_len, spool_off;
    bool spool_failed;
    /* a failure waiting to be told (at the next command or the end of data) */
    int fail_code;
    char fail_text[PROXY_RELAY_TEXT + 64];
    struct event *later_ev;
};

/* ---- configuration ---- */

void smtpd_proxy_init(void)
{
    static const struct name_code options[] = { { "speed_adjust", 1 }, { NULL, 0 } };
    pcfg.endpoint = cfg_str(P_smtpd_proxy_filter);
    pcfg.enabled = *pcfg.endpoint != 0;
    if (!pcfg.enabled)
        return;
    pcfg.timeout = cfg_time(P_smtpd_proxy_timeout);
    if (pcfg.timeout <= 0)
        pcfg.timeout = 1;
    pcfg.ehlo = cfg_str(P_smtpd_proxy_ehlo);
    if (!*pcfg.ehlo)
        pcfg.ehlo = smtpd_cfg.myhostname;
    pcfg.speed_adjust = cfg_list_bits(cfg_str(P_smtpd_proxy_options), options, "smtpd_proxy_options") & 1;
    /* a filter that cannot be named still stops mail: every MAIL gets 451 */
    pcfg.usable = endpoint_resolve(pcfg.endpoint, "127.0.0.1", &pcfg.addr, &pcfg.addrlen);
    if (!pcfg.usable)
        msg_warn("smtpd_proxy_filter = %s: expected host:port, [host]:port, inet:host:port or "
                 "unix:pathname that can be resolved; mail is refused with 451", pcfg.endpoint);
}

bool smtpd_proxy_enabled(void)
{
    return pcfg.enabled;
}

/* ---- life of a proxy ---- */

static void proxy_free(struct smtpd_proxy *p)
{
    if (p->busy) {
        p->doomed = true;
        return;
    }
    if (p->bev)
        bufferevent_free(p->bev);
    if (p->later_ev)
        event_free(p->later_ev);
    if (p->spool_fd >= 0)
        close(p->spool_fd);
    sb_free(&p->text);
    sb_free(&p->in);
    smtp_reply_free(&p->reply);
    sb_free(&p->xf_cmds);
    free(p);
}

static void later_cb(evutil_socket_t fd, short what, void *arg);

static struct smtpd_proxy *proxy_new(struct smtpd_session *s, bool replay)
{
    struct smtpd_proxy *p = xcalloc(1, sizeof(*p));
    p->s = s;
    p->replay = replay;
    p->spool_fd = -1;
    p->text = (struct strbuf)STRBUF_INIT(PROXY_RELAY_TEXT + 64);
    p->in = (struct strbuf)STRBUF_INIT(2 * SMTP_REPLY_LINE_MAX);
    smtp_reply_init(&p->reply);
    p->xf_cmds = (struct strbuf)STRBUF_INIT(4096);
    p->later_ev = evtimer_new(s->base, later_cb, p);
    s->proxy = p;
    return p;
}

/* Hand the reply to the session; nothing may touch p afterwards unless
 * the caller holds it busy. */
static void deliver(struct smtpd_proxy *p, int code, const char *text)
{
    smtpd_proxy_next next = p->next;
    struct smtpd_session *s = p->s;
    p->next = NULL;
    if (!s || !next)
        return;
    s->pause &= ~PAUSE_PROXY;
    p->busy++;
    next(s, code, text);
    smtpd_session_resume(s, 0);
    smtpd_session_finish_if_done(s);
    p->busy--;
    if (p->doomed)
        proxy_free(p);
}

/* The failure is told from the event loop, never from inside the command
 * that asked (the session is in the middle of processing its input). */
static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_proxy *p = arg;
    (void)fd;
    (void)what;
    deliver(p, p->fail_code, p->fail_text);
}

static void fail_later(struct smtpd_proxy *p)
{
    struct timeval now = { 0, 0 };
    evtimer_add(p->later_ev, &now);
}

static void remember_failure(struct smtpd_proxy *p, int code, const char *text)
{
    if (p->fail_code)
        return;                 /* the first failure is the one told */
    p->fail_code = code;
    str_copy(p->fail_text, sizeof(p->fail_text), text);
}

/* Something went wrong with the filter: log why, stop talking to it, and
 * give the client 451 at the command in flight or at the end of data. */
static void proxy_fail(struct smtpd_proxy *p, const char *why)
{
    struct smtpd_session *s = p->s;
    enum proxy_state prev = p->state;
    p->state = PX_DEAD;
    if (p->bev)
        bufferevent_disable(p->bev, EV_READ | EV_WRITE);
    if (!s) {                   /* a QUIT that went wrong: nobody waits for it */
        proxy_free(p);
        return;
    }
    msg_warn("%s: proxy filter %s: %s", s->client_desc, pcfg.endpoint, why);
    remember_failure(p, SMTPD_PROXY_FAIL_CODE, SMTPD_PROXY_FAIL_TEXT);
    if (p->next) {
        deliver(p, p->fail_code, p->fail_text);
    } else if (prev == PX_STREAMING && p->paused_client) {
        p->paused_client = false;
        smtpd_session_resume(s, PAUSE_BACKLOG);   /* the rest of the content is read and dropped */
        smtpd_session_finish_if_done(s);
    }
}

/* ---- talking ---- */

static void set_reading(struct smtpd_proxy *p, bool awaiting)
{
    struct timeval tv = { pcfg.timeout, 0 };
    /* no time limit while the client, not the filter, is to speak */
    bufferevent_set_timeouts(p->bev, awaiting ? &tv : NULL, &tv);
}

/* A reply is awaited: nothing of an earlier one is kept. */
static void expect_reply(struct smtpd_proxy *p)
{
    smtp_reply_reset(&p->reply);
    p->reply_bytes = 0;
    sb_reset(&p->text);
}

static void send_command(struct smtpd_proxy *p, enum proxy_state st, const char *cmd)
{
    p->state = st;
    expect_reply(p);
    bufferevent_write(p->bev, cmd, strlen(cmd));
    bufferevent_write(p->bev, "\r\n", 2);
    set_reading(p, true);
}

static void send_mail(struct smtpd_proxy *p)
{
    struct smtpd_session *s = p->s;
    const struct smtp_mail_args *m = &s->mail;
    static const char *body_names[] = { "", "7BIT", "8BITMIME", "BINARYMIME" };
    struct strbuf cmd = STRBUF_INIT(4096);
    sb_appendf(&cmd, "MAIL FROM:<%s>", m->sender.address);
    if ((p->ext & EXT_SIZE) && m->size >= 0)
        sb_appendf(&cmd, " SIZE=%lld", m->size);
    if ((p->ext & EXT_8BITMIME) && (m->body == SMTP_BODY_7BIT || m->body == SMTP_BODY_8BITMIME))
        sb_appendf(&cmd, " BODY=%s", body_names[m->body]);
    if ((p->ext & EXT_SMTPUTF8) && m->smtputf8)
        sb_appends(&cmd, " SMTPUTF8");
    if ((p->ext & EXT_REQUIRETLS) && m->requiretls)
        sb_appends(&cmd, " REQUIRETLS");
    if (p->ext & EXT_DSN) {
        if (m->ret != SMTP_RET_NONE)
            sb_appends(&cmd, m->ret == SMTP_RET_FULL ? " RET=FULL" : " RET=HDRS");
        if (m->envid) {
            size_t before = cmd.len;
            sb_appends(&cmd, " ENVID=");
            if (xtext_append(&cmd, m->envid) < 0)
                sb_truncate(&cmd, before);
        }
    }
    send_command(p, PX_MAIL, sb_str(&cmd));
    sb_free(&cmd);
}

static void send_rcpt(struct smtpd_proxy *p, size_t i)
{
    const struct smtpd_rcpt *r = &p->s->rcpts[i];
    struct strbuf cmd = STRBUF_INIT(4096);
    sb_appendf(&cmd, "RCPT TO:<%s>", r->address);
    if ((p->ext & EXT_DSN) && *r->notify)
        sb_appendf(&cmd, " NOTIFY=%s", r->notify);
    const char *semi = strchr(r->orcpt, ';');
    if ((p->ext & EXT_DSN) && semi) {
        size_t before = cmd.len;
        sb_appendf(&cmd, " ORCPT=%.*s;", (int)(semi - r->orcpt), r->orcpt);
        if (xtext_append(&cmd, semi + 1) < 0)
            sb_truncate(&cmd, before);
    }
    send_command(p, PX_RCPT, sb_str(&cmd));
    sb_free(&cmd);
}

/* One XFORWARD attribute: NAME=xtext, or [UNAVAILABLE] for what we do not
 * know or cannot encode. */
static void xforward_attr(struct strbuf *cmds, size_t *line_start, const char *name, const char *value)
{
    char item[600];
    struct strbuf v = STRBUF_INIT(400);
    if (!value || !*value || xtext_append(&v, value) < 0) {
        sb_reset(&v);
        sb_appends(&v, "[UNAVAILABLE]");
    }
    snprintf(item, sizeof(item), " %s=%s", name, sb_str(&v));
    sb_free(&v);
    if (cmds->len > *line_start && cmds->len - *line_start + strlen(item) > PROXY_XFORWARD_LINE) {
        sb_appendc(cmds, '\n');
        *line_start = cmds->len;
    }
    if (cmds->len == *line_start)
        sb_appends(cmds, "XFORWARD");
    sb_appends(cmds, item);
}

/* The client's attributes the filter asked for, in commands under 512 bytes. */
static void build_xforward(struct smtpd_proxy *p)
{
    struct smtpd_session *s = p->s;
    char addr[INET6_ADDRSTRLEN + 8];
    size_t start = 0;
    sb_reset(&p->xf_cmds);
    snprintf(addr, sizeof(addr), "%s%s", strchr(s->client_addr, ':') ? "IPV6:" : "", s->client_addr);
    if (p->xforward & 0x01)
        xforward_attr(&p->xf_cmds, &start, "NAME", s->client_name);
    if (p->xforward & 0x02)
        xforward_attr(&p->xf_cmds, &start, "ADDR", addr);
    if (p->xforward & 0x04)
        xforward_attr(&p->xf_cmds, &start, "PORT", s->client_port);
    if (p->xforward & 0x08)
        xforward_attr(&p->xf_cmds, &start, "PROTO", s->esmtp ? "ESMTP" : "SMTP");
    if (p->xforward & 0x10)
        xforward_attr(&p->xf_cmds, &start, "HELO", s->helo_name);
    if (p->xforward & 0x20)
        xforward_attr(&p->xf_cmds, &start, "SOURCE", "REMOTE");
    if ((p->xforward & 0x40) && s->sasl_username)
        xforward_attr(&p->xf_cmds, &start, "LOGIN", s->sasl_username);
    if (p->xf_cmds.len)
        sb_appendc(&p->xf_cmds, '\n');
}

/* The next XFORWARD command, or MAIL FROM once they are all answered. */
static void send_xforward_or_mail(struct smtpd_proxy *p)
{
    if (!p->xf_cmds.len) {
        send_mail(p);
        return;
    }
    char *nl = memchr(p->xf_cmds.data, '\n', p->xf_cmds.len);
    size_t n = (size_t)(nl - p->xf_cmds.data);
    char cmd[PROXY_XFORWARD_LINE + 64];
    snprintf(cmd, sizeof(cmd), "%.*s", (int)n, p->xf_cmds.data);
    memmove(p->xf_cmds.data, nl + 1, p->xf_cmds.len - n - 1);
    sb_truncate(&p->xf_cmds, p->xf_cmds.len - n - 1);
    send_command(p, PX_XFORWARD, cmd);
}

static void parse_ehlo(struct smtpd_proxy *p)
{
    unsigned long long size_limit;
    p->ext = smtp_ehlo_parse(&p->reply, &size_limit);
    p->xforward = 0;
    /* XFORWARD NAME ADDR ...: the attributes the filter wants */
    const char *line = sb_str(&p->reply.lines);
    for (const char *nl = strchr(line, '\n'); nl; nl = strchr(line, '\n')) {
        line = nl + 1;          /* the first line is the filter's name */
        size_t len = strcspn(line, "\n");
        if (len < 4 + 8 || strncasecmp(line + 4, "XFORWARD", 8) != 0 || (len > 12 && line[12] != ' '))
            continue;
        for (const char *a = line + 12, *end = line + len; a < end;) {
            char word[64];
            while (a < end && *a == ' ')
                a++;
            size_t an = 0;
            while (a + an < end && a[an] != ' ')
                an++;
            snprintf(word, sizeof(word), "%.*s", (int)(an < sizeof(word) ? an : sizeof(word) - 1), a);
            str_lower(word);
            p->xforward |= (unsigned)name_code(xforward_names, word);
            a += an;
        }
    }
}

/* ---- content ---- */

/* Content as DATA on the wire: CR LF line ends, dot-stuffed (the smtp
 * client's encoder, which also ends a bare CR's line). */
static void write_content(struct smtpd_proxy *p, const char *data, size_t len)
{
    struct strbuf out = STRBUF_INIT(3 * PROXY_PIECE + 16);
    while (len > 0) {
        size_t n = len > PROXY_PIECE ? PROXY_PIECE : len;
        sb_reset(&out);
        smtp_encode(&p->enc, data, n, &out);
        bufferevent_write(p->bev, out.data, out.len);
        data += n;
        len -= n;
    }
    sb_free(&out);
}

/* Our Received: header, first in the content the filter gets. */
static void write_received(struct smtpd_proxy *p)
{
    struct smtpd_session *s = p->s;
    char date[80], tls[160], ccert[700];
    format_rfc5322_date(now_usec(), date, sizeof(date));
    struct received_info ri = {
        .helo_name = s->helo_name,
        .client_name = s->client_name,
        .client_addr = s->client_addr,
        .protocol = smtpd_session_protocol(s),
        .hostname = smtpd_cfg.myhostname,
        .mail_name = cfg_str(P_mail_name),
        .rcpt = s->nrcpt == 1 ? s->rcpts[0].address : NULL,
        .date = date,
    };
    if (s->tls_active && smtpd_tls_server_received_header()) {
        smtpd_tls_session_summary(s, tls, sizeof(tls));
        ri.tls = tls;
        ri.tls_client = smtpd_ccert_received(s, ccert, sizeof(ccert));
    }
    struct strbuf hdr = STRBUF_INIT(8192);
    smtp_encoder_init(&p->enc);
    if (received_header_append(&hdr, &ri) == 0)
        write_content(p, hdr.data, hdr.len);
    sb_free(&hdr);
}

static void write_end_of_data(struct smtpd_proxy *p)
{
    struct strbuf end = STRBUF_INIT(16);
    smtp_encode_end(&p->enc, &end);         /* BDAT content need not end in a line end */
    bufferevent_write(p->bev, end.data, end.len);
    sb_free(&end);
    p->state = PX_ENDING;
    expect_reply(p);
    set_reading(p, true);
}

/* speed_adjust: the spooled content to the filter while it keeps up; the
 * write callback comes back for more. */
static void pump_spool(struct smtpd_proxy *p)
{
    static char piece[PROXY_PIECE];
    while (p->state == PX_STREAMING
           && evbuffer_get_length(bufferevent_get_output(p->bev)) <= PROXY_BACKLOG_HIGH) {
        size_t n = p->spool_len - p->spool_off > PROXY_PIECE ? PROXY_PIECE
                   : (size_t)(p->spool_len - p->spool_off);
        if (n == 0) {
            write_end_of_data(p);
            return;
        }
        if (pread_all(p->spool_fd, piece, n, p->spool_off) < 0) {
            proxy_fail(p, "cannot read the spool file");
            return;
        }
        p->spool_off += (off_t)n;
        write_content(p, piece, n);
    }
}

/* ---- replies ---- */

/* A reply we can pass on: 2xx, 4xx or 5xx; to DATA, 354, 4xx or 5xx. */
static bool reply_code_ok(int code, bool data)
{
    return (data ? code == 354 : code >= 200 && code <= 299) || (code >= 400 && code <= 599);
}

/* The filter answered the command in flight (or spoke when it should not). */
/* What the client is told of the reply: its lines' texts (without the
 * codes), at most PROXY_RELAY_LINES lines and PROXY_RELAY_TEXT bytes. */
static void relay_text(struct smtpd_proxy *p)
{
    const char *line = sb_str(&p->reply.lines), *end = line + p->reply.lines.len;
    sb_reset(&p->text);
    for (size_t n = 0; line < end && n < PROXY_RELAY_LINES; n++) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *eol = nl ? nl : end;
        const char *t = eol - line > 4 ? line + 4 : eol;
        if (p->text.len + (size_t)(eol - t) + 1 > PROXY_RELAY_TEXT)
            break;
        if (n)
            sb_appendc(&p->text, '\n');
        sb_append(&p->text, t, (size_t)(eol - t));
        line = nl ? nl + 1 : end;
    }
}

static void handle_reply(struct smtpd_proxy *p)
{
    int code = p->reply.code;
    relay_text(p);
    const char *text = sb_str(&p->text);
    struct strbuf why = STRBUF_INIT(PROXY_RELAY_TEXT + 200);
    bool ok2 = code / 100 == 2;
    switch (p->state) {
    case PX_GREETING:
        if (code != 220)
            break;
        {
            char cmd[600];
            snprintf(cmd, sizeof(cmd), "EHLO %s", pcfg.ehlo);
            send_command(p, PX_EHLO, cmd);
        }
        goto done;
    case PX_EHLO:
        if (!ok2)
            break;
        parse_ehlo(p);
        build_xforward(p);
        send_xforward_or_mail(p);
        goto done;
    case PX_XFORWARD:
        if (!ok2)
            break;
        send_xforward_or_mail(p);
        goto done;
    case PX_MAIL:
    case PX_RCPT:
        if (!reply_code_ok(code, false))
            break;
        if (p->replay && ok2) {
            if (p->rcpt_next < p->s->nrcpt)
                send_rcpt(p, p->rcpt_next++);
            else
                send_command(p, PX_DATA, "DATA");
            goto done;
        }
        /* refused (the answer for the whole message with speed_adjust) or passed */
        p->state = PX_IDLE;
        set_reading(p, false);
        deliver(p, code, text);
        goto done;
    case PX_DATA:
        if (!reply_code_ok(code, true))
            break;
        if (code != 354) {
            p->state = PX_IDLE;
            set_reading(p, false);
            deliver(p, code, text);
            goto done;
        }
        p->state = PX_STREAMING;
        set_reading(p, false);
        write_received(p);
        if (p->replay)
            pump_spool(p);
        else
            deliver(p, code, text);
        goto done;
    case PX_ENDING:
        if (!reply_code_ok(code, false))
            break;
        p->state = PX_IDLE;
        set_reading(p, false);
        deliver(p, code, text);
        goto done;
    case PX_STREAMING:
        /* the filter refused the message before its end: that is the answer */
        if (code / 100 == 4 || code / 100 == 5) {
            msg_info("%s: proxy filter %s answered before the end of data: %d %.200s",
                     p->s ? p->s->client_desc : "", pcfg.endpoint, code, text);
            remember_failure(p, code, text);
            p->state = PX_DEAD;
            bufferevent_disable(p->bev, EV_READ | EV_WRITE);
            if (p->next) {              /* speed_adjust: the end of data waits for this */
                deliver(p, p->fail_code, p->fail_text);
            } else if (p->paused_client && p->s) {
                p->paused_client = false;
                smtpd_session_resume(p->s, PAUSE_BACKLOG);
                smtpd_session_finish_if_done(p->s);
            }
            goto done;
        }
        break;
    case PX_QUITTING:
        proxy_free(p);
        goto done;
    default:
        break;
    }
    sb_appendf(&why, "unexpected reply: %d %.200s", code, text);
    for (char *c = why.data; c && *c; c++)
        if (*c == '\n')
            *c = ' ';
    proxy_fail(p, sb_str(&why));
done:
    sb_free(&why);
}

/* Reply lines through the smtp client's reader; each complete reply is
 * handled. Bytes from the filter when no reply is awaited are an error. */
static void take_replies(struct smtpd_proxy *p, struct evbuffer *in)
{
    char buf[4096];
    while (!p->doomed && p->state != PX_DEAD && (evbuffer_get_length(in) > 0 || p->in.len > 0)) {
        if (p->state == PX_IDLE || p->state == PX_SPOOLING) {
            proxy_fail(p, "reply without a command");
            return;
        }
        /* the reader leaves less than a line in p->in: there is room for more */
        size_t room = p->in.limit - p->in.len;
        int got = evbuffer_remove(in, buf, room < sizeof(buf) ? room : sizeof(buf));
        if (got > 0) {
            sb_append(&p->in, buf, (size_t)got);
            p->reply_bytes += (size_t)got;
        }
        if (p->reply_bytes > PROXY_REPLY_BYTES_MAX) {
            proxy_fail(p, "reply too long");
            return;
        }
        int rc = smtp_reply_feed(&p->reply, &p->in, &p->skip_to_lf, NULL, NULL);
        if (rc < 0) {
            proxy_fail(p, "malformed reply");
            return;
        }
        if (rc > 0)
            handle_reply(p);
        else if (got <= 0)
            return;             /* part of a line: wait for the rest */
    }
}

static void proxy_read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_proxy *p = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    p->busy++;
    take_replies(p, in);
    if (p->state == PX_DEAD)
        evbuffer_drain(in, evbuffer_get_length(in));
    p->busy--;
    if (p->doomed)
        proxy_free(p);
}

static void proxy_write_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_proxy *p = arg;
    (void)bev;
    if (p->state != PX_STREAMING)
        return;
    if (p->replay) {
        p->busy++;
        pump_spool(p);
        p->busy--;
        if (p->doomed)
            proxy_free(p);
        return;
    }
    if (p->paused_client && p->s) {
        struct smtpd_session *s = p->s;
        p->paused_client = false;
        p->busy++;
        smtpd_session_resume(s, PAUSE_BACKLOG);
        smtpd_session_finish_if_done(s);
        p->busy--;
        if (p->doomed)
            proxy_free(p);
    }
}

static void proxy_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtpd_proxy *p = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        p->state = PX_GREETING;
        expect_reply(p);
        set_reading(p, true);
        return;
    }
    if (p->state == PX_QUITTING) {
        proxy_free(p);
        return;
    }
    if (p->state == PX_DEAD)
        return;
    char why[200];
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(why, sizeof(why), "timeout after %s", p->state == PX_CONNECTING ? "connect"
                 : p->state == PX_ENDING ? "end of data" : "command");
    else if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof(why), "lost connection%s",
                 p->state == PX_STREAMING ? " while receiving the message content" : "");
    else
        snprintf(why, sizeof(why), "%s%s", p->state == PX_CONNECTING ? "connect: " : "",
                 strerror(errno ? errno : ECONNREFUSED));
    p->busy++;
    proxy_fail(p, why);
    p->busy--;
    if (p->doomed)
        proxy_free(p);
}

/* Open the connection; the greeting, EHLO, XFORWARD and MAIL FROM follow,
 * and p->next gets the answer to MAIL FROM (or, replaying, the last one). */
static void proxy_connect(struct smtpd_proxy *p, smtpd_proxy_next next)
{
    struct smtpd_session *s = p->s;
    p->next = next;
    s->pause |= PAUSE_PROXY;
    p->state = PX_CONNECTING;
    if (pcfg.usable && (p->bev = bufferevent_socket_new(s->base, -1, BEV_OPT_CLOSE_ON_FREE)) != NULL) {
        bufferevent_setcb(p->bev, proxy_read_cb, proxy_write_cb, proxy_event_cb, p);
        bufferevent_setwatermark(p->bev, EV_WRITE, PROXY_BACKLOG_LOW, 0);
        bufferevent_setwatermark(p->bev, EV_READ, 0, 4 * SMTP_REPLY_LINE_MAX);
        set_reading(p, true);
        bufferevent_enable(p->bev, EV_READ | EV_WRITE);
        if (bufferevent_socket_connect(p->bev, (struct sockaddr *)&pcfg.addr, (int)pcfg.addrlen) == 0)
            return;
        msg_warn("%s: proxy filter %s: connect: %s%s", s->client_desc, pcfg.endpoint, strerror(errno),
                 chroot_active() && pcfg.addr.ss_family == AF_UNIX
                 ? " (this smtpd is chrooted: the socket must be under queue_directory)" : "");
    }
    remember_failure(p, SMTPD_PROXY_FAIL_CODE, SMTPD_PROXY_FAIL_TEXT);
    p->state = PX_DEAD;
    fail_later(p);
}

/* ---- what the session asks ---- */

bool smtpd_proxy_mail_wait(struct smtpd_session *s, smtpd_proxy_next next)
{
    if (!pcfg.enabled || pcfg.speed_adjust)
        return false;
    smtpd_proxy_end(s);                  /* a left-over proxy of an earlier transaction */
    proxy_connect(proxy_new(s, false), next);
    return true;
}

/* A command to the connected filter, or the failure noted earlier. */
static bool command_wait(struct smtpd_session *s, smtpd_proxy_next next)
{
    struct smtpd_proxy *p = s->proxy;
    if (!p) {       /* cannot happen: MAIL made one; refuse rather than accept unfiltered */
        p = proxy_new(s, false);
        remember_failure(p, SMTPD_PROXY_FAIL_CODE, SMTPD_PROXY_FAIL_TEXT);
        p->state = PX_DEAD;
    }
    p->next = next;
    s->pause |= PAUSE_PROXY;
    if (p->state != PX_IDLE) {
        remember_failure(p, SMTPD_PROXY_FAIL_CODE, SMTPD_PROXY_FAIL_TEXT);
        fail_later(p);
        return false;
    }
    return true;
}

bool smtpd_proxy_rcpt_wait(struct smtpd_session *s, size_t i, smtpd_proxy_next next)
{
    if (!pcfg.enabled || pcfg.speed_adjust)
        return false;
    if (command_wait(s, next))
        send_rcpt(s->proxy, i);
    return true;
}

bool smtpd_proxy_data_wait(struct smtpd_session *s, smtpd_proxy_next next)
{
    if (!pcfg.enabled)
        return false;
    if (pcfg.speed_adjust) {
        smtpd_proxy_end(s);
        struct smtpd_proxy *p = proxy_new(s, true);
        p->state = PX_SPOOLING;
        return false;
    }
    if (command_wait(s, next))
        send_command(s->proxy, PX_DATA, "DATA");
    return true;
}

void smtpd_proxy_send(struct smtpd_session *s, const char *data, size_t len)
{
    struct smtpd_proxy *p = s->proxy;
    if (!p || len == 0)
        return;
    if (p->state == PX_STREAMING && !p->replay) {
        write_content(p, data, len);
        return;
    }
    if (p->state != PX_SPOOLING || p->spool_failed)
        return;
    if (p->spool_fd < 0 && (p->spool_fd = temp_file_open(QDIR_TMP)) < 0) {
        msg_warn("%s: cannot create a spool file in %s/ for the proxy filter: %m", s->client_desc, QDIR_TMP);
        p->spool_failed = true;
        return;
    }
    if (write_all(p->spool_fd, data, len) < 0) {
        msg_warn("%s: cannot write the spool file for the proxy filter: %m", s->client_desc);
        p->spool_failed = true;
        return;
    }
    p->spool_len += (off_t)len;
}

bool smtpd_proxy_backlogged(struct smtpd_session *s)
{
    struct smtpd_proxy *p = s->proxy;
    return p && p->state == PX_STREAMING && !p->replay
           && evframe_backlogged(p->bev, PROXY_BACKLOG_HIGH, &p->paused_client);
}

void smtpd_proxy_eod(struct smtpd_session *s, smtpd_proxy_next next)
{
    struct smtpd_proxy *p = s->proxy;
    if (p && p->replay && p->state == PX_SPOOLING) {
        if (p->spool_failed) {
            p->next = next;
            s->pause |= PAUSE_PROXY;
            remember_failure(p, SMTPD_PROXY_FAIL_CODE, SMTPD_PROXY_FAIL_TEXT);
            p->state = PX_DEAD;
            fail_later(p);
            return;
        }
        p->rcpt_next = 0;
        proxy_connect(p, next);          /* MAIL, RCPT..., DATA, content, "." follow */
        return;
    }
    if (!p || p->state != PX_STREAMING || p->replay) {
        if (!p) {
            p = proxy_new(s, false);
            p->state = PX_DEAD;
        }
        p->next = next;
        s->pause |= PAUSE_PROXY;
        remember_failure(p, SMTPD_PROXY_FAIL_CODE, SMTPD_PROXY_FAIL_TEXT);
        fail_later(p);
        return;
    }
    p->next = next;
    s->pause |= PAUSE_PROXY;
    write_end_of_data(p);
}

void smtpd_proxy_end(struct smtpd_session *s)
{
    struct smtpd_proxy *p = s->proxy;
    if (!p)
        return;
    s->proxy = NULL;
    s->pause &= ~PAUSE_PROXY;
    p->s = NULL;
    p->next = NULL;
    if (p->later_ev)
        evtimer_del(p->later_ev);
    if (p->state != PX_IDLE) {
        /* mid-command or mid-content: closing is the only way to say the
         * message is not to be accepted */
        proxy_free(p);
        return;
    }
    p->state = PX_QUITTING;
    bufferevent_write(p->bev, "QUIT\r\n", 6);
    expect_reply(p);
    set_reading(p, true);
}
