/* milter.c: the chain of milter connections of one SMTP session or one
 * local submission, driven from the event loop: connect and negotiate, send
 * each event with its macros to the filters in configured order, read their
 * replies (bounded in size and time), collect the end-of-message edits, and
 * turn a failing filter into its default_action with one clear warning.
 * Modelled on Postfix's milter8.c: a filter that failed is closed at once
 * (its replies in flight would be out of step) and answers every later
 * event with its default action. */
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
#include <event2/event.h>

#include "chroot.h"
#include "evframe.h"
#include "log.h"
#include "milter.h"
#include "queue.h"
#include "util.h"

#define PENDING_EDITS_LIMIT (4 * 1024 * 1024)
/* Body chunks that get no reply (SMFIP_NR_BODY) wait above this much
 * unsent output, so a slow filter cannot make the message pile up here. */
#define OUTPUT_BACKLOG_HIGH (256 * 1024)
#define OUTPUT_BACKLOG_LOW (64 * 1024)

enum conn_state { MC_NEW, MC_CONNECTING, MC_OPTNEG, MC_READY, MC_ACCEPT_CONN, MC_ERROR };

struct milter_conn {
    struct milter_chain *chain;
    const struct milter_spec *spec;
    struct bufferevent *bev;
    enum conn_state state;
    bool accept_msg;            /* accepted the current message: no more of its events */
    bool in_msg;                /* MAIL was sent and no end of message or abort since */
    bool skip_body;             /* answered a body chunk with SKIP */
    uint32_t version, actions, protocol;
    char **macros[MILTER_STAGE_COUNT + 1];   /* the filter's own lists, or NULL */
    size_t nmacros[MILTER_STAGE_COUNT + 1];
};

enum content_phase { CP_HEADERS, CP_EOH, CP_BODY, CP_EOM, CP_DONE };

struct milter_chain {
    const struct milter_config *mc;
    struct event_base *base;
    struct milter_owner owner;
    struct milter_conn *conns;
    size_t n;

    bool busy;
    bool finishing;             /* the verdict is made, waiting to be delivered */
    bool waiting;               /* a reply is expected from conns[cur] */
    long long wait_start;       /* when; PROGRESS extends a wait up to 10 timeouts */
    long wait_timeout;
    char event;                 /* SMFIC code of the event in progress */
    int stage;                  /* its macro list, -1 for none */
    size_t cur;
    struct strbuf pkt;          /* the event packet, without macros */
    struct milter_result res;
    struct event *later;        /* delivers res from the loop */

    /* the connect event's arguments, kept for a filter that connects late */
    char *host, *addr;
    char family;
    unsigned port;

    /* the content phase */
    struct milter_msg *msg;
    enum content_phase phase;
    size_t hdr;
    off_t body_off;
    struct strbuf edits;        /* the current filter's edit packets, applied at its verdict */
    bool replbody;
    bool draining;              /* waiting for the filter to take queued body chunks */
    char *raw;                  /* one body chunk as read from the file */
    struct strbuf chunk;        /* the same with CR LF line ends, or a converted REPLBODY */
    /* the current filter's replacement body, spooled as it arrives */
    int newbody_fd;
    off_t newbody_in, newbody_len, newbody_limit;
    bool newbody_cr;            /* a CR held back: it goes if no LF follows */
    char newbody_last;
};

static void step(struct milter_chain *c);
static void conn_close(struct milter_conn *mc);
static void content_buffers_free(struct milter_chain *c);
static void write_cb(struct bufferevent *bev, void *arg);

static const char *prefix(struct milter_chain *c)
{
    return c->owner.log_prefix(c->owner.ctx);
}

static bool message_event(char ev)
{
    return ev != SMFIC_CONNECT && ev != SMFIC_HELO && ev != SMFIC_UNKNOWN;
}

/* ---- results ---- */

static void deliver(evutil_socket_t fd, short what, void *arg)
{
    struct milter_chain *c = arg;
    struct milter_result r = c->res;
    c->busy = c->finishing = false;
    if (c->msg) {
        /* the filters up to the one that decided are done with the message */
        for (size_t i = 0; i <= c->cur && i < c->n; i++)
            c->conns[i].in_msg = c->conns[i].accept_msg = false;
        c->msg = NULL;
        content_buffers_free(c);
    }
    c->owner.done(c->owner.ctx, &r);
}

static void finish(struct milter_chain *c, enum milter_verdict v, int code, const char *text)
{
    c->waiting = false;
    c->finishing = true;
    c->res.verdict = v;
    c->res.code = code;
    str_copy(c->res.text, sizeof(c->res.text), text ? text : "");
    struct timeval tv = { 0, 0 };
    evtimer_add(c->later, &tv);
}

