/* smtpd_etrn.c: the ETRN command (RFC 1985), as Postfix's smtpd answers
 * it: after the checks of the command itself and smtpd_etrn_restrictions,
 * smtpd asks the flush service (flush/flush.c, over private/flush;
 * lib/global/flush_proto.h) to make the deferred mail for the domain due
 * now, since smtpd itself may not touch the queue. The request runs in the
 * event loop; the session reads no input meanwhile. Replies carry enhanced
 * status codes (the EHLO reply announces ENHANCEDSTATUSCODES): 250 when
 * the flush service started, 459 for a domain fast_flush_domains does not
 * list, 458 when the service failed or could not be reached. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "address.h"
#include "attr.h"
#include "evframe.h"
#include "flush_proto.h"
#include "log.h"
#include "smtpd.h"
#include "util.h"

#define ETRN_FLUSH_TIMEOUT 30      /* longest wait for each step (or ipc_timeout) */
#define ETRN_UNABLE "4.3.0 Unable to queue messages"

struct smtpd_etrn {
    struct smtpd_session *s;
    struct bufferevent *bev;
    char *domain;               /* as the client gave it, without '@' or '#' */
    bool greeted;               /* {protocol=flush} arrived, the request is sent */
};

static void etrn_free(struct smtpd_etrn *e)
{
    if (e->bev)
        bufferevent_free(e->bev);
    free(e->domain);
    free(e);
}

/* The answer, or -1 when there was none: reply, and take the session up
 * again. Nothing may touch e afterwards. */
static void etrn_done(struct smtpd_etrn *e, int status, const char *why)
{
    struct smtpd_session *s = e->s;
    s->etrn = NULL;
    switch (status) {
    case FLUSH_STAT_OK:
        smtpd_session_reply(s, 250, "2.0.0 Queuing started");
        break;
    case FLUSH_STAT_DENY:
        msg_warn("reject: ETRN %.100s... from %s", e->domain, s->client_desc);
        smtpd_session_reply(s, 459, "4.3.0 <%s>: service unavailable", e->domain);
        break;
    case FLUSH_STAT_BAD:
        msg_warn("bad ETRN %.100s... from %s", e->domain, s->client_desc);
        smtpd_session_reply(s, 458, ETRN_UNABLE);
        break;
    case FLUSH_STAT_FAIL:
        msg_warn("ETRN %.100s... from %s: the flush service could not serve it", e->domain,
                 s->client_desc);
        smtpd_session_reply(s, 458, ETRN_UNABLE);
        break;
    default:
        msg_warn("unable to talk to fast flush service %s: %s", FLUSH_SOCKET, why);
        smtpd_session_reply(s, 458, ETRN_UNABLE);
        break;
    }
    etrn_free(e);
    smtpd_session_resume(s, PAUSE_FLUSH);
    smtpd_session_finish_if_done(s);
}

/* {protocol=flush}: send the request. 0, or -1 with why set. */
static int handle_greeting(struct smtpd_etrn *e, const void *frame, size_t len, const char **why)
{
    struct attr_reader r;
    const char *proto;
    if (attr_reader_init(&r, frame, len) < 0 || attr_get_str(&r, "protocol", &proto) < 0
        || attr_reader_done(&r) < 0 || strcmp(proto, FLUSH_PROTOCOL) != 0) {
        *why = "unexpected protocol greeting";
        return -1;
    }
    struct strbuf out = STRBUF_INIT(FLUSH_FRAME_LIMIT);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_str(&w, "request", FLUSH_REQ_SEND_SITE);
    attr_put_str(&w, "site", e->domain);
    int rc = attr_end(&w);
    if (rc == 0)
        rc = bufferevent_write(e->bev, out.data, out.len);
    sb_free(&out);
    if (rc < 0)
        *why = "cannot send the request";
    e->greeted = true;
    return rc < 0 ? -1 : 0;
}

