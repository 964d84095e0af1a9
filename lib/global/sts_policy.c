/* sts_policy.c: MTA-STS (RFC 8461) parsers: the TXT record, the
 * policy file, a cached policy's header, and mx pattern matching (see
 * sts_policy.h). The input is a remote party's choice: fields are
 * taken by length, never copied unbounded, and nothing is guessed. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sts_policy.h"
#include "util.h"

#define WSP " \t"

const char *sts_mode_name(enum sts_mode mode)
{
    switch (mode) {
    case STS_ENFORCE: return "enforce";
    case STS_TESTING: return "testing";
    default: return "none";
    }
}

/* [s, s + len) with white space removed at both ends. */
static void trim(const char **s, size_t *len)
{
    while (*len && strchr(WSP, (*s)[0]))
        (*s)++, (*len)--;
    while (*len && strchr(WSP, (*s)[*len - 1]))
        (*len)--;
}

static bool equals(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* ---- the TXT record (section 3.1) ---- */

/* One "key = value" field of the record into its parts; false without '='. */
static bool txt_field(const char *s, size_t len, const char **key, size_t *klen,
                      const char **val, size_t *vlen)
{
    const char *eq = memchr(s, '=', len);
    if (!eq)
        return false;
    *key = s;
    *klen = (size_t)(eq - s);
    trim(key, klen);
    *val = eq + 1;
    *vlen = len - (size_t)(eq + 1 - s);
    trim(val, vlen);
    return *klen > 0;
}

int sts_txt_parse(const char *txt, char id[STS_ID_MAX + 1], struct strbuf *why)
{
    id[0] = 0;
    const char *p = txt;
    bool first = true, have_id = false;
    for (size_t field = 0; field < 64; field++) {
        size_t n = strcspn(p, ";");
        const char *s = p, *key, *val;
        size_t len = n, klen, vlen;
        trim(&s, &len);
        if (first) {
            /* "v=STSv1" exactly, case-sensitive (section 3.1) */
            if (!txt_field(s, len, &key, &klen, &val, &vlen) || klen != 1 || key[0] != 'v'
                || vlen != 5 || strncmp(val, "STSv1", 5) != 0)
                return 0;
            first = false;
        } else if (len > 0) {
            if (!txt_field(s, len, &key, &klen, &val, &vlen)) {
                sb_appendf(why, "malformed field \"%.*s\" in the MTA-STS TXT record",
                           (int)(len > 60 ? 60 : len), s);
                return -1;
            }
            if (klen == 2 && strncmp(key, "id", 2) == 0 && !have_id) {
                bool ok = vlen >= 1 && vlen <= STS_ID_MAX;
                for (size_t i = 0; ok && i < vlen; i++)
                    ok = isalnum((unsigned char)val[i]) != 0;
                if (!ok) {
                    sb_appendf(why, "invalid id \"%.*s\" in the MTA-STS TXT record",
                               (int)(vlen > 40 ? 40 : vlen), val);
                    return -1;
                }
                memcpy(id, val, vlen);
                id[vlen] = 0;
                have_id = true;
            }
        }
        if (!p[n])
            break;
        p += n + 1;
    }
    if (!have_id) {
        sb_appends(why, "the MTA-STS TXT record has no id");
        return -1;
    }
    return 1;
}

/* ---- the policy file (section 3.2) ---- */

/* An mx pattern: a domain name of letters, digits, '-' and '.', its labels
 * not empty, optionally "*." before it. */
static bool pattern_valid(const char *s, size_t len)
{
    if (len >= 2 && s[0] == '*' && s[1] == '.') {
        s += 2;
        len -= 2;
    }
    if (len == 0 || len > STS_NAME_MAX - 2 || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.' ? (i + 1 < len && s[i + 1] == '.')
                     : !(isalnum(c) || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static int policy_field(struct sts_policy *p, const char *key, size_t klen, const char *val,
                        size_t vlen, unsigned *seen, struct strbuf *why)
{
    enum { VERSION = 1, MODE = 2, MAX_AGE = 4 };
    if (equals(key, klen, "version")) {
        if (*seen & VERSION)
            return 0;
        *seen |= VERSION;
        if (vlen != 5 || strncmp(val, "STSv1", 5) != 0) {
            sb_appendf(why, "unsupported policy version \"%.*s\"", (int)(vlen > 20 ? 20 : vlen), val);
            return -1;
        }
    } else if (equals(key, klen, "mode")) {
        if (*seen & MODE)
            return 0;
        *seen |= MODE;
        if (vlen == 7 && strncmp(val, "enforce", 7) == 0)
            p->mode = STS_ENFORCE;
        else if (vlen == 7 && strncmp(val, "testing", 7) == 0)
            p->mode = STS_TESTING;
        else if (vlen == 4 && strncmp(val, "none", 4) == 0)
            p->mode = STS_NONE;
        else {
            sb_appendf(why, "invalid policy mode \"%.*s\"", (int)(vlen > 20 ? 20 : vlen), val);
            return -1;
        }
    } else if (equals(key, klen, "max_age")) {
        if (*seen & MAX_AGE)
            return 0;
        *seen |= MAX_AGE;
        long age = 0;
        bool ok = vlen >= 1 && vlen <= 10;
        for (size_t i = 0; ok && i < vlen; i++) {
            ok = isdigit((unsigned char)val[i]) != 0;
            age = age * 10 + (val[i] - '0');
        }
        if (!ok) {
            sb_appendf(why, "invalid max_age \"%.*s\"", (int)(vlen > 20 ? 20 : vlen), val);
            return -1;
        }
        p->max_age = age > STS_MAX_AGE_MAX ? STS_MAX_AGE_MAX : age;
    } else if (equals(key, klen, "mx")) {
        if (!pattern_valid(val, vlen)) {
            sb_appendf(why, "invalid mx pattern \"%.*s\"", (int)(vlen > 60 ? 60 : vlen), val);
            return -1;
        }
        if (p->nmx < STS_MX_MAX) {
            char *dst = p->mx[p->nmx++];
            for (size_t i = 0; i < vlen; i++)
                dst[i] = (char)tolower((unsigned char)val[i]);
            dst[vlen] = 0;
        }
    }
    return 0;
}

int sts_policy_parse(const char *text, size_t len, struct sts_policy *p,
                          struct strbuf *why)
{
    memset(p, 0, sizeof(*p));
    p->max_age = -1;
    if (len > STS_POLICY_SIZE_MAX) {
        sb_appends(why, "policy larger than 64 kB");
        return -1;
    }
    unsigned seen = 0;
    const char *end = text + len;
    for (const char *line = text; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *eol = nl ? nl : end;
        size_t n = (size_t)(eol - line);
        if (n && line[n - 1] == '\r')
            n--;
        if (memchr(line, 0, n)) {
            sb_appends(why, "NUL byte in the policy");
            return -1;
        }
        const char *s = line;
        trim(&s, &n);
        if (n) {
            const char *colon = memchr(s, ':', n);
            if (!colon || colon == s) {
                sb_appendf(why, "malformed policy line \"%.*s\"", (int)(n > 60 ? 60 : n), s);
                return -1;
            }
            const char *key = s, *val = colon + 1;
            size_t klen = (size_t)(colon - s), vlen = n - klen - 1;
            trim(&key, &klen);
            trim(&val, &vlen);
            if (policy_field(p, key, klen, val, vlen, &seen, why) < 0)
                return -1;
        }
        line = nl ? nl + 1 : end;
    }
    if (!(seen & 1)) {
        sb_appends(why, "the policy has no version");
        return -1;
    }
    if (!(seen & 2)) {
        sb_appends(why, "the policy has no mode");
        return -1;
    }
    if (p->max_age < 0) {
        sb_appends(why, "the policy has no max_age");
        return -1;
    }
    if (p->nmx == 0 && p->mode != STS_NONE) {
        sb_appends(why, "the policy has no mx pattern");
        return -1;
    }
    return 0;
}

/* ---- mx patterns (section 4.1) ---- */

bool sts_mx_match(const struct sts_policy *p, const char *host)
{
    size_t hlen = strlen(host);
    if (hlen && host[hlen - 1] == '.')
        hlen--;
    if (hlen == 0)
        return false;
    for (size_t i = 0; i < p->nmx; i++) {
        const char *pat = p->mx[i];
        size_t plen = strlen(pat);
        if (plen && pat[plen - 1] == '.')
            plen--;
        if (plen >= 2 && pat[0] == '*' && pat[1] == '.') {
            /* one label, then ".rest" */
            const char *dot = memchr(host, '.', hlen);
            if (dot && dot > host && (size_t)(host + hlen - dot) == plen - 1
                && strncasecmp(dot, pat + 1, plen - 1) == 0)
                return true;
        } else if (plen == hlen && strncasecmp(host, pat, hlen) == 0) {
            return true;
        }
    }
    return false;
}

bool sts_cache_key(const char *domain, char *key, size_t size)
{
    size_t n = strlen(domain);
    if (n && domain[n - 1] == '.')
        n--;
    if (n == 0 || n + 9 > size || domain[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = domain[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return false;
        key[i] = c;
    }
    key[n] = 0;
    return true;
}

void sts_mx_list(const struct sts_policy *p, struct strbuf *out)
{
    for (size_t i = 0; i < p->nmx; i++)
        sb_appendf(out, "%s%s", i ? ", " : "", p->mx[i]);
}

/* ---- the cache file ---- */

static bool header_number(const char *val, size_t vlen, long long *out)
{
    long long v = 0;
    if (vlen == 0 || vlen > 18)
        return false;
    for (size_t i = 0; i < vlen; i++) {
        if (!isdigit((unsigned char)val[i]))
            return false;
        v = v * 10 + (val[i] - '0');
    }
    *out = v;
    return true;
}

int sts_cache_parse(const char *text, size_t len, struct sts_cached *c,
                         struct strbuf *why)
{
    memset(c, 0, sizeof(*c));
    unsigned seen = 0;
    const char *end = text + len;
    for (const char *line = text; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            break;
        size_t n = (size_t)(nl - line);
        if (n == 0) {
            if (seen != 7)
                break;
            c->policy = nl + 1;
            c->policy_len = (size_t)(end - c->policy);
            return 0;
        }
        const char *colon = memchr(line, ':', n);
        if (!colon) {
            sb_appends(why, "malformed cache header");
            return -1;
        }
        const char *key = line, *val = colon + 1;
        size_t klen = (size_t)(colon - line), vlen = n - klen - 1;
        trim(&val, &vlen);
        if (equals(key, klen, "id") && vlen >= 1 && vlen <= STS_ID_MAX) {
            memcpy(c->id, val, vlen);
            c->id[vlen] = 0;
            for (size_t i = 0; i < vlen; i++)
                if (!isalnum((unsigned char)val[i])) {
                    sb_appends(why, "invalid id in the cache header");
                    return -1;
                }
            seen |= 1;
        } else if (equals(key, klen, "fetched") && header_number(val, vlen, &c->fetched)) {
            seen |= 2;
        } else if (equals(key, klen, "expires") && header_number(val, vlen, &c->expires)) {
            seen |= 4;
        } else {
            sb_appends(why, "malformed cache header");
            return -1;
        }
        line = nl + 1;
    }
    sb_appends(why, "incomplete cache header");
    return -1;
}
