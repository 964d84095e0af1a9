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

enum rule_kind { RULE_MATCH, RULE_IF, RULE_ENDIF };

struct rule {
    enum rule_kind kind;
    bool negate;
    pcre2_code *re;
    char *result;          /* RULE_MATCH only */
    size_t skip_to;        /* RULE_IF: index after the matching endif */
    int line;
};

static void pcre_rule_free(void *rule)
{
    struct rule *r = rule;
    pcre2_code_free(r->re);
    free(r->result);
}

struct pcre_table {
    struct rule *rules;
    size_t n, cap;
    uint32_t max_groups;   /* sizes the match data so every $N is available */
    pcre2_match_data *md;
    struct map_ifs ifs;
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
static int check_result(const struct rule *r, const char *path, struct strbuf *err)
{
    uint32_t groups = 0;
    pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &groups);
    for (const char *p = r->result; (p = strchr(p, '$')) != NULL;) {
        unsigned n;
        size_t len;
        if (p[1] == '$') {
            p += 2;
        } else if ((len = parse_ref(p + 1, &n)) > 0) {
            if (r->negate) {
                sb_appendf(err, "%s:%d: $%u in the result of a !/pattern/, which captures nothing",
                           path, r->line, n);
                return -1;
            }
            if (n > groups) {
                sb_appendf(err, "%s:%d: $%u but the pattern has %u group%s", path, r->line, n,
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

static int parse_endif(struct pcre_table *t, struct rule *r, const char *rest,
                       const char *path, struct strbuf *err)
{
    size_t opener;
    if (map_ifs_close(&t->ifs, rest, path, r->line, &opener, err) < 0)
        return -1;
    r->kind = RULE_ENDIF;
    t->rules[opener].skip_to = t->n + 1;
    return 0;
}

/* The rest of an if line or a rule, after the pattern. */
static int parse_tail(struct pcre_table *t, struct rule *r, bool is_if, const char *p,
                      const char *path, struct strbuf *err)
{
    if (is_if) {
        if (map_ifs_open(&t->ifs, t->n, p, path, r->line, err) < 0)
            return -1;
        r->kind = RULE_IF;
        return 0;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (!*p) {
        sb_appendf(err, "%s:%d: missing result after the pattern", path, r->line);
        return -1;
    }
    r->kind = RULE_MATCH;
    r->result = xstrdup(p);
    return check_result(r, path, err);
}

/* One logical line: a rule, "if [!]/re/" or "endif". */
static int parse_rule(struct pcre_table *t, char *text, int line, const char *path,
                      struct strbuf *err)
{
    struct rule r = { .line = line };
    char *p = text;
    int rc;
    if (map_is_keyword(p, "endif")) {
        rc = parse_endif(t, &r, p + 5, path, err);
    } else {
        bool is_if = map_is_keyword(p, "if");
        if (is_if)
            for (p += 2; isspace((unsigned char)*p); p++)
                ;
        if (*p == '!') {
            r.negate = true;
            p++;
        }
        if (!(r.re = parse_regex(&p, path, line, err)))
            return -1;
        rc = parse_tail(t, &r, is_if, p, path, err);
    }
    if (rc < 0) {
        pcre2_code_free(r.re);
        free(r.result);
        return -1;
    }
    uint32_t groups = 0;
    if (r.re && pcre2_pattern_info(r.re, PCRE2_INFO_CAPTURECOUNT, &groups) == 0 && groups > t->max_groups)
        t->max_groups = groups;
    t->rules[t->n++] = r;
    return 0;
}

/* One logical line of table t (a map_line_fn). */
static int add_rule(void *table, char *text, int line, const char *path, struct strbuf *err)
{
    struct pcre_table *t = table;
    void *rules = map_rules_room(t->rules, t->n, &t->cap, sizeof(*t->rules), PCRE_MAX_RULES,
                                 path, line, err);
    if (!rules)
        return -1;
    t->rules = rules;
    return parse_rule(t, text, line, path, err);
}

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

static int pcre_lookup(struct map *m, const char *key, struct strbuf *result)
{
    struct pcre_table *t = m->priv;
    size_t len = strlen(key);
    for (size_t i = 0; i < t->n; i++) {
        struct rule *r = &t->rules[i];
        if (r->kind == RULE_ENDIF)
            continue;
        int rc = pcre2_match(r->re, (PCRE2_SPTR)key, len, 0, 0, t->md, NULL);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
            /* e.g. the match limit: an answer we cannot give, not "no match" */
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            msg_warn("%s, line %d: matching \"%.100s\" failed: %s", m->spec, r->line, key,
                     (char *)msg);
            return -1;
        }
        bool hit = (rc >= 0) != r->negate;
        if (r->kind == RULE_IF) {
            if (!hit)
                i = r->skip_to - 1;
            continue;
        }
        if (!hit)
            continue;
        if (substitute(r->result, key, t->md, result) < 0) {
            msg_warn("%s, line %d: result for \"%.100s\" longer than %d bytes", m->spec, r->line,
                     key, PCRE_RESULT_LIMIT);
            return -1;
        }
        return 1;
    }
    return 0;
}

static void pcre_close(struct map *m)
{
    struct pcre_table *t = m->priv;
    map_rules_free(t->rules, t->n, sizeof(*t->rules), pcre_rule_free);
    if (t->md)
        pcre2_match_data_free(t->md);
    free(t);
}

int map_pcre_open(struct map *m, struct strbuf *err)
{
    struct pcre_table *t = xcalloc(1, sizeof(*t));
    int rc = map_reader_each(m->name, add_rule, t, err);
    if (rc == 0)
        rc = map_ifs_end(&t->ifs, m->name, err);
    if (rc == 0 && !(t->md = pcre2_match_data_create(t->max_groups + 1, NULL)))
        msg_fatal("%s: out of memory for match data", m->spec);
    return map_opened(m, t, rc, pcre_lookup, pcre_close);
}
