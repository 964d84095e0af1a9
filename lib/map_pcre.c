/* map_pcre.c: pcre: (and regexp:) tables with PCRE2: rules "/regex/flags
 * result" tried in order, "!/regex/ result" for non-matches, "if /re/" ...
 * "endif" blocks, and $1..$9 substitution of captured text in the result. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "maps_impl.h"
#include "util.h"

#define PCRE_MAX_RULES 100000
#define PCRE_MAX_DEPTH 100
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

struct pcre_table {
    struct rule *rules;
    size_t n;
    pcre2_match_data *md;
};

/* Parse "/pattern/flags" at *p (the delimiter is the first character). */
static pcre2_code *parse_regex(char **p, const char *path, int line, struct strbuf *err)
{
    char delim = **p;
    if (!delim || isalnum((unsigned char)delim) || isspace((unsigned char)delim)) {
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
        sb_appendf(err, "%s:%d: unterminated pattern", path, line);
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
            sb_appendf(err, "%s:%d: unknown pattern flag '%c'", path, line, *f);
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

static int parse_rule(struct pcre_table *t, char *text, int line, size_t *stack, int *depth,
                      const char *path, struct strbuf *err)
{
    struct rule r = { .line = line };
    char *p = text;
    if (strncasecmp(p, "endif", 5) == 0 && (!p[5] || isspace((unsigned char)p[5]))) {
        if (*depth == 0) {
            sb_appendf(err, "%s:%d: endif without if", path, line);
            return -1;
        }
        r.kind = RULE_ENDIF;
        t->rules[stack[--*depth]].skip_to = t->n + 1;
    } else {
        bool is_if = strncasecmp(p, "if", 2) == 0 && isspace((unsigned char)p[2]);
        if (is_if)
            p += 3;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '!') {
            r.negate = true;
            p++;
        }
        if (!(r.re = parse_regex(&p, path, line, err)))
            return -1;
        while (isspace((unsigned char)*p))
            p++;
        if (is_if) {
            if (*depth >= PCRE_MAX_DEPTH) {
                sb_appendf(err, "%s:%d: if blocks nested too deep", path, line);
                pcre2_code_free(r.re);
                return -1;
            }
            r.kind = RULE_IF;
            stack[(*depth)++] = t->n;
        } else {
            if (!*p) {
                sb_appendf(err, "%s:%d: missing result after the pattern", path, line);
                pcre2_code_free(r.re);
                return -1;
            }
            r.kind = RULE_MATCH;
            r.result = xstrdup(p);
        }
    }
    t->rules[t->n++] = r;
    return 0;
}

/* Append the result with $N replaced by capture N. */
static int substitute(const char *tmpl, const char *subject, pcre2_match_data *md, int ncap,
                      struct strbuf *out)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    for (const char *p = tmpl; *p; p++) {
        if (*p != '$') {
            if (sb_appendc(out, *p) < 0)
                return -1;
            continue;
        }
        if (p[1] == '$') {
            sb_appendc(out, '$');
            p++;
            continue;
        }
        int n = -1;
        if (isdigit((unsigned char)p[1])) {
            n = p[1] - '0';
            p++;
        } else if (p[1] == '{' && isdigit((unsigned char)p[2]) && p[3] == '}') {
            n = p[2] - '0';
            p += 3;
        }
        if (n < 0) {
            sb_appendc(out, '$');
            continue;
        }
        if (n < ncap && ov[2 * n] != PCRE2_UNSET
            && sb_append(out, subject + ov[2 * n], ov[2 * n + 1] - ov[2 * n]) < 0)
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
            msg_warn("%s, line %d: matching failed (error %d)", m->spec, r->line, rc);
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
        if (r->negate)
            return sb_appends(result, r->result) < 0 ? -1 : 1;
        return substitute(r->result, key, t->md, rc, result) < 0 ? -1 : 1;
    }
    return 0;
}

static void pcre_close(struct map *m)
{
    struct pcre_table *t = m->priv;
    for (size_t i = 0; i < t->n; i++) {
        pcre2_code_free(t->rules[i].re);
        free(t->rules[i].result);
    }
    free(t->rules);
    if (t->md)
        pcre2_match_data_free(t->md);
    free(t);
}

int map_pcre_open(struct map *m, struct strbuf *err)
{
    FILE *fp = fopen(m->name, "re");
    if (!fp) {
        sb_appendf(err, "cannot open %s: %s", m->name, strerror(errno));
        return -1;
    }
    struct pcre_table *t = xcalloc(1, sizeof(*t));
    size_t cap = 0, stack[PCRE_MAX_DEPTH];
    int depth = 0, lineno = 0, rc = 0;
    char *line = NULL;
    size_t linecap = 0;
    ssize_t n;
    /* One rule per line; continuation lines (leading white space) are joined. */
    struct strbuf logical = STRBUF_INIT(MAP_LINE_LIMIT);
    int start = 0;
    for (bool eof = false; rc == 0 && !eof;) {
        n = getline(&line, &linecap, fp);
        char *p = NULL;
        if (n < 0) {
            eof = true;
        } else {
            lineno++;
            line[strcspn(line, "\r\n")] = 0;
            p = line;
            while (isspace((unsigned char)*p))
                p++;
            if (*p == 0 || *p == '#')
                continue;
            if (p != line && logical.len) {
                if (sb_appendc(&logical, ' ') < 0 || sb_appends(&logical, p) < 0) {
                    sb_appendf(err, "%s:%d: line too long", m->name, lineno);
                    rc = -1;
                }
                continue;
            }
        }
        if (logical.len) {
            if (t->n == cap) {
                if (cap >= PCRE_MAX_RULES) {
                    sb_appendf(err, "%s:%d: more than %d rules", m->name, start, PCRE_MAX_RULES);
                    rc = -1;
                    break;
                }
                cap = cap ? cap * 2 : 16;
                t->rules = xrealloc(t->rules, cap * sizeof(*t->rules));
            }
            rc = parse_rule(t, logical.data, start, stack, &depth, m->name, err);
        }
        sb_reset(&logical);
        if (p && rc == 0 && sb_appends(&logical, p) < 0) {
            sb_appendf(err, "%s:%d: line too long", m->name, lineno);
            rc = -1;
        }
        start = lineno;
    }
    if (rc == 0 && depth > 0) {
        sb_appendf(err, "%s: if without endif (line %d)", m->name, t->rules[stack[depth - 1]].line);
        rc = -1;
    }
    free(line);
    sb_free(&logical);
    fclose(fp);
    t->md = pcre2_match_data_create(10, NULL);
    m->priv = t;
    if (rc < 0) {
        pcre_close(m);
        m->priv = NULL;
        return -1;
    }
    m->lookup = pcre_lookup;
    m->close = pcre_close;
    return 0;
}
