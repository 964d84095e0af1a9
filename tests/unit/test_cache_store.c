/* test_cache_store.c: unit tests of the caches' code in lib/global: the
 * parsers of what a redis server (RESP) and a memcached server (text
 * protocol) answer: every kind of reply, replies cut anywhere (not
 * complete yet), and the malformed ones that must be refused: bad
 * numbers, wrong lengths, missing CR LF, control bytes, arrays, oversized
 * values and lines; the configuration files of redis: and memcache:
 * tables, good and bad, a server that is not there (a miss, at once) and
 * one that never answers (a capped wait, then a growing pause);
 * the local file store: a round trip, malformed and too long lines. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "strbuf.h"

#include "cache_store.h"
#include "check.h"

static long resp(const char *s, struct cache_reply *r)
{
    return cache_resp_parse(s, strlen(s), 64, r);
}

static long mc(const char *s, struct cache_reply *r)
{
    return cache_memcache_parse(s, strlen(s), 64, r);
}

static void test_resp(void)
{
    struct cache_reply r;
    CHECK(resp("+OK\r\n", &r) == 5 && r.kind == CACHE_REPLY_STATUS && r.len == 2);
    CHECK(resp("-ERR wrong\r\n", &r) == 12 && r.kind == CACHE_REPLY_ERROR);
    CHECK(memcmp(r.data, "ERR wrong", r.len) == 0);
    CHECK(resp(":1\r\n", &r) == 4 && r.kind == CACHE_REPLY_INTEGER && r.number == 1);
    CHECK(resp(":-2\r\n", &r) == 5 && r.number == -2);
    CHECK(resp("$5\r\nhello\r\n", &r) == 11 && r.kind == CACHE_REPLY_VALUE && r.len == 5);
    CHECK(memcmp(r.data, "hello", 5) == 0);
    CHECK(resp("$0\r\n\r\n", &r) == 6 && r.kind == CACHE_REPLY_VALUE && r.len == 0);
    CHECK(resp("$-1\r\n", &r) == 5 && r.kind == CACHE_REPLY_NIL);
    /* a value may hold any byte, CR LF too */
    CHECK(cache_resp_parse("$4\r\na\r\nb\r\n", 10, 64, &r) == 10 && r.len == 4);
    /* two replies: the first one only */
    CHECK(resp("+OK\r\n:1\r\n", &r) == 5);
    /* not complete yet */
    const char *full = "$5\r\nhello\r\n";
    for (size_t n = 0; n < strlen(full); n++)
        CHECK(cache_resp_parse(full, n, 64, &r) == 0);
    CHECK(resp("+OK\r", &r) == 0);
    /* malformed */
    CHECK(resp("*1\r\n$1\r\na\r\n", &r) == -1);          /* arrays are never asked for */
    CHECK(resp("$5\r\nhelloXY", &r) == -1);              /* no CR LF after the value */
    CHECK(resp("$+5\r\nhello\r\n", &r) == -1);
    CHECK(resp("$ 5\r\nhello\r\n", &r) == -1);
    CHECK(resp("$-2\r\n", &r) == -1);
    CHECK(resp("$\r\n", &r) == -1);
    CHECK(resp("$99999999999999999999\r\n", &r) == -1);
    CHECK(resp("$65\r\n", &r) == -1);                    /* over the caller's bound */
    CHECK(resp(":1x\r\n", &r) == -1);
    CHECK(resp(":\r\n", &r) == -1);
    CHECK(resp("+O\nK\r\n", &r) == -1);                  /* a bare LF in a line */
    CHECK(resp("+OK\rX", &r) == -1);
    CHECK(resp("\r\n", &r) == -1);
    CHECK(resp("?\r\n", &r) == -1);
    CHECK(cache_resp_parse("+A\0B\r\n", 6, 64, &r) == -1);
    char big[CACHE_LINE_MAX + 8];
    memset(big, 'a', sizeof(big));
    big[0] = '+';
    CHECK(cache_resp_parse(big, sizeof(big), 64, &r) == -1);    /* a line too long */
    CHECK(cache_resp_parse(big, CACHE_LINE_MAX - 1, 64, &r) == 0);
}

