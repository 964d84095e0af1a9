/* cache_reply.c: the parsers of what a cache server answers (the bytes of
 * a server on the network, so untrusted): RESP, the redis protocol, for
 * the replies to AUTH, SELECT, GET, SET and DEL (simple strings, errors,
 * integers, bulk strings and the nil bulk string; arrays are never asked
 * for and are malformed here), and memcached's text protocol for the
 * replies to get, set and delete. Strict: a line ends in CR LF and holds
 * no other control byte, numbers are plain decimal digits without sign or
 * leading garbage, a value is exactly as long as announced and followed by
 * CR LF, and nothing is larger than the caller's bound. */
#include <string.h>

#include "cache_store.h"

/* The length of the line at buf (without its CR LF), 0 with *need when
 * it is not complete, -1 when it is malformed or too long. */
static long line_at(const char *buf, size_t len, bool *need)
{
    *need = false;
    size_t max = len < CACHE_LINE_MAX ? len : CACHE_LINE_MAX;
    for (size_t i = 0; i < max; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\r') {
            if (i + 1 == len) {
                *need = true;
                return 0;
            }
            return buf[i + 1] == '\n' ? (long)i : -1;
        }
        if (c < 0x20 || c == 0x7f)
            return -1;
    }
    if (len < CACHE_LINE_MAX) {
        *need = true;
        return 0;
    }
    return -1;
}

/* The first line of a reply, *r cleared: its length with its CR LF (> 2),
 * 0 when it is not complete, -1 when it is malformed or empty. */
static long first_line(const char *buf, size_t len, struct cache_reply *r)
{
    bool need;
    memset(r, 0, sizeof(*r));
    if (len == 0)
        return 0;
    long n = line_at(buf, len, &need);
    if (need)
        return 0;
    return n < 1 ? -1 : n + 2;
}

/* A decimal number of n digits (at most 18, no sign) at s: 0, or -1. */
static int digits(const char *s, size_t n, long long *out)
{
    if (n == 0 || n > 18)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

long cache_resp_parse(const char *buf, size_t len, size_t value_max, struct cache_reply *r)
{
    long n = first_line(buf, len, r);
    if (n <= 0)
        return n;
    n -= 2;
    const char *text = buf + 1;
    size_t tlen = (size_t)n - 1, used = (size_t)n + 2;
    switch (buf[0]) {
    case '+':
    case '-':
        r->kind = buf[0] == '+' ? CACHE_REPLY_STATUS : CACHE_REPLY_ERROR;
        r->data = text;
        r->len = tlen;
        return (long)used;
    case ':':
        if (tlen > 0 && text[0] == '-') {
            if (digits(text + 1, tlen - 1, &r->number) < 0)
                return -1;
            r->number = -r->number;
        } else if (digits(text, tlen, &r->number) < 0) {
            return -1;
        }
        r->kind = CACHE_REPLY_INTEGER;
        return (long)used;
    case '$': {
        if (tlen == 2 && text[0] == '-' && text[1] == '1') {
            r->kind = CACHE_REPLY_NIL;
            return (long)used;
        }
        long long size;
        if (digits(text, tlen, &size) < 0 || (unsigned long long)size > value_max)
            return -1;
        if (len - used < (size_t)size + 2)
            return 0;
        if (buf[used + size] != '\r' || buf[used + size + 1] != '\n')
            return -1;
        r->kind = CACHE_REPLY_VALUE;
        r->data = buf + used;
        r->len = (size_t)size;
        return (long)(used + (size_t)size + 2);
    }
    default:
        return -1;
    }
}

/* Whether the line of n bytes at s is word, or starts with word and a space. */
static bool is_word(const char *s, size_t n, const char *word, bool with_text)
{
    size_t w = strlen(word);
    if (n == w)
        return memcmp(s, word, w) == 0;
    return with_text && n > w && memcmp(s, word, w) == 0 && s[w] == ' ';
}

/* "VALUE KEY FLAGS BYTES" (no cas: get, not gets, is asked): the reply
 * goes on with the value, CR LF and "END" CR LF. */
static long memcache_value(const char *buf, size_t len, size_t n, size_t value_max,
                           struct cache_reply *r)
{
    if (n <= 6)                         /* "VALUE" alone */
        return -1;
    const char *p = buf + 6, *end = buf + n;
    const char *f[3];
    size_t fl[3];
    for (int i = 0; i < 3; i++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *stop = i < 2 ? sp : end;
        if (!stop || (i == 2 && sp))
            return -1;
        f[i] = p;
        fl[i] = (size_t)(stop - p);
        if (fl[i] == 0)
            return -1;
        p = stop + 1;
    }
    long long flags, size;
    if (fl[0] > CACHE_KEY_MAX || digits(f[1], fl[1], &flags) < 0 || flags > 0xffffffffLL
        || digits(f[2], fl[2], &size) < 0 || (unsigned long long)size > value_max)
        return -1;
    size_t used = n + 2;
    if (len - used < (size_t)size)
        return 0;
    /* what is there of the trailer must be right; the rest may follow */
    size_t have = len - used > (size_t)size ? len - used - (size_t)size : 0;
    if (memcmp(buf + used + size, "\r\nEND\r\n", have < 7 ? have : 7) != 0)
        return -1;
    if (have < 7)
        return 0;
    r->kind = CACHE_REPLY_VALUE;
    r->key = f[0];
    r->key_len = fl[0];
    r->data = buf + used;
    r->len = (size_t)size;
    return (long)(used + (size_t)size + 7);
}

long cache_memcache_parse(const char *buf, size_t len, size_t value_max, struct cache_reply *r)
{
    long n = first_line(buf, len, r);
    if (n <= 0)
        return n;
    n -= 2;
    size_t used = (size_t)n + 2;
    r->data = buf;
    r->len = (size_t)n;
    if (is_word(buf, (size_t)n, "VALUE", true))
        return memcache_value(buf, len, (size_t)n, value_max, r);
    if (is_word(buf, (size_t)n, "END", false)) {
        r->kind = CACHE_REPLY_NIL;
        return (long)used;
    }
    static const char *const status[] = { "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND",
                                          "DELETED" };
    for (size_t i = 0; i < sizeof(status) / sizeof(status[0]); i++)
        if (is_word(buf, (size_t)n, status[i], false)) {
            r->kind = CACHE_REPLY_STATUS;
            return (long)used;
        }
    if (is_word(buf, (size_t)n, "ERROR", false) || is_word(buf, (size_t)n, "CLIENT_ERROR", true)
        || is_word(buf, (size_t)n, "SERVER_ERROR", true)) {
        r->kind = CACHE_REPLY_ERROR;
        return (long)used;
    }
    return -1;
}
