/* cache_store.c: the shared caches of cache_store.h, on memcached (its
 * text protocol: get, set, delete) or redis (RESP: AUTH, SELECT, GET, SET
 * with EX, DEL), over TCP or a UNIX-domain socket. One connection per
 * cache, opened at the first use and kept; each request is written and
 * its reply read within the file's timeout (poll on a non-blocking
 * socket), so that a slow or dead server costs a bounded wait. A failure
 * closes the connection and the server is not tried again for retry_pause
 * seconds: meanwhile lookups miss and updates are dropped, which only
 * means that a client is screened or an address probed once more. The
 * warning about it is logged at most once a minute per cache. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cache_store.h"
#include "endpoint.h"
#include "log.h"
#include "map_query.h"
#include "strbuf.h"
#include "util.h"

#define CACHE_WARN_INTERVAL 60      /* seconds between warnings of one cache */
#define CACHE_TIMEOUT_MAX 60        /* seconds: the largest timeout a file may set */
#define CACHE_PAUSE_MAX 60          /* seconds: the longest pause after failures in a row */

enum cache_proto { CACHE_MEMCACHE, CACHE_REDIS };

struct cache_store {
    enum cache_proto proto;
    char *name;                     /* "redis:/etc/tern/redis-psc.cf", for messages */
    char *server;                   /* as the file names it */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *key_format;
    char *password, *username;      /* redis AUTH; NULL: none */
    long database;                  /* redis SELECT; 0: none needed */
    long ttl;                       /* 0: the caller's */
    long timeout_ms, retry_pause;
    long value_max;                 /* data_size_limit */
    int fd;                         /* -1: not connected */
    long long down_until;           /* no new connection before (seconds) */
    unsigned fail_streak;           /* failures since the last answer */
    long long last_warning;
    unsigned long failures;         /* since the last warning */
    struct strbuf in;               /* reply bytes read */
    size_t in_used;                 /* of them, the reply last parsed */
};

static const char *const memcache_params[] = {
    "memcache", "backup", "flags", "ttl", "key_format", "domain", "data_size_limit",
    "line_size_limit", "max_try", "retry_pause", "timeout", NULL,
};
static const char *const redis_params[] = {
    "redis", "password", "username", "database", "ttl", "key_format", "data_size_limit",
    "retry_pause", "timeout", NULL,
};

bool cache_store_shared(const char *spec)
{
    return strncmp(spec, "memcache:", 9) == 0 || strncmp(spec, "redis:", 6) == 0;
}

void cache_store_limit_wait(struct cache_store *cs, long ms)
{
    if (ms > 0 && cs->timeout_ms > ms)
        cs->timeout_ms = ms;
}

struct cache_store *cache_store_open_event_loop(const char *spec, const char *what)
{
    struct strbuf err = STRBUF_INIT(1024);
    struct cache_store *cs = cache_store_open(spec, what, &err);
    if (cs)
        cache_store_limit_wait(cs, CACHE_EVENT_LOOP_WAIT_MS);
    else
        msg_warn("%s; the cache is kept in memory only", sb_str(&err));
    sb_free(&err);
    return cs;
}

const char *cache_store_name(const struct cache_store *cs)
{
    return cs->name;
}

/* A failure: the connection is closed, the server rests, and the warning
 * goes out unless one did within the last minute. */
static void cache_fail(struct cache_store *cs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void cache_fail(struct cache_store *cs, const char *fmt, ...)
{
    long long now = time(NULL);
    if (cs->fd >= 0)
        close(cs->fd);
    cs->fd = -1;
    sb_reset(&cs->in);
    /* The pause doubles with each failure in a row (up to a minute, or
     * retry_pause when that is longer): a server that is down costs each
     * process one wait per pause, and a waiting event loop (postscreen,
     * verify) serves no one else meanwhile. */
    long pause = cs->retry_pause;
    for (unsigned i = 0; i < cs->fail_streak && pause < CACHE_PAUSE_MAX; i++)
        pause *= 2;
    if (pause > CACHE_PAUSE_MAX && cs->retry_pause <= CACHE_PAUSE_MAX)
        pause = CACHE_PAUSE_MAX;
    cs->down_until = now + pause;
    if (cs->fail_streak < 32)
        cs->fail_streak++;
    cs->failures++;
    if (now - cs->last_warning < CACHE_WARN_INTERVAL)
        return;
    struct strbuf why = STRBUF_INIT(1024);
    va_list ap;
    va_start(ap, fmt);
    sb_vappendf(&why, fmt, ap);
    va_end(ap);
    msg_warn("%s: server %s: %s; the cache misses until it answers "
             "(%lu failure%s, further ones not logged for a minute)",
             cs->name, cs->server, sb_str(&why), cs->failures, cs->failures == 1 ? "" : "s");
    cs->last_warning = now;
    cs->failures = 0;
    sb_free(&why);
}

/* Milliseconds left until deadline (now_usec based), at least 0. */
static int left_ms(long long deadline)
{
    long long left = (deadline - now_usec()) / 1000;
    return left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
}

static int wait_fd(int fd, short events, long long deadline)
{
    struct pollfd p = { .fd = fd, .events = events };
    for (;;) {
        int n = poll(&p, 1, left_ms(deadline));
        if (n > 0)
            return 0;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
}

static int cache_connect(struct cache_store *cs, long long deadline)
{
    int fd = socket(cs->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&cs->addr, cs->addrlen) < 0) {
        int err = 0;
        socklen_t elen = sizeof(err);
        if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) < 0
            || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
            if (err)
                errno = err;
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
    }
    cs->fd = fd;
    sb_reset(&cs->in);
    return 0;
}

