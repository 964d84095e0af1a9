/* fuzz_cache_reply.c: libFuzzer target for what a redis or memcached
 * server answers the shared caches: the first byte picks the protocol
 * (RESP or memcached's text protocol), the rest is a stream of replies
 * parsed one after another as the client reads them, and also fed in
 * every prefix of its first reply (a reply still arriving must be "not
 * complete", never a different reply). Every parsed reply must lie inside
 * the input, a value must respect the bound, and the stream must be
 * consumed in a bounded number of steps.
 * sources: lib/global/cache_reply.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache_store.h"

#define VALUE_MAX 256

typedef long (*parse_fn)(const char *, size_t, size_t, struct cache_reply *);

static void inside(const char *buf, size_t len, const char *p, size_t n)
{
    if (n && (!p || p < buf || p + n > buf + len))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    parse_fn parse = data[0] & 1 ? cache_memcache_parse : cache_resp_parse;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1, pos = 0, steps = 0;
    struct cache_reply r;
    long first = parse(buf, len, VALUE_MAX, &r);
    if (first > 0) {
        for (size_t n = 0; n < (size_t)first; n++) {
            struct cache_reply p;
            long got = parse(buf, n, VALUE_MAX, &p);
            if (got > 0)
                abort();        /* a reply cut short is not complete */
        }
    }
    while (pos < len) {
        long used = parse(buf + pos, len - pos, VALUE_MAX, &r);
        if (used <= 0)
            break;
        if ((size_t)used > len - pos)
            abort();
        inside(buf + pos, (size_t)used, r.data, r.len);
        inside(buf + pos, (size_t)used, r.key, r.key_len);
        if (r.kind == CACHE_REPLY_VALUE && r.len > VALUE_MAX)
            abort();
        pos += (size_t)used;
        if (++steps > len)
            abort();
    }
    return 0;
}
