/* test_cache_reply.c: unit tests of the parsers of what a redis server
 * (RESP) and a memcached server (text protocol) answer: every kind of
 * reply, replies cut anywhere (not complete yet), and the malformed ones
 * that must be refused: bad numbers, wrong lengths, missing CR LF,
 * control bytes, arrays, oversized values and lines. */
#include <string.h>

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

int main(void)
{
    test_resp();
    test_memcache();
    return check_summary();
}
