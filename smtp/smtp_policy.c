/* smtp_policy.c: parsers of the SMTP client's TLS and SASL settings (see
 * smtp_policy.h). Their input comes from main.cf, from lookup tables and
 * from remote servers' EHLO replies: every token is bounded, every name
 * checked against a fixed list, and a value that does not parse is an
 * error, never a silent downgrade of security. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp_policy.h"
#include "util.h"

#define SEPARATORS ", \t\r\n"
#define TOKEN_MAX 600

/* The next token of s (separated by any of seps) into tok; false at the end.
 * A token longer than TOKEN_MAX - 1 is cut, and *cut says so. */
static bool next_token(const char **s, const char *seps, char tok[TOKEN_MAX], bool *cut)
{
    const char *p = *s + strspn(*s, seps);
    size_t n = strcspn(p, seps);
    if (n == 0)
        return false;
    *cut = n >= TOKEN_MAX;
    size_t keep = *cut ? TOKEN_MAX - 1 : n;
    memcpy(tok, p, keep);
    tok[keep] = 0;
    *s = p + n;
    return true;
}

/* ---- levels ---- */

static const char *const level_names[] = {
    [SMTP_TLS_NONE] = "none", [SMTP_TLS_MAY] = "may", [SMTP_TLS_ENCRYPT] = "encrypt",
    [SMTP_TLS_VERIFY] = "verify", [SMTP_TLS_SECURE] = "secure", [SMTP_TLS_DANE] = "dane",
    [SMTP_TLS_DANE_ONLY] = "dane-only",
};

const char *smtp_tls_level_name(enum smtp_tls_level level)
{
    return (unsigned)level < sizeof(level_names) / sizeof(level_names[0]) ? level_names[level] : "?";
}

int smtp_tls_level_parse(const char *name, enum smtp_tls_level *level, struct strbuf *why)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcasecmp(name, level_names[i]) == 0) {
            *level = (enum smtp_tls_level)i;
            return 0;
        }
    if (strcasecmp(name, "fingerprint") == 0)
        sb_appendf(why, "TLS security level \"%.40s\" is not supported", name);
    else
        sb_appendf(why, "invalid TLS security level \"%.40s\"", name);
    return -1;
}

/* ---- protocols ---- */

static const struct { const char *name; unsigned bit; } protocol_names[] = {
    { "SSLv2", SMTP_TLS_PROTO_SSLV2 }, { "SSLv3", SMTP_TLS_PROTO_SSLV3 },
    { "TLSv1", SMTP_TLS_PROTO_TLSV1 }, { "TLSv1.1", SMTP_TLS_PROTO_TLSV1_1 },
    { "TLSv1.2", SMTP_TLS_PROTO_TLSV1_2 }, { "TLSv1.3", SMTP_TLS_PROTO_TLSV1_3 },
};

static unsigned protocol_bit(const char *name)
{
    for (size_t i = 0; i < sizeof(protocol_names) / sizeof(protocol_names[0]); i++)
        if (strcasecmp(name, protocol_names[i].name) == 0)
            return protocol_names[i].bit;
    return 0;
}

int smtp_tls_protocols_parse(const char *value, unsigned *mask, struct strbuf *why)
{
    unsigned include = 0, exclude = 0, low = SMTP_TLS_PROTO_SSLV2, high = SMTP_TLS_PROTO_TLSV1_3;
    char tok[TOKEN_MAX];
    bool cut;
    const char *p = value;
    while (next_token(&p, SEPARATORS ":", tok, &cut)) {
        const char *name = tok;
        int kind = 0;                       /* 0 include, 1 exclude, 2 lower bound, 3 upper bound */
        if (tok[0] == '!') {
            kind = 1;
            name = tok + 1;
        } else if (strncmp(tok, ">=", 2) == 0) {
            kind = 2;
            name = tok + 2;
        } else if (strncmp(tok, "<=", 2) == 0) {
            kind = 3;
            name = tok + 2;
        }
        unsigned bit = cut ? 0 : protocol_bit(name);
        if (!bit) {
            sb_appendf(why, "unknown TLS protocol \"%.40s\"", name);
            return -1;
        }
        switch (kind) {
        case 0: include |= bit; break;
        case 1: exclude |= bit; break;
        case 2: low = bit; break;
        default: high = bit; break;
        }
    }
    unsigned allowed = include ? include : SMTP_TLS_PROTO_ALL;
    allowed &= ~exclude;
    for (unsigned bit = 1; bit <= SMTP_TLS_PROTO_ALL; bit <<= 1)
        if (bit < low || bit > high)
            allowed &= ~bit;
    /* SSLv2 alone is no usable protocol. */
    if ((allowed & ~SMTP_TLS_PROTO_SSLV2) == 0) {
        sb_appendf(why, "no TLS protocol is left by \"%.80s\"", value);
        return -1;
    }
    *mask = allowed & ~SMTP_TLS_PROTO_SSLV2;
    return 0;
}

