/* map_text.c: the in-memory tables: texthash:FILE (a postmap-style source
 * read at open) and inline:{ key=value, { key = value } } written in place. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "maps_impl.h"
#include "util.h"

struct entry {
    char *key, *value;
    struct entry *next;
};

struct table {
    struct entry **buckets;
    size_t nbuckets, count;
};

static size_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static void table_grow(struct table *t)
{
    size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
    struct entry **b = xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct entry *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t h = hash_key(e->key) % n;
            e->next = b[h];
            b[h] = e;
        }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

/* As in Postfix, the first entry for a key wins; false for a duplicate,
 * which the caller reports. */
static bool table_put(struct table *t, const char *key, const char *value)
{
    if (t->count >= t->nbuckets)
        table_grow(t);
    char *lc = str_lower(xstrdup(key));
    size_t h = hash_key(lc) % t->nbuckets;
    for (struct entry *e = t->buckets[h]; e; e = e->next)
        if (strcmp(e->key, lc) == 0) {
            free(lc);
            return false;
        }
    struct entry *e = xmalloc(sizeof(*e));
    e->key = lc;
    e->value = xstrdup(value);
    e->next = t->buckets[h];
    t->buckets[h] = e;
    t->count++;
    return true;
}

static int table_lookup(struct map *m, const char *key, struct strbuf *result)
{
    struct table *t = m->priv;
    if (!t->nbuckets)
        return 0;
    for (struct entry *e = t->buckets[hash_key(key) % t->nbuckets]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return sb_appends(result, e->value) < 0 ? -1 : 1;
    return 0;
}

static void table_close(struct map *m)
{
    struct table *t = m->priv;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct entry *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e->key);
            free(e->value);
            free(e);
        }
    free(t->buckets);
    free(t);
}

static void table_attach(struct map *m, struct table *t)
{
    m->priv = t;
    m->fold_case = true;
    m->lookup = table_lookup;
    m->close = table_close;
}

struct texthash_ctx {
    struct table *table;
    const char *path;
};

static int texthash_put(const char *key, const char *value, int line, void *arg)
{
    struct texthash_ctx *ctx = arg;
    if (!table_put(ctx->table, key, value))
        msg_warn("%s, line %d: duplicate entry \"%.100s\" ignored: the first one is used",
                 ctx->path, line, key);
    return 0;
}

int map_texthash_open(struct map *m, struct strbuf *err)
{
    struct table *t = xcalloc(1, sizeof(*t));
    struct texthash_ctx ctx = { t, m->name };
    if (map_read_source(m->name, 0, texthash_put, &ctx, err) < 0) {
        m->priv = t;
        table_close(m);
        m->priv = NULL;
        return -1;
    }
    table_attach(m, t);
    return 0;
}

static char *skip_space(char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* One "key=value" or "{ key = value }" item of table m; trims what it
 * stores. */
static int inline_item(char *text, void *ctx, struct strbuf *err)
{
    const struct map *m = ctx;
    struct table *t = m->priv;
    const char *spec = m->spec;
    char *eq = strchr(text, '=');
    if (!eq) {
        sb_appendf(err, "inline table: \"%.60s\" is not key=value", text);
        return -1;
    }
    *eq = 0;
    char *key = skip_space(text), *value = skip_space(eq + 1);
    for (char *e = key + strlen(key); e > key && isspace((unsigned char)e[-1]);)
        *--e = 0;
    for (char *e = value + strlen(value); e > value && isspace((unsigned char)e[-1]);)
        *--e = 0;
    if (!*key) {
        sb_appends(err, "inline table: empty key");
        return -1;
    }
    if (!table_put(t, key, value))
        msg_warn("%.100s: duplicate entry \"%.100s\" ignored: the first one is used", spec, key);
    return 0;
}

int map_inline_open(struct map *m, struct strbuf *err)
{
    size_t len = strlen(m->name);
    if (len < 2 || m->name[0] != '{' || m->name[len - 1] != '}') {
        sb_appendf(err, "inline table \"%.100s\" must be written inline:{ key=value, ... }", m->spec);
        return -1;
    }
    struct table *t = xcalloc(1, sizeof(*t));
    m->priv = t;
    int rc = map_inline_items(m, "inline", ", \t\r\n\v\f", inline_item, m, err);
    if (rc < 0) {
        table_close(m);
        m->priv = NULL;
        return -1;
    }
    table_attach(m, t);
    return 0;
}
