/* postscreen.c: pre-queue screening, postscreen(8)'s role. One
 * unprivileged event-driven process takes every new SMTP connection
 * first (master.cf: "smtp inet n - n - 1 postscreen"). A client that the
 * access list allows, or whose tests are still passed in the temporary
 * allowlist cache, is handed at once to an smtpd process through master's
 * pass service ("smtpd pass - - n - - smtpd"): the socket itself, so
 * smtpd sees the real client. Others get a "220-" line and wait
 * postscreen_greet_wait while their DNSBL/DNSWL lookups run; a client that
 * talks first fails the pregreet test, one whose weighted score reaches
 * postscreen_dnsbl_threshold fails the DNSBL test. The optional deep tests
 * (pipelining, non-SMTP command, bare newline) run in postscreen's own SMTP
 * engine (postscreen_smtp.c), which ends with 450 so that a good client
 * comes back and is passed from the cache. Log lines are postscreen's:
 * CONNECT, PREGREET, DNSBL rank, PASS NEW, PASS OLD, DISCONNECT, NOQUEUE. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "dns_event.h"
#include "log.h"
#include "maps.h"
#include "match_list.h"
#include "metrics_client.h"
#include "postscreen.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

#define PSC_PREGREET_SHOW 100       /* bytes of a pregreet shown in the log */

struct postscreen_cfg psc_cfg;

static struct {
    struct postscreen_session *sessions;
    size_t screening;               /* sessions in tests (not handed off) */
    struct maplist **access;        /* postscreen_access_list tables (NULL: permit_mynetworks) */
    char **access_words;
    size_t naccess;
    struct match_list *mynetworks;
} psc;

static const char *const test_names[PSC_TEST_COUNT] = {
    "pregreet", "dnsbl", "pipelining", "non_smtp_command", "bare_newline",
};

const char *postscreen_test_name(enum postscreen_test t) { return test_names[t]; }

void postscreen_count_test(enum postscreen_test t, bool pass)
{
    METRICS_ADD(M_POSTSCREEN_TESTS, 1, test_names[t], pass ? "pass" : "fail");
}

/* ---- configuration ---- */

static enum postscreen_action action_param(enum param_id id, const char *name)
{
    static const struct name_code actions[] = {
        { "ignore", PSC_ACT_IGNORE }, { "enforce", PSC_ACT_ENFORCE }, { "drop", PSC_ACT_DROP },
        { NULL, -1 },
    };
    int a = name_code(actions, cfg_str(id));
    if (a < 0)
        msg_fatal("%s = %s: unknown action; use ignore, enforce or drop", name, cfg_str(id));
    return (enum postscreen_action)a;
}

static long nonneg(enum param_id id)
{
    long v = cfg_int(id);
    return v < 0 ? 0 : v;
}

static void configure_tests(void)
{
    struct postscreen_cfg *c = &psc_cfg;
    c->greet_wait = cfg_time(P_postscreen_greet_wait);
    c->command_time_limit = cfg_time(P_postscreen_command_time_limit);
    c->ttl[PSC_TEST_PREGREET] = cfg_time(P_postscreen_greet_ttl);
    long min = cfg_time(P_postscreen_dnsbl_min_ttl), max = cfg_time(P_postscreen_dnsbl_max_ttl);
    c->ttl[PSC_TEST_DNSBL] = max < min ? min : max;
    c->ttl[PSC_TEST_PIPELINING] = cfg_time(P_postscreen_pipelining_ttl);
    c->ttl[PSC_TEST_NON_SMTP] = cfg_time(P_postscreen_non_smtp_command_ttl);
    c->ttl[PSC_TEST_BARE_NEWLINE] = cfg_time(P_postscreen_bare_newline_ttl);
    c->action[PSC_TEST_PREGREET] = action_param(P_postscreen_greet_action, "postscreen_greet_action");
    c->action[PSC_TEST_DNSBL] = action_param(P_postscreen_dnsbl_action, "postscreen_dnsbl_action");
    c->action[PSC_TEST_PIPELINING] =
        action_param(P_postscreen_pipelining_action, "postscreen_pipelining_action");
    c->action[PSC_TEST_NON_SMTP] =
        action_param(P_postscreen_non_smtp_command_action, "postscreen_non_smtp_command_action");
    c->action[PSC_TEST_BARE_NEWLINE] =
        action_param(P_postscreen_bare_newline_action, "postscreen_bare_newline_action");
    c->deny_action = action_param(P_postscreen_denylist_action, "postscreen_denylist_action");
    c->deep_enabled[PSC_TEST_PIPELINING] = cfg_bool(P_postscreen_pipelining_enable);
    c->deep_enabled[PSC_TEST_NON_SMTP] = cfg_bool(P_postscreen_non_smtp_command_enable);
    c->deep_enabled[PSC_TEST_BARE_NEWLINE] = cfg_bool(P_postscreen_bare_newline_enable);
    c->greet_banner = cfg_str(P_postscreen_greet_banner);
    c->banner = cfg_str(P_smtpd_banner);
    c->conn_limit = nonneg(P_postscreen_client_connection_count_limit);
    c->pre_queue_limit = nonneg(P_postscreen_pre_queue_limit);
    c->post_queue_limit = nonneg(P_postscreen_post_queue_limit);
    c->command_count_limit = nonneg(P_postscreen_command_count_limit);
    c->forbidden = cfg_list_split(cfg_str(P_postscreen_forbidden_commands), &c->nforbidden);
    c->smtpd_service = cfg_str(P_smtpd_service_name);
    if (!*c->smtpd_service || strchr(c->smtpd_service, '/'))
        msg_fatal("smtpd_service_name = %s: not a master.cf service name", c->smtpd_service);
}