/* The reply of a failed filter, per its default_action; false: go on. */
static bool default_reply(struct milter_chain *c, struct milter_conn *mc)
{
    switch (mc->spec->default_action) {
    case MILTER_ACT_REJECT:
        finish(c, MILTER_REJECT, 550, "5.5.0 Service unavailable");
        return true;
    case MILTER_ACT_TEMPFAIL:
        finish(c, MILTER_TEMPFAIL, 451, "4.7.1 Service unavailable - try again later");
        return true;
    case MILTER_ACT_SHUTDOWN:
        finish(c, MILTER_SHUTDOWN, 421, "4.7.1 Service unavailable - try again later");
        return true;
    case MILTER_ACT_QUARANTINE:
        if (c->msg && !c->msg->quarantine)
            c->msg->quarantine = xstrdup("milter default_action");
        return false;
    default:
        return false;
    }
}

/* A filter failed: log it, close it, apply its default action. */
static void conn_fail(struct milter_conn *mc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void conn_fail(struct milter_conn *mc, const char *fmt, ...)
{
    struct milter_chain *c = mc->chain;
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    /* Postfix's shape ("warning: milter ENDPOINT: ..."), then whose mail it was */
    msg_warn("milter %s: %s; default_action=%s (%s)", mc->spec->endpoint, why,
             milter_action_name(mc->spec->default_action), prefix(c));
    conn_close(mc);
    mc->state = MC_ERROR;
    if (!c->busy || c->finishing || c->cur >= c->n || mc != &c->conns[c->cur])
        return;
    c->waiting = c->draining = false;
    /* a body replacement cut short must not let the old body through */
    if (c->msg && c->phase == CP_EOM && mc == &c->conns[c->cur] && c->replbody) {
        finish(c, MILTER_TEMPFAIL, 451, "4.7.1 Service unavailable - try again later");
        return;
    }
    if (default_reply(c, mc))
        return;
    c->cur++;
    c->phase = CP_HEADERS;
    c->hdr = 0;
    step(c);
}

/* ---- connections ---- */

static void conn_close(struct milter_conn *mc)
{
    if (mc->bev) {
        bufferevent_free(mc->bev);
        mc->bev = NULL;
    }
    for (int s = 0; s <= MILTER_MACRO_UNKNOWN; s++) {
        if (mc->macros[s])
            cfg_list_free(mc->macros[s], mc->nmacros[s]);
        mc->macros[s] = NULL;
    }
}

static void send_packet(struct milter_conn *mc, const struct strbuf *b)
{
    bufferevent_write(mc->bev, b->data, b->len);
}

/* Wait for a reply within t seconds. */
static void expect_reply(struct milter_conn *mc, long t)
{
    struct timeval tv = { t, 0 };
    mc->chain->waiting = true;
    mc->chain->wait_start = now_usec();
    mc->chain->wait_timeout = t;
    bufferevent_set_timeouts(mc->bev, &tv, &tv);
    bufferevent_enable(mc->bev, EV_READ);
}

static void read_cb(struct bufferevent *bev, void *arg);

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct milter_conn *mc = arg;
    if (what & BEV_EVENT_CONNECTED) {
        struct milter_chain *c = mc->chain;
        uint32_t acts = mc->spec->protocol >= 6 ? SMFI_CURR_ACTS : 0x3F;
        uint32_t proto = mc->spec->protocol >= 6 ? MILTER_V6_PROTO
            : mc->spec->protocol >= 4 ? 0x37F : mc->spec->protocol == 3 ? 0x17F : MILTER_V2_PROTO;
        struct strbuf b = STRBUF_INIT(64);
        milter_put_optneg(&b, (uint32_t)mc->spec->protocol, acts, proto);
        send_packet(mc, &b);
        sb_free(&b);
        mc->state = MC_OPTNEG;
        expect_reply(mc, mc->spec->connect_timeout);
        (void)c;
        return;
    }
    const char *when = mc->state == MC_CONNECTING ? "connect"
        : (what & BEV_EVENT_WRITING) ? "write" : "read reply";
    if (what & BEV_EVENT_TIMEOUT)
        conn_fail(mc, "%s: timeout", when);
    else if (what & BEV_EVENT_EOF)
        conn_fail(mc, "%s: connection closed by the filter", when);
    else
        conn_fail(mc, "%s: %s", when, strerror(errno ? errno : EIO));
}

static void conn_start(struct milter_conn *mc)
{
    struct milter_chain *c = mc->chain;
    mc->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!mc->bev) {
        conn_fail(mc, "cannot create a socket");
        return;
    }
    mc->state = MC_CONNECTING;
    bufferevent_setcb(mc->bev, read_cb, write_cb, event_cb, mc);
    bufferevent_setwatermark(mc->bev, EV_READ, 0, MILTER_PACKET_LIMIT + 8);
    struct timeval tv = { mc->spec->connect_timeout, 0 };
    bufferevent_set_timeouts(mc->bev, &tv, &tv);
    c->waiting = true;
    if (bufferevent_socket_connect(mc->bev, (struct sockaddr *)&mc->spec->addr,
                                   (int)mc->spec->addrlen) < 0)
        conn_fail(mc, "connect: %s%s", strerror(errno),
                  chroot_active() && mc->spec->addr.ss_family == AF_UNIX
                  ? " (this service is chrooted: the socket must be under queue_directory)" : "");
}

