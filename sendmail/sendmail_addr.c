/* sendmail_addr.c: recipients as sendmail takes them, from its arguments
 * and, with -t, from To:, Cc: and Bcc:: RFC 5322 address lists with
 * display names, comments, groups and source routes, reduced to the bare
 * addresses and checked by the one address parser (lib/global/address.h). */
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "sendmail.h"
#include "util.h"

struct addr_scan {
    struct strbuf plain;         /* the text outside <>: an addr-spec or a display name */
    struct strbuf angle;         /* the text inside the last <> */
    bool has_angle, in_angle;
};

/* One address is complete: the <> text if there was one, else the rest. */
static int scan_emit(struct addr_scan *sc, int (*fn)(const char *, size_t, void *), void *ctx)
{
    struct strbuf *t = sc->has_angle ? &sc->angle : &sc->plain;
    int rc = t->len ? fn(t->data, t->len, ctx) : 0;
    sb_reset(&sc->plain);
    sb_reset(&sc->angle);
    sc->has_angle = false;
    return rc;
}

/* The end of a quoted string, comment or domain literal that starts at
 * s[i]: the index after it, or len when it is not closed. Comments nest. */
static size_t skip_delimited(const char *s, size_t len, size_t i, char open, char close)
{
    int depth = 0;
    for (; i < len; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == close && (open != close || depth > 0)) {
            if (--depth == 0)
                return i + 1;
        } else if (s[i] == open) {
            depth++;
        }
    }
    return len + 1;
}

int sendmail_address_list(const char *s, size_t len,
                    int (*fn)(const char *addr, size_t len, void *ctx), void *ctx)
{
    struct addr_scan sc = { STRBUF_INIT(ADDRESS_MAX_LEN), STRBUF_INIT(ADDRESS_MAX_LEN),
                            false, false };
    int rc = 0;
    size_t i = 0;
    while (i < len && rc == 0) {
        char c = s[i];
        struct strbuf *t = sc.in_angle ? &sc.angle : &sc.plain;
        if (c == '"' || c == '[' || c == '(') {
            size_t end = skip_delimited(s, len, i, c, c == '[' ? ']' : c == '(' ? ')' : '"');
            if (end > len)
                rc = -1;                         /* not closed */
            else if (c != '(' && sb_append(t, s + i, end - i) < 0)
                rc = -1;                         /* comments are dropped */
            i = end;
            continue;
        }
        i++;
        switch (c) {
        case '<':
            if (sc.in_angle)
                rc = -1;
            sc.in_angle = sc.has_angle = true;
            sb_reset(&sc.angle);
            break;
        case '>':
            if (!sc.in_angle)
                rc = -1;
            sc.in_angle = false;
            break;
        case ':':
            /* in <>: the end of a source route; outside: a group's name */
            sb_reset(t);
            break;
        case ',':
        case ';':
            if (!sc.in_angle)                    /* in <>: part of a source route */
                rc = scan_emit(&sc, fn, ctx);
            break;
        case ' ': case '\t': case '\r': case '\n':
            break;
        default:
            if (sb_appendc(t, c) < 0)
                rc = -1;
        }
    }
    if (rc == 0 && sc.in_angle)
        rc = -1;
    if (rc == 0)
        rc = scan_emit(&sc, fn, ctx);
    sb_free(&sc.plain);
    sb_free(&sc.angle);
    return rc;
}

void sendmail_rcpts_free(struct sm_rcpts *r)
{
    str_array_free(r->addr, r->n);
    str_array_free(r->notify, r->n);
    memset(r, 0, sizeof(*r));
}

int sendmail_rcpts_add(struct sm_rcpts *r, const char *addr, const char *notify, const char **why)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->addr[i], addr) == 0)
            return 0;
    if (r->n >= MAILDROP_RCPT_MAX || strlen(addr) > MAILDROP_ADDR_MAX) {
        *why = r->n >= MAILDROP_RCPT_MAX ? "too many recipients" : "address too long";
        return -1;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->addr = xrealloc(r->addr, r->cap * sizeof(char *));
        r->notify = xrealloc(r->notify, r->cap * sizeof(char *));
    }
    r->addr[r->n] = xstrdup(addr);
    r->notify[r->n++] = xstrdup(notify);
    return 0;
}

struct add_ctx {
    struct sm_rcpts *r;
    const char *notify;
    const char *why;
    char *bad;
};

static int add_one(const char *text, size_t len, void *arg)
{
    struct add_ctx *c = arg;
    struct sm_rcpts *r = c->r;
    struct address a;
    const char *why = NULL;
    if (address_parse(text, len, ADDR_ALLOW_BARE | ADDR_ALLOW_NODOMAIN | ADDR_ALLOW_UTF8, &a,
                      &why) != ADDR_OK) {
        c->why = why ? why : "bad address syntax";
        snprintf(c->bad, 201, "%.*s", len > 200 ? 200 : (int)len, text);
        return -1;
    }
    int rc = sendmail_rcpts_add(r, a.address, c->notify, &c->why);
    address_free(&a);
    return rc;
}

int sendmail_rcpts_add_list(struct sm_rcpts *r, const char *text, const char *notify,
                      const char **why, char bad[201])
{
    struct add_ctx c = { r, notify, NULL, bad };
    bad[0] = 0;
    if (sendmail_address_list(text, strlen(text), add_one, &c) < 0) {
        *why = c.why ? c.why : "malformed address list (unbalanced quotes, <> or comments, "
                               "or an address too long)";
        return -1;
    }
    return 0;
}
