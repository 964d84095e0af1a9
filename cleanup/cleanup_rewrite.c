/* cleanup_rewrite.c: address rewriting of one submission, in Postfix's
 * order, with the lib code smtpd also asks (lib/global/rewrite.h): the
 * envelope sender (sender_canonical_maps, canonical_maps, masquerading),
 * each envelope recipient (recipient_canonical_maps, canonical_maps,
 * masquerading, recipient_bcc_maps, then virtual alias expansion), the
 * automatic BCC recipients (sender_bcc_maps, always_bcc), and the address
 * headers (From:, To:, Cc:, ...) per the header classes. A recipient that
 * becomes another address keeps the one it was given as its original
 * recipient (ORCPT, the orig_to= of the delivery log line). A table that
 * cannot answer refuses the message for now (451 4.3.0), and a virtual
 * alias loop or an expansion over the limits refuses it with 451 4.6.0:
 * nothing is accepted that rewriting could not finish. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "config.h"
#include "log.h"
#include "netlist.h"
#include "resolve.h"
#include "rewrite.h"
#include "util.h"

#define ALIAS_EXPANSION_ERROR "4.6.0 Alias expansion error"

static struct {
    struct netlist *mynetworks;     /* for local_header_rewrite_clients */
    bool clients_all, clients_interfaces, clients_mynetworks, clients_sasl;
    char *remote_domain;            /* remote_header_rewrite_domain */
} rwc;

void cleanup_rewrite_open(void)
{
    struct strbuf err = STRBUF_INIT(1024);
    size_t n;
    char **words = cfg_list_split(cfg_str(P_local_header_rewrite_clients), &n);
    resolve_init();
    rewrite_init();
    for (size_t i = 0; i < n; i++) {
        const char *w = words[i];
        if (strcmp(w, "static:all") == 0)
            rwc.clients_all = true;
        else if (strcmp(w, "permit_inet_interfaces") == 0)
            rwc.clients_interfaces = true;
        else if (strcmp(w, "permit_mynetworks") == 0)
            rwc.clients_mynetworks = true;
        else if (strcmp(w, "permit_sasl_authenticated") == 0)
            rwc.clients_sasl = true;
        else
            msg_warn("local_header_rewrite_clients: \"%s\" is not supported; ignored", w);
    }
    cfg_list_free(words, n);
    if (rwc.clients_mynetworks && !(rwc.mynetworks = netlist_parse(cfg_str(P_mynetworks), &err)))
        msg_warn("local_header_rewrite_clients: mynetworks: %s", sb_str(&err));
    rwc.remote_domain = xstrdup(cfg_str(P_remote_header_rewrite_domain));
    sb_free(&err);
}

/* ---- the envelope ---- */

struct rcpt_list {
    char **rcpts, **orcpts, **notifies;
    size_t n;
};

static void list_add(struct rcpt_list *l, const char *rcpt, const char *orcpt, const char *notify)
{
    for (size_t i = 0; i < l->n; i++)    /* the same recipient twice is delivered once */
        if (strcasecmp(l->rcpts[i], rcpt) == 0 && strcmp(l->orcpts[i], orcpt) == 0
            && strcmp(l->notifies[i], notify) == 0)
            return;
    l->rcpts = xrealloc(l->rcpts, (l->n + 1) * sizeof(char *));
    l->orcpts = xrealloc(l->orcpts, (l->n + 1) * sizeof(char *));
    l->notifies = xrealloc(l->notifies, (l->n + 1) * sizeof(char *));
    l->rcpts[l->n] = xstrdup(rcpt);
    l->orcpts[l->n] = xstrdup(orcpt);
    l->notifies[l->n++] = xstrdup(notify);
}

static void lookup_failed(struct cleanup_state *st, const char *what, const char *addr)
{
    msg_warn("%s: %s map lookup problem for %s -- message not accepted, try again later",
             st->qf.id, what, addr);
    cleanup_reject(st, 451, CLEANUP_WRITE_ERROR);
}

/* One recipient after canonical mapping: its virtual alias targets, each
 * with the original recipient as ORCPT unless the client gave one. */