static void negotiated(struct milter_conn *mc, const unsigned char *data, size_t len)
{
    struct milter_optneg o;
    const char *why;
    if (milter_optneg_decode(data, len, &o, &why) < 0) {
        conn_fail(mc, "%s", why);
        return;
    }
    uint32_t offered_acts = mc->spec->protocol >= 6 ? SMFI_CURR_ACTS : 0x3F;
    if (o.version < 2 || o.version > (uint32_t)mc->spec->protocol) {
        conn_fail(mc, "protocol version %u is not supported (milter_protocol=%d)",
                  o.version, mc->spec->protocol);
        return;
    }
    if (o.actions & ~offered_acts) {
        conn_fail(mc, "request mask conflict: the filter wants actions 0x%x, offered 0x%x",
                  o.actions, offered_acts);
        return;
    }
    mc->version = o.version;
    mc->actions = o.actions;
    mc->protocol = o.protocol & (o.version >= 6 ? MILTER_V6_PROTO : 0x37F);
    if (mc->actions & SMFIF_SETSYMLIST)
        for (int s = 0; s < MILTER_STAGE_COUNT; s++)
            if (o.macros[s])
                mc->macros[s] = cfg_list_split(o.macros[s], &mc->nmacros[s]);
    mc->state = MC_READY;
    step(mc->chain);
}

/* ---- events ---- */

static const char stage_code[MILTER_STAGE_COUNT] = {
    [MILTER_STAGE_CONNECT] = SMFIC_CONNECT, [MILTER_STAGE_HELO] = SMFIC_HELO,
    [MILTER_STAGE_MAIL] = SMFIC_MAIL, [MILTER_STAGE_RCPT] = SMFIC_RCPT,
    [MILTER_STAGE_DATA] = SMFIC_DATA, [MILTER_STAGE_EOM] = SMFIC_BODYEOB,
    [MILTER_STAGE_EOH] = SMFIC_EOH,
};

static void send_macros(struct milter_conn *mc, int stage)
{
    struct milter_chain *c = mc->chain;
    if (stage < 0 || stage >= MILTER_STAGE_COUNT
        || (stage == MILTER_STAGE_DATA && mc->version < 4)
        || (stage == MILTER_STAGE_EOH && mc->version < 6))
        return;
    char **names = mc->macros[stage] ? mc->macros[stage] : c->mc->macros[stage];
    size_t n = mc->macros[stage] ? mc->nmacros[stage] : c->mc->nmacros[stage];
    if (n == 0)
        return;
    const char **vals = xcalloc(n, sizeof(*vals));
    for (size_t i = 0; i < n; i++) {
        char bare[128];
        const char *nm = names[i];
        size_t len = strlen(nm);
        if (len > 2 && nm[0] == '{' && nm[len - 1] == '}' && len - 2 < sizeof(bare)) {
            memcpy(bare, nm + 1, len - 2);
            bare[len - 2] = 0;
            nm = bare;
        }
        vals[i] = c->owner.macro(c->owner.ctx, nm);
    }
    struct strbuf b = STRBUF_INIT(MILTER_PACKET_LIMIT);
    if (milter_put_macros(&b, stage_code[stage], (const char *const *)names, vals, n) == 0)
        send_packet(mc, &b);
    sb_free(&b);
    free(vals);
}

/* Protocol flags that skip an event, and that say it gets no reply. */
static void event_flags(char ev, uint32_t *no, uint32_t *nr, int *minver)
{
    *minver = 2;
    switch (ev) {
    case SMFIC_CONNECT: *no = SMFIP_NOCONNECT; *nr = SMFIP_NR_CONN; break;
    case SMFIC_HELO: *no = SMFIP_NOHELO; *nr = SMFIP_NR_HELO; break;
    case SMFIC_MAIL: *no = SMFIP_NOMAIL; *nr = SMFIP_NR_MAIL; break;
    case SMFIC_RCPT: *no = SMFIP_NORCPT; *nr = SMFIP_NR_RCPT; break;
    case SMFIC_DATA: *no = SMFIP_NODATA; *nr = SMFIP_NR_DATA; *minver = 4; break;
    case SMFIC_UNKNOWN: *no = SMFIP_NOUNKNOWN; *nr = SMFIP_NR_UNKN; *minver = 3; break;
    case SMFIC_HEADER: *no = SMFIP_NOHDRS; *nr = SMFIP_NR_HDR; break;
    case SMFIC_EOH: *no = SMFIP_NOEOH; *nr = SMFIP_NR_EOH; break;
    case SMFIC_BODY: *no = SMFIP_NOBODY; *nr = SMFIP_NR_BODY; break;
    default: *no = 0; *nr = 0; break;
    }
}

/* Send one event packet (macros first); true when a reply is awaited. */
static bool send_event(struct milter_conn *mc, char ev, int stage, const struct strbuf *pkt,
                       long timeout)
{
    uint32_t no, nr;
    int minver;
    event_flags(ev, &no, &nr, &minver);
    send_macros(mc, stage);
    if ((int)mc->version < minver || (mc->protocol & no))
        return false;
    send_packet(mc, pkt);
    if (ev != SMFIC_BODYEOB && (mc->protocol & nr))
        return false;
    expect_reply(mc, timeout);
    return true;
}

