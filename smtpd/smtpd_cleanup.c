/* smtpd_cleanup.c: smtpd's asynchronous client of the cleanup service
 * (doc/PROTOCOLS.md): connect over a UNIX socket in the event loop, check the
 * protocol greeting, send the envelope, stream content frames while the
 * client is still sending, then send the end frame and deliver cleanup's
 * verdict to the session. Every failure becomes one callback, made last. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "attr.h"
#include "evframe.h"
#include "log.h"
#include "rewrite.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "smtpd_milter.h"
#include "util.h"

#define CLEANUP_DATA_MAX 65536            /* largest content frame payload */
#define CLEANUP_REPLY_LIMIT 65536         /* largest frame we accept back */
#define CLEANUP_BACKLOG_HIGH (256 * 1024) /* pause the client above this */
#define CLEANUP_BACKLOG_LOW (64 * 1024)   /* resume below this */
#define CLEANUP_FAIL_TEXT "4.3.0 Error: queue file write error"

enum cleanup_state { CL_CONNECTING, CL_PROTOCOL, CL_STREAMING, CL_ENDING, CL_DEAD };

struct smtpd_cleanup {
    struct smtpd_session *s;
    const struct smtpd_cleanup_callbacks *cb;
    struct bufferevent *bev;
    enum cleanup_state state;
    bool paused_client;        /* we reported a backlog; report when drained */
    struct strbuf frame;       /* a content frame being made: kept, not grown anew per frame */
};

/* Report the failure to the session; nothing may touch c afterwards. */
static void cleanup_fail(struct smtpd_cleanup *c, const char *why)
{
    enum cleanup_state prev = c->state;
    c->state = CL_DEAD;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    msg_warn("%s: cleanup service %s: %s", c->s->client_desc, smtpd_cfg.cleanup_path, why);
    if (prev == CL_CONNECTING || prev == CL_PROTOCOL)
        c->cb->ready(c->s, false);
    else
        c->cb->done(c->s, 451, "", CLEANUP_FAIL_TEXT);
}

static void put_attr(struct attr_writer *w, const char *name, const char *value)
{
    attr_put_str(w, "name", name);
    attr_put_str(w, "value", value);
}

/* The envelope frame: flags, sender, attributes, recipients. */
static int encode_envelope(struct smtpd_session *s, struct strbuf *out)
{
    const struct smtp_mail_args *m = &s->mail;
    static const char *body_names[] = { "", "7BIT", "8BITMIME", "BINARYMIME" };
    char size[32];
    struct attr_writer w;
    int nattr = 6 + (s->helo_name != NULL) + 2 * (s->sasl_username != NULL) + (m->envid != NULL) + (m->ret != SMTP_RET_NONE)
        + (m->body != SMTP_BODY_NONE) + m->smtputf8 + m->requiretls + (m->size >= 0)
        + 2 * (s->tls_active && smtpd_tls_server_received_header()) + smtpd_check_cleanup_attrs(s, NULL)
        + (smtpd_milter_hold_reason(s) != NULL);

    attr_begin(&w, out);
    /* 2: HOLD, 4: no address mappings, 8: no header/body checks (doc/PROTOCOLS.md) */
    unsigned ro = smtpd_check_cfg.receive_overrides;
    attr_put_int(&w, "flags", (smtpd_check_holding(s) || smtpd_milter_holding(s) ? 2 : 0)
                 | (ro & RECEIVE_NO_MAPPINGS ? 4 : 0) | (ro & RECEIVE_NO_CHECKS ? 8 : 0));
    attr_put_str(&w, "sender", m->sender.address);
    attr_put_int(&w, "nattr", nattr);
    put_attr(&w, "client_name", s->client_name);
    put_attr(&w, "client_addr", s->client_addr);
    put_attr(&w, "client_port", s->client_port);
    if (s->helo_name)
        put_attr(&w, "helo_name", s->helo_name);
    put_attr(&w, "protocol", smtpd_session_protocol(s));
    if (s->tls_active && smtpd_tls_server_received_header()) {
        char tls[160];
        smtpd_tls_session_summary(s, tls, sizeof(tls));
        put_attr(&w, "tls_info", tls);
        char ccert[700];
        const char *c = smtpd_ccert_received(s, ccert, sizeof(ccert));
        put_attr(&w, "tls_client", c ? c : "No client certificate requested");
    }
    if (s->sasl_username) {
        put_attr(&w, "sasl_method", s->sasl_method ? s->sasl_method : "");
        put_attr(&w, "sasl_username", s->sasl_username);
    }
    if (m->envid)
        put_attr(&w, "envid", m->envid);
    if (m->ret != SMTP_RET_NONE)
        put_attr(&w, "ret", m->ret == SMTP_RET_FULL ? "FULL" : "HDRS");
    if (m->body != SMTP_BODY_NONE)
        put_attr(&w, "body", body_names[m->body]);
    if (m->smtputf8)
        put_attr(&w, "smtputf8", "yes");
    if (m->requiretls)
        put_attr(&w, "requiretls", "yes");
    if (m->size >= 0) {
        snprintf(size, sizeof(size), "%lld", m->size);
        put_attr(&w, "size", size);
    }
    put_attr(&w, "server_name", smtpd_cfg.myhostname);
    smtpd_check_cleanup_attrs(s, &w);     /* content_filter from a FILTER action */
    if (smtpd_milter_hold_reason(s))
        put_attr(&w, "hold_reason", smtpd_milter_hold_reason(s));
    put_attr(&w, "queue_id", smtpd_data_queue_id(s));  /* logged with client=, told the milters */
    attr_put_int(&w, "nrcpt", (long long)s->nrcpt);
    for (size_t i = 0; i < s->nrcpt; i++) {
        attr_put_str(&w, "rcpt", s->rcpts[i].address);
        attr_put_str(&w, "orcpt", s->rcpts[i].orcpt);
        attr_put_str(&w, "notify", s->rcpts[i].notify);
    }
    return attr_end(&w);
}

