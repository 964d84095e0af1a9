/* postscreen_smtp.c: postscreen's own small SMTP engine. It serves two
 * kinds of clients: those that still have deep tests to pass (pipelining,
 * non-SMTP command, bare newline: they can only be seen in a real
 * conversation), whose recipients get 450 once the tests are passed so
 * that the client comes back later and is handed to smtpd from the cache;
 * and those whose failed test's action is enforce, whose recipients get
 * 550 with the test's reason, logged as smtpd logs a rejected RCPT. No
 * mail is ever accepted here. Input is hostile: lines are bounded
 * (postscreen_line.c), and so are the commands and the time. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "metrics_client.h"
#include "postscreen.h"
#include "server.h"
#include "smtp_command.h"
#include "strbuf.h"
#include "util.h"

#define PSC_LINE_MAX 2048           /* bytes of one command line */
#define PSC_LINES_PER_READ 64       /* lines taken per read event */

static void reply(struct postscreen_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reply(struct postscreen_session *s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(buf) - 3)
        n = (int)sizeof(buf) - 3;
    memcpy(buf + n, "\r\n", 3);
    bufferevent_write(s->bev, buf, (size_t)n + 2);
}

/* The last reply, then the session ends once it is written. */
static void reply_and_close(struct postscreen_session *s, const char *text)
{
    reply(s, "%s", text);
    s->closing = true;
    bufferevent_disable(s->bev, EV_READ);
}

void postscreen_smtp_drop(struct postscreen_session *s, const char *text)
{
    reply_and_close(s, text);
}

/* The address of MAIL FROM:<x> / RCPT TO:<x>, bounded and printable. */
static void envelope_address(const char *arg, char *out, size_t size)
{
    const char *colon = strchr(arg, ':');
    const char *p = colon ? colon + 1 : arg;
    while (*p == ' ')
        p++;
    if (*p == '<')
        p++;
    int n = (int)strcspn(p, "> ");
    snprintf(out, size, "%.*s", n, p);
    str_sanitize(out);
}

static void log_rcpt_reject(struct postscreen_session *s, const char *rcpt, int code,
                            const char *text)
{
    msg_info("NOQUEUE: reject: RCPT from %s: %d %s; from=<%s>, to=<%s>, proto=%s, helo=<%s>",
             s->desc, code, text, s->sender, rcpt, s->ehlo ? "ESMTP" : "SMTP", s->helo);
}

static void rcpt_command(struct postscreen_session *s, const char *arg)
{
    char rcpt[128];
    envelope_address(arg, rcpt, sizeof(rcpt));
    if (s->enforce) {
        const char *text = s->reject_text ? s->reject_text : "5.5.1 Protocol error";
        log_rcpt_reject(s, rcpt, 550, text);
        METRICS_ADD(M_POSTSCREEN_REJECTS, 1, s->denylisted ? "denylist"
                    : (s->failed & (1u << PSC_TEST_DNSBL)) ? "dnsbl"
                    : (s->failed & (1u << PSC_TEST_PREGREET)) ? "pregreet" : "deep_test");
        reply(s, "550 %s", text);
        return;
    }
    /* the deep tests are over: a client that got this far passed them */
    if (!s->rcpt_seen) {
        time_t now = time(NULL);
        for (int t = PSC_TEST_PIPELINING; t < PSC_TEST_COUNT; t++) {
            if (s->todo & (1u << t)) {
                postscreen_count_test((enum postscreen_test)t, true);
                postscreen_cache_pass(s->addr, (enum postscreen_test)t, now);
            }
            /* an ignored failure lets the client through next time */
            if (s->failed & (1u << t))
                postscreen_cache_pass(s->addr, (enum postscreen_test)t, now);
        }
        s->todo &= ~PSC_DEEP_TESTS;
        if (!s->failed)
            msg_info("PASS NEW %s", s->desc);
        s->rcpt_seen = true;
    }
    log_rcpt_reject(s, rcpt, 450, "4.3.2 Service currently unavailable");
    METRICS_ADD(M_POSTSCREEN_REJECTS, 1, "deep_test_retry");
    reply(s, "450 4.3.2 Service currently unavailable");
}

/* A deep test this line fails, logged as postscreen logs it; false when
 * the session is gone. */
static bool deep_tests(struct postscreen_session *s, const char *line, int flags,
                       const char *verb, const char *more)
{
    if ((s->todo & (1u << PSC_TEST_BARE_NEWLINE)) && (flags & PSC_LINE_BARE_LF)) {
        msg_info("BARE NEWLINE from %s after %s", s->desc, s->last_cmd);
        if (!postscreen_test_failed(s, PSC_TEST_BARE_NEWLINE))
            return false;
    }
    if ((s->todo & (1u << PSC_TEST_NON_SMTP))
        && postscreen_line_non_smtp(line, psc_cfg.forbidden, psc_cfg.nforbidden)) {
        char shown[101];
        str_copy(shown, sizeof(shown), line);
        msg_info("NON-SMTP COMMAND from %s after %s: %s", s->desc, s->last_cmd, str_sanitize(shown));
        if (!postscreen_test_failed(s, PSC_TEST_NON_SMTP))
            return false;
    }
    /* more input behind a command that was not answered yet, without
     * EHLO (which announces PIPELINING) */
    if ((s->todo & (1u << PSC_TEST_PIPELINING)) && more && !s->ehlo) {
        msg_info("COMMAND PIPELINING from %s after %s: %s", s->desc, verb, more);
        if (!postscreen_test_failed(s, PSC_TEST_PIPELINING))
            return false;
    }
    return true;
}