unsigned smtp_tls_protocols_lowest(unsigned mask)
{
    return mask & (~mask + 1);
}

unsigned smtp_tls_protocols_highest(unsigned mask)
{
    unsigned high = 0;
    for (unsigned bit = 1; bit <= SMTP_TLS_PROTO_ALL; bit <<= 1)
        if (mask & bit)
            high = bit;
    return high;
}

/* ---- ciphers ---- */

bool smtp_tls_grade_valid(const char *grade)
{
    static const char *const grades[] = { "high", "medium", "low", "export", "null" };
    for (size_t i = 0; i < sizeof(grades) / sizeof(grades[0]); i++)
        if (strcasecmp(grade, grades[i]) == 0)
            return true;
    return false;
}

bool smtp_tls_exclude_valid(const char *value)
{
    if (strlen(value) >= SMTP_TLS_ATTR_MAX)
        return false;
    for (const char *p = value; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || strchr("+-_.=:, \t", c)))
            return false;
    }
    return true;
}

/* ---- policies ---- */

/* A host name or pattern: letters, digits, '-', '.', '_' and '*' only. */
static bool name_valid(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '-' || c == '.' || c == '_' || c == '*'))
            return false;
    }
    return true;
}

bool smtp_tls_match_item(const char *list, size_t i, const char **start, size_t *len)
{
    const char *p = list;
    for (size_t k = 0;; k++) {
        p += strspn(p, ":");
        size_t n = strcspn(p, ":");
        if (n == 0)
            return false;
        if (k == i) {
            *start = p;
            *len = n;
            return true;
        }
        p += n;
    }
}

static int match_append(struct smtp_tls_policy *p, const char *value, struct strbuf *why)
{
    const char *item;
    size_t len, used = strlen(p->match);
    for (size_t i = 0; smtp_tls_match_item(value, i, &item, &len); i++)
        if (!name_valid(item, len)) {
            sb_appendf(why, "invalid match pattern \"%.*s\"", (int)(len < 80 ? len : 80), item);
            return -1;
        }
    if (used + 1 + strlen(value) >= sizeof(p->match)) {
        sb_appends(why, "attribute \"match\" is too long");
        return -1;
    }
    if (used)
        p->match[used++] = ':';
    str_copy(p->match + used, sizeof(p->match) - used, value);
    p->has_match = true;
    return 0;
}

/* One name=value attribute of a policy. */
static int policy_attribute(struct smtp_tls_policy *p, const char *tok, struct strbuf *why)
{
    const char *eq = strchr(tok, '=');
    if (!eq || eq == tok) {
        sb_appendf(why, "malformed attribute \"%.60s\": expected name=value", tok);
        return -1;
    }
    size_t nlen = (size_t)(eq - tok);
    const char *value = eq + 1;
    char name[32];
    if (nlen >= sizeof(name)) {
        sb_appendf(why, "invalid attribute name \"%.40s\"", tok);
        return -1;
    }
    memcpy(name, tok, nlen);
    name[nlen] = 0;
    if (!*value) {
        sb_appendf(why, "attribute \"%s\" has an empty value", name);
        return -1;
    }
    bool *seen = NULL;
    if (strcasecmp(name, "protocols") == 0)
        seen = &p->has_protocols;
    else if (strcasecmp(name, "ciphers") == 0)
        seen = &p->has_ciphers;
    else if (strcasecmp(name, "exclude") == 0)
        seen = &p->has_exclude;
    else if (strcasecmp(name, "servername") == 0)
        seen = &p->has_servername;
    if (seen && *seen) {
        sb_appendf(why, "attribute \"%s\" is specified more than once", name);
        return -1;
    }
    if (strcasecmp(name, "match") == 0) {
        if (p->level != SMTP_TLS_VERIFY && p->level != SMTP_TLS_SECURE) {
            sb_appendf(why, "attribute \"match\" is valid only with levels verify and secure, not %s",
                       smtp_tls_level_name(p->level));
            return -1;
        }
        return match_append(p, value, why);
    }
    if (strcasecmp(name, "protocols") == 0) {
        if (smtp_tls_protocols_parse(value, &p->protocols, why) < 0)
            return -1;
    } else if (strcasecmp(name, "ciphers") == 0) {
        if (!smtp_tls_grade_valid(value)) {
            sb_appendf(why, "invalid cipher grade \"%.40s\"", value);
            return -1;
        }
        str_copy(p->ciphers, sizeof(p->ciphers), value);
    } else if (strcasecmp(name, "exclude") == 0) {
        if (!smtp_tls_exclude_valid(value)) {
            sb_appendf(why, "invalid cipher exclusion \"%.60s\"", value);
            return -1;
        }
        str_copy(p->exclude, sizeof(p->exclude), value);
    } else if (strcasecmp(name, "servername") == 0) {
        if (!name_valid(value, strlen(value)) || strchr(value, '*')) {
            sb_appendf(why, "invalid server name \"%.60s\"", value);
            return -1;
        }
        str_copy(p->servername, sizeof(p->servername), value);
    } else {
        sb_appendf(why, "invalid attribute name \"%s\"", name);
        return -1;
    }
    *seen = true;
    return 0;
}

