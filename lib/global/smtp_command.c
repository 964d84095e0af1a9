/* smtp_command.c: pure parsing of SMTP command arguments (see smtp_command.h).
 * Every input is treated as hostile: lengths are bounded, every parameter is
 * checked for syntax and duplicates, and the error replies follow Postfix. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "smtp_command.h"
#include "strbuf.h"
#include "util.h"

#define PARAM_NAME_MAX 32

static const struct {
    const char *name;      /* as sent by clients */
    const char *stat;      /* as logged in the disconnect line */
} verb_names[SMTP_VERB_COUNT] = {
    [SMTP_VERB_NONE] = { "CONNECT", "none" },
    [SMTP_HELO] = { "HELO", "helo" }, [SMTP_EHLO] = { "EHLO", "ehlo" },
    [SMTP_AUTH] = { "AUTH", "auth" },
    [SMTP_MAIL] = { "MAIL", "mail" }, [SMTP_RCPT] = { "RCPT", "rcpt" },
    [SMTP_DATA] = { "DATA", "data" }, [SMTP_BDAT] = { "BDAT", "bdat" },
    [SMTP_RSET] = { "RSET", "rset" }, [SMTP_NOOP] = { "NOOP", "noop" },
    [SMTP_VRFY] = { "VRFY", "vrfy" }, [SMTP_EXPN] = { "EXPN", "expn" },
    [SMTP_HELP] = { "HELP", "help" }, [SMTP_ETRN] = { "ETRN", "etrn" },
    [SMTP_TURN] = { "TURN", "turn" }, [SMTP_QUIT] = { "QUIT", "quit" },
    [SMTP_STARTTLS] = { "STARTTLS", "starttls" },
    [SMTP_UNKNOWN] = { "UNKNOWN", "unknown" },
};

const char *smtp_verb_stat_name(enum smtp_verb v)
{
    return (unsigned)v < SMTP_VERB_COUNT ? verb_names[v].stat : "unknown";
}

const char *smtp_verb_name(enum smtp_verb v)
{
    return (unsigned)v < SMTP_VERB_COUNT ? verb_names[v].name : "UNKNOWN";
}

enum smtp_verb smtp_parse_verb(const char *line, size_t len, const char **arg)
{
    size_t n = 0;
    *arg = line + len;
    while (n < len && isalpha((unsigned char)line[n]))
        n++;
    if (n == 0 || (n < len && line[n] != ' ' && line[n] != '\t'))
        return SMTP_UNKNOWN;
    const char *rest = line + n;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    for (int v = SMTP_HELO; v < SMTP_UNKNOWN; v++) {
        if (strlen(verb_names[v].name) == n && strncasecmp(line, verb_names[v].name, n) == 0) {
            *arg = rest;
            return (enum smtp_verb)v;
        }
    }
    return SMTP_UNKNOWN;
}

static int parse_fail(struct smtp_parse_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int parse_fail(struct smtp_parse_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return -1;
}

bool smtp_line_has_nul(const char *s, size_t n)
{
    return memchr(s, 0, n) != NULL;
}

bool smtp_line_bad_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return !utf8_valid(s, n);
    return false;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = toupper(c);
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int xtext_append(struct strbuf *out, const char *s)
{
    size_t before = out->len;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc;
        if (*p > 126)
            rc = -1;
        else if (*p < 33 || *p == '+' || *p == '=')
            rc = sb_appendf(out, "+%02X", *p);
        else
            rc = sb_appendc(out, *p);
        if (rc < 0) {
            sb_truncate(out, before);
            return -1;
        }
    }
    return 0;
}

char *xtext_decode(const char *in, size_t n, size_t max, bool utf8)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '+') {
            int hi = i + 2 < n ? hexval((unsigned char)in[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)in[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                goto bad;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
            if (c < 32 || c == 127)
                goto bad;
        } else if (c == '=' || c <= 32 || c == 127 || (c >= 0x80 && !utf8)) {
            goto bad;
        }
        if (o >= max)
            goto bad;
        out[o++] = (char)c;
    }
    out[o] = 0;
    if (utf8 && !utf8_valid(out, o))
        goto bad;
    return out;
bad:
    free(out);
    return NULL;
}

/* ---- the path and the parameter list ---- */

/* Length of the path at s: "<...>" with quotes honoured, or a bare address up
 * to the first space. 0 when there is no well-formed end. */