/* The filter has OUTPUT_BACKLOG_HIGH bytes not yet taken: wait (bounded by
 * its content timeout) until it takes them; write_cb goes on. */
static bool output_backlogged(struct milter_conn *mc)
{
    if (evbuffer_get_length(bufferevent_get_output(mc->bev)) <= OUTPUT_BACKLOG_HIGH)
        return false;
    struct timeval tv = { mc->spec->content_timeout, 0 };
    mc->chain->draining = true;
    bufferevent_set_timeouts(mc->bev, &tv, &tv);
    bufferevent_setwatermark(mc->bev, EV_WRITE, OUTPUT_BACKLOG_LOW, 0);
    return true;
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct milter_conn *mc = arg;
    struct milter_chain *c = mc->chain;
    if (!c->draining || c->cur >= c->n || mc != &c->conns[c->cur])
        return;
    c->draining = false;
    bufferevent_setwatermark(mc->bev, EV_WRITE, 0, 0);
    step(c);
}

/* The spool file failed us (a local error, not the filter's): the message
 * is refused for now, and the filter, left in the middle of it, is closed
 * rather than kept out of step. */
static void spool_fail(struct milter_chain *c, struct milter_conn *mc, const char *what)
{
    msg_warn("%s: cannot %s for milter %s: %s", prefix(c), what, mc->spec->endpoint, strerror(errno));
    conn_close(mc);
    mc->state = MC_ERROR;
    finish(c, MILTER_TEMPFAIL, 451, "4.3.0 Error: queue file write error");
}

static void newbody_reset(struct milter_chain *c)
{
    if (c->newbody_fd >= 0)
        close(c->newbody_fd);
    c->newbody_fd = -1;
    c->newbody_in = c->newbody_len = 0;
    c->newbody_cr = false;
    c->newbody_last = 0;
}

/* A session between messages keeps no content-phase buffers or files. */
static void content_buffers_free(struct milter_chain *c)
{
    free(c->raw);
    c->raw = NULL;
    sb_free(&c->chunk);
    sb_free(&c->edits);
    newbody_reset(c);
}

/* Append to the replacement body file, CR LF back to LF as the rest of the
 * message is kept; a CR at the end of a packet waits for the next one. */
static int newbody_add(struct milter_chain *c, const char *data, size_t len, const char **why)
{
    c->newbody_in += (off_t)len;
    if (c->newbody_in > c->newbody_limit) {
        *why = "replacement body too large";
        return -1;
    }
    if (c->newbody_fd < 0 && (c->newbody_fd = temp_file_open(QDIR_TMP)) < 0) {
        *why = "cannot create a spool file for the replacement body";
        return -1;
    }
    sb_reset(&c->chunk);
    for (size_t i = 0; i < len; i++) {
        if (c->newbody_cr && data[i] != '\n')
            sb_appendc(&c->chunk, '\r');
        c->newbody_cr = data[i] == '\r';
        if (!c->newbody_cr)
            sb_appendc(&c->chunk, data[i]);
    }
    if (c->chunk.len && write_all(c->newbody_fd, c->chunk.data, c->chunk.len) < 0) {
        *why = "cannot write the replacement body to its spool file";
        return -1;
    }
    c->newbody_len += (off_t)c->chunk.len;
    if (c->chunk.len)
        c->newbody_last = c->chunk.data[c->chunk.len - 1];
    return 0;
}