int smtp_tls_policy_parse(const char *value, struct smtp_tls_policy *p, struct strbuf *why)
{
    memset(p, 0, sizeof(*p));
    if (strlen(value) > SMTP_TLS_POLICY_MAX) {
        sb_appends(why, "policy value too long");
        return -1;
    }
    char tok[TOKEN_MAX];
    bool cut;
    const char *s = value;
    if (!next_token(&s, SEPARATORS, tok, &cut)) {
        sb_appends(why, "empty TLS policy");
        return -1;
    }
    if (cut) {
        sb_appends(why, "invalid TLS security level");
        return -1;
    }
    if (smtp_tls_level_parse(tok, &p->level, why) < 0)
        return -1;
    if (p->level == SMTP_TLS_NONE)
        return 0;               /* as Postfix: attributes of "none" do not matter */
    while (next_token(&s, SEPARATORS, tok, &cut)) {
        if (cut) {
            sb_appends(why, "attribute value too long");
            return -1;
        }
        if (policy_attribute(p, tok, why) < 0)
            return -1;
    }
    return 0;
}

/* ---- SASL ---- */

int smtp_sasl_options_parse(const char *value, unsigned *flags, struct strbuf *why)
{
    static const struct { const char *name; unsigned bit; } names[] = {
        { "noanonymous", SMTP_SASL_NOANONYMOUS }, { "noplaintext", SMTP_SASL_NOPLAINTEXT },
        { "noactive", SMTP_SASL_NOACTIVE }, { "nodictionary", SMTP_SASL_NODICTIONARY },
        { "mutual_auth", SMTP_SASL_MUTUAL_AUTH },
    };
    char tok[TOKEN_MAX];
    bool cut;
    const char *p = value;
    *flags = 0;
    while (next_token(&p, SEPARATORS, tok, &cut)) {
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !cut; i++)
            if (strcasecmp(tok, names[i].name) == 0)
                bit = names[i].bit;
        if (!bit) {
            sb_appendf(why, "unknown SASL security option \"%.40s\"", tok);
            return -1;
        }
        *flags |= bit;
    }
    return 0;
}

unsigned smtp_sasl_mechs_allowed(unsigned options)
{
    if (options & (SMTP_SASL_NOPLAINTEXT | SMTP_SASL_NOACTIVE | SMTP_SASL_NODICTIONARY
                   | SMTP_SASL_MUTUAL_AUTH))
        return 0;
    return SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN;
}

unsigned smtp_sasl_mechs_parse(const char *list, size_t len)
{
    unsigned mechs = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && strchr(SEPARATORS, list[i]) && list[i])
            i++;
        size_t start = i;
        while (i < len && list[i] && !strchr(SEPARATORS, list[i]))
            i++;
        size_t n = i - start;
        if (n == 5 && strncasecmp(list + start, "PLAIN", 5) == 0)
            mechs |= SMTP_AUTH_PLAIN;
        else if (n == 5 && strncasecmp(list + start, "LOGIN", 5) == 0)
            mechs |= SMTP_AUTH_LOGIN;
        if (i < len && !list[i])
            break;
    }
    return mechs;
}

const char *smtp_sasl_mech_name(unsigned mech)
{
    return mech == SMTP_AUTH_PLAIN ? "PLAIN" : mech == SMTP_AUTH_LOGIN ? "LOGIN" : "?";
}

unsigned smtp_ehlo_auth_mechs(const char *text, size_t len)
{
    unsigned mechs = 0;
    const char *end = text + len;
    const char *nl = memchr(text, '\n', len);
    while (nl) {
        const char *line = nl + 1;
        nl = memchr(line, '\n', (size_t)(end - line));
        const char *eol = nl ? nl : end;
        if (eol - line > 8 && strncasecmp(line + 4, "AUTH", 4) == 0
            && (line[8] == ' ' || line[8] == '='))
            mechs |= smtp_sasl_mechs_parse(line + 9, (size_t)(eol - line - 9));
    }
    return mechs;
}
