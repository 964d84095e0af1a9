/* address.c: the RFC 5321 address parser (see address.h). It is strict about
 * characters and lengths and lenient only where real mail needs it (dots in
 * local parts, a trailing dot on the domain, '_' in labels). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "strbuf.h"
#include "util.h"

/* RFC 5322 atext without ALPHA / DIGIT. */
static bool is_atext(unsigned char c)
{
    return isalnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        size_t n;
        unsigned min;
        if (c == 0)
            return false;
        if (c < 0x80) { p++; continue; }
        if (c >= 0xc2 && c <= 0xdf) { n = 1; min = 0x80; c &= 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { n = 2; min = 0x800; c &= 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; min = 0x10000; c &= 0x07; }
        else return false;
        if ((size_t)(end - p) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

/* One label: 1..63 of [A-Za-z0-9_-] (and UTF-8 bytes), no '-' at either end. */
static bool label_valid(const char *s, size_t n, bool utf8)
{
    if (n == 0 || n > ADDRESS_LABEL_MAX || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '_')
            continue;
        if (c >= 0x80 && utf8)
            continue;
        return false;
    }
    return true;
}

/* "[1.2.3.4]" or "[IPv6:...]"; general address literals have no route to them. */
static bool literal_valid(const char *s, size_t n)
{
    char buf[INET6_ADDRSTRLEN + 8];
    unsigned char bin[16];
    if (n < 3 || s[0] != '[' || s[n - 1] != ']' || n - 2 >= sizeof(buf))
        return false;
    memcpy(buf, s + 1, n - 2);
    buf[n - 2] = 0;
    if (strncasecmp(buf, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, buf + 5, bin) == 1;
    return inet_pton(AF_INET, buf, bin) == 1;
}

bool address_domain_valid(const char *domain, size_t len, bool utf8)
{
    if (len > 0 && domain[0] == '[')
        return literal_valid(domain, len);
    if (len > 0 && domain[len - 1] == '.')
        len--;                              /* one trailing dot is the root */
    if (len == 0 || len > ADDRESS_DOMAIN_MAX)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || domain[i] == '.') {
            if (!label_valid(domain + start, i - start, utf8))
                return false;
            start = i + 1;
        }
    }
    return true;
}

char *address_domain_normalize(const char *domain)
{
    char *d = xstrdup(domain);
    size_t n = strlen(d);
    if (n > 1 && d[n - 1] == '.')
        d[n - 1] = 0;
    return str_lower(d);
}

/* Source route "@a,@b:" at the start of s; returns bytes used, -1 if bad. */
static long skip_route(const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        if (i >= n || s[i] != '@')
            return -1;
        size_t start = ++i;
        while (i < n && s[i] != ',' && s[i] != ':')
            i++;
        if (i >= n || !address_domain_valid(s + start, i - start, false))
            return -1;
        if (s[i++] == ':')
            return (long)i;
    }
}

/* Quoted string at s (s[0] == '"'): appends the unquoted text to out; returns
 * bytes used including both quotes, -1 if malformed. */
static long parse_quoted(const char *s, size_t n, bool utf8, struct strbuf *out)
{
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return (long)(i + 1);
        if (c == '\\') {
            if (++i >= n)
                return -1;
            c = (unsigned char)s[i];
            if (c < 32 || c == 127)
                return -1;
        } else if (c < 32 || c == 127) {
            return -1;
        }
        if (c >= 0x80 && !utf8)
            return -1;
        if (sb_appendc(out, c) < 0)
            return -1;
    }
    return -1;
}

/* Dot-string local part; returns bytes used (0 = none). */
static size_t parse_dot_string(const char *s, size_t n, bool utf8, struct strbuf *out)
{
    size_t i = 0;
    bool seen_atext = false;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (is_atext(c) || (c >= 0x80 && utf8))
            seen_atext = true;
        else if (c != '.')
            break;
        if (sb_appendc(out, c) < 0)
            return 0;
        i++;
    }
    return seen_atext ? i : 0;
}

static void address_clear(struct address *a)
{
    memset(a, 0, sizeof(*a));
}

void address_free(struct address *a)
{
    free(a->address);
    free(a->local);
    free(a->local_lc);
    free(a->domain);
    address_clear(a);
}

static void classify_local(struct address *a)
{
    if (strchr(a->local, '%'))
        a->flags |= ADDR_F_PERCENT;
    if (strchr(a->local, '!'))
        a->flags |= ADDR_F_BANG;
    if (strchr(a->local, '@'))
        a->flags |= ADDR_F_AT;
}

/* Fill *a from the mailbox text s (route and brackets already removed). */
static enum address_error parse_mailbox(const char *s, size_t n, unsigned opts,
                                        struct address *a, const char **why)
{
    bool utf8 = (opts & ADDR_ALLOW_UTF8) != 0;
    struct strbuf local = STRBUF_INIT(ADDRESS_LOCAL_MAX);
    long used;

