/* map_rules.c: what the tables of ordered rules (pcre:, regexp:, cidr:)
 * share: their keywords, their "if PATTERN" ... "endif" blocks, and the
 * bounded array their rules are kept in. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "maps_impl.h"
#include "util.h"

bool map_is_keyword(const char *p, const char *word)
{
    size_t n = strlen(word);
    return strncasecmp(p, word, n) == 0 && (!p[n] || isspace((unsigned char)p[n]));
}

int map_ifs_open(struct map_ifs *ifs, size_t rule, const char *rest, const char *path,
                 int line, struct strbuf *err)
{
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest) {
        sb_appendf(err, "%s:%d: text after the if pattern: \"%.60s\"", path, line, rest);
        return -1;
    }
    if (ifs->depth >= MAP_IF_MAX_DEPTH) {
        sb_appendf(err, "%s:%d: if blocks nested deeper than %d", path, line, MAP_IF_MAX_DEPTH);
        return -1;
    }
    ifs->open_line[ifs->depth] = line;
    ifs->open[ifs->depth++] = rule;
    return 0;
}

int map_ifs_end(const struct map_ifs *ifs, const char *name, struct strbuf *err)
{
    if (ifs->depth == 0)
        return 0;
    sb_appendf(err, "%s:%d: if without endif", name, ifs->open_line[ifs->depth - 1]);
    return -1;
}

void map_rules_free(void *rules, size_t n, size_t size, void (*free_rule)(void *rule))
{
    for (size_t i = 0; i < n; i++)
        free_rule((char *)rules + i * size);
    free(rules);
}

int map_opened(struct map *m, void *priv, int rc,
               int (*lookup)(struct map *m, const char *key, struct strbuf *result),
               void (*close)(struct map *m))
{
    m->priv = priv;
    if (rc < 0) {
        close(m);
        m->priv = NULL;
        return -1;
    }
    m->lookup = lookup;
    m->close = close;
    return 0;
}

int map_ifs_close(struct map_ifs *ifs, const char *rest, const char *path, int line,
                  size_t *if_rule, struct strbuf *err)
{
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest) {
        sb_appendf(err, "%s:%d: text after endif: \"%.60s\"", path, line, rest);
        return -1;
    }
    if (ifs->depth == 0) {
        sb_appendf(err, "%s:%d: endif without if", path, line);
        return -1;
    }
    *if_rule = ifs->open[--ifs->depth];
    return 0;
}

void *map_rules_room(void *rules, size_t n, size_t *cap, size_t size, size_t max,
                     const char *path, int line, struct strbuf *err)
{
    if (n >= max) {
        sb_appendf(err, "%s:%d: more than %zu rules", path, line, max);
        return NULL;
    }
    if (n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        rules = xrealloc(rules, *cap * size);
    }
    return rules;
}
