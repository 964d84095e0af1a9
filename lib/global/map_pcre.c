/* map_pcre.c: pcre: (and regexp:) tables with PCRE2: rules "/regex/flags
 * result" tried in order, "!/regex/ result" for non-matches, "if /re/" ...
 * "endif" blocks, and $1..$9 substitution of captured text in the result. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "maps_impl.h"
#include "util.h"

#define PCRE_MAX_RULES 100000
#define PCRE_RESULT_LIMIT 65536

struct rule {
    struct map_rule head;
    pcre2_code *re;
};

struct pcre_table {
    struct map_rule_list rules;
    pcre2_match_data *md;  /* sized for the most groups of any pattern */
};

/* Parse "/pattern/flags" at *p (the delimiter is the first character). */
static pcre2_code *parse_regex(char **p, const char *path, int line, struct strbuf *err)
{
    char delim = **p;
    if (!delim || isalnum((unsigned char)delim) || isspace((unsigned char)delim) || delim == '\\') {
        sb_appendf(err, "%s:%d: expected a /pattern/", path, line);
        return NULL;
    }
    char *start = *p + 1, *end = start;
    while (*end && *end != delim) {
        if (*end == '\\' && end[1])
            end++;
        end++;
    }
    if (*end != delim) {
        sb_appendf(err, "%s:%d: unterminated pattern (no closing %c)", path, line, delim);
        return NULL;
    }
    uint32_t opts = PCRE2_CASELESS;     /* Postfix's default; 'i' toggles it */
    char *f = end + 1;
    for (; *f && !isspace((unsigned char)*f); f++) {
        switch (*f) {
        case 'i': opts ^= PCRE2_CASELESS; break;
        case 'm': opts |= PCRE2_MULTILINE; break;
        case 's': opts |= PCRE2_DOTALL; break;
        case 'x': opts |= PCRE2_EXTENDED; break;
        case 'A': opts |= PCRE2_ANCHORED; break;
        case 'E': opts |= PCRE2_DOLLAR_ENDONLY; break;
        case 'U': opts |= PCRE2_UNGREEDY; break;
        default:
            sb_appendf(err, "%s:%d: unknown pattern flag '%c' (known: i m s x A E U)",
                       path, line, isprint((unsigned char)*f) ? *f : '?');
            return NULL;
        }
    }
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)start, (PCRE2_SIZE)(end - start), opts, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        sb_appendf(err, "%s:%d: bad pattern at offset %zu: %s", path, line, (size_t)off, (char *)msg);
        return NULL;
    }
    *p = f;
    return re;
}

/* A capture reference after '$': "N...", "{N}" or "(N)". Returns the number
 * of characters it spans (0: not a reference) and the group in *group. */
static size_t parse_ref(const char *p, unsigned *group)
{
    char close = *p == '{' ? '}' : *p == '(' ? ')' : 0;
    const char *d = close ? p + 1 : p;
    size_t len = 0;
    unsigned n = 0;
    while (isdigit((unsigned char)d[len])) {
        if (n < 100000)
            n = n * 10 + (unsigned)(d[len] - '0');
        len++;
    }
    if (len == 0 || (close && d[len] != close))
        return 0;
    *group = n;
    return close ? len + 2 : len;
}

/* Refuse at open what would otherwise go wrong at every lookup. */
static int check_result(const struct map_rule *rule, const char *path, struct strbuf *err)
{
    const struct rule *r = (const struct rule *)rule;
    uint32_t groups = 0;
    pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &groups);
    for (const char *p = r->head.result; (p = strchr(p, '$')) != NULL;) {
        unsigned n;
        size_t len;
        if (p[1] == '$') {
            p += 2;
        } else if ((len = parse_ref(p + 1, &n)) > 0) {
            if (r->head.negate) {
                sb_appendf(err, "%s:%d: $%u in the result of a !/pattern/, which captures nothing",
                           path, r->head.line, n);
                return -1;
            }
            if (n > groups) {
                sb_appendf(err, "%s:%d: $%u but the pattern has %u group%s", path, r->head.line, n,
                           (unsigned)groups, groups == 1 ? "" : "s");
                return -1;
            }
            p += 1 + len;
        } else {
            p++;
        }
    }
    return 0;
}