static void test_memcache(void)
{
    struct cache_reply r;
    const char *hit = "VALUE k1 0 5\r\nhello\r\nEND\r\n";
    CHECK(mc(hit, &r) == (long)strlen(hit) && r.kind == CACHE_REPLY_VALUE && r.len == 5);
    CHECK(r.key_len == 2 && memcmp(r.key, "k1", 2) == 0 && memcmp(r.data, "hello", 5) == 0);
    for (size_t n = 0; n < strlen(hit); n++)
        CHECK(cache_memcache_parse(hit, n, 64, &r) == 0);
    CHECK(mc("END\r\n", &r) == 5 && r.kind == CACHE_REPLY_NIL);
    CHECK(mc("STORED\r\n", &r) == 8 && r.kind == CACHE_REPLY_STATUS);
    CHECK(mc("NOT_STORED\r\n", &r) == 12 && r.kind == CACHE_REPLY_STATUS);
    CHECK(mc("DELETED\r\n", &r) == 9 && r.kind == CACHE_REPLY_STATUS);
    CHECK(mc("NOT_FOUND\r\n", &r) == 11 && r.kind == CACHE_REPLY_STATUS);
    CHECK(mc("ERROR\r\n", &r) == 7 && r.kind == CACHE_REPLY_ERROR);
    CHECK(mc("SERVER_ERROR out of memory\r\n", &r) > 0 && r.kind == CACHE_REPLY_ERROR);
    CHECK(mc("CLIENT_ERROR bad data chunk\r\n", &r) > 0 && r.kind == CACHE_REPLY_ERROR);
    CHECK(mc("VALUE k 0 0\r\n\r\nEND\r\n", &r) == 20 && r.len == 0);
    /* malformed */
    CHECK(mc("VALUE k 0 5\r\nhelloXXEND\r\n", &r) == -1);
    CHECK(mc("VALUE k 0 5\r\nhello\r\nENX\r\n", &r) == -1);
    CHECK(mc("VALUE k 0 5\r\nhelloX", &r) == -1);           /* no CR LF after the value */
    CHECK(mc("VALUE k 0 5 7\r\nhello\r\nEND\r\n", &r) == -1);   /* a cas it was not asked for */
    CHECK(mc("VALUE k 0\r\n", &r) == -1);
    CHECK(mc("VALUE\r\n", &r) == -1);
    CHECK(mc("VALUE \r\n", &r) == -1);
    CHECK(mc("VALUE k x 5\r\n", &r) == -1);
    CHECK(mc("VALUE k 0 -5\r\n", &r) == -1);
    CHECK(mc("VALUE  0 5\r\n", &r) == -1);
    CHECK(mc("VALUE k 0 65\r\n", &r) == -1);                 /* over the caller's bound */
    CHECK(mc("VALUE k 99999999999 1\r\nx\r\nEND\r\n", &r) == -1);
    CHECK(mc("STORED \r\n", &r) == -1);
    CHECK(mc("STOREDX\r\n", &r) == -1);
    CHECK(mc("stored\r\n", &r) == -1);
    CHECK(mc("ERRORS\r\n", &r) == -1);
    CHECK(mc("END\n", &r) == -1);
    CHECK(mc("\r\n", &r) == -1);
    CHECK(cache_memcache_parse("END\0\r\n", 6, 64, &r) == -1);
}

static char dir[] = "/tmp/test_cache_store.XXXXXX";

static const char *write_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
    return path;
}

/* Whether opening spec (a file with text) fails with a reason holding why. */
static int open_fails(const char *type, const char *text, const char *why)
{
    char spec[300];
    snprintf(spec, sizeof(spec), "%s:%s", type, write_file("t.cf", text));
    struct strbuf err = STRBUF_INIT(1024);
    struct cache_store *cs = cache_store_open(spec, "test_map", &err);
    int ok = !cs && strstr(sb_str(&err), why) != NULL;
    if (!ok)
        fprintf(stderr, "open %s: %s\n", text, sb_str(&err));
    cache_store_close(cs);
    sb_free(&err);
    return ok;
}