/* {status}: the answer, or -1 when it is malformed. */
static int parse_status(const void *frame, size_t len)
{
    struct attr_reader r;
    long long status;
    if (attr_reader_init(&r, frame, len) < 0 || attr_get_int(&r, "status", 0, 99, &status) < 0
        || attr_reader_done(&r) < 0)
        return -1;
    return (int)status;
}

static void etrn_read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_etrn *e = arg;
    unsigned char *frame;
    const char *why = "malformed answer";
    ssize_t size = evframe_take(bufferevent_get_input(bev), attr_frame_size, FLUSH_FRAME_LIMIT,
                                &frame);
    if (size == 0)
        return;
    if (size < 0) {
        etrn_done(e, -1, "oversized answer");
        return;
    }
    int status = -1;
    if (!e->greeted) {
        if (handle_greeting(e, frame, (size_t)size, &why) == 0) {
            free(frame);
            return;
        }
    } else {
        status = parse_status(frame, (size_t)size);
    }
    free(frame);
    etrn_done(e, status, why);
}

static void etrn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtpd_etrn *e = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    etrn_done(e, -1, (what & BEV_EVENT_TIMEOUT) ? "timeout"
              : (what & BEV_EVENT_EOF) ? "connection closed" : strerror(errno));
}

/* Start the request; false (logged) when it cannot even be started. */
static bool flush_request(struct smtpd_session *s, const char *domain)
{
    struct smtpd_etrn *e = xcalloc(1, sizeof(*e));
    e->s = s;
    e->domain = xstrdup(domain);
    /* the client waits meanwhile: not the hour of ipc_timeout's default */
    int timeout = smtpd_cfg.ipc_timeout < ETRN_FLUSH_TIMEOUT ? (int)smtpd_cfg.ipc_timeout
                                                             : ETRN_FLUSH_TIMEOUT;
    const char *why = "";
    e->bev = evframe_connect_unix(s->base, FLUSH_SOCKET, FLUSH_FRAME_LIMIT, timeout, etrn_read_cb,
                                  etrn_event_cb, e, &why);
    if (!e->bev) {
        msg_warn("unable to talk to fast flush service %s: %s", FLUSH_SOCKET, why);
        etrn_free(e);
        return false;
    }
    s->etrn = e;
    s->pause |= PAUSE_FLUSH;
    return true;
}

/* The restrictions passed the domain. */
static void etrn_permitted(struct smtpd_session *s, const char *domain)
{
    if (!flush_request(s, domain))
        smtpd_session_reply(s, 458, ETRN_UNABLE);
}

void smtpd_etrn_command(struct smtpd_session *s, const char *arg)
{
    if (!smtpd_helo_given(s))
        return;
    if (s->in_mail) {
        smtpd_session_reply(s, 503, "5.5.1 Error: MAIL transaction in progress");
        return;
    }
    /* one word: the node, "@node" or "#queue", which Postfix takes as a
     * domain alike */
    size_t len = strlen(arg);
    while (len > 0 && (arg[len - 1] == ' ' || arg[len - 1] == '\t'))
        len--;
    if (len == 0 || memchr(arg, ' ', len) || memchr(arg, '\t', len)) {
        smtpd_session_reply(s, 500, "5.5.4 Syntax: ETRN domain");
        return;
    }
    if (arg[0] == '@' || arg[0] == '#') {
        arg++;
        len--;
    }
    /* a domain name or, beyond RFC 1985 as in Postfix, an address literal */
    if (len == 0 || len > ADDRESS_DOMAIN_MAX || !address_domain_valid(arg, len, false)) {
        smtpd_session_reply(s, 501, "5.5.4 Error: invalid parameter syntax");
        return;
    }
    char *domain = xstrndup(arg, len);
    if (!smtpd_check_etrn_wait(s, domain, etrn_permitted))
        etrn_permitted(s, domain);
    free(domain);
}

void smtpd_etrn_session_end(struct smtpd_session *s)
{
    if (s->etrn) {
        etrn_free(s->etrn);
        s->etrn = NULL;
    }
}
