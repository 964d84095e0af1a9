/* fuzz_map_expand.c: libFuzzer target for the %-expansion of the database
 * tables' query templates and result formats (lib/global/map_expand.c):
 * the template comes from a query file, the value and key from a client
 * (the lookup key) or a database server (a result). Besides crashes and
 * sanitizer reports: a template that map_expand_check accepts never makes
 * map_expand fail when there is room; every byte handed to the quoting
 * function lies inside the value or the key (nothing else is taken for
 * data); without '%' the output is the template; and result elements join
 * under expansion_limit with nothing half-added.
 * Input: one byte of kind, then template NUL value NUL key.
 * sources: lib/global/map_expand.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/global/map_query.h"
#include "lib/util/strbuf.h"

struct bounds {
    const char *v, *k;
    size_t vlen, klen;
};

/* Checks that every quoted span lies within the value or the key, and
 * quotes like an SQL string (doubling ') so that the output grows. */
static int checked_quote(struct strbuf *out, const char *s, size_t n, void *ctx)
{
    const struct bounds *b = ctx;
    bool in_v = s >= b->v && s + n <= b->v + b->vlen;
    bool in_k = b->k && s >= b->k && s + n <= b->k + b->klen;
    if (!in_v && !in_k)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((s[i] == '\'' && sb_appendc(out, '\'') < 0) || sb_appendc(out, s[i]) < 0)
            return -1;
    return 0;
}

/* Splits data at NULs into up to three strings (owned by the caller). */
static int split(const uint8_t *data, size_t size, char **parts)
{
    size_t start = 0;
    int n = 0;
    for (size_t i = 0; i <= size && n < 3; i++)
        if (i == size || data[i] == 0) {
            parts[n] = malloc(i - start + 1);
            memcpy(parts[n], data + start, i - start);
            parts[n][i - start] = 0;
            n++;
            start = i + 1;
        }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum map_expand_kind kind = data[0] & 1 ? MAP_EXPAND_RESULT : MAP_EXPAND_QUERY;
    char *parts[3] = { NULL, NULL, NULL };
    int n = split(data + 1, size - 1, parts);
    const char *fmt = parts[0], *value = n > 1 ? parts[1] : "", *key = n > 2 ? parts[2] : NULL;
    struct strbuf err = STRBUF_INIT(0), out = STRBUF_INIT(0), tight = STRBUF_INIT(16);
    bool ok = map_expand_check(fmt, kind, "query", &err) == 0;
    if (ok && !strchr(fmt, '%') && err.len)
        abort();
    if (ok) {
        struct bounds b = { value, key, strlen(value), key ? strlen(key) : 0 };
        const char *k = kind == MAP_EXPAND_RESULT ? (key ? key : "") : NULL;
        if (kind == MAP_EXPAND_RESULT && !key)
            b.k = k, b.klen = 0;
        int rc = map_expand(&out, fmt, kind, value, k, checked_quote, &b, &err);
        if (rc < 0)
            abort();        /* an accepted template with unlimited room */
        if (rc == 1 && !strchr(fmt, '%') && strcmp(sb_str(&out), fmt) != 0)
            abort();
        /* a small limit: may fail, never overruns */
        sb_reset(&err);
        rc = map_expand(&tight, fmt, kind, value, k, checked_quote, &b, &err);
        if (tight.len > 16 || (rc < 0 && err.len == 0))
            abort();
        /* results: each element is added whole or not at all */
        struct strbuf joined = STRBUF_INIT(64);
        struct map_results r;
        map_results_init(&r, &joined, 3);
        for (int i = 0; i < 5; i++) {
            size_t before = joined.len;
            sb_reset(&err);
            int added = map_results_add(&r, fmt, value, k ? k : "", &err);
            if (added < 0 && joined.len != before)
                abort();
        }
        if (r.count > 3)
            abort();
        sb_free(&joined);
    } else if (err.len == 0) {
        abort();
    }
    sb_free(&err);
    sb_free(&out);
    sb_free(&tight);
    for (int i = 0; i < 3; i++)
        free(parts[i]);
    return 0;
}