/* The next content packet for conns[cur]; true when a reply is awaited. */
static bool content_step(struct milter_chain *c, struct milter_conn *mc, bool *conn_done)
{
    struct milter_msg *m = c->msg;
    struct strbuf b = STRBUF_INIT(MILTER_PACKET_LIMIT);
    bool wait = false;
    *conn_done = false;
    while (!wait && !*conn_done) {
        sb_reset(&b);
        switch (c->phase) {
        case CP_HEADERS:
            if (c->hdr >= m->nhdrs || (mc->protocol & SMFIP_NOHDRS)) {
                c->phase = CP_EOH;
                break;
            }
            {
                const struct milter_header *h = &m->hdrs[c->hdr++];
                const char *v = h->value;
                if (!(mc->protocol & SMFIP_HDR_LEADSPC) && *v == ' ')
                    v++;
                const char *argv[2] = { h->name, v };
                if (milter_put_argv(&b, SMFIC_HEADER, argv, 2) < 0)
                    break;
                wait = send_event(mc, SMFIC_HEADER, -1, &b, mc->spec->content_timeout);
            }
            break;
        case CP_EOH:
            milter_put_packet(&b, SMFIC_EOH, NULL, 0);
            c->phase = CP_BODY;
            c->body_off = 0;
            wait = send_event(mc, SMFIC_EOH, MILTER_STAGE_EOH, &b, mc->spec->content_timeout);
            break;
        case CP_BODY: {
            if (c->body_off >= m->body_len || (mc->protocol & SMFIP_NOBODY) || mc->skip_body) {
                c->phase = CP_EOM;
                break;
            }
            /* lines end in CR LF on the wire */
            if (!c->raw)
                c->raw = xmalloc(MILTER_CHUNK_SIZE);
            ssize_t got = milter_msg_body_read(m, c->body_off, c->raw, MILTER_CHUNK_SIZE);
            if (got < 0) {
                spool_fail(c, mc, "read the message body");
                return true;
            }
            sb_reset(&c->chunk);
            ssize_t i = 0;
            for (; i < got; i++) {
                char ch = c->raw[i];
                if (c->chunk.len + (ch == '\n' ? 2 : 1) > MILTER_CHUNK_SIZE)
                    break;
                if (ch == '\n')
                    sb_appendc(&c->chunk, '\r');
                sb_appendc(&c->chunk, ch);
            }
            c->body_off += i;
            milter_put_packet(&b, SMFIC_BODY, c->chunk.data, c->chunk.len);
            wait = send_event(mc, SMFIC_BODY, -1, &b, mc->spec->content_timeout);
            if (!wait && output_backlogged(mc))
                wait = true;
            break;
        }
        case CP_EOM:
            milter_put_packet(&b, SMFIC_BODYEOB, NULL, 0);
            sb_reset(&c->edits);
            newbody_reset(c);
            c->replbody = false;
            c->phase = CP_DONE;
            wait = send_event(mc, SMFIC_BODYEOB, MILTER_STAGE_EOM, &b, mc->spec->content_timeout);
            break;
        case CP_DONE:
            *conn_done = true;
            break;
        }
    }
    sb_free(&b);
    return wait;
}

/* Is conns[i] asked about the event in progress? */
static bool conn_takes_event(struct milter_chain *c, struct milter_conn *mc)
{
    if (mc->state == MC_ACCEPT_CONN)
        return false;
    if (message_event(c->event) && mc->accept_msg)
        return false;
    return true;
}

/* On to the next filter; in the content phase it gets the whole message
 * from the first header. */
static void next_conn(struct milter_chain *c)
{
    c->cur++;
    if (c->msg) {
        c->phase = CP_HEADERS;
        c->hdr = 0;
    }
}

static void step(struct milter_chain *c)
{
    while (c->cur < c->n) {
        struct milter_conn *mc = &c->conns[c->cur];
        if (mc->state == MC_NEW) {
            conn_start(mc);
            return;
        }
        if (mc->state == MC_CONNECTING || mc->state == MC_OPTNEG)
            return;
        if (mc->state == MC_ERROR) {
            if (default_reply(c, mc))
                return;
            next_conn(c);
            continue;
        }
        if (!conn_takes_event(c, mc)) {
            /* one that accepted the message (even at its end) is done with
             * it; the next filter still gets all of it */
            next_conn(c);
            continue;
        }
        if (c->event == SMFIC_MAIL) {
            mc->in_msg = true;
            mc->skip_body = false;
        }
        if (c->msg) {
            bool conn_done;
            if (content_step(c, mc, &conn_done))
                return;
            next_conn(c);
            continue;
        }
        if (send_event(mc, c->event, c->stage, &c->pkt, mc->spec->command_timeout))
            return;
        c->cur++;
    }
    if (c->msg)
        for (size_t i = 0; i < c->n; i++)
            c->conns[i].in_msg = c->conns[i].accept_msg = false;
    finish(c, MILTER_CONTINUE, 0, "");
}

/* ---- replies ---- */

static uint32_t edit_action(char cmd)
{
    switch (cmd) {
    case SMFIR_ADDHEADER: case SMFIR_INSHEADER: return SMFIF_ADDHDRS;
    case SMFIR_CHGHEADER: return SMFIF_CHGHDRS;
    case SMFIR_ADDRCPT: return SMFIF_ADDRCPT;
    case SMFIR_ADDRCPT_PAR: return SMFIF_ADDRCPT_PAR;
    case SMFIR_DELRCPT: return SMFIF_DELRCPT;
    case SMFIR_CHGFROM: return SMFIF_CHGFROM;
    case SMFIR_REPLBODY: return SMFIF_CHGBODY;
    case SMFIR_QUARANTINE: return SMFIF_QUARANTINE;
    default: return 0;
    }
}

static char *strip_brackets(const char *a)
{
    size_t n = strlen(a);
    if (n >= 2 && a[0] == '<' && a[n - 1] == '>')
        return xstrndup(a + 1, n - 2);
    return xstrdup(a);
}

static void env_edit(struct milter_msg *m, char cmd, const char *addr, const char *args)
{
    if (m->nenv == m->capenv) {
        m->capenv = m->capenv ? m->capenv * 2 : 8;
        m->env = xrealloc(m->env, m->capenv * sizeof(*m->env));
    }
    struct milter_env_edit *e = &m->env[m->nenv++];
    e->cmd = cmd;
    e->addr = strip_brackets(addr);
    e->args = xstrdup(args ? args : "");
}