/* The /regex/flags at *p into the rule. */
static int parse_pattern(struct map_rule *rule, char **p, const char *path, int line,
                         struct strbuf *err)
{
    struct rule *r = (struct rule *)rule;
    return (r->re = parse_regex(p, path, line, err)) ? 0 : -1;
}

static void pcre_rule_free(struct map_rule *rule)
{
    pcre2_code_free(((struct rule *)rule)->re);
}

static const struct map_rule_type pcre_rules = {
    .rule_size = sizeof(struct rule), .max_rules = PCRE_MAX_RULES, .pattern_name = "pattern",
    .pattern = parse_pattern, .check = check_result, .free_rule = pcre_rule_free,
};

/* Append the result with $N replaced by capture N (empty when unset). */
static int substitute(const char *tmpl, const char *subject, pcre2_match_data *md,
                      struct strbuf *out)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    uint32_t pairs = pcre2_get_ovector_count(md);
    for (const char *p = tmpl; *p; p++) {
        unsigned n;
        size_t len;
        int rc = 0;
        if (*p != '$') {
            rc = sb_appendc(out, *p);
        } else if (p[1] == '$') {
            rc = sb_appendc(out, '$');
            p++;
        } else if ((len = parse_ref(p + 1, &n)) > 0) {
            if (n < pairs && ov[2 * n] != PCRE2_UNSET && ov[2 * n + 1] >= ov[2 * n])
                rc = sb_append(out, subject + ov[2 * n], ov[2 * n + 1] - ov[2 * n]);
            p += len;
        } else {
            rc = sb_appendc(out, '$');
        }
        if (rc < 0 || out->len > PCRE_RESULT_LIMIT)
            return -1;
    }
    return 0;
}

/* The key being looked up, for pcre_hits. */
struct pcre_key {
    const struct map *m;
    const char *key;
    size_t len;
    pcre2_match_data *md;
};

static int pcre_hits(const void *rule, void *ctx)
{
    const struct rule *r = rule;
    const struct pcre_key *k = ctx;
    int rc = pcre2_match(r->re, (PCRE2_SPTR)k->key, k->len, 0, 0, k->md, NULL);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
        /* e.g. the match limit: an answer we cannot give, not "no match" */
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof(msg));
        msg_warn("%s, line %d: matching \"%.100s\" failed: %s", k->m->spec, r->head.line, k->key,
                 (char *)msg);
        return -1;
    }
    return (rc >= 0) != r->head.negate;
}

static int pcre_lookup(struct map *m, const char *key, struct strbuf *result)
{
    struct pcre_table *t = m->priv;
    struct pcre_key k = { m, key, strlen(key), t->md };
    long i = map_rules_first(&t->rules, pcre_hits, &k);
    if (i == MAP_RULES_NONE)
        return 0;
    if (i < 0)
        return -1;
    /* the match data holds the captures of rule i, the last one tried */
    const struct map_rule *r = map_rule_at(&t->rules, (size_t)i);
    if (substitute(r->result, key, t->md, result) < 0) {
        msg_warn("%s, line %d: result for \"%.100s\" longer than %d bytes", m->spec, r->line, key,
                 PCRE_RESULT_LIMIT);
        return -1;
    }
    return 1;
}

static void pcre_close(struct map *m)
{
    struct pcre_table *t = m->priv;
    map_rules_free(&t->rules);
    if (t->md)
        pcre2_match_data_free(t->md);
    free(t);
}

/* The most capture groups of any pattern: the match data holds them all. */
static uint32_t max_groups(const struct map_rule_list *rules)
{
    uint32_t most = 0;
    for (size_t i = 0; i < rules->n; i++) {
        const struct rule *r = (const struct rule *)map_rule_at(rules, i);
        uint32_t groups = 0;
        if (r->re && pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &groups) == 0 && groups > most)
            most = groups;
    }
    return most;
}

int map_pcre_open(struct map *m, struct strbuf *err)
{
    struct pcre_table *t = xcalloc(1, sizeof(*t));
    t->rules.type = &pcre_rules;
    int rc = map_rules_read(&t->rules, m->name, err);
    if (rc == 0 && !(t->md = pcre2_match_data_create(max_groups(&t->rules) + 1, NULL)))
        msg_fatal("%s: out of memory for match data", m->spec);
    return map_opened(m, t, rc, pcre_lookup, pcre_close);
}