    if (n > 0 && s[0] == '"') {
        used = parse_quoted(s, n, utf8, &local);
        a->flags |= ADDR_F_QUOTED;
    } else {
        used = (long)parse_dot_string(s, n, utf8, &local);
    }
    if (used <= 0 || ((a->flags & ADDR_F_QUOTED) && local.len == 0)) {
        sb_free(&local);
        *why = "malformed local part";
        return ADDR_ERR_SYNTAX;
    }
    const char *rest = s + used;
    size_t restlen = n - (size_t)used;
    if (restlen == 0) {
        if (!(opts & ADDR_ALLOW_NODOMAIN)) {
            sb_free(&local);
            *why = "missing domain";
            return ADDR_ERR_SYNTAX;
        }
        a->flags |= ADDR_F_NODOMAIN;
    } else if (rest[0] != '@' || !address_domain_valid(rest + 1, restlen - 1, utf8)) {
        sb_free(&local);
        *why = "malformed domain";
        return ADDR_ERR_SYNTAX;
    } else if (rest[1] == '[') {
        a->flags |= ADDR_F_LITERAL;
    }
    a->local = xstrdup(sb_str(&local));
    sb_free(&local);
    a->local_lc = str_lower(xstrdup(a->local));
    if (restlen) {
        size_t dlen = restlen - 1;
        if (dlen > 1 && rest[restlen - 1] == '.')
            dlen--;
        a->domain = str_lower(xstrndup(rest + 1, dlen));
        a->address = xstrndup(s, (size_t)used + 1 + dlen);
    } else {
        a->domain = xstrdup("");
        a->address = xstrndup(s, n);
    }
    classify_local(a);
    return ADDR_OK;
}

/* Checks every byte once: no NUL or control characters, UTF-8 only if allowed. */
static enum address_error check_bytes(const char *s, size_t n, unsigned opts,
                                      unsigned *flags, const char **why)
{
    bool high = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 32 || c == 127) {
            *why = "control character in address";
            return ADDR_ERR_SYNTAX;
        }
        if (c >= 0x80)
            high = true;
    }
    if (!high)
        return ADDR_OK;
    if (!utf8_valid(s, n)) {
        *why = "malformed UTF-8 in address";
        return ADDR_ERR_BAD_UTF8;
    }
    if (!(opts & ADDR_ALLOW_UTF8)) {
        *why = "UTF-8 address without SMTPUTF8";
        return ADDR_ERR_UTF8;
    }
    *flags |= ADDR_F_UTF8;
    return ADDR_OK;
}

enum address_error address_parse(const char *text, size_t len, unsigned opts,
                                 struct address *a, const char **why)
{
    const char *dummy;
    unsigned flags = 0;
    enum address_error err;

    if (!why)
        why = &dummy;
    address_clear(a);
    if (len > ADDRESS_MAX_LEN) {
        *why = "address too long";
        return ADDR_ERR_TOO_LONG;
    }
    if ((err = check_bytes(text, len, opts, &flags, why)) != ADDR_OK)
        return err;
    if (len >= 2 && text[0] == '<' && text[len - 1] == '>') {
        flags |= ADDR_F_BRACKETS;
        text++;
        len -= 2;
    } else if (!(opts & ADDR_ALLOW_BARE) || len == 0 || text[0] == '<') {
        *why = "address must be enclosed in <>";
        return ADDR_ERR_SYNTAX;
    }
    if (len == 0) {
        if (!(opts & ADDR_ALLOW_NULL)) {
            *why = "null address not allowed here";
            return ADDR_ERR_SYNTAX;
        }
        a->address = xstrdup("");
        a->local = xstrdup("");
        a->local_lc = xstrdup("");
        a->domain = xstrdup("");
        a->flags = flags | ADDR_F_NULL;
        return ADDR_OK;
    }
    if (text[0] == '@') {
        long used = skip_route(text, len);
        if (used < 0) {
            *why = "malformed source route";
            return ADDR_ERR_SYNTAX;
        }
        flags |= ADDR_F_ROUTE;
        text += used;
        len -= (size_t)used;
    }
    a->flags = flags;
    err = parse_mailbox(text, len, opts, a, why);
    if (err != ADDR_OK)
        address_free(a);
    return err;
}

int address_unroute(const char *local, unsigned ops, char **next_local, char **next_domain)
{
    const char *sep = (ops & ADDR_ROUTE_AT) ? strrchr(local, '@') : NULL;
    if (!sep && (ops & ADDR_ROUTE_PERCENT))
        sep = strrchr(local, '%');
    *next_local = *next_domain = NULL;
    if (sep) {
        if (sep == local || sep[1] == 0)
            return -1;
        *next_local = xstrndup(local, (size_t)(sep - local));
        *next_domain = address_domain_normalize(sep + 1);
        return 1;
    }
    const char *bang = (ops & ADDR_ROUTE_BANG) ? strchr(local, '!') : NULL;
    if (!bang)
        return 0;
    if (bang == local || bang[1] == 0)
        return -1;
    char *host = xstrndup(local, (size_t)(bang - local));
    *next_domain = address_domain_normalize(host);
    free(host);
    *next_local = xstrdup(bang + 1);
    return 1;
}

int address_quote_local(const char *local, struct strbuf *out)
{
    /* what the parser reads back as a dot-string: atext, UTF-8 and dots,
     * with at least one that is not a dot */
    bool plain = strspn(local, ".") < strlen(local);
    for (const char *p = local; *p && plain; p++)
        plain = is_atext((unsigned char)*p) || *p == '.' || (unsigned char)*p >= 0x80;
    if (plain)
        return sb_appends(out, local);
    if (sb_appendc(out, '"') < 0)
        return -1;
    for (const char *p = local; *p; p++) {
        if ((*p == '"' || *p == '\\') && sb_appendc(out, '\\') < 0)
            return -1;
        if (sb_appendc(out, *p) < 0)
            return -1;
    }
    return sb_appendc(out, '"');
}