/* The filter's verdict came: apply the edits it sent before it. */
static int apply_edits(struct milter_chain *c, struct milter_conn *mc, const char **why)
{
    struct milter_msg *m = c->msg;
    bool lead = (mc->protocol & SMFIP_HDR_LEADSPC) != 0;
    size_t pos = 0;
    while (pos < c->edits.len) {
        ssize_t sz = milter_packet_size((unsigned char *)c->edits.data + pos,
                                        c->edits.len - pos, MILTER_PACKET_LIMIT);
        struct milter_reply r;
        if (sz <= 0 || milter_reply_decode((unsigned char *)c->edits.data + pos + 4,
                                           (size_t)sz - 4, &r, why) < 0)
            return -1;
        pos += (size_t)sz;
        int rc = 0;
        switch (r.cmd) {
        case SMFIR_ADDHEADER: rc = milter_msg_add_header(m, r.name, r.value, lead); break;
        case SMFIR_INSHEADER: rc = milter_msg_insert_header(m, r.index, r.name, r.value, lead); break;
        case SMFIR_CHGHEADER: rc = milter_msg_change_header(m, r.index, r.name, r.value, lead); break;
        case SMFIR_ADDRCPT: case SMFIR_ADDRCPT_PAR: case SMFIR_DELRCPT: case SMFIR_CHGFROM:
            env_edit(m, r.cmd, r.text, r.args);
            break;
        case SMFIR_QUARANTINE:
            if (!m->quarantine)
                m->quarantine = xstrndup(r.text, 100);
            break;
        default:
            break;
        }
        if (rc < 0) {
            *why = "too many headers";
            return -1;
        }
    }
    if (c->replbody) {
        /* a held CR was no line end; the body ends with one */
        if (c->newbody_cr) {
            c->newbody_cr = false;
            if (write_all(c->newbody_fd, "\r", 1) < 0) {
                *why = "cannot write the replacement body to its spool file";
                return -1;
            }
            c->newbody_len++;
            c->newbody_last = '\r';
        }
        if (c->newbody_len && c->newbody_last != '\n') {
            if (write_all(c->newbody_fd, "\n", 1) < 0) {
                *why = "cannot write the replacement body to its spool file";
                return -1;
            }
            c->newbody_len++;
        }
        if (c->newbody_len > m->body_limit) {
            *why = "replacement body too large";
            return -1;
        }
        milter_msg_set_body(m, c->newbody_len ? c->newbody_fd : -1, c->newbody_len);
        if (!c->newbody_len && c->newbody_fd >= 0)
            close(c->newbody_fd);
        c->newbody_fd = -1;
        newbody_reset(c);
        m->blank_line = true;
    }
    return 0;
}

