/* smtpd_action.c: the access(5) result and policy reply parsers (see
 * smtpd_action.h). Words are matched without regard to case, as Postfix
 * does; everything is bounded by the input, nothing is allocated. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "smtpd_action.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

size_t smtpd_dsn_prefix_len(const char *t)
{
    size_t i = 0;
    if (t[0] != '2' && t[0] != '4' && t[0] != '5')
        return 0;
    if (t[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (isdigit((unsigned char)t[i]) && i - start < 4)
            i++;
        if (i == start || i - start > 3)
            return 0;
        if (part == 0) {
            if (t[i] != '.')
                return 0;
            i++;
        }
    }
    return (t[i] == 0 || is_space(t[i])) ? i : 0;
}

bool smtpd_header_line_valid(const char *t, size_t len)
{
    size_t i = 0;
    while (i < len && t[i] != ':' && t[i] > 32 && t[i] < 127)
        i++;
    if (i == 0 || i >= len || t[i] != ':')
        return false;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if ((c < 32 && c != '\t') || c == 127)
            return false;
    }
    return true;
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* text after the word: leading white space skipped, trailing trimmed; an
 * enhanced status code at its start goes to a->dsn when want_dsn. */
static void set_text(struct smtpd_access_action *a, const char *p, bool want_dsn)
{
    while (is_space(*p))
        p++;
    if (want_dsn) {
        size_t d = smtpd_dsn_prefix_len(p);
        if (d && d <= ACTION_DSN_MAX) {
            memcpy(a->dsn, p, d);
            a->dsn[d] = 0;
            p += d;
            while (is_space(*p))
                p++;
        }
    }
    size_t n = strlen(p);
    while (n > 0 && (is_space(p[n - 1]) || p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    a->text = p;
    a->text_len = n;
}

void smtpd_access_action_parse(const char *value, struct smtpd_access_action *a)
{
    static const struct { const char *word; enum smtpd_access_kind kind; bool dsn; } words[] = {
        { "OK", ACT_OK, false }, { "PERMIT", ACT_OK, false }, { "DUNNO", ACT_DUNNO, false },
        { "REJECT", ACT_REJECT, true }, { "DEFER", ACT_DEFER, true },
        { "DEFER_IF_PERMIT", ACT_DEFER_IF_PERMIT, true },
        { "DEFER_IF_REJECT", ACT_DEFER_IF_REJECT, true },
        { "DISCARD", ACT_DISCARD, false }, { "HOLD", ACT_HOLD, false },
        { "FILTER", ACT_FILTER, false }, { "PREPEND", ACT_PREPEND, false },
        { "WARN", ACT_WARN, false }, { "INFO", ACT_INFO, false },
        { "REDIRECT", ACT_REDIRECT, false }, { "BCC", ACT_BCC, false },
    };
    memset(a, 0, sizeof(*a));
    a->text = value + strlen(value);     /* "" inside the value */
    const char *p = value;
    while (is_space(*p))
        p++;
    size_t n = 0;
    while (p[n] && !is_space(p[n]))
        n++;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strlen(words[i].word) != n || strncasecmp(p, words[i].word, n) != 0)
            continue;
        a->kind = words[i].kind;
        set_text(a, p + n, words[i].dsn);
        if (a->kind == ACT_FILTER) {
            /* transport:destination, one word */
            const char *colon = memchr(a->text, ':', a->text_len);
            bool spaces = false;
            for (size_t k = 0; k < a->text_len; k++)
                spaces |= is_space(a->text[k]);
            if (!colon || colon == a->text || spaces)
                a->kind = ACT_INVALID;
        } else if (a->kind == ACT_PREPEND) {
            if (!smtpd_header_line_valid(a->text, a->text_len))
                a->kind = ACT_INVALID;
        } else if (a->kind == ACT_REDIRECT || a->kind == ACT_BCC) {
            if (a->text_len == 0)
                a->kind = ACT_INVALID;
        }
        return;
    }
    /* "4NN text" and "5NN text" (a code alone is all-numerical: OK) */
    if (n == 3 && (p[0] == '4' || p[0] == '5') && all_digits(p, 3) && p[n]) {
        const char *t = p + n;
        while (is_space(*t))
            t++;
        if (*t) {
            a->kind = ACT_CODE;
            a->code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
            set_text(a, t, true);
            return;
        }
    }
    const char *rest = p + n;
    while (is_space(*rest) || *rest == '\r' || *rest == '\n')
        rest++;
    if (all_digits(p, n) && !*rest) {     /* the whole result is a number */
        a->kind = ACT_OK;
        return;
    }
    a->kind = n ? ACT_RESTRICTIONS : ACT_INVALID;
    set_text(a, p, false);
}

int smtpd_policy_reply_parse(const char *buf, size_t len, size_t max, const char **action,
                             size_t *action_len, size_t *used)
{
    size_t pos = 0;
    *action = NULL;
    *action_len = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (!nl)
            break;
        size_t end = (size_t)(nl - buf), n = end - pos;
        if (end + 1 > max)
            return -1;
        if (memchr(buf + pos, 0, n))
            return -1;
        if (n > 0 && buf[end - 1] == '\r')
            n--;
        if (n == 0) {
            if (!*action)
                return -1;
            *used = end + 1;
            return 1;
        }
        const char *eq = memchr(buf + pos, '=', n);
        if (!eq)
            return -1;
        size_t klen = (size_t)(eq - (buf + pos));
        if (klen == 6 && memcmp(buf + pos, "action", 6) == 0) {
            *action = eq + 1;
            *action_len = n - klen - 1;
        }
        pos = end + 1;
    }
    return len - pos > max || len > max ? -1 : 0;
}