static size_t path_length(const char *s)
{
    if (*s != '<') {
        size_t n = 0;
        while (s[n] && s[n] != ' ' && s[n] != '\t')
            n++;
        return n;
    }
    bool quoted = false;
    for (size_t i = 1; s[i]; i++) {
        if (quoted && s[i] == '\\' && s[i + 1])
            i++;
        else if (s[i] == '"')
            quoted = !quoted;
        else if (s[i] == '>' && !quoted)
            return i + 1;
    }
    return 0;
}

/* Split "FROM:<path> params" after the keyword: *path / *plen and *params. */
static int split_path(const char *arg, const char *keyword, const char **path,
                      size_t *plen, const char **params)
{
    size_t kw = strlen(keyword);
    if (strncasecmp(arg, keyword, kw) != 0)
        return -1;
    const char *p = arg + kw;
    while (*p == ' ' || *p == '\t')   /* "FROM: <a@b>" is common enough */
        p++;
    if (*p == 0)
        return -1;
    *path = p;
    *plen = path_length(p);
    *params = p + *plen;
    return 0;
}

struct esmtp_param {
    char name[PARAM_NAME_MAX + 1];   /* upper-cased */
    const char *value;               /* NULL when no '=' */
    size_t vlen;
};

/* Next "NAME[=VALUE]" from *pp; 1 got one, 0 at end, -1 malformed. */
static int next_param(const char **pp, struct esmtp_param *prm)
{
    const char *p = *pp;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == 0)
        return 0;
    size_t n = 0;
    while (p[n] && p[n] != ' ' && p[n] != '\t' && p[n] != '=')
        n++;
    if (n == 0 || n > PARAM_NAME_MAX || !isalnum((unsigned char)p[0]))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)p[i]) && p[i] != '-')
            return -1;
        prm->name[i] = (char)toupper((unsigned char)p[i]);
    }
    prm->name[n] = 0;
    p += n;
    prm->value = NULL;
    prm->vlen = 0;
    if (*p == '=') {
        prm->value = ++p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        prm->vlen = (size_t)(p - prm->value);
        if (prm->vlen == 0)
            return -1;
    }
    *pp = p;
    return 1;
}

static bool value_is(const struct esmtp_param *prm, const char *word)
{
    return prm->value && strlen(word) == prm->vlen && strncasecmp(prm->value, word, prm->vlen) == 0;
}

/* Bits for duplicate detection. */
enum { SEEN_SIZE = 1, SEEN_BODY = 2, SEEN_RET = 4, SEEN_ENVID = 8, SEEN_UTF8 = 16,
       SEEN_AUTH = 32, SEEN_NOTIFY = 64, SEEN_ORCPT = 128, SEEN_REQUIRETLS = 256 };

static int check_dup(unsigned *seen, unsigned bit, const char *name, struct smtp_parse_error *err)
{
    if (*seen & bit)
        return parse_fail(err, 501, "5.5.4 Error: duplicate %s parameter", name);
    *seen |= bit;
    return 0;
}

/* A parameter whose value is one of a few keywords (case-insensitive), with
 * its bit for duplicate detection and its reply to a bad value; the
 * values are enums whose 0 means "not given". */
struct keyword_param {
    const char *name;
    unsigned seen_bit;
    const char *bad_value;
    struct {
        const char *word;
        int value;
    } keywords[4];          /* ended by a NULL word */
};

static const struct keyword_param body_param = {
    "BODY", SEEN_BODY, "5.5.4 Bad BODY keyword syntax",
    { { "7BIT", SMTP_BODY_7BIT }, { "8BITMIME", SMTP_BODY_8BITMIME },
      { "BINARYMIME", SMTP_BODY_BINARYMIME }, { NULL, 0 } },
};

static const struct keyword_param ret_param = {
    "RET", SEEN_RET, "5.5.4 Bad RET parameter syntax",
    { { "FULL", SMTP_RET_FULL }, { "HDRS", SMTP_RET_HDRS }, { NULL, 0 } },
};

/* The value of prm's keyword; 0 with err set when prm is a duplicate or
 * its value is none of the keywords. */
static int keyword_param_value(const struct esmtp_param *prm, const struct keyword_param *kp,
                               unsigned *seen, struct smtp_parse_error *err)
{
    if (check_dup(seen, kp->seen_bit, kp->name, err) < 0)
        return 0;
    for (size_t i = 0; kp->keywords[i].word; i++)
        if (value_is(prm, kp->keywords[i].word))
            return kp->keywords[i].value;
    parse_fail(err, 501, "%s", kp->bad_value);
    return 0;
}

/* A parameter that is a bare keyword (SMTPUTF8, REQUIRETLS): 0, or -1
 * with err set when it is a duplicate or has a value. */
