/* pipe_expand.c: the macros of a pipe service's argv= (${sender},
 * ${recipient}, ${user}, ${nexthop}, ... and the $name form, as Postfix's
 * pipe(8)): an argument that names a recipient macro becomes one argument
 * per recipient; the h, q and u flags fold and quote addresses. The
 * command is executed directly, so an expanded value is exactly one
 * argument whatever it contains: no shell ever sees it. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mac_expand.h"
#include "pipe.h"
#include "util.h"

/* Macros whose value depends on the recipient. */
static const char *const rcpt_macros[] = {
    "recipient", "original_recipient", "user", "extension", "mailbox", "domain",
};
static const char *const other_macros[] = {
    "sender", "nexthop", "size", "queue_id",
};
struct expand_ctx {
    const struct pipe_attr *attr;
    const struct pipe_macros *m;       /* NULL: only checking names */
    const char *delims;
    size_t rcpt;                       /* the recipient being expanded */
    bool used_rcpt;                    /* a recipient macro was looked up */
    char unknown[64];                  /* the first unknown name */
    struct strbuf value;               /* the last value looked up */
};

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncmp(name, want, len) == 0;
}

/* Macros that show what smtpd recorded about the client: each is the
 * queue file's attribute of the other name, empty when it has none. */
static const struct {
    const char *macro, *attr;
} client_macros[] = {
    { "client_address", "client_addr" }, { "client_hostname", "client_name" },
    { "client_helo", "helo_name" }, { "client_port", "client_port" },
    { "client_protocol", "protocol" }, { "sasl_method", "sasl_method" },
    { "sasl_username", "sasl_username" }, { "sasl_sender", "sasl_sender" },
};

/* The queue attribute behind a client macro, or NULL. */
static const char *client_attr_of(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(client_macros) / sizeof(client_macros[0]); i++)
        if (name_is(name, len, client_macros[i].macro))
            return client_macros[i].attr;
    return NULL;
}

static bool in_list(const char *name, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (name_is(name, len, list[i]))
            return true;
    return false;
}

static void append_lower(struct strbuf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sb_appendc(out, (char)tolower((unsigned char)s[i]));
}

/* RFC 822 local part: quoted when it is not a dot-atom (8-bit bytes pass). */
static bool local_needs_quotes(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f || (c != '.' && strchr("()<>@,;:\\\"[]", c)))
            return true;
        if (c == '.' && s[i + 1] == '.')
            return true;
    }
    return false;
}

void pipe_expand_address(const char *address, unsigned flags, struct strbuf *out)
{
    const char *at = strrchr(address, '@');
    size_t llen = at ? (size_t)(at - address) : strlen(address);
    bool quote = (flags & PIPE_FLAG_QUOTE) && *address && local_needs_quotes(address, llen);
    if (quote) {
        sb_appendc(out, '"');
        for (size_t i = 0; i < llen; i++) {
            char c = address[i];
            if (c == '"' || c == '\\')
                sb_appendc(out, '\\');
            sb_appendc(out, (flags & PIPE_FLAG_FOLD_USER) ? (char)tolower((unsigned char)c) : c);
        }
        sb_appendc(out, '"');
    } else if (flags & PIPE_FLAG_FOLD_USER) {
        append_lower(out, address, llen);
    } else {
        sb_append(out, address, llen);
    }
    if (at) {
        if (flags & PIPE_FLAG_FOLD_HOST)
            append_lower(out, at, strlen(at));
        else
            sb_appends(out, at);
    }
}

/* The local part of address split at the first recipient delimiter. */
static void local_parts(const char *address, const char *delims, size_t *llen, size_t *ulen)
{
    const char *at = strrchr(address, '@');
    *llen = at ? (size_t)(at - address) : strlen(address);
    *ulen = *llen;
    if (*delims) {
        size_t u = strcspn(address, delims);
        if (u > 0 && u < *llen)
            *ulen = u;
    }
}

static void rcpt_value(struct expand_ctx *x, const char *name, size_t len)
{
    const struct pipe_rcpt *r = &x->m->rcpts[x->rcpt];
    unsigned flags = x->attr->flags;
    size_t llen, ulen;
    local_parts(r->address, x->delims, &llen, &ulen);
    bool fold_user = flags & PIPE_FLAG_FOLD_USER;
    if (name_is(name, len, "recipient")) {
        pipe_expand_address(r->address, flags, &x->value);
    } else if (name_is(name, len, "original_recipient")) {
        pipe_expand_address(r->original, flags, &x->value);
    } else if (name_is(name, len, "user")) {
        fold_user ? append_lower(&x->value, r->address, ulen) : (void)sb_append(&x->value, r->address, ulen);
    } else if (name_is(name, len, "extension")) {
        size_t start = ulen < llen ? ulen + 1 : llen;
        fold_user ? append_lower(&x->value, r->address + start, llen - start)
                  : (void)sb_append(&x->value, r->address + start, llen - start);
    } else if (name_is(name, len, "mailbox")) {
        fold_user ? append_lower(&x->value, r->address, llen) : (void)sb_append(&x->value, r->address, llen);
    } else {                            /* domain */
        const char *at = strrchr(r->address, '@');
        const char *d = at ? at + 1 : "";
        (flags & PIPE_FLAG_FOLD_HOST) ? append_lower(&x->value, d, strlen(d)) : (void)sb_appends(&x->value, d);
    }
}