/* One reply packet from conns[cur]; returns false when the conn failed. */
static bool handle_reply(struct milter_chain *c, struct milter_conn *mc,
                         const unsigned char *pkt, size_t len)
{
    struct milter_reply r;
    const char *why = NULL;
    if (mc->state == MC_OPTNEG) {
        if (pkt[0] != SMFIC_OPTNEG) {
            conn_fail(mc, "unexpected reply '%c' to option negotiation", pkt[0]);
            return false;
        }
        c->waiting = false;
        bufferevent_disable(mc->bev, EV_READ);
        negotiated(mc, pkt + 1, len - 1);
        return mc->state != MC_ERROR;
    }
    if (!c->busy || !c->waiting || mc != &c->conns[c->cur]) {
        conn_fail(mc, "unexpected reply while no event was in progress");
        return false;
    }
    if (milter_reply_decode(pkt, len, &r, &why) < 0) {
        conn_fail(mc, "bad reply packet (code 0x%02x): %s", pkt[0], why);
        return false;
    }
    bool at_eom = c->msg && c->phase == CP_DONE;
    if (milter_reply_is_edit(r.cmd)) {
        if (!at_eom) {
            conn_fail(mc, "modification request '%c' outside end of message", r.cmd);
            return false;
        }
        if (!(mc->actions & edit_action(r.cmd))) {
            conn_fail(mc, "modification request '%c' that was not negotiated", r.cmd);
            return false;
        }
        if (r.cmd == SMFIR_REPLBODY) {
            c->replbody = true;
            if (newbody_add(c, (const char *)r.body, r.body_len, &why) < 0) {
                conn_fail(mc, "%s", why);
                return false;
            }
        } else if (milter_put_packet(&c->edits, (char)pkt[0], pkt + 1, len - 1) < 0) {
            conn_fail(mc, "too many modification requests");
            return false;
        }
        return true;
    }
    struct strbuf text = STRBUF_INIT(sizeof(c->res.text) - 1);
    int code;
    bool at_conn = c->event == SMFIC_CONNECT || c->event == SMFIC_HELO;
    switch (r.cmd) {
    case SMFIR_PROGRESS:
        /* the read timeout starts again, but not for ever */
        if (now_usec() - c->wait_start > 10LL * c->wait_timeout * 1000000LL) {
            conn_fail(mc, "still in progress after %ld seconds", 10 * c->wait_timeout);
            return false;
        }
        return true;
    case SMFIR_SKIP:
        if (c->msg && c->phase == CP_BODY)
            mc->skip_body = true;
        /* fall through */
    case SMFIR_CONTINUE:
    case SMFIR_ACCEPT:
        if (r.cmd == SMFIR_ACCEPT) {
            if (at_conn)
                mc->state = MC_ACCEPT_CONN;
            else
                mc->accept_msg = true;
        }
        if (at_eom && apply_edits(c, mc, &why) < 0) {
            conn_fail(mc, "%s", why);
            return false;
        }
        c->waiting = false;
        bufferevent_disable(mc->bev, EV_READ);
        if (c->msg && (r.cmd == SMFIR_ACCEPT || at_eom)) {
            c->phase = CP_DONE;     /* this filter is done with the message */
        } else if (!c->msg) {
            c->cur++;
        }
        step(c);
        return true;
    case SMFIR_REPLYCODE:
        if (milter_replycode_parse(r.text, &code, &text) < 0) {
            sb_free(&text);
            conn_fail(mc, "bad reply code text: %.100s", r.text);
            return false;
        }
        c->waiting = false;
        bufferevent_disable(mc->bev, EV_READ);
        finish(c, code >= 500 ? MILTER_REJECT : MILTER_TEMPFAIL, code, sb_str(&text));
        sb_free(&text);
        return true;
    case SMFIR_REJECT:
        c->waiting = false;
        bufferevent_disable(mc->bev, EV_READ);
        finish(c, MILTER_REJECT, at_conn ? 554 : 550, "5.7.1 Command rejected");
        return true;
    case SMFIR_TEMPFAIL:
        c->waiting = false;
        bufferevent_disable(mc->bev, EV_READ);
        finish(c, MILTER_TEMPFAIL, 451, "4.7.1 Service unavailable - try again later");
        return true;
    case SMFIR_SHUTDOWN:
        c->waiting = false;
        bufferevent_disable(mc->bev, EV_READ);
        finish(c, MILTER_SHUTDOWN, 421, "4.7.0 Server closing connection");
        return true;
    case SMFIR_DISCARD:
        if (!message_event(c->event)) {
            conn_fail(mc, "DISCARD is not allowed at the %s stage",
                      c->event == SMFIC_CONNECT ? "connect" : "HELO");
            return false;
        }
        c->waiting = false;
        bufferevent_disable(mc->bev, EV_READ);
        finish(c, MILTER_DISCARD, 250, "2.0.0 Ok: discarded");
        return true;
    default:
        conn_fail(mc, "unexpected reply '%c'", r.cmd);
        return false;
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct milter_conn *mc = arg;
    struct milter_chain *c = mc->chain;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (int n = 0; n < 1000 && mc->bev; n++) {
        unsigned char *pkt;
        ssize_t size = evframe_take(in, milter_packet_size, MILTER_PACKET_LIMIT, &pkt);
        if (size == 0)
            return;
        if (size < 0) {
            conn_fail(mc, "reply packet length out of range");
            return;
        }
        bool ok = handle_reply(c, mc, pkt + 4, (size_t)size - 4);
        free(pkt);
        /* after a verdict, further packets are out of step: the next
         * event finds them and fails the filter */
        if (!ok || !c->waiting || mc != &c->conns[c->cur])
            return;
    }
}

/* ---- the chain ---- */

struct milter_chain *milter_chain_new(const struct milter_config *mc, struct event_base *base,
                                      const struct milter_owner *owner)
{
    if (!mc || mc->n == 0)
        return NULL;
    struct milter_chain *c = xcalloc(1, sizeof(*c));
    c->mc = mc;
    c->base = base;
    c->owner = *owner;
    c->n = mc->n;
    c->conns = xcalloc(c->n, sizeof(*c->conns));
    for (size_t i = 0; i < c->n; i++) {
        c->conns[i].chain = c;
        c->conns[i].spec = &mc->specs[i];
    }
    sb_init(&c->pkt, MILTER_PACKET_LIMIT);
    sb_init(&c->edits, PENDING_EDITS_LIMIT);
    long long lim = cfg_size(P_message_size_limit);
    c->newbody_limit = (off_t)(lim > 0 ? lim : 512LL << 20) + (1 << 20);
    c->newbody_fd = -1;
    sb_init(&c->chunk, MILTER_PACKET_LIMIT + 1);
    c->later = evtimer_new(base, deliver, c);
    return c;
}

/* Send a command that gets no reply, now, before the socket is closed. */
static void send_final(struct milter_conn *mc, char cmd)
{
    struct strbuf b = STRBUF_INIT(16);
    milter_put_packet(&b, cmd, NULL, 0);
    struct evbuffer *out = bufferevent_get_output(mc->bev);
    evbuffer_add(out, b.data, b.len);
    evutil_socket_t fd = bufferevent_getfd(mc->bev);
    for (int i = 0; i < 4 && evbuffer_get_length(out) > 0; i++)
        if (evbuffer_write(out, fd) <= 0)
            break;
    sb_free(&b);
}

void milter_chain_free(struct milter_chain *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        struct milter_conn *mc = &c->conns[i];
        if (mc->bev && (mc->state == MC_READY || mc->state == MC_ACCEPT_CONN)
            && !(c->waiting && i == c->cur))
            send_final(mc, SMFIC_QUIT);
        conn_close(mc);
    }
    event_free(c->later);
    sb_free(&c->pkt);
    sb_free(&c->edits);
    sb_free(&c->chunk);
    free(c->raw);
    newbody_reset(c);
    free(c->host);
    free(c->addr);
    free(c->conns);
    free(c);
}