static int send_all(struct cache_store *cs, const struct strbuf *req, long long deadline)
{
    size_t off = 0;
    while (off < req->len) {
        ssize_t n = send(cs->fd, req->data + off, req->len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(cs->fd, POLLOUT, deadline) < 0)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Read one reply into cs->in and parse it into *r: the bytes it takes, or
 * -1 (errno ETIMEDOUT, ECONNRESET, or EBADMSG for a malformed reply). */
static long read_reply(struct cache_store *cs, struct cache_reply *r, long long deadline)
{
    for (;;) {
        long used = cs->proto == CACHE_REDIS
                        ? cache_resp_parse(cs->in.data, cs->in.len, (size_t)cs->value_max, r)
                        : cache_memcache_parse(cs->in.data, cs->in.len, (size_t)cs->value_max, r);
        if (used != 0) {
            if (used < 0)
                errno = EBADMSG;
            return used;
        }
        char buf[4096];
        ssize_t n = recv(cs->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            if (sb_append(&cs->in, buf, (size_t)n) < 0) {
                errno = EBADMSG;
                return -1;
            }
        } else if (n == 0) {
            errno = ECONNRESET;
            return -1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(cs->fd, POLLIN, deadline) < 0)
                return -1;
        } else if (errno != EINTR) {
            return -1;
        }
    }
}

/* RESP: a command as an array of bulk strings. */
static void resp_command(struct strbuf *req, int argc, const char *const *argv)
{
    sb_appendf(req, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        sb_appendf(req, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
}

/* One request and its reply: 0 with *r filled (its data in cs->in until
 * the next request), or -1 after cache_fail. With kept (a connection made
 * for an earlier request, which the server may have closed since: it
 * restarted, or dropped an idle client), a connection that turns out
 * closed is closed here too, quietly, for one more try on a new one: 1. */
static int exchange(struct cache_store *cs, const struct strbuf *req, struct cache_reply *r,
                    long long deadline, const char *what, bool kept)
{
    if (cs->in.len) {                   /* a reply left over: the stream is out of step */
        cache_fail(cs, "unexpected data before %s", what);
        return -1;
    }
    long used;
    if (send_all(cs, req, deadline) < 0 || (used = read_reply(cs, r, deadline)) < 0) {
        if (kept && (errno == ECONNRESET || errno == EPIPE)) {
            close(cs->fd);
            cs->fd = -1;
            sb_reset(&cs->in);
            return 1;
        }
        cache_fail(cs, "%s: %s", what,
                   errno == EBADMSG ? "malformed or oversized reply" : strerror(errno));
        return -1;
    }
    cs->in_used = (size_t)used;
    return 0;
}

/* Done with the reply of the last exchange: its bytes go. */
static void consume(struct cache_store *cs)
{
    sb_consume(&cs->in, cs->in_used);
    cs->in_used = 0;
}

/* A reply of another kind than the request takes: the stream is of no use. */
static int unexpected(struct cache_store *cs, const char *op, const struct cache_reply *r)
{
    cache_fail(cs, "%s: unexpected reply: %.*s", op, (int)(r->len > 200 ? 200 : r->len),
               r->data && r->kind != CACHE_REPLY_VALUE ? r->data : "");
    return -1;
}

/* The end of a request whose reply must be of kind want: 0, or -1. */
static int expect(struct cache_store *cs, const char *op, int rc, const struct cache_reply *r,
                  enum cache_reply_kind want)
{
    if (rc < 0)
        return -1;
    if (r->kind != want)
        return unexpected(cs, op, r);
    consume(cs);
    return 0;
}

/* A redis session ready for commands: AUTH and SELECT on a new connection. */
static int redis_session(struct cache_store *cs, long long deadline)
{
    struct strbuf req = STRBUF_INIT(4096);
    struct cache_reply r;
    int rc = 0;
    if (cs->password) {
        const char *argv[3] = { "AUTH", cs->username ? cs->username : cs->password,
                                cs->password };
        resp_command(&req, cs->username ? 3 : 2, argv);
        rc = expect(cs, "AUTH", exchange(cs, &req, &r, deadline, "AUTH", false), &r,
                    CACHE_REPLY_STATUS);
    }
    if (rc == 0 && cs->database > 0) {
        char db[32];
        snprintf(db, sizeof(db), "%ld", cs->database);
        const char *argv[2] = { "SELECT", db };
        sb_reset(&req);
        resp_command(&req, 2, argv);
        rc = expect(cs, "SELECT", exchange(cs, &req, &r, deadline, "SELECT", false), &r,
                    CACHE_REPLY_STATUS);
    }
    sb_free(&req);
    return rc;
}

/* Connected (or -1 while the server rests or after cache_fail). */
static int ready(struct cache_store *cs, long long deadline)
{
    if (cs->fd >= 0)
        return 0;
    if (time(NULL) < cs->down_until)
        return -1;
    if (cache_connect(cs, deadline) < 0) {
        cache_fail(cs, "cannot connect: %s", strerror(errno));
        return -1;
    }
    return cs->proto == CACHE_REDIS ? redis_session(cs, deadline) : 0;
}

/* memcached's keys: printable, no white space (its text protocol). */
static int key_quote(struct strbuf *out, const char *s, size_t n, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f)
            return -1;
    return sb_append(out, s, n);
}

/* The key as stored: key_format expanded; 0, or -1 (nothing to look up). */
static int make_key(struct cache_store *cs, const char *key, struct strbuf *out)
{
    struct strbuf err = STRBUF_INIT(256);
    int rc = map_expand(out, cs->key_format, MAP_EXPAND_QUERY, key, NULL, key_quote, NULL, &err);
    sb_free(&err);
    return rc == 1 && out->len > 0 && out->len <= CACHE_KEY_MAX ? 0 : -1;
}

/* The request op ("get", "set", "delete") about key, sent and its reply
 * read into *r: 0, or -1 when nothing was asked (a key that cannot be
 * stored) or the server failed. k gets the key as stored. */
static int request(struct cache_store *cs, const char *op, const char *key, const char *value,
                   long ttl, struct strbuf *k, struct cache_reply *r)
{
    if (make_key(cs, key, k) < 0)
        return -1;
    struct strbuf req = STRBUF_INIT(CACHE_KEY_MAX + CACHE_VALUE_MAX + 128);
    char ttls[32];
    snprintf(ttls, sizeof(ttls), "%ld", ttl);
    if (cs->proto == CACHE_REDIS) {
        const char *argv[5] = { *op == 'g' ? "GET" : *op == 's' ? "SET" : "DEL", sb_str(k),
                                value, "EX", ttls };
        resp_command(&req, *op == 's' ? 5 : 2, argv);
    } else if (*op == 's') {
        sb_appendf(&req, "set %s 0 %s %zu\r\n%s\r\n", sb_str(k), ttls, strlen(value), value);
    } else {
        sb_appendf(&req, "%s %s\r\n", op, sb_str(k));
    }
    long long deadline = now_usec() + cs->timeout_ms * 1000;
    bool kept = cs->fd >= 0;
    int rc = ready(cs, deadline) < 0 ? -1 : exchange(cs, &req, r, deadline, op, kept);
    if (rc > 0)
        rc = ready(cs, deadline) < 0 || exchange(cs, &req, r, deadline, op, false) < 0 ? -1 : 0;
    if (rc == 0)
        cs->fail_streak = 0;
    sb_free(&req);
    return rc;
}

int cache_store_get(struct cache_store *cs, const char *key, char *value, size_t size)
{
    struct strbuf k = STRBUF_INIT(CACHE_KEY_MAX + 1);
    struct cache_reply r;
    int rc = 0;
    if (request(cs, "get", key, "", 0, &k, &r) < 0) {
        rc = -1;
    } else if (r.kind == CACHE_REPLY_VALUE && cs->proto == CACHE_MEMCACHE
               && (r.key_len != k.len || memcmp(r.key, k.data, k.len) != 0)) {
        cache_fail(cs, "get: the reply names another key");
        rc = -1;
    } else if (r.kind == CACHE_REPLY_VALUE) {
        if (r.len < size && !memchr(r.data, 0, r.len)) {
            memcpy(value, r.data, r.len);
            value[r.len] = 0;
            rc = 1;
        }
        consume(cs);
    } else if (r.kind == CACHE_REPLY_NIL) {
        consume(cs);
    } else {
        rc = unexpected(cs, "get", &r);
    }
    sb_free(&k);
    return rc;
}

int cache_store_put(struct cache_store *cs, const char *key, const char *value, long ttl)
{
    if (cs->ttl > 0 && (ttl <= 0 || ttl > cs->ttl))
        ttl = cs->ttl;
    if (ttl <= 0)
        ttl = 1;
    if (ttl > 30L * 86400 && cs->proto == CACHE_MEMCACHE)
        ttl = 30L * 86400;              /* memcached takes more as an absolute time */
    if ((long)strlen(value) > cs->value_max)
        return -1;
    struct strbuf k = STRBUF_INIT(CACHE_KEY_MAX + 1);
    struct cache_reply r;
    int rc = request(cs, "set", key, value, ttl, &k, &r);
    sb_free(&k);
    return expect(cs, "set", rc, &r, CACHE_REPLY_STATUS);
}

int cache_store_del(struct cache_store *cs, const char *key)
{
    struct strbuf k = STRBUF_INIT(CACHE_KEY_MAX + 1);
    struct cache_reply r;
    int rc = request(cs, "delete", key, "", 0, &k, &r);
    sb_free(&k);
    return expect(cs, "delete", rc, &r,
                  cs->proto == CACHE_REDIS ? CACHE_REPLY_INTEGER : CACHE_REPLY_STATUS);
}

/* ---- opening ---- */

static char *opt_str(const struct map_query_file *f, const char *name)
{
    const char *v = map_query_str(f, name, "");
    return *v ? xstrdup(v) : NULL;
}

struct cache_store *cache_store_open(const char *spec, const char *what, struct strbuf *err)
{
    bool redis = strncmp(spec, "redis:", 6) == 0;
    if (!cache_store_shared(spec)) {
        sb_appendf(err, "%s = %s: not a memcache: or redis: table", what, spec);
        return NULL;
    }
    const char *path = strchr(spec, ':') + 1;
    if (*path != '/') {
        sb_appendf(err, "%s = %s: the table must name a configuration file by its full path",
                   what, spec);
        return NULL;
    }
    struct map_query_file *f = map_query_read(path, redis ? redis_params : memcache_params, err);
    if (!f)
        return NULL;
    struct cache_store *cs = xcalloc(1, sizeof(*cs));
    cs->proto = redis ? CACHE_REDIS : CACHE_MEMCACHE;
    cs->name = xstrdup(spec);
    cs->fd = -1;
    sb_init(&cs->in, CACHE_VALUE_MAX + 2 * CACHE_LINE_MAX + 16);
    const char *dflt = redis ? "inet:localhost:6379" : "inet:localhost:11211";
    cs->server = xstrdup(map_query_str(f, redis ? "redis" : "memcache", dflt));
    cs->key_format = xstrdup(map_query_str(f, "key_format", "%s"));
    long timeout;
    struct strbuf why = STRBUF_INIT(512);
    int bad = map_query_int(f, "timeout", 2, 1, CACHE_TIMEOUT_MAX, &timeout, &why) < 0
              || map_query_int(f, "retry_pause", 1, 0, 3600, &cs->retry_pause, &why) < 0
              || map_query_int(f, "ttl", redis ? 0 : 3600, 0, 100L * 365 * 86400, &cs->ttl,
                               &why) < 0
              || map_query_int(f, "data_size_limit", CACHE_VALUE_MAX, 1, 1L << 30,
                               &cs->value_max, &why) < 0
              || (redis && map_query_int(f, "database", 0, 0, 1000000, &cs->database, &why) < 0);
    cs->timeout_ms = timeout * 1000;
    if (cs->value_max > CACHE_VALUE_MAX)    /* Postfix's default is 10240: more than is stored */
        cs->value_max = CACHE_VALUE_MAX;
    if (!bad && map_expand_check(cs->key_format, MAP_EXPAND_QUERY, "key_format", &why) < 0)
        bad = 1;
    if (redis) {
        cs->password = opt_str(f, "password");
        cs->username = opt_str(f, "username");
    } else if (map_query_has(f, "backup") || map_query_has(f, "domain")) {
        msg_warn("%s: backup and domain are not supported and are ignored", path);
    }
    if (!bad && !endpoint_resolve(cs->server, "localhost", &cs->addr, &cs->addrlen)) {
        sb_appendf(&why, "%s = %s: malformed or does not resolve", redis ? "redis" : "memcache",
                   cs->server);
        bad = 1;
    }
    if (bad) {
        sb_appendf(err, "%s: %s", path, sb_str(&why));
        sb_free(&why);
        map_query_free(f);
        cache_store_close(cs);
        return NULL;
    }
    sb_free(&why);
    map_query_free(f);
    return cs;
}

void cache_store_close(struct cache_store *cs)
{
    if (!cs)
        return;
    if (cs->fd >= 0)
        close(cs->fd);
    sb_free(&cs->in);
    FREE_ALL(cs->name, cs->server, cs->key_format, cs->password, cs->username, cs);
}