static void test_open(void)
{
    struct strbuf err = STRBUF_INIT(1024);
    CHECK(cache_store_shared("redis:/x") && cache_store_shared("memcache:/x"));
    CHECK(!cache_store_shared("btree:/x") && !cache_store_shared(""));
    CHECK(!cache_store_open("redis:relative.cf", "p", &err) && strstr(sb_str(&err), "full path"));
    sb_reset(&err);
    CHECK(!cache_store_open("hash:/x", "p", &err));
    CHECK(open_fails("redis", "timeout = 0\n", "timeout"));
    CHECK(open_fails("redis", "timeout = 61\n", "timeout"));
    CHECK(open_fails("memcache", "ttl = -1\n", "ttl"));
    CHECK(open_fails("redis", "data_size_limit = 0\n", "data_size_limit"));
    CHECK(open_fails("redis", "key_format = %q\n", "%q"));
    CHECK(open_fails("redis", "redis = inet:\n", "redis = inet:"));
    CHECK(open_fails("memcache", "no equals sign\n", "t.cf"));
    CHECK(!cache_store_open("redis:/nonexistent/t.cf", "p", &err));
    /* a server that is not there: a miss, the failure counted, no wait */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    bind(s, (struct sockaddr *)&a, sizeof(a));
    getsockname(s, (struct sockaddr *)&a, &alen);
    close(s);                          /* nothing listens on that port now */
    char text[200], spec[300];
    snprintf(text, sizeof(text), "redis = 127.0.0.1:%d\nkey_format = k:%%s\n", ntohs(a.sin_port));
    snprintf(spec, sizeof(spec), "redis:%s", write_file("ok.cf", text));
    sb_reset(&err);
    struct cache_store *cs = cache_store_open(spec, "test_map", &err);
    CHECK(cs != NULL);
    if (cs) {
        char v[64];
        CHECK(strcmp(cache_store_name(cs), spec) == 0);
        CHECK(cache_store_get(cs, "a", v, sizeof(v)) == -1);
        CHECK(cache_store_put(cs, "a", "b", 10) == -1);   /* resting: not tried */
        CHECK(cache_store_del(cs, "a") == -1);
        CHECK(cache_store_get(cs, "with space", v, sizeof(v)) == -1);
        cache_store_close(cs);
    }
    sb_free(&err);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* A server that takes connections and never answers (a hung redis): an
 * event-loop process's wait is capped, and the pause after failures in a
 * row doubles, so that such a server costs one short wait now and then. */
static void test_hung_server(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    CHECK(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(s, 16) == 0);
    getsockname(s, (struct sockaddr *)&a, &alen);
    char text[200], spec[300];
    snprintf(text, sizeof(text), "redis = 127.0.0.1:%d\ntimeout = 5\nretry_pause = 1\n",
             ntohs(a.sin_port));
    snprintf(spec, sizeof(spec), "redis:%s", write_file("hung.cf", text));
    struct strbuf err = STRBUF_INIT(1024);
    struct cache_store *cs = cache_store_open(spec, "test_map", &err);
    CHECK(cs != NULL);
    if (!cs)
        return;
    cache_store_limit_wait(cs, 200);
    char v[64];
    long long t0 = now_ms();
    CHECK(cache_store_get(cs, "a", v, sizeof(v)) == -1);
    long long waited = now_ms() - t0;
    CHECK(waited >= 150 && waited < 1000);          /* the cap, not the file's 5 s */
    t0 = now_ms();
    CHECK(cache_store_get(cs, "a", v, sizeof(v)) == -1);
    CHECK(now_ms() - t0 < 100);                     /* resting: not asked */
    sleep(2);                                       /* past the first pause (1 s) */
    t0 = now_ms();
    CHECK(cache_store_get(cs, "a", v, sizeof(v)) == -1);
    CHECK(now_ms() - t0 >= 150);                    /* asked again, and failed again */
    sleep(1);                                       /* within the doubled pause (2 s) */
    t0 = now_ms();
    CHECK(cache_store_get(cs, "a", v, sizeof(v)) == -1);
    CHECK(now_ms() - t0 < 100);
    cache_store_close(cs);
    close(s);
    unlink(write_file("hung.cf", ""));
    sb_free(&err);
}

static void write_three(FILE *fp, void *ctx)
{
    (void)ctx;
    fputs("# a comment\none 1\n\ntwo 2\nbad\n", fp);
    for (int i = 0; i < 100; i++)
        fputc('x', fp);
    fputs("\nthree 3\n", fp);
}

static bool read_line(char *line, void *ctx)
{
    struct strbuf *seen = ctx;
    if (!strchr(line, ' '))
        return false;
    sb_appendf(seen, "[%s]", line);
    return true;
}

static void test_file(void)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    CHECK(cache_file_save(dfd, "cache", "test cache", write_three, NULL) == 0);
    CHECK(faccessat(dfd, "cache.tmp", F_OK, 0) < 0);       /* renamed into place */
    struct strbuf seen = STRBUF_INIT(1024);
    cache_file_load(dfd, "cache", "test cache", 50, read_line, &seen);
    CHECK_STR(sb_str(&seen), "[one 1][two 2][three 3]");
    sb_reset(&seen);
    cache_file_load(dfd, "missing", "test cache", 50, read_line, &seen);   /* an empty cache */
    CHECK(seen.len == 0);
    CHECK(cache_file_save(dfd, "no/such/dir", "test cache", write_three, NULL) == -1);
    sb_free(&seen);
    unlinkat(dfd, "cache", 0);
    close(dfd);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    test_resp();
    test_memcache();
    test_open();
    test_hung_server();
    test_file();
    unlink(write_file("t.cf", ""));
    unlink(write_file("ok.cf", ""));
    rmdir(dir);
    return check_summary();
}
