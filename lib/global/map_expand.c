/* map_expand.c: the %-expansion of the database tables' query templates
 * and result formats, as pgsql_table(5) and ldap_table(5) describe it, and
 * the joining of result elements under expansion_limit. Values from the
 * lookup key (which the client chose) only ever reach a query through the
 * back end's quoting function. */
#include <string.h>

#include "map_query.h"
#include "strbuf.h"

/* The parts of an address-like value: user@domain split at the last '@';
 * without one, the whole value is the user and there is no domain. */
struct parts {
    const char *all;
    const char *user;
    size_t user_len;
    bool has_at;
    const char *domain;   /* NULL: none, or empty after the '@' */
};

static void split(struct parts *p, const char *value)
{
    const char *at = strrchr(value, '@');
    p->all = value;
    p->user = value;
    p->has_at = at != NULL;
    p->user_len = at ? (size_t)(at - value) : strlen(value);
    p->domain = at && at[1] ? at + 1 : NULL;
}

/* Label n (1 = rightmost) of the domain: 1 with *s and *len set, 0 when
 * there is no such label (or it is empty, as in "a..b"). */
static int label(const struct parts *p, int n, const char **s, size_t *len)
{
    if (!p->domain)
        return 0;
    const char *end = p->domain + strlen(p->domain);
    for (int i = 1;; i++) {
        const char *start = end;
        while (start > p->domain && start[-1] != '.')
            start--;
        if (i == n) {
            if (start == end)
                return 0;
            *s = start;
            *len = (size_t)(end - start);
            return 1;
        }
        if (start == p->domain)
            return 0;
        end = start - 1;
    }
}

/* Whether c may follow '%' in a template. %S %U %D are the lookup key's
 * parts in a result format and, as Postfix has it, the same as %s %u %d in
 * a query (where the value is the key). */
static bool valid_spec(int c)
{
    return c == '%' || c == 's' || c == 'u' || c == 'd' || (c >= '1' && c <= '9') || c == 'S'
           || c == 'U' || c == 'D';
}

int map_expand_check(const char *fmt, enum map_expand_kind kind, const char *param,
                     struct strbuf *err)
{
    (void)kind;     /* queries and result formats take the same escapes */
    for (const char *p = fmt; *p; p++) {
        if (*p != '%')
            continue;
        if (!p[1]) {
            sb_appendf(err, "%s: a '%%' at the end (write %%%% for a literal '%%')", param);
            return -1;
        }
        if (!valid_spec((unsigned char)p[1])) {
            sb_appendf(err, "%s: unknown expansion \"%%%c\" (%%%%, %%s, %%u, %%d, %%1..%%9, "
                       "%%S, %%U, %%D)", param, p[1]);
            return -1;
        }
        p++;
    }
    return 0;
}

static int put(struct strbuf *out, const char *s, size_t n, map_quote_fn quote, void *ctx,
               struct strbuf *err)
{
    if (quote) {
        if (quote(out, s, n, ctx) < 0) {
            if (err->len == 0)
                sb_appends(err, "the expanded text is too long or cannot be quoted");
            return -1;
        }
        return 0;
    }
    if (sb_append(out, s, n) < 0) {
        sb_appends(err, "the expanded text is too long");
        return -1;
    }
    return 0;
}

int map_expand(struct strbuf *out, const char *fmt, enum map_expand_kind kind,
               const char *value, const char *key, map_quote_fn quote, void *ctx,
               struct strbuf *err)
{
    struct parts v, k;
    split(&v, value);
    split(&k, key ? key : "");
    for (const char *p = fmt; *p; p++) {
        if (*p != '%' || !p[1]) {
            const char *lit = p;
            while (p[1] && p[1] != '%')
                p++;
            if (sb_append(out, lit, (size_t)(p - lit + 1)) < 0) {
                sb_appends(err, "the expanded text is too long");
                return -1;
            }
            continue;
        }
        int c = (unsigned char)*++p;
        if (!valid_spec(c)) {
            sb_appendf(err, "unknown expansion \"%%%c\"", c);
            return -1;
        }
        bool of_key = (c == 'S' || c == 'U' || c == 'D') && kind == MAP_EXPAND_RESULT;
        const struct parts *src = of_key ? &k : &v;
        const char *s = NULL;
        size_t n = 0;
        switch (c) {
        case '%':
            if (sb_appendc(out, '%') < 0) {
                sb_appends(err, "the expanded text is too long");
                return -1;
            }
            continue;
        case 's': case 'S':
            s = src->all;
            n = strlen(s);
            break;
        case 'u': case 'U':
            if (src->has_at && src->user_len == 0)
                return 0;
            s = src->user;
            n = src->user_len;
            break;
        case 'd': case 'D':
            if (!src->domain)
                return 0;
            s = src->domain;
            n = strlen(s);
            break;
        default:
            if (!label(src, c - '0', &s, &n))
                return 0;
            break;
        }
        if (put(out, s, n, quote, ctx, err) < 0)
            return -1;
    }
    return 1;
}

void map_results_init(struct map_results *r, struct strbuf *out, long limit)
{
    r->out = out;
    r->limit = limit;
    r->count = 0;
    r->over = false;
}

int map_results_add(struct map_results *r, const char *format, const char *value,
                    const char *key, struct strbuf *err)
{
    if (!value || !*value)
        return 0;
    size_t mark = r->out->len;
    if (r->count > 0 && sb_appendc(r->out, ',') < 0) {
        sb_appends(err, "the result is too long");
        return -1;
    }
    int rc = map_expand(r->out, format, MAP_EXPAND_RESULT, value, key, NULL, NULL, err);
    if (rc <= 0) {
        sb_truncate(r->out, mark);
        return rc;
    }
    if (r->limit > 0 && r->count >= r->limit) {
        sb_truncate(r->out, mark);
        r->over = true;
        sb_appendf(err, "the result has more than expansion_limit = %ld elements", r->limit);
        return -1;
    }
    r->count++;
    return 0;
}