static int flag_param(const struct esmtp_param *prm, unsigned seen_bit, unsigned *seen,
                      struct smtp_parse_error *err)
{
    if (check_dup(seen, seen_bit, prm->name, err) < 0)
        return -1;
    if (prm->value)
        return parse_fail(err, 501, "5.5.4 Bad %s parameter syntax", prm->name);
    return 0;
}

static int parse_size_param(const struct esmtp_param *prm, long long *size, struct smtp_parse_error *err)
{
    char digits[20];
    long v;
    if (!prm->value || prm->vlen >= sizeof(digits) || prm->vlen > 18)
        return parse_fail(err, 501, "5.5.4 Bad message size syntax");
    memcpy(digits, prm->value, prm->vlen);
    digits[prm->vlen] = 0;
    for (size_t i = 0; i < prm->vlen; i++)
        if (!isdigit((unsigned char)digits[i]))
            return parse_fail(err, 501, "5.5.4 Bad message size syntax");
    /* long is 64 bits on every platform Tern targets; 18 digits fit */
    if (parse_long(digits, 0, (long)999999999999999999LL, &v) < 0)
        return parse_fail(err, 501, "5.5.4 Bad message size syntax");
    *size = v;
    return 0;
}

/* One MAIL parameter into m. */
static int mail_param(const struct esmtp_param *prm, const struct smtp_parse_opts *opts,
                      struct smtp_mail_args *m, unsigned *seen, struct smtp_parse_error *err)
{
    if (strcmp(prm->name, "SIZE") == 0) {
        if (check_dup(seen, SEEN_SIZE, "SIZE", err) < 0)
            return -1;
        return parse_size_param(prm, &m->size, err);
    }
    if (strcmp(prm->name, "BODY") == 0)
        return (m->body = (enum smtp_body)keyword_param_value(prm, &body_param, seen, err)) ? 0 : -1;
    if (strcmp(prm->name, "RET") == 0)
        return (m->ret = (enum smtp_ret)keyword_param_value(prm, &ret_param, seen, err)) ? 0 : -1;
    if (strcmp(prm->name, "ENVID") == 0) {
        if (check_dup(seen, SEEN_ENVID, "ENVID", err) < 0)
            return -1;
        if (!prm->value || !(m->envid = xtext_decode(prm->value, prm->vlen, SMTP_ENVID_MAX, false)))
            return parse_fail(err, 501, "5.5.4 Bad ENVID parameter syntax");
        return 0;
    }
    if (strcmp(prm->name, "SMTPUTF8") == 0 && opts->smtputf8_enable) {
        if (flag_param(prm, SEEN_UTF8, seen, err) < 0)
            return -1;
        m->smtputf8 = true;
        return 0;
    }
    if (strcmp(prm->name, "REQUIRETLS") == 0 && opts->requiretls_known) {
        if (flag_param(prm, SEEN_REQUIRETLS, seen, err) < 0)
            return -1;
        /* RFC 8689 section 3: only in a session that itself uses TLS */
        if (!opts->requiretls_allowed)
            return parse_fail(err, 530, "5.7.10 REQUIRETLS needs an encrypted session: "
                              "issue a STARTTLS command first");
        m->requiretls = true;
        return 0;
    }
    if (strcmp(prm->name, "AUTH") == 0) {
        if (*seen & SEEN_AUTH)
            return parse_fail(err, 503, "5.5.4 Error: multiple AUTH= options");
        *seen |= SEEN_AUTH;
        if (value_is(prm, "<>"))
            m->auth = xstrdup("<>");
        else if (!prm->value || !(m->auth = xtext_decode(prm->value, prm->vlen, SMTP_AUTH_MAX, true)))
            return parse_fail(err, 501, "5.5.4 Bad AUTH parameter syntax");
        return 0;
    }
    return parse_fail(err, 555, "5.5.4 Unsupported option: %s", prm->name);
}

static int parse_params(const char *params, int (*one)(const struct esmtp_param *, void *, unsigned *,
                        struct smtp_parse_error *), void *ctx, struct smtp_parse_error *err)
{
    struct esmtp_param prm;
    unsigned seen = 0;
    int rc;
    if (*params && *params != ' ' && *params != '\t')
        return parse_fail(err, 501, "5.5.4 Error: junk after address");
    while ((rc = next_param(&params, &prm)) > 0)
        if (one(&prm, ctx, &seen, err) < 0)
            return -1;
    if (rc < 0)
        return parse_fail(err, 501, "5.5.4 Error: bad parameter syntax");
    return 0;
}