/* postscreen_access_list: permit_mynetworks and type:table words. */
static void configure_access(void)
{
    struct strbuf err = STRBUF_INIT(1024);
    psc.access_words = cfg_list_split(cfg_str(P_postscreen_access_list), &psc.naccess);
    psc.access = xcalloc(psc.naccess ? psc.naccess : 1, sizeof(*psc.access));
    for (size_t i = 0; i < psc.naccess; i++) {
        const char *w = psc.access_words[i];
        if (strcmp(w, "permit_mynetworks") == 0) {
            if (!psc.mynetworks
                && !(psc.mynetworks = match_list_open("mynetworks", cfg_str(P_mynetworks),
                                                      MATCH_NETWORKS, 0, &err)))
                msg_fatal("%s", sb_str(&err));
        } else if (strchr(w, ':')) {
            if (!(psc.access[i] = maplist_open(w, &err)))
                msg_fatal("postscreen_access_list: %s", sb_str(&err));
        } else {
            msg_fatal("postscreen_access_list: unknown entry \"%s\"; use permit_mynetworks or "
                      "type:table", w);
        }
    }
    sb_free(&err);
}

/* ---- sessions ---- */

static void session_unlink(struct postscreen_session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        psc.sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

/* A reply that ends the session, written without waiting (a client that
 * does not read it loses it). */
static void send_now(int fd, const char *text)
{
    ssize_t n = send(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
}

static void early_stop(struct postscreen_session *s)
{
    if (s->timer) {
        event_free(s->timer);
        s->timer = NULL;
    }
    if (s->read_ev) {
        event_free(s->read_ev);
        s->read_ev = NULL;
    }
    postscreen_dnsbl_cancel(s);
}

/* End a session that is still postscreen's: log how (NULL: nothing), close. */
void postscreen_session_close(struct postscreen_session *s, const char *how)
{
    if (how)
        msg_info("%s %s", how, s->desc);
    early_stop(s);
    postscreen_smtp_free(s);
    if (s->fd >= 0)
        close(s->fd);
    if (s->handed)
        postscreen_handoff_free(s);
    else if (psc.screening > 0)
        psc.screening--;
    session_unlink(s);
    free(s);
    server_client_done();
}

/* Connections this client has with postscreen now. */
static long client_connections(const char *addr)
{
    long n = 0;
    for (struct postscreen_session *s = psc.sessions; s; s = s->next)
        if (s->fd >= 0 && strcmp(s->addr, addr) == 0)
            n++;
    return n;
}

static void addr_text(const struct sockaddr_storage *ss, char *addr, size_t size, int *port)
{
    const void *a = ss->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                                              : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    *port = ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                            : ((const struct sockaddr_in *)ss)->sin_port);
    if (!inet_ntop(ss->ss_family, a, addr, (socklen_t)size))
        str_copy(addr, size, "unknown");
    /* an IPv4 client on an IPv6 socket is shown as IPv4, as smtpd does */
    if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.'))
        memmove(addr, addr + 7, strlen(addr + 7) + 1);
}

/* ---- the access list ---- */

/* 1 permit, -1 reject, 0 neither. */
static int access_list_check(struct postscreen_session *s)
{
    struct strbuf val = STRBUF_INIT(1024);
    int verdict = 0;
    for (size_t i = 0; i < psc.naccess && verdict == 0; i++) {
        if (!psc.access[i]) {
            if (match_list_addr(psc.mynetworks, s->addr) > 0)
                verdict = 1;
            continue;
        }
        int rc = maplist_lookup(psc.access[i], s->addr, &val);
        if (rc < 0) {
            msg_warn("%s: postscreen_access_list %s lookup failed; skipping it", s->desc,
                     psc.access_words[i]);
            continue;
        }
        if (rc == 0)
            continue;
        char buf[64];
        str_copy(buf, sizeof(buf), sb_str(&val));
        const char *v = str_trim(buf);
        if (str_ieq(v, "permit"))
            verdict = 1;
        else if (str_ieq(v, "reject"))
            verdict = -1;
        else if (!str_ieq(v, "dunno"))
            msg_warn("postscreen_access_list %s: unknown result \"%.60s\" for %s; use permit, "
                     "reject or dunno", psc.access_words[i], v, s->addr);
    }
    sb_free(&val);
    return verdict;
}

/* ---- failed tests ---- */

static const char *default_reject(enum postscreen_test t)
{
    return t == PSC_TEST_DNSBL ? NULL : "5.5.1 Protocol error";
}

/* The action of a failed test. Returns false when the session is gone. */
static bool apply_action(struct postscreen_session *s, enum postscreen_action act,
                         const char *reason, const char *text)
{
    if (!s->reject_text) {
        str_copy(s->reject_buf, sizeof(s->reject_buf), text);
        s->reject_text = s->reject_buf;
    }
    if (act == PSC_ACT_DROP) {
        char reply[300];
        METRICS_ADD(M_POSTSCREEN_REJECTS, 1, reason);
        if (s->bev) {
            /* in the SMTP engine: after the replies already queued for the
             * client's earlier (pipelined) commands, never before them */
            snprintf(reply, sizeof(reply), "521 %s", text);
            postscreen_smtp_drop(s, reply);
            return false;
        }
        snprintf(reply, sizeof(reply), "521 %s\r\n", text);
        send_now(s->fd, reply);
        postscreen_session_close(s, "DISCONNECT");
        return false;
    }
    if (act == PSC_ACT_ENFORCE)
        s->enforce = true;
    return true;
}

bool postscreen_test_failed(struct postscreen_session *s, enum postscreen_test t)
{
    postscreen_count_test(t, false);
    s->failed |= 1u << t;
    s->todo &= ~(1u << t);
    const char *text = default_reject(t);
    if (t == PSC_TEST_DNSBL) {
        postscreen_dnsbl_reply(s);
        text = s->reject_buf;
        s->reject_text = s->reject_buf;
    }
    return apply_action(s, psc_cfg.action[t], test_names[t], text);
}

void postscreen_session_handed(struct postscreen_session *s)
{
    (void)s;
    if (psc.screening > 0)
        psc.screening--;
}

/* ---- the early tests: pregreet and DNSBL during the greet wait ---- */

/* The client's first bytes as Postfix shows them: CR and LF as \r \n. */
static void pregreet_text(const char *buf, size_t n, char *out, size_t size)
{
    struct strbuf t = STRBUF_INIT(size - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\r')
            sb_appends(&t, "\\r");
        else if (c == '\n')
            sb_appends(&t, "\\n");
        else if (c < 32 || c > 126)
            sb_appendf(&t, "\\%03o", c);
        else
            sb_appendf(&t, "%c", c);
    }
    str_copy(out, size, sb_str(&t));
    sb_free(&t);
}

static double elapsed(const struct postscreen_session *s)
{
    return (double)(now_usec() - s->start_usec) / 1e6;
}

static void early_done(struct postscreen_session *s);

/* The client talked before its turn (or hung up): look, without taking
 * the bytes, so that a client let through still has them for smtpd. */
static void early_read(evutil_socket_t fd, short what, void *arg)
{
    struct postscreen_session *s = arg;
    char buf[PSC_PREGREET_SHOW];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        event_add(s->read_ev, NULL);
        return;
    }
    if (n <= 0) {
        msg_info("HANGUP after %.2f from %s in tests before SMTP handshake", elapsed(s), s->desc);
        postscreen_session_close(s, "DISCONNECT");
        return;
    }
    if (!(s->todo & (1u << PSC_TEST_PREGREET)))
        return;     /* no pregreet test now: the bytes wait for smtpd */
    char shown[4 * PSC_PREGREET_SHOW + 1];
    pregreet_text(buf, (size_t)n, shown, sizeof(shown));
    msg_info("PREGREET %zd after %.2f from %s: %s", n, elapsed(s), s->desc, shown);
    postscreen_test_failed(s, PSC_TEST_PREGREET);
}

