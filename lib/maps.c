/* maps.c: "type:name" dispatch for lookup tables, map lists, and the reader
 * of postmap-style source files shared by texthash: and `tern map build`. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "maps_impl.h"
#include "util.h"

struct map *map_open(const char *spec, struct strbuf *err)
{
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || !colon[1]) {
        sb_appendf(err, "bad table name \"%.100s\": expected type:name", spec);
        return NULL;
    }
    struct map *m = xcalloc(1, sizeof(*m));
    m->spec = xstrdup(spec);
    m->name = xstrdup(colon + 1);
    size_t tlen = (size_t)(colon - spec);
    int rc;
    if (tlen == 4 && strncmp(spec, "hash", 4) == 0)
        rc = map_db_open(m, false, err);
    else if (tlen == 5 && strncmp(spec, "btree", 5) == 0)
        rc = map_db_open(m, true, err);
    else if ((tlen == 4 && strncmp(spec, "pcre", 4) == 0) || (tlen == 6 && strncmp(spec, "regexp", 6) == 0))
        rc = map_pcre_open(m, err);
    else if (tlen == 8 && strncmp(spec, "texthash", 8) == 0)
        rc = map_texthash_open(m, err);
    else if (tlen == 6 && strncmp(spec, "inline", 6) == 0)
        rc = map_inline_open(m, err);
    else {
        sb_appendf(err, "unsupported table type \"%.*s\" in \"%.100s\" (hash, btree, pcre, "
                   "regexp, texthash, inline)", (int)tlen, spec, spec);
        rc = -1;
    }
    if (rc < 0) {
        free(m->spec);
        free(m->name);
        free(m);
        return NULL;
    }
    return m;
}

int map_lookup(struct map *m, const char *key, struct strbuf *result)
{
    sb_reset(result);
    if (!m->fold_case)
        return m->lookup(m, key, result);
    char *lc = str_lower(xstrdup(key));
    int rc = m->lookup(m, lc, result);
    free(lc);
    return rc;
}

void map_close(struct map *m)
{
    if (!m)
        return;
    if (m->close)
        m->close(m);
    free(m->spec);
    free(m->name);
    free(m);
}

const char *map_spec(const struct map *m)
{
    return m->spec;
}

int map_build(const char *spec, int flags, struct strbuf *err)
{
    if (strncmp(spec, "hash:", 5) == 0)
        return map_db_build(spec + 5, false, flags, err);
    if (strncmp(spec, "btree:", 6) == 0)
        return map_db_build(spec + 6, true, flags, err);
    sb_appendf(err, "cannot build \"%.100s\": only hash: and btree: tables are compiled", spec);
    return -1;
}

/* ---- source files ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

static int source_entry(char *text, int line, int flags, const char *path,
                        int (*fn)(const char *, const char *, int, void *), void *ctx,
                        struct strbuf *err)
{
    char *key = text, *value;
    if (flags & MAP_BUILD_ALIASES) {
        /* aliases(5): the name may be quoted, and ends at the first ':' */
        char *colon = key[0] == '"' ? strchr(key + 1, '"') : key;
        colon = colon ? strchr(colon, ':') : NULL;
        if (!colon) {
            sb_appendf(err, "%s:%d: missing ':' after the alias name", path, line);
            return -1;
        }
        *colon = 0;
        value = colon + 1;
    } else {
        size_t k = strcspn(key, " \t");
        value = key + k;
        if (*value)
            *value++ = 0;
    }
    key = trim(key);
    value = trim(value);
    if (!*key) {
        sb_appendf(err, "%s:%d: empty key", path, line);
        return -1;
    }
    if (fn(key, value, line, ctx) < 0) {
        if (err->len == 0)
            sb_appendf(err, "%s:%d: cannot store entry", path, line);
        return -1;
    }
    return 0;
}

int map_read_source(const char *path, int flags,
                    int (*fn)(const char *key, const char *value, int line, void *ctx),
                    void *ctx, struct strbuf *err)
{
    FILE *fp = fopen(path, "re");
    if (!fp) {
        sb_appendf(err, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct strbuf logical = STRBUF_INIT(MAP_LINE_LIMIT);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, start = 0, rc = 0, entries = 0;
    while (rc == 0 && (n = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        if (memchr(line, 0, (size_t)n)) {
            sb_appendf(err, "%s:%d: NUL byte in line", path, lineno);
            rc = -1;
            break;
        }
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == 0 || *p == '#')
            continue;
        if (p != line && logical.len) {
            line[strcspn(line, "\r\n")] = 0;
            if (sb_appendc(&logical, ' ') < 0 || sb_appends(&logical, p) < 0) {
                sb_appendf(err, "%s:%d: logical line longer than %d bytes", path, lineno, MAP_LINE_LIMIT);
                rc = -1;
            }
            continue;
        }
        if (logical.len)
            rc = source_entry(logical.data, start, flags, path, fn, ctx, err);
        if (++entries > MAP_ENTRY_LIMIT) {
            sb_appendf(err, "%s:%d: more than %d entries", path, lineno, MAP_ENTRY_LIMIT);
            rc = -1;
        }
        sb_reset(&logical);
        line[strcspn(line, "\r\n")] = 0;
        if (rc == 0 && sb_appends(&logical, p) < 0) {
            sb_appendf(err, "%s:%d: line longer than %d bytes", path, lineno, MAP_LINE_LIMIT);
            rc = -1;
        }
        start = lineno;
    }
    if (rc == 0 && logical.len)
        rc = source_entry(logical.data, start, flags, path, fn, ctx, err);
    free(line);
    sb_free(&logical);
    fclose(fp);
    return rc;
}

/* ---- lists ---- */

struct maplist {
    struct map **maps;
    size_t n;
};

struct maplist *maplist_open(const char *value, struct strbuf *err)
{
    size_t n;
    char **words = cfg_list_split(value, &n);
    struct maplist *l = xcalloc(1, sizeof(*l));
    l->maps = xcalloc(n ? n : 1, sizeof(struct map *));
    for (size_t i = 0; i < n; i++) {
        if (!(l->maps[l->n] = map_open(words[i], err))) {
            cfg_list_free(words, n);
            maplist_close(l);
            return NULL;
        }
        l->n++;
    }
    cfg_list_free(words, n);
    return l;
}

int maplist_lookup(struct maplist *l, const char *key, struct strbuf *result)
{
    for (size_t i = 0; i < l->n; i++) {
        int rc = map_lookup(l->maps[i], key, result);
        if (rc != 0)
            return rc;      /* found, or an error that must not look like "not found" */
    }
    return 0;
}

void maplist_close(struct maplist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        map_close(l->maps[i]);
    free(l->maps);
    free(l);
}