/* {protocol=cleanup} arrived: answer with the envelope. */
static void handle_protocol(struct smtpd_cleanup *c, const void *frame, size_t len)
{
    struct attr_reader r;
    const char *proto;
    if (attr_reader_init(&r, frame, len) < 0 || attr_get_str(&r, "protocol", &proto) < 0
        || attr_reader_done(&r) < 0 || strcmp(proto, "cleanup") != 0) {
        cleanup_fail(c, "unexpected protocol greeting");
        return;
    }
    struct strbuf env = STRBUF_INIT(smtpd_cfg.ipc_frame_limit);
    int rc = encode_envelope(c->s, &env);
    if (rc == 0)
        bufferevent_write(c->bev, env.data, env.len);
    sb_free(&env);
    if (rc < 0) {
        cleanup_fail(c, "envelope larger than ipc_frame_limit");
        return;
    }
    c->state = CL_STREAMING;
    c->cb->ready(c->s, true);
}

/* {status, queue_id, reason}: the verdict. */
static void handle_reply(struct smtpd_cleanup *c, const void *frame, size_t len)
{
    struct attr_reader r;
    long long status;
    const char *id, *reason;
    if (attr_reader_init(&r, frame, len) < 0
        || attr_get_int(&r, "status", 0, 999, &status) < 0
        || attr_get_str(&r, "queue_id", &id) < 0
        || attr_get_str(&r, "reason", &reason) < 0
        || attr_reader_done(&r) < 0) {
        cleanup_fail(c, "malformed reply");
        return;
    }
    c->state = CL_DEAD;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    c->cb->done(c->s, (int)status, id, reason);
}

static void cleanup_read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_cleanup *c = arg;
    unsigned char *frame;
    ssize_t size = evframe_take(bufferevent_get_input(bev), attr_frame_size, CLEANUP_REPLY_LIMIT,
                                &frame);
    if (size == 0)
        return;
    if (size < 0) {
        cleanup_fail(c, "oversized frame");
        return;
    }
    if (c->state != CL_PROTOCOL && c->state != CL_ENDING) {
        free(frame);
        cleanup_fail(c, "unexpected frame");
        return;
    }
    struct smtpd_session *s = c->s;
    if (c->state == CL_PROTOCOL)
        handle_protocol(c, frame, (size_t)size);
    else
        handle_reply(c, frame, (size_t)size);
    free(frame);
    smtpd_session_finish_if_done(s);
}