static void early_timer(evutil_socket_t fd, short what, void *arg)
{
    early_done(arg);
}

void postscreen_dnsbl_all_answered(struct postscreen_session *s)
{
    /* Without a pregreet test to finish, the answers are all we wait for.
     * An allowlisted score (DNSWL) ends the greet wait as well, as in
     * Postfix: such a client skips the pregreet test anyway, and should
     * not wait out postscreen_greet_wait for nothing. */
    bool allowlisted = psc_cfg.dnsbl_allow_threshold < 0 && !s->failed
                       && s->dnsbl_score <= psc_cfg.dnsbl_allow_threshold;
    if (!(s->todo & (1u << PSC_TEST_PREGREET)) || allowlisted)
        early_done(s);
}

static void early_start(struct postscreen_session *s)
{
    struct event_base *base = server_event_base();
    if (*psc_cfg.greet_banner) {
        struct strbuf line = STRBUF_INIT(1024);
        sb_appendf(&line, "220-%s\r\n", psc_cfg.greet_banner);
        send_now(s->fd, sb_str(&line));
        sb_free(&line);
        s->greeted = true;
    }
    s->read_ev = event_new(base, s->fd, EV_READ, early_read, s);
    s->timer = evtimer_new(base, early_timer, s);
    if (!s->read_ev || !s->timer)
        msg_fatal("cannot create an event: out of memory");
    event_add(s->read_ev, NULL);
    struct timeval tv = { psc_cfg.greet_wait, 0 };
    event_add(s->timer, &tv);
    if (s->todo & (1u << PSC_TEST_DNSBL))
        postscreen_dnsbl_start(s);
}

