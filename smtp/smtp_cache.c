/* smtp_cache.c: Postfix's SMTP connection cache, inside one smtp process:
 * after a request whose session ended with the server healthy, the session
 * is reset (RSET) and kept, keyed by the request's transport and next hop,
 * so that the next request for the same key skips the lookups, the connect,
 * the greeting and EHLO. One session at most; it is closed with QUIT when
 * it has been idle for smtp_connection_cache_time_limit, when a request for
 * another key comes, and before the process exits. Limits: never cached
 * with smtp_connection_cache_on_demand = no, not cached again once older
 * than smtp_connection_reuse_time_limit or reused
 * smtp_connection_reuse_count_limit times. A cached session the server
 * has closed (or spoken on) meanwhile is dropped without a word; one that
 * fails at MAIL FROM is left to smtp_connect.c, which then connects anew.
 * A session keeps its TLS state (and its AUTH) while cached; it is taken
 * only when that state satisfies the TLS policy of the new request. */
#include <poll.h>
#include <string.h>

#include <openssl/ssl.h>

#include "log.h"
#include "smtp.h"
#include "util.h"

#define SMTP_CACHE_QUIT_TIMEOUT 2   /* seconds for QUIT when nobody waits for the result */
#define SMTP_CACHE_KEY_MAX 1024     /* transport and next hop; longer ones are not cached */

enum cache_state {
    CACHE_EMPTY,
    CACHE_OFFERED,      /* the session of the request being finished */
    CACHE_IDLE,         /* reset and waiting for the next request */
};

static struct {
    enum cache_state state;
    struct smtp_session s;
    char key[SMTP_CACHE_KEY_MAX];
    size_t key_len;
    bool key_ok;                /* the offered session's key fitted */
    long long idle_since;       /* now_usec() of the RSET reply */
} cache;

/* "transport\0nexthop" into buf; -1 when it does not fit (never cached). */
static int make_key(const struct smtp_request *rq, char *buf, size_t size, size_t *len)
{
    size_t t = strlen(rq->dr->transport), n = strlen(rq->dr->nexthop);
    if (t + 1 + n > size)
        return -1;
    memcpy(buf, rq->dr->transport, t);
    buf[t] = 0;
    memcpy(buf + t + 1, rq->dr->nexthop, n);
    *len = t + 1 + n;
    return 0;
}

static int quit_timeout(void)
{
    return smtp_cfg.quit_timeout < SMTP_CACHE_QUIT_TIMEOUT ? smtp_cfg.quit_timeout
                                                            : SMTP_CACHE_QUIT_TIMEOUT;
}

/* Close the cached session; QUIT first unless the server is known to be gone. */
static void cache_drop(bool quit, const char *why)
{
    if (cache.state == CACHE_EMPTY)
        return;
    msg_debug("closing cached session with %s: %s", cache.s.desc, why);
    if (quit)
        smtp_session_quit(&cache.s, quit_timeout());
    smtp_session_free(&cache.s);
    cache.state = CACHE_EMPTY;
}

/* Nothing may have arrived on an idle session: readable means the server
 * closed it or spoke out of turn (a 421 before it hangs up). */
static bool idle_session_ok(const struct smtp_session *s)
{
    if (s->in.len > 0 || s->out.len > 0 || (s->ssl && SSL_pending(s->ssl) > 0))
        return false;
    struct pollfd pfd = { s->fd, POLLIN, 0 };
    return poll(&pfd, 1, 0) == 0;
}

bool smtp_cache_take(const struct smtp_request *rq, struct smtp_session *s)
{
    char key[SMTP_CACHE_KEY_MAX];
    size_t len;
    if (cache.state != CACHE_IDLE)
        return false;
    if (make_key(rq, key, sizeof(key), &len) < 0 || len != cache.key_len
        || memcmp(key, cache.key, len) != 0) {
        cache_drop(idle_session_ok(&cache.s), "a request for another next hop");
        return false;
    }
    if (!idle_session_ok(&cache.s)) {
        cache_drop(false, "closed by the server");
        return false;
    }
    if (!smtp_tls_session_fits(&cache.s, rq)) {
        cache_drop(true, "its TLS state does not satisfy the TLS policy");
        return false;
    }
    *s = cache.s;
    s->uses++;
    cache.state = CACHE_EMPTY;
    return true;
}

void smtp_cache_offer(const struct smtp_request *rq, struct smtp_session *s)
{
    if (!s->reusable) {
        smtp_session_free(s);
        return;
    }
    cache_drop(true, "replaced");       /* never there while a request is served */
    cache.s = *s;
    cache.state = CACHE_OFFERED;
    cache.key_ok = make_key(rq, cache.key, sizeof(cache.key), &cache.key_len) == 0;
    memset(s, 0, sizeof(*s));
    s->fd = -1;
}

/* Whether the offered session may be kept for the next request. */
static bool keep_allowed(void)
{
    const struct smtp_session *s = &cache.s;
    if (!smtp_cfg.cache_on_demand || !cache.key_ok || s->server_closing)
        return false;
    if (now_usec() - s->connected_usec >= (long long)smtp_cfg.reuse_time_limit * 1000000)
        return false;
    /* N reuses allowed: N + 1 uses in all. */
    return smtp_cfg.reuse_count_limit <= 0 || (long)s->uses <= smtp_cfg.reuse_count_limit;
}

void smtp_cache_settle(void)
{
    if (cache.state != CACHE_OFFERED)
        return;
    if (!keep_allowed()) {
        smtp_session_quit(&cache.s, smtp_cfg.quit_timeout);
        smtp_session_free(&cache.s);
        cache.state = CACHE_EMPTY;
        return;
    }
    if (!smtp_session_reset(&cache.s)) {
        /* No clean 2xx: QUIT only when the server still answers. */
        cache_drop(cache.s.io_error == NULL && !cache.s.server_closing, "RSET failed");
        return;
    }
    cache.s.reusable = false;
    cache.state = CACHE_IDLE;
    cache.idle_since = now_usec();
}

long long smtp_cache_deadline(void)
{
    if (cache.state != CACHE_IDLE)
        return 0;
    return cache.idle_since + (long long)smtp_cfg.cache_time_limit * 1000000;
}

void smtp_cache_expire(void)
{
    long long deadline = smtp_cache_deadline();
    if (deadline && now_usec() >= deadline)
        cache_drop(idle_session_ok(&cache.s), "idle time limit");
}

void smtp_cache_close(void)
{
    if (cache.state == CACHE_IDLE)
        cache_drop(idle_session_ok(&cache.s), "exiting");
    else
        cache_drop(true, "exiting");
}
