/* map_rules.c: what the tables of ordered rules (pcre:, regexp:, cidr:)
 * share: the grammar of a rule line ("[!]PATTERN result", "if [!]PATTERN",
 * "endif"), the bounded list the rules are kept in, and the walk of a
 * lookup through them. A table type parses only its own patterns. */
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

static const char *skip_space(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* An "if" whose pattern is followed by rest opens a block at rule number
 * rule. */
static int ifs_open(struct map_ifs *ifs, size_t rule, const char *rest, const char *path,
                    int line, struct strbuf *err)
{
    rest = skip_space(rest);
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

/* "endif" followed by rest closes the innermost block: *if_rule is its
 * if's rule number. */
static int ifs_close(struct map_ifs *ifs, const char *rest, const char *path, int line,
                     size_t *if_rule, struct strbuf *err)
{
    rest = skip_space(rest);
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

int map_rules_end(const struct map_rule_list *l, const char *name, struct strbuf *err)
{
    if (l->ifs.depth == 0)
        return 0;
    sb_appendf(err, "%s:%d: if without endif", name, l->ifs.open_line[l->ifs.depth - 1]);
    return -1;
}

/* The rule line text into r (zeroed, its line set), as rule number l->n. */
static int parse_rule(struct map_rule_list *l, struct map_rule *r, char *text, const char *path,
                      struct strbuf *err)
{
    char *p = text;
    if (map_is_keyword(p, "endif")) {
        size_t opener;
        if (ifs_close(&l->ifs, p + 5, path, r->line, &opener, err) < 0)
            return -1;
        r->kind = MAP_RULE_ENDIF;
        map_rule_at(l, opener)->skip_to = l->n + 1;
        return 0;
    }
    bool is_if = map_is_keyword(p, "if");
    if (is_if)
        p = (char *)skip_space(p + 2);
    if (*p == '!') {
        r->negate = true;
        p++;
    }
    if (l->type->pattern(r, &p, path, r->line, err) < 0)
        return -1;
    if (is_if) {
        r->kind = MAP_RULE_IF;
        return ifs_open(&l->ifs, l->n, p, path, r->line, err);
    }
    p = (char *)skip_space(p);
    if (!*p) {
        sb_appendf(err, "%s:%d: missing result after the %s", path, r->line, l->type->pattern_name);
        return -1;
    }
    r->kind = MAP_RULE_MATCH;
    r->result = xstrdup(p);
    return l->type->check ? l->type->check(r, path, err) : 0;
}

static void free_rule(const struct map_rule_list *l, struct map_rule *r)
{
    l->type->free_rule(r);
    free(r->result);
}

int map_rules_add(struct map_rule_list *l, char *text, int line, const char *path,
                  struct strbuf *err)
{
    if (l->n >= l->type->max_rules) {
        sb_appendf(err, "%s:%d: more than %zu rules", path, line, l->type->max_rules);
        return -1;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->rules = xrealloc(l->rules, l->cap * l->type->rule_size);
    }
    struct map_rule *r = map_rule_at(l, l->n);
    memset(r, 0, l->type->rule_size);
    r->line = line;
    if (parse_rule(l, r, text, path, err) < 0) {
        free_rule(l, r);
        return -1;
    }
    l->n++;
    return 0;
}

/* One logical line of a rule file (a map_line_fn). */
static int add_line(void *list, char *text, int line, const char *path, struct strbuf *err)
{
    return map_rules_add(list, text, line, path, err);
}

int map_rules_read(struct map_rule_list *l, const char *path, struct strbuf *err)
{
    if (map_reader_each(path, add_line, l, err) < 0)
        return -1;
    return map_rules_end(l, path, err);
}

long map_rules_first(const struct map_rule_list *l, int (*hits)(const void *rule, void *ctx),
                     void *ctx)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct map_rule *r = map_rule_at(l, i);
        if (r->kind == MAP_RULE_ENDIF)
            continue;
        int hit = hits(r, ctx);
        if (hit < 0)
            return MAP_RULES_FAILED;
        if (r->kind == MAP_RULE_IF) {
            if (!hit)
                i = r->skip_to - 1;    /* the loop's i++ lands after the endif */
        } else if (hit) {
            return (long)i;
        }
    }
    return MAP_RULES_NONE;
}

void map_rules_free(struct map_rule_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free_rule(l, map_rule_at(l, i));
    free(l->rules);
    l->rules = NULL;
    l->n = l->cap = 0;
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