static int add_expanded(struct cleanup_state *st, struct rcpt_list *l, const char *rcpt,
                        const char *given, const char *orcpt, const char *notify)
{
    struct rewrite_expansion x;
    int rc = rewrite_virtual(rcpt, st->qf.id, &x);
    if (rc == REWRITE_LOOKUP_FAILED) {
        cleanup_reject(st, 451, CLEANUP_WRITE_ERROR);
        return -1;
    }
    if (rc == REWRITE_LIMIT_EXCEEDED) {
        cleanup_reject(st, 451, ALIAS_EXPANSION_ERROR);
        return -1;
    }
    struct strbuf orig = STRBUF_INIT(CLEANUP_ORCPT_MAX + 16);
    for (size_t i = 0; i < x.n; i++) {
        sb_reset(&orig);
        if (*orcpt)
            sb_appends(&orig, orcpt);
        else if (*given && strcasecmp(x.addrs[i], given) != 0
                 && sb_appendf(&orig, "rfc822;%s", given) < 0)
            sb_reset(&orig);        /* too long to keep: there is none */
        list_add(l, x.addrs[i], sb_str(&orig), notify);
    }
    sb_free(&orig);
    rewrite_expansion_free(&x);
    return 0;
}

/* An automatic BCC recipient: canonical, then virtual aliases; no DSN. */
static int add_bcc(struct cleanup_state *st, struct rcpt_list *l, const char *bcc)
{
    struct strbuf addr = STRBUF_INIT(0);
    int rc = rewrite_address(bcc, REWRITE_ENV_RCPT, &addr);
    if (rc < 0)
        lookup_failed(st, "canonical", bcc);
    else
        rc = add_expanded(st, l, sb_str(&addr), "", "", "NEVER");
    sb_free(&addr);
    return rc;
}

/* Free the three parallel arrays of n recipients (a list or an envelope's). */
static void rcpt_arrays_free(char **rcpts, char **orcpts, char **notifies, size_t n)
{
    str_array_free(rcpts, n);
    str_array_free(orcpts, n);
    str_array_free(notifies, n);
}

static void list_free(struct rcpt_list *l)
{
    rcpt_arrays_free(l->rcpts, l->orcpts, l->notifies, l->n);
}

static int rewrite_sender(struct cleanup_state *st)
{
    struct strbuf out = STRBUF_INIT(0);
    if (rewrite_address(st->env.sender, REWRITE_ENV_SENDER, &out) < 0) {
        lookup_failed(st, "sender canonical", st->env.sender);
        sb_free(&out);
        return -1;
    }
    if (strcmp(sb_str(&out), st->env.sender) != 0) {
        free(st->env.sender);
        st->env.sender = xstrdup(sb_str(&out));
    }
    sb_free(&out);
    return 0;
}

static int rewrite_rcpts(struct cleanup_state *st, struct rcpt_list *l, bool bcc_ok)
{
    struct cleanup_envelope *env = &st->env;
    struct strbuf addr = STRBUF_INIT(0), bcc = STRBUF_INIT(CLEANUP_ADDR_MAX);
    int rc = 0;
    for (size_t i = 0; i < env->nrcpt && rc == 0; i++) {
        if ((rc = rewrite_address(env->rcpts[i], REWRITE_ENV_RCPT, &addr)) < 0) {
            lookup_failed(st, "recipient canonical", env->rcpts[i]);
            break;
        }
        int found = bcc_ok ? rewrite_bcc(sb_str(&addr), false, &bcc) : 0;
        if (found < 0) {
            lookup_failed(st, "recipient_bcc_maps", sb_str(&addr));
            rc = -1;
            break;
        }
        rc = add_expanded(st, l, sb_str(&addr), env->rcpts[i], env->orcpts[i], env->notifies[i]);
        if (rc == 0 && found > 0)
            rc = add_bcc(st, l, sb_str(&bcc));
    }
    if (rc == 0 && bcc_ok) {
        int found = rewrite_bcc(env->sender, true, &bcc);
        if (found < 0) {
            lookup_failed(st, "sender_bcc_maps", env->sender);
            rc = -1;
        } else if (found > 0) {
            rc = add_bcc(st, l, sb_str(&bcc));
        }
        if (rc == 0 && *rewrite_always_bcc())
            rc = add_bcc(st, l, rewrite_always_bcc());
    }
    sb_free(&addr);
    sb_free(&bcc);
    return rc;
}

