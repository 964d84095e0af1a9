/* rewrite_header.c: the addresses inside a message header's value (RFC
 * 5322 address lists: display names, <angle addresses>, comments, quoted
 * strings, groups, folding) found and passed through rewrite_address(),
 * with everything around them copied byte for byte, so that a header only
 * changes where an address does. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rewrite.h"
#include "strbuf.h"
#include "util.h"

#define HEADER_ADDR_MAX 2048       /* longer "addresses" are left alone */

unsigned rewrite_header_class(const char *name, size_t len)
{
    static const char *const senders[] = {
        "From", "Sender", "Reply-To", "Return-Path", "Errors-To", "Return-Receipt-To",
        "Resent-From", "Resent-Sender", "Resent-Reply-To",
    };
    static const char *const rcpts[] = {
        "To", "Cc", "Bcc", "Apparently-To", "Resent-To", "Resent-Cc", "Resent-Bcc",
    };
    for (size_t i = 0; i < sizeof(senders) / sizeof(senders[0]); i++)
        if (strlen(senders[i]) == len && strncasecmp(name, senders[i], len) == 0)
            return REWRITE_HDR_SENDER;
    for (size_t i = 0; i < sizeof(rcpts) / sizeof(rcpts[0]); i++)
        if (strlen(rcpts[i]) == len && strncasecmp(name, rcpts[i], len) == 0)
            return REWRITE_HDR_RCPT;
    return 0;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The end of a quoted string or comment starting at s[i]; len when it
 * does not end. */
static size_t skip_quoted(const char *s, size_t i, size_t len)
{
    if (s[i] == '"') {
        for (i++; i < len && s[i] != '"'; i++)
            if (s[i] == '\\' && i + 1 < len)
                i++;
        return i < len ? i + 1 : len;
    }
    int depth = 0;
    for (; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len)
            i++;
        else if (s[i] == '(')
            depth++;
        else if (s[i] == ')' && --depth == 0)
            return i + 1;
    }
    return len;
}

/* The end of a domain literal "[dtext]" starting at s[i], or 0 when what
 * follows the '[' is not one (then the bracket is an ordinary character). */
static size_t literal_end(const char *s, size_t i, size_t len)
{
    for (size_t k = i + 1; k < len; k++) {
        if (s[k] == ']')
            return k + 1;
        if ((unsigned char)s[k] <= 32 || s[k] == 127 || strchr("[\\\",;<>()", s[k]))
            return 0;
    }
    return 0;
}

/* Quotes in pairs (a backslash escapes the next byte). */
static bool quotes_balanced(const char *s, size_t len)
{
    bool quoted = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' && quoted)
            i++;
        else if (s[i] == '"')
            quoted = !quoted;
    }
    return !quoted;
}

struct scan {
    unsigned cls;
    const char *remote_domain;
    struct strbuf *out;
    bool changed;
    int error;
};

/* Rewrite the address s[0..len) and append what it becomes. */
static void put_address(struct scan *sc, const char *s, size_t len)
{
    bool ok = len > 0 && len <= HEADER_ADDR_MAX && s[0] != '@' && quotes_balanced(s, len);
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)s[i] >= 32 && s[i] != 127;
    if (!ok || sc->error) {
        sb_append(sc->out, s, len);
        return;
    }
    struct strbuf addr = STRBUF_INIT(0), result = STRBUF_INIT(0);
    sb_append(&addr, s, len);
    if (sc->remote_domain && *sc->remote_domain && !memchr(s, '@', len))
        sb_appendf(&addr, "@%s", sc->remote_domain);
    if (rewrite_address(sb_str(&addr), sc->cls, &result) < 0) {
        sc->error = -1;
        sb_append(sc->out, s, len);
    } else if (result.len == len && memcmp(result.data, s, len) == 0) {
        sb_append(sc->out, s, len);
    } else {
        sb_append(sc->out, result.data, result.len);
        sc->changed = true;
    }
    sb_free(&addr);
    sb_free(&result);
}

/* One element of the list (between separators): "Name <addr>" has its
 * angle address rewritten; a bare addr-spec (comments around it allowed)
 * is rewritten whole; anything else is copied. */
static void element(struct scan *sc, const char *s, size_t len)
{
    size_t lt = len, gt = len;
    for (size_t i = 0; i < len;) {
        if (s[i] == '"' || s[i] == '(') {
            i = skip_quoted(s, i, len);
        } else if (s[i] == '<' && lt == len) {
            lt = i;
            i++;
        } else if (s[i] == '>' && lt < len) {
            gt = i;
            break;
        } else {
            i++;
        }
    }
    if (lt < len) {
        if (gt == len) {             /* no closing bracket: leave it */
            sb_append(sc->out, s, len);
            return;
        }
        size_t a = lt + 1;
        if (a < gt && s[a] == '@') { /* a source route stays as it is */
            const char *colon = memchr(s + a, ':', gt - a);
            if (!colon) {
                sb_append(sc->out, s, len);
                return;
            }
            a = (size_t)(colon - s) + 1;
        }
        sb_append(sc->out, s, a);
        put_address(sc, s + a, gt - a);
        sb_append(sc->out, s + gt, len - gt);
        return;
    }
    /* leading blanks and comments, the address, trailing blanks and comments */
    size_t start = 0;
    while (start < len && (blank(s[start]) || s[start] == '('))
        start = s[start] == '(' ? skip_quoted(s, start, len) : start + 1;
    size_t end = start;
    while (end < len && !blank(s[end]) && s[end] != '(')
        end = s[end] == '"' ? skip_quoted(s, end, len) : end + 1;
    size_t rest = end;
    while (rest < len && (blank(s[rest]) || s[rest] == '('))
        rest = s[rest] == '(' ? skip_quoted(s, rest, len) : rest + 1;
    if (end == start || rest != len) {   /* a phrase without <>, or nothing */
        sb_append(sc->out, s, len);
        return;
    }
    sb_append(sc->out, s, start);
    put_address(sc, s + start, end - start);
    sb_append(sc->out, s + end, len - end);
}

int rewrite_header_value(const char *value, size_t len, unsigned cls, const char *remote_domain,
                         struct strbuf *out)
{
    struct scan sc = { cls, remote_domain, out, false, 0 };
    sb_reset(out);
    size_t start = 0;
    bool in_angle = false;
    for (size_t i = 0; i <= len;) {
        if (i < len && (value[i] == '"' || value[i] == '(')) {
            i = skip_quoted(value, i, len);
            continue;
        }
        if (i < len && value[i] == '[') {     /* a domain literal may hold ':' */
            size_t close = literal_end(value, i, len);
            if (close) {
                i = close;
                continue;
            }
        }
        if (i < len && value[i] == '<')
            in_angle = true;
        else if (i < len && value[i] == '>')
            in_angle = false;
        /* ',' and ';' end an element; ':' outside <> ends a group's name */
        if (i == len || (!in_angle && (value[i] == ',' || value[i] == ';' || value[i] == ':'))) {
            if (i < len && value[i] == ':') {
                sb_append(out, value + start, i - start + 1);     /* the group name */
            } else {
                element(&sc, value + start, i - start);
                if (i < len)
                    sb_appendc(out, value[i]);
            }
            start = i + 1;
        }
        i++;
    }
    if (sc.error)
        return -1;
    return sc.changed ? 1 : 0;
}
