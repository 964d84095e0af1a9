/* mac_expand.c: the one $name expander (see mac_expand.h). The template is
 * walked by pointer and length, so conditional text is expanded in place
 * without copies; every nested expansion costs one level of the caller's
 * depth bound, which is what stops a main.cf loop such as a = $b, b = $a. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "mac_expand.h"

struct mac_state {
    const struct mac_expand_spec *spec;
    int status;
};

static bool mac_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static void mac_text(struct mac_state *st, struct strbuf *out, const char *p, const char *end,
                     int depth);

static void mac_append(struct mac_state *st, struct strbuf *out, const char *p, size_t n)
{
    if (sb_append(out, p, n) < 0)
        st->status |= MAC_EXP_ERROR;
}

/* A defined value where the reference stands. */
static void mac_value(struct mac_state *st, struct strbuf *out, const char *name, size_t len,
                      const char *v, int depth)
{
    const struct mac_expand_spec *spec = st->spec;
    if (spec->flags & MAC_EXP_RECURSE)
        mac_text(st, out, v, v + strlen(v), depth + 1);
    else if (spec->filter) {
        if (spec->filter(out, name, len, v, spec->context) < 0)
            st->status |= MAC_EXP_ERROR;
    } else
        mac_append(st, out, v, strlen(v));
}

/* Is the value non-empty? Recursive values are judged once expanded. */
static bool mac_nonempty(struct mac_state *st, const struct strbuf *out, const char *v, int depth)
{
    if (!v || !*v || !(st->spec->flags & MAC_EXP_RECURSE))
        return v && *v;
    struct strbuf tmp = STRBUF_INIT(out->limit);
    struct mac_state sub = { st->spec, 0 };
    mac_text(&sub, &tmp, v, v + strlen(v), depth + 1);
    st->status |= sub.status & MAC_EXP_ERROR;
    bool nonempty = tmp.len > 0;
    sb_free(&tmp);
    return nonempty;
}

/* The inside of ${...} or $(...): name, name?text or name:text. */
static void mac_braced(struct mac_state *st, struct strbuf *out, const char *p, const char *end,
                       int depth)
{
    const char *q = p;
    while (q < end && mac_name_char(*q))
        q++;
    size_t len = (size_t)(q - p);
    if (len == 0 || (q < end && *q != '?' && *q != ':')) {
        st->status |= MAC_EXP_ERROR;
        return;
    }
    const char *v = st->spec->lookup(p, len, st->spec->context);
    if (q == end) {
        if (v)
            mac_value(st, out, p, len, v, depth);
        else
            st->status |= MAC_EXP_UNDEF;
        return;
    }
    bool nonempty = mac_nonempty(st, out, v, depth);
    if ((*q == '?') == nonempty && !(st->status & MAC_EXP_ERROR))
        mac_text(st, out, q + 1, end, depth + 1);
}

static void mac_text(struct mac_state *st, struct strbuf *out, const char *p, const char *end,
                     int depth)
{
    if (depth > st->spec->depth_max) {
        st->status |= MAC_EXP_ERROR;
        return;
    }
    while (p < end && !(st->status & MAC_EXP_ERROR)) {
        if (*p != '$') {
            const char *d = memchr(p, '$', (size_t)(end - p));
            size_t n = d ? (size_t)(d - p) : (size_t)(end - p);
            mac_append(st, out, p, n);
            p += n;
            continue;
        }
        p++;
        if (p < end && *p == '$') {                     /* $$ is one $ */
            mac_append(st, out, p++, 1);
        } else if (p < end && (*p == '{' || *p == '(')) {
            char open = *p, close = open == '{' ? '}' : ')';
            const char *q = ++p;
            int level = 1;
            for (; q < end; q++) {
                if (*q == open)
                    level++;
                else if (*q == close && --level == 0)
                    break;
            }
            if (q >= end) {                             /* unterminated */
                st->status |= MAC_EXP_ERROR;
                return;
            }
            mac_braced(st, out, p, q, depth);
            p = q + 1;
        } else {
            const char *q = p;
            while (q < end && mac_name_char(*q))
                q++;
            if (q == p) {                               /* a $ with no name */
                st->status |= MAC_EXP_ERROR;
                return;
            }
            const char *v = st->spec->lookup(p, (size_t)(q - p), st->spec->context);
            if (v)
                mac_value(st, out, p, (size_t)(q - p), v, depth);
            else
                st->status |= MAC_EXP_UNDEF;
            p = q;
        }
    }
}

int mac_expand(struct strbuf *out, const char *tmpl, const struct mac_expand_spec *spec)
{
    struct mac_state st = { spec, 0 };
    mac_text(&st, out, tmpl, tmpl + strlen(tmpl), 0);
    return st.status;
}

const char *mac_var_find(const struct mac_var *vars, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(vars[i].name) == len && memcmp(vars[i].name, name, len) == 0)
            return vars[i].value;
    return NULL;
}

const char *mac_var_table_lookup(const char *name, size_t len, void *context)
{
    const struct mac_var *vars = context;
    size_t n = 0;
    while (vars[n].name)
        n++;
    return mac_var_find(vars, n, name, len);
}