void cleanup_rewrite_envelope(struct cleanup_state *st)
{
    struct cleanup_envelope *env = &st->env;
    const char *addr = cleanup_env_attr(env, "client_addr");
    bool outside = (env->flags & CLEANUP_FLAG_LOCAL) || (addr && *addr);
    st->rewrite = !(env->flags & CLEANUP_FLAG_NO_MAPPINGS) && rewrite_active();
    if (!st->rewrite || st->status)
        return;
    /* Received: "for <...>" names the recipient the client gave */
    if (env->nrcpt == 1)
        st->received_for = xstrdup(env->rcpts[0]);
    struct rcpt_list l = { NULL, NULL, NULL, 0 };
    /* automatic BCC only for new mail, as in Postfix: not for notices or
     * for copies that local forwards */
    if (rewrite_sender(st) == 0 && rewrite_rcpts(st, &l, outside) == 0 && l.n > cleanup_cfg.max_rcpts) {
        msg_warn("%s: %zu recipients after virtual alias expansion, more than %zu -- "
                 "message not accepted, try again later", st->qf.id, l.n, cleanup_cfg.max_rcpts);
        cleanup_reject(st, 451, ALIAS_EXPANSION_ERROR);
    }
    if (st->status) {
        list_free(&l);
        return;
    }
    rcpt_arrays_free(env->rcpts, env->orcpts, env->notifies, env->nrcpt);
    env->rcpts = l.rcpts;
    env->orcpts = l.orcpts;
    env->notifies = l.notifies;
    env->nrcpt = l.n;
}

/* ---- the headers ---- */

/* Whose headers are rewritten (Postfix's local_header_rewrite_clients and
 * remote_header_rewrite_domain): local submissions and Tern's own mail
 * always; mail from smtpd when the client is one of the listed kinds;
 * other clients' only when remote_header_rewrite_domain is set. NULL: no
 * rewriting; "": local rewriting; else the remote domain. */
static const char *header_context(const struct cleanup_state *st)
{
    const char *addr = cleanup_env_attr(&st->env, "client_addr");
    const char *user = cleanup_env_attr(&st->env, "sasl_username");
    if ((st->env.flags & CLEANUP_FLAG_LOCAL) || !addr || !*addr || rwc.clients_all)
        return "";
    if (rwc.clients_sasl && user && *user)
        return "";
    if (rwc.clients_mynetworks && rwc.mynetworks && netlist_match_text(rwc.mynetworks, addr))
        return "";
    if (rwc.clients_interfaces) {
        struct strbuf lit = STRBUF_INIT(0);
        sb_appendf(&lit, strchr(addr, ':') ? "[IPv6:%s]" : "[%s]", addr);
        bool ours = resolve_domain_is_local(sb_str(&lit));
        sb_free(&lit);
        if (ours)
            return "";
    }
    return *rwc.remote_domain ? rwc.remote_domain : NULL;
}

void cleanup_rewrite_headers(struct cleanup_state *st)
{
    struct header_state *h = &st->hdr;
    const char *context;
    if (!st->rewrite || st->status || !(context = header_context(st)))
        return;
    struct strbuf out = STRBUF_INIT(0), value = STRBUF_INIT(0);
    bool changed = false;
    for (size_t i = 0; i < h->nfields; i++) {
        const struct header_field *f = &h->fields[i];
        const char *text = h->headers.data + f->offset;
        size_t len = f->len && text[f->len - 1] == '\n' ? f->len - 1 : f->len;
        unsigned cls = rewrite_header_class(text, f->name_len);
        const char *colon = cls ? memchr(text, ':', len) : NULL;
        int rc = 0;
        if (colon) {
            size_t head = (size_t)(colon - text) + 1;
            rc = rewrite_header_value(colon + 1, len - head, cls, *context ? context : NULL, &value);
            if (rc < 0) {
                msg_warn("%s: canonical map lookup problem in a %.*s: header -- "
                         "message not accepted, try again later", st->qf.id, (int)f->name_len, text);
                cleanup_reject(st, 451, CLEANUP_WRITE_ERROR);
                break;
            }
            if (rc > 0) {
                sb_append(&out, text, head);
                sb_append(&out, value.data, value.len);
                sb_appendc(&out, '\n');
                changed = true;
            }
        }
        if (rc == 0) {
            sb_append(&out, text, len);
            sb_appendc(&out, '\n');
        }
    }
    if (changed && !st->status)
        header_set_fields(h, out.data ? out.data : "", out.len);
    sb_free(&out);
    sb_free(&value);
}