/* The greet wait is over (or the DNSBL answers are in): judge. */
static void early_done(struct postscreen_session *s)
{
    time_t now = time(NULL);
    bool dnsbl = s->todo & (1u << PSC_TEST_DNSBL);
    early_stop(s);
    if (dnsbl) {
        if (s->dnsbl_score >= psc_cfg.dnsbl_threshold) {
            msg_info("DNSBL rank %d for %s", s->dnsbl_score, s->desc);
            if (!postscreen_test_failed(s, PSC_TEST_DNSBL))
                return;
        } else if (psc_cfg.dnsbl_allow_threshold < 0 && s->dnsbl_score <= psc_cfg.dnsbl_allow_threshold
                   && !s->failed) {
            /* an allowlisted score (as Postfix: a negative threshold turns it
             * on): the other tests are skipped for as long as the DNSBL
             * answer holds, not for their own longer lives */
            postscreen_cache_pass_all(s->addr, now, psc_cfg.ttl[PSC_TEST_DNSBL]);
            postscreen_count_test(PSC_TEST_DNSBL, true);
            s->todo = 0;
            postscreen_tests_done(s);
            return;
        } else {
            postscreen_count_test(PSC_TEST_DNSBL, true);
            postscreen_cache_pass(s->addr, PSC_TEST_DNSBL, now);
            s->todo &= ~(1u << PSC_TEST_DNSBL);
        }
    }
    if (s->todo & (1u << PSC_TEST_PREGREET)) {
        postscreen_count_test(PSC_TEST_PREGREET, true);
        postscreen_cache_pass(s->addr, PSC_TEST_PREGREET, now);
        s->todo &= ~(1u << PSC_TEST_PREGREET);
    }
    postscreen_tests_done(s);
}

/* After the early tests: the SMTP engine (deep tests, or the 550s of an
 * enforced failure), else the hand-off. */
void postscreen_tests_done(struct postscreen_session *s)
{
    if (s->enforce || (s->todo & PSC_DEEP_TESTS)) {
        postscreen_smtp_start(s);
        return;
    }
    if (s->failed) {
        postscreen_handoff(s, "ignored");
        return;
    }
    msg_info("PASS NEW %s", s->desc);
    postscreen_handoff(s, "new");
}

/* ---- a new connection ---- */