struct mail_ctx {
    const struct smtp_parse_opts *opts;
    struct smtp_mail_args *m;
};

static int mail_param_cb(const struct esmtp_param *prm, void *ctx, unsigned *seen,
                         struct smtp_parse_error *err)
{
    struct mail_ctx *mc = ctx;
    return mail_param(prm, mc->opts, mc->m, seen, err);
}

/* Map an address error to the reply for MAIL (what = "sender", 5.1.7) or RCPT. */
static int address_fail(enum address_error e, bool sender, struct smtp_parse_error *err)
{
    if (e == ADDR_ERR_UTF8)
        return parse_fail(err, 553, "5.6.7 Must declare SMTPUTF8 to send unicode address");
    if (sender)
        return parse_fail(err, 501, "5.1.7 Bad sender address syntax");
    return parse_fail(err, 501, "5.1.3 Bad recipient address syntax");
}

void smtp_mail_args_free(struct smtp_mail_args *m)
{
    address_free(&m->sender);
    free(m->envid);
    free(m->auth);
    memset(m, 0, sizeof(*m));
    m->size = -1;
}

int smtp_parse_mail(const char *arg, const struct smtp_parse_opts *opts,
                    struct smtp_mail_args *out, struct smtp_parse_error *err)
{
    const char *path, *params;
    size_t plen;
    memset(out, 0, sizeof(*out));
    out->size = -1;
    if (split_path(arg, "FROM:", &path, &plen, &params) < 0)
        return parse_fail(err, 501, "5.5.4 Syntax: MAIL FROM:<address>");
    if (plen == 0 || (opts->strict_rfc821 && *path != '<'))
        return parse_fail(err, 501, "5.1.7 Bad sender address syntax");
    struct mail_ctx mc = { opts, out };
    if (parse_params(params, mail_param_cb, &mc, err) < 0)
        goto fail;
    unsigned aopts = ADDR_ALLOW_NULL | ADDR_ALLOW_NODOMAIN | ADDR_ALLOW_BARE;
    if (out->smtputf8)
        aopts |= ADDR_ALLOW_UTF8;
    enum address_error e = address_parse(path, plen, aopts, &out->sender, NULL);
    if (e != ADDR_OK) {
        address_fail(e, true, err);
        goto fail;
    }
    if (opts->size_limit > 0 && out->size > opts->size_limit) {
        parse_fail(err, 552, "5.3.4 Message size exceeds fixed limit");
        goto fail;
    }
    return 0;
fail:
    smtp_mail_args_free(out);
    return -1;
}

/* ---- RCPT ---- */

static int parse_notify(const struct esmtp_param *prm, unsigned *notify, struct smtp_parse_error *err)
{
    static const struct { const char *word; unsigned bit; } words[] = {
        { "NEVER", SMTP_NOTIFY_NEVER }, { "SUCCESS", SMTP_NOTIFY_SUCCESS },
        { "FAILURE", SMTP_NOTIFY_FAILURE }, { "DELAY", SMTP_NOTIFY_DELAY },
    };
    *notify = 0;
    if (!prm->value)
        goto bad;
    const char *p = prm->value, *end = p + prm->vlen;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
            if (strlen(words[i].word) == n && strncasecmp(p, words[i].word, n) == 0)
                bit = words[i].bit;
        if (bit == 0 || (*notify & bit))
            goto bad;
        *notify |= bit;
        if (!comma)
            break;
        p = comma + 1;
    }
    /* NEVER excludes the others (RFC 3461 4.1) */
    if (!(*notify & SMTP_NOTIFY_NEVER) || *notify == SMTP_NOTIFY_NEVER)
        return 0;
bad:
    return parse_fail(err, 501, "5.5.4 Error: Bad NOTIFY parameter syntax");
}

/* ORCPT=addr-type;xtext -> "addr-type;decoded". */
static int parse_orcpt(const struct esmtp_param *prm, bool utf8, char **orcpt, struct smtp_parse_error *err)
{
    const char *semi = prm->value ? memchr(prm->value, ';', prm->vlen) : NULL;
    size_t tlen = semi ? (size_t)(semi - prm->value) : 0;
    bool type_ok = tlen > 0 && tlen <= PARAM_NAME_MAX;
    for (size_t i = 0; type_ok && i < tlen; i++)
        if (!isalnum((unsigned char)prm->value[i]) && prm->value[i] != '-')
            type_ok = false;
    char *addr = type_ok ? xtext_decode(semi + 1, prm->vlen - tlen - 1, SMTP_ORCPT_MAX, utf8) : NULL;
    if (!addr || !*addr) {
        free(addr);
        return parse_fail(err, 501, "5.5.4 Error: Bad ORCPT parameter syntax");
    }
    size_t n = tlen + 1 + strlen(addr) + 1;
    *orcpt = xmalloc(n);
    snprintf(*orcpt, n, "%.*s;%s", (int)tlen, prm->value, addr);
    free(addr);
    return 0;
}