/* One command line; false when the session is gone or closing. */
static bool command(struct postscreen_session *s, char *line, int flags, const char *more)
{
    if (flags & PSC_LINE_TOO_LONG) {
        msg_info("COMMAND LENGTH LIMIT from %s after %s", s->desc, s->last_cmd);
        reply_and_close(s, "521 5.5.2 Error: command line too long");
        return false;
    }
    if (psc_cfg.command_count_limit > 0 && ++s->commands > psc_cfg.command_count_limit) {
        msg_info("COMMAND COUNT LIMIT from %s after %s", s->desc, s->last_cmd);
        reply_and_close(s, "421 4.7.0 Error: too many commands");
        return false;
    }
    const char *arg = "";
    enum smtp_verb verb = (flags & PSC_LINE_NUL) ? SMTP_UNKNOWN
                                                 : smtp_parse_verb(line, strlen(line), &arg);
    if (!deep_tests(s, line, flags, smtp_verb_name(verb), more))
        return false;
    s->last_cmd = smtp_verb_name(verb);
    const char *host = cfg_str(P_myhostname);
    switch (verb) {
    case SMTP_HELO:
    case SMTP_EHLO:
        str_copy(s->helo, sizeof(s->helo), arg);
        str_sanitize(s->helo);
        s->ehlo = verb == SMTP_EHLO;
        if (s->ehlo)
            reply(s, "250-%s\r\n250-SIZE\r\n250-PIPELINING\r\n250 8BITMIME", host);
        else
            reply(s, "250 %s", host);
        break;
    case SMTP_MAIL:
        envelope_address(arg, s->sender, sizeof(s->sender));
        reply(s, "250 2.1.0 Ok");
        break;
    case SMTP_RCPT:
        rcpt_command(s, arg);
        break;
    case SMTP_DATA:
    case SMTP_BDAT:
        reply(s, "554 5.5.1 Error: no valid recipients");
        break;
    case SMTP_RSET:
    case SMTP_NOOP:
        reply(s, "250 2.0.0 Ok");
        break;
    case SMTP_QUIT:
        reply_and_close(s, "221 2.0.0 Bye");
        return false;
    default:
        reply(s, "502 5.5.2 Error: command not recognized");
        break;
    }
    return true;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct postscreen_session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char line[PSC_LINE_MAX + 1];
    for (int i = 0; i < PSC_LINES_PER_READ && !s->closing; i++) {
        size_t len = evbuffer_get_length(in);
        size_t take = len < PSC_LINE_MAX + 1 ? len : PSC_LINE_MAX + 1;
        if (take == 0)
            return;
        const char *data = (const char *)evbuffer_pullup(in, (ssize_t)take);
        int flags;
        size_t used = postscreen_line_take(data, take, line, sizeof(line), &flags);
        if (used == 0)
            return;
        evbuffer_drain(in, used);
        /* what the client sent behind this command without waiting for
         * its reply (shown by the pipelining test) */
        char more[101] = "";
        size_t left = evbuffer_get_length(in);
        if (left > 0) {
            ev_ssize_t n = evbuffer_copyout(in, more, left < 100 ? left : 100);
            more[n > 0 ? n : 0] = 0;
            more[strcspn(more, "\r\n")] = 0;
            str_sanitize(more);
        }
        if (!command(s, line, flags, left > 0 ? more : NULL))
            return;
    }
    /* lines left over wait for the next read event: none are lost, and a
     * flood cannot hold the loop */
    if (evbuffer_get_length(in) > 0 && !s->closing)
        bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct postscreen_session *s = arg;
    if (s->closing)
        postscreen_session_close(s, "DISCONNECT");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct postscreen_session *s = arg;
    if (what & BEV_EVENT_TIMEOUT) {
        msg_info("COMMAND TIME LIMIT from %s after %s", s->desc, s->last_cmd);
        if (!s->closing) {
            reply_and_close(s, "421 4.4.2 Error: timeout exceeded");
            bufferevent_enable(bev, EV_WRITE);
            return;
        }
    }
    postscreen_session_close(s, "DISCONNECT");
}

void postscreen_smtp_start(struct postscreen_session *s)
{
    s->last_cmd = "CONNECT";
    s->bev = bufferevent_socket_new(server_event_base(), s->fd, 0);
    if (!s->bev) {
        postscreen_session_close(s, "DISCONNECT");
        return;
    }
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    struct timeval tv = { psc_cfg.command_time_limit, 0 };
    bufferevent_set_timeouts(s->bev, &tv, &tv);
    bufferevent_setwatermark(s->bev, EV_READ, 0, 4 * PSC_LINE_MAX);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    reply(s, "220 %s", psc_cfg.banner);
}

void postscreen_smtp_free(struct postscreen_session *s)
{
    if (s->bev) {
        bufferevent_free(s->bev);
        s->bev = NULL;
    }
}