static bool refuse_at_connect(struct postscreen_session *s)
{
    if (psc_cfg.pre_queue_limit > 0 && psc.screening > (size_t)psc_cfg.pre_queue_limit) {
        msg_info("NOQUEUE: reject: CONNECT from %s: all screening ports busy", s->desc);
        send_now(s->fd, "421 4.3.2 All screening ports are busy\r\n");
        METRICS_ADD(M_POSTSCREEN_REJECTS, 1, "busy");
        return true;
    }
    if (psc_cfg.conn_limit > 0 && client_connections(s->addr) > psc_cfg.conn_limit) {
        msg_info("NOQUEUE: reject: CONNECT from %s: too many connections", s->desc);
        char reply[160];
        snprintf(reply, sizeof(reply), "421 4.7.0 Error: too many connections from %s\r\n", s->addr);
        send_now(s->fd, reply);
        METRICS_ADD(M_POSTSCREEN_REJECTS, 1, "too_many_connections");
        return true;
    }
    return false;
}

/* The tests this client still has to pass (enabled, and not in the cache). */
static unsigned tests_to_run(const struct postscreen_session *s)
{
    unsigned mask = 1u << PSC_TEST_PREGREET;
    if (psc_cfg.nsites)
        mask |= 1u << PSC_TEST_DNSBL;
    for (int t = PSC_TEST_PIPELINING; t < PSC_TEST_COUNT; t++)
        if (psc_cfg.deep_enabled[t])
            mask |= 1u << t;
    return postscreen_cache_expired(s->addr, mask, time(NULL));
}

static void postscreen_accept(int fd, struct event_base *base)
{
    struct postscreen_session *s = xcalloc(1, sizeof(*s));
    s->fd = fd;
    s->pass_fd = -1;
    s->start_usec = now_usec();
    struct sockaddr_storage peer = { 0 }, local = { 0 };
    socklen_t plen = sizeof(peer), llen = sizeof(local);
    int pport = 0, lport = 0;
    char laddr[PSC_ADDR_MAX] = "unknown";
    if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0)
        addr_text(&peer, s->addr, sizeof(s->addr), &pport);
    else
        str_copy(s->addr, sizeof(s->addr), "unknown");
    if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
        addr_text(&local, laddr, sizeof(laddr), &lport);
    snprintf(s->desc, sizeof(s->desc), "[%s]:%d", s->addr, pport);
    s->next = psc.sessions;
    if (psc.sessions)
        psc.sessions->prev = s;
    psc.sessions = s;
    psc.screening++;
    metrics_add(M_POSTSCREEN_CONNECTIONS, 1, NULL);
    msg_info("CONNECT from %s to [%s]:%d", s->desc, laddr, lport);
    if (refuse_at_connect(s)) {
        postscreen_session_close(s, NULL);
        return;
    }
    int verdict = access_list_check(s);
    if (verdict > 0) {
        msg_info("ALLOWLISTED %s", s->desc);
        postscreen_handoff(s, "allowlisted");
        return;
    }
    if (verdict < 0) {
        msg_info("DENYLISTED %s", s->desc);
        METRICS_ADD(M_POSTSCREEN_TESTS, 1, "access_list", "fail");
        s->denylisted = true;
        s->failed |= 1u << PSC_TEST_COUNT;
        if (!apply_action(s, psc_cfg.deny_action, "denylist", "5.7.1 Service unavailable"))
            return;
    }
    s->todo = tests_to_run(s);
    if (!s->todo && !s->failed) {
        msg_info("PASS OLD %s", s->desc);
        postscreen_handoff(s, "old");
        return;
    }
    if (s->todo & ((1u << PSC_TEST_PREGREET) | (1u << PSC_TEST_DNSBL)))
        early_start(s);
    else
        postscreen_tests_done(s);
}

/* ---- start-up and exit ---- */

static void postscreen_pre_init(void)
{
    postscreen_cache_open();
}

static void postscreen_post_init(struct event_base *base)
{
    configure_tests();
    configure_access();
    postscreen_dnsbl_configure();
    postscreen_cache_load(base);
}

static void postscreen_pre_exit(void)
{
    postscreen_cache_save();
}

SERVER_MAIN("postscreen", .mode = SERVER_EVENT, .accept_event = postscreen_accept,
            .pre_init = postscreen_pre_init, .post_init = postscreen_post_init,
            .pre_exit = postscreen_pre_exit, .long_running = true,
            .syscall_filter = SYSCALL_PROFILE_POSTSCREEN)