struct rcpt_ctx {
    struct smtp_rcpt_args *r;
    bool utf8;
};

static int rcpt_param_cb(const struct esmtp_param *prm, void *ctx, unsigned *seen,
                         struct smtp_parse_error *err)
{
    struct rcpt_ctx *rc = ctx;
    if (strcmp(prm->name, "NOTIFY") == 0) {
        if (check_dup(seen, SEEN_NOTIFY, "NOTIFY", err) < 0)
            return -1;
        return parse_notify(prm, &rc->r->notify, err);
    }
    if (strcmp(prm->name, "ORCPT") == 0) {
        if (check_dup(seen, SEEN_ORCPT, "ORCPT", err) < 0)
            return -1;
        return parse_orcpt(prm, rc->utf8, &rc->r->orcpt, err);
    }
    return parse_fail(err, 555, "5.5.4 Unsupported option: %s", prm->name);
}

void smtp_rcpt_args_free(struct smtp_rcpt_args *r)
{
    address_free(&r->rcpt);
    free(r->orcpt);
    memset(r, 0, sizeof(*r));
}

int smtp_parse_rcpt(const char *arg, const struct smtp_parse_opts *opts, bool smtputf8,
                    struct smtp_rcpt_args *out, struct smtp_parse_error *err)
{
    const char *path, *params;
    size_t plen;
    memset(out, 0, sizeof(*out));
    if (split_path(arg, "TO:", &path, &plen, &params) < 0)
        return parse_fail(err, 501, "5.5.4 Syntax: RCPT TO:<address>");
    if (plen == 0 || (opts->strict_rfc821 && *path != '<'))
        return parse_fail(err, 501, "5.1.3 Bad recipient address syntax");
    struct rcpt_ctx rc = { out, smtputf8 && opts->smtputf8_enable };
    if (parse_params(params, rcpt_param_cb, &rc, err) < 0)
        goto fail;
    unsigned aopts = ADDR_ALLOW_NODOMAIN | ADDR_ALLOW_BARE;
    if (rc.utf8)
        aopts |= ADDR_ALLOW_UTF8;
    enum address_error e = address_parse(path, plen, aopts, &out->rcpt, NULL);
    if (e != ADDR_OK) {
        address_fail(e, false, err);
        goto fail;
    }
    return 0;
fail:
    smtp_rcpt_args_free(out);
    return -1;
}

const char *smtp_notify_string(unsigned notify, char *buf, size_t bufsz)
{
    static const char *names[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
    size_t used = 0;
    if (bufsz)
        buf[0] = 0;
    for (unsigned i = 0; i < 4; i++) {
        if (!(notify & (1u << i)))
            continue;
        int n = snprintf(buf + used, bufsz - used, "%s%s", used ? "," : "", names[i]);
        if (n < 0 || (size_t)n >= bufsz - used)
            break;
        used += (size_t)n;
    }
    return buf;
}

/* ---- HELO and BDAT ---- */

char *smtp_parse_helo(const char *arg)
{
    size_t n = 0;
    while (arg[n] && arg[n] != ' ' && arg[n] != '\t')
        n++;
    const char *rest = arg + n;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if (n == 0 || n > 255 || *rest)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)arg[i] < 33 || arg[i] == 127)
            return NULL;
    if (smtp_line_bad_utf8(arg, n))
        return NULL;
    return xstrndup(arg, n);
}

int smtp_parse_bdat(const char *arg, long long *count, bool *last)
{
    char digits[20];
    size_t n = 0;
    long v;
    while (isdigit((unsigned char)arg[n]))
        n++;
    if (n == 0 || n > 18 || (arg[n] && arg[n] != ' ' && arg[n] != '\t'))
        return -1;
    memcpy(digits, arg, n);
    digits[n] = 0;
    if (parse_long(digits, 0, (long)999999999999999999LL, &v) < 0)
        return -1;
    *count = v;
    *last = false;
    const char *p = arg + n;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == 0)
        return 0;
    if (strncasecmp(p, "LAST", 4) != 0)
        return -2;
    p += 4;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p)
        return -2;
    *last = true;
    return 0;
}