static void start(struct milter_chain *c, char ev, int stage)
{
    c->busy = true;
    c->finishing = false;
    c->waiting = false;
    c->event = ev;
    c->stage = stage;
    c->cur = 0;
    c->msg = NULL;
    memset(&c->res, 0, sizeof(c->res));
    step(c);
}

void milter_connect_event(struct milter_chain *c, const char *host, const struct sockaddr *sa,
                          const char *addr, unsigned port)
{
    char family = 'U';
    if (sa && sa->sa_family == AF_INET)
        family = '4';
    else if (sa && sa->sa_family == AF_INET6)
        family = '6';
    else if (sa && sa->sa_family == AF_UNIX)
        family = 'L';
    sb_reset(&c->pkt);
    milter_put_connect(&c->pkt, host, family, port, addr);
    start(c, SMFIC_CONNECT, MILTER_STAGE_CONNECT);
}

void milter_helo_event(struct milter_chain *c, const char *helo)
{
    sb_reset(&c->pkt);
    milter_put_argv(&c->pkt, SMFIC_HELO, &helo, 1);
    start(c, SMFIC_HELO, MILTER_STAGE_HELO);
}

static void argv_event(struct milter_chain *c, char ev, int stage, const char *addr,
                       const char *const *args, size_t nargs)
{
    const char **argv = xcalloc(nargs + 1, sizeof(*argv));
    struct strbuf br = STRBUF_INIT(4096);
    sb_appendf(&br, "<%s>", addr);
    argv[0] = sb_str(&br);
    for (size_t i = 0; i < nargs; i++)
        argv[i + 1] = args[i];
    sb_reset(&c->pkt);
    milter_put_argv(&c->pkt, ev, argv, nargs + 1);
    free(argv);
    sb_free(&br);
    start(c, ev, stage);
}

void milter_mail_event(struct milter_chain *c, const char *sender, const char *const *args, size_t nargs)
{
    for (size_t i = 0; i < c->n; i++)
        c->conns[i].accept_msg = false;
    argv_event(c, SMFIC_MAIL, MILTER_STAGE_MAIL, sender, args, nargs);
}

void milter_rcpt_event(struct milter_chain *c, const char *rcpt, const char *const *args, size_t nargs)
{
    argv_event(c, SMFIC_RCPT, MILTER_STAGE_RCPT, rcpt, args, nargs);
}

void milter_data_event(struct milter_chain *c)
{
    sb_reset(&c->pkt);
    milter_put_packet(&c->pkt, SMFIC_DATA, NULL, 0);
    start(c, SMFIC_DATA, MILTER_STAGE_DATA);
}

void milter_unknown_event(struct milter_chain *c, const char *line)
{
    sb_reset(&c->pkt);
    milter_put_argv(&c->pkt, SMFIC_UNKNOWN, &line, 1);
    start(c, SMFIC_UNKNOWN, -1);
}

void milter_message_event(struct milter_chain *c, struct milter_msg *m)
{
    c->busy = true;
    c->finishing = false;
    c->waiting = false;
    c->event = SMFIC_BODYEOB;
    c->stage = -1;
    c->cur = 0;
    c->msg = m;
    c->phase = CP_HEADERS;
    c->hdr = 0;
    memset(&c->res, 0, sizeof(c->res));
    step(c);
}

void milter_abort(struct milter_chain *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        struct milter_conn *mc = &c->conns[i];
        if (mc->in_msg && mc->bev && mc->state == MC_READY) {
            struct strbuf b = STRBUF_INIT(16);
            milter_put_packet(&b, SMFIC_ABORT, NULL, 0);
            send_packet(mc, &b);
            sb_free(&b);
        }
        mc->in_msg = mc->accept_msg = mc->skip_body = false;
    }
    c->msg = NULL;
    content_buffers_free(c);
}

bool milter_busy(const struct milter_chain *c)
{
    return c && c->busy;
}

void milter_cancel(struct milter_chain *c)
{
    if (!c || !c->busy)
        return;
    evtimer_del(c->later);
    if (c->waiting && c->cur < c->n) {
        /* its answer would belong to nobody: close rather than fall out of step */
        struct milter_conn *mc = &c->conns[c->cur];
        conn_close(mc);
        mc->state = MC_ERROR;
    }
    c->busy = c->waiting = c->finishing = c->draining = false;
    c->msg = NULL;
    content_buffers_free(c);
}