static void other_value(struct expand_ctx *x, const char *name, size_t len)
{
    const struct pipe_macros *m = x->m;
    unsigned flags = x->attr->flags;
    if (name_is(name, len, "sender")) {
        const char *s = *m->sender ? m->sender : x->attr->null_sender;
        if (*s)
            pipe_expand_address(s, flags & PIPE_FLAG_QUOTE, &x->value);
    } else if (name_is(name, len, "nexthop")) {
        (flags & PIPE_FLAG_FOLD_HOST) ? append_lower(&x->value, m->nexthop, strlen(m->nexthop))
                                      : (void)sb_appends(&x->value, m->nexthop);
    } else if (name_is(name, len, "size")) {
        sb_appendf(&x->value, "%llu", m->size);
    } else if (name_is(name, len, "queue_id")) {
        sb_appends(&x->value, m->queue_id);
    } else {
        const char *attr = client_attr_of(name, len);
        const char *v = attr && m->client_attr ? m->client_attr(attr, m->context) : NULL;
        sb_appends(&x->value, v ? v : "");
    }
}

static const char *lookup(const char *name, size_t len, void *context)
{
    struct expand_ctx *x = context;
    bool rcpt = in_list(name, len, rcpt_macros, sizeof(rcpt_macros) / sizeof(rcpt_macros[0]));
    if (!rcpt && !in_list(name, len, other_macros, sizeof(other_macros) / sizeof(other_macros[0]))
        && !client_attr_of(name, len)) {
        if (!x->unknown[0])
            snprintf(x->unknown, sizeof(x->unknown), "%.*s", (int)(len < 60 ? len : 60), name);
        return NULL;
    }
    x->used_rcpt |= rcpt;
    sb_reset(&x->value);
    if (!x->m)
        return "x";
    if (rcpt)
        rcpt_value(x, name, len);
    else
        other_value(x, name, len);
    return sb_str(&x->value);
}

/* Expand one argument into out: 0, or -1 with err set. */
static int expand_one(struct expand_ctx *x, const char *arg, struct strbuf *out, struct strbuf *err)
{
    struct mac_expand_spec spec = { .lookup = lookup, .context = x, .depth_max = 10 };
    sb_reset(out);
    int rc = mac_expand(out, arg, &spec);
    if (x->unknown[0]) {
        sb_appendf(err, "argv: unknown macro $%s in \"%.200s\"", x->unknown, arg);
        return -1;
    }
    if (rc & MAC_EXP_ERROR) {
        sb_appendf(err, "argv: cannot expand \"%.200s\" (bad $ syntax or a value too long)", arg);
        return -1;
    }
    return 0;
}

int pipe_expand_check(const struct pipe_attr *a, struct strbuf *err)
{
    struct expand_ctx x = { .attr = a, .delims = "" };
    struct strbuf out = STRBUF_INIT(PIPE_ARG_MAX);
    sb_init(&x.value, PIPE_ARG_MAX);
    int rc = 0;
    for (size_t i = 1; i < a->argc && rc == 0; i++)
        rc = expand_one(&x, a->argv[i], &out, err);
    sb_free(&out);
    sb_free(&x.value);
    return rc;
}

void pipe_expand_free(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

int pipe_expand_argv(const struct pipe_attr *a, const struct pipe_macros *m,
                     const char *recipient_delimiter, char ***result, struct strbuf *err)
{
    struct expand_ctx x = { .attr = a, .m = m, .delims = recipient_delimiter };
    struct strbuf out = STRBUF_INIT(PIPE_ARG_MAX);
    sb_init(&x.value, PIPE_ARG_MAX);
    size_t n = 0, cap = a->argc + 1;
    char **argv = xcalloc(cap, sizeof(char *));
    int rc = 0;
    argv[n++] = xstrdup(a->argv[0]);
    for (size_t i = 1; i < a->argc && rc == 0; i++) {
        x.rcpt = 0;
        x.used_rcpt = false;
        rc = expand_one(&x, a->argv[i], &out, err);
        size_t copies = rc == 0 && x.used_rcpt ? m->nrcpt : 1;
        for (size_t r = 0; r < copies && rc == 0; r++) {
            if (r > 0) {
                x.rcpt = r;
                rc = expand_one(&x, a->argv[i], &out, err);
                if (rc < 0)
                    break;
            }
            if (n + 2 > PIPE_ARGS_MAX) {
                sb_appendf(err, "argv: more than %d arguments", PIPE_ARGS_MAX);
                rc = -1;
                break;
            }
            if (n + 2 > cap) {
                cap = cap * 2 + copies;
                argv = xrealloc(argv, cap * sizeof(char *));
            }
            argv[n++] = xstrdup(sb_str(&out));
        }
    }
    argv[n] = NULL;
    sb_free(&out);
    sb_free(&x.value);
    if (rc < 0) {
        pipe_expand_free(argv);
        return -1;
    }
    *result = argv;
    return 0;
}