static void cleanup_write_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_cleanup *c = arg;
    if (!c->paused_client || c->state != CL_STREAMING)
        return;
    c->paused_client = false;
    struct smtpd_session *s = c->s;
    c->cb->drained(s);
    smtpd_session_finish_if_done(s);
}

static void cleanup_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtpd_cleanup *c = arg;
    struct smtpd_session *s = c->s;
    if (what & BEV_EVENT_CONNECTED) {
        c->state = CL_PROTOCOL;
        return;
    }
    if (c->state == CL_DEAD)
        return;
    cleanup_fail(c, (what & BEV_EVENT_TIMEOUT) ? "timeout"
                 : (what & BEV_EVENT_EOF) ? "connection closed" : strerror(errno));
    smtpd_session_finish_if_done(s);
}

struct smtpd_cleanup *smtpd_cleanup_open(struct smtpd_session *s, const struct smtpd_cleanup_callbacks *cb)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (str_copy(sun.sun_path, sizeof(sun.sun_path), smtpd_cfg.cleanup_path) >= sizeof(sun.sun_path)) {
        msg_warn("%s: cleanup socket path too long: %s", s->client_desc, smtpd_cfg.cleanup_path);
        return NULL;
    }
    struct smtpd_cleanup *c = xcalloc(1, sizeof(*c));
    c->s = s;
    c->cb = cb;
    c->bev = bufferevent_socket_new(s->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        free(c);
        return NULL;
    }
    bufferevent_setcb(c->bev, cleanup_read_cb, cleanup_write_cb, cleanup_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, CLEANUP_BACKLOG_LOW, 0);
    bufferevent_setwatermark(c->bev, EV_READ, 0, 2 * CLEANUP_REPLY_LIMIT);
    struct timeval tv = { smtpd_cfg.ipc_timeout, 0 };
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        msg_warn("%s: connect to cleanup service %s: %s", s->client_desc,
                 smtpd_cfg.cleanup_path, strerror(errno));
        bufferevent_free(c->bev);
        free(c);
        return NULL;
    }
    return c;
}

void smtpd_cleanup_send(struct smtpd_cleanup *c, const char *data, size_t len)
{
    if (!c || c->state != CL_STREAMING)
        return;
    /* A frame buffer grown from nothing for every 64 KiB of content cost a
     * dozen reallocations and copies each time; this one stays. */
    if (!c->frame.data) {
        sb_init(&c->frame, CLEANUP_DATA_MAX + 256);
        (void)sb_room(&c->frame, CLEANUP_DATA_MAX + 255);
    }
    while (len > 0) {
        size_t n = len > CLEANUP_DATA_MAX ? CLEANUP_DATA_MAX : len;
        struct attr_writer w;
        sb_reset(&c->frame);
        attr_begin(&w, &c->frame);
        attr_put_bytes(&w, "data", data, n);
        if (attr_end(&w) == 0)
            bufferevent_write(c->bev, c->frame.data, c->frame.len);
        data += n;
        len -= n;
    }
}

bool smtpd_cleanup_backlogged(struct smtpd_cleanup *c)
{
    return c && c->state == CL_STREAMING
           && evframe_backlogged(c->bev, CLEANUP_BACKLOG_HIGH, &c->paused_client);
}

void smtpd_cleanup_finish(struct smtpd_cleanup *c, bool commit)
{
    if (!c || c->state != CL_STREAMING)
        return;
    struct strbuf frame = STRBUF_INIT(256);
    attr_frame_str(&frame, "end", commit ? "ok" : "abort");
    bufferevent_write(c->bev, frame.data, frame.len);
    sb_free(&frame);
    c->state = CL_ENDING;
}

void smtpd_cleanup_free(struct smtpd_cleanup *c)
{
    if (!c)
        return;
    bufferevent_free(c->bev);
    sb_free(&c->frame);
    free(c);
}
