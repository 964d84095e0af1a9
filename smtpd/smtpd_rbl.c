/* smtpd_rbl.c: restrictions that ask DNS while the session waits:
 * reject_rbl_client (the client address reversed under a blocklist
 * domain), reject_rhsbl_client, _sender, _helo and _recipient (a domain
 * under a blocklist domain), with the reply from rbl_reply_maps or
 * default_rbl_reply; and reject_unknown_sender_domain and
 * reject_unknown_recipient_domain (no MX, A or AAAA record). A DNS server
 * that fails or does not answer never lets a listed client through: the
 * request is deferred (defer_if_permit) instead. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dns_event.h"
#include "dns_rbl.h"
#include "log.h"
#include "mac_expand.h"
#include "maps.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "strbuf.h"
#include "util.h"

/* ---- blocklist answers ---- */

static void rbl_answer(void *ctx, const struct dnsev_answer *ans)
{
    struct smtpd_check_job *j = ctx;
    j->async_status = ans->status;
    j->async_text[0] = 0;
    if (ans->status == DNS_OK && j->dns_step == 0) {
        const char *filter = j->async_r->rbl_filter;
        j->async_status = DNS_NODATA;
        for (size_t i = 0; i < ans->naddr; i++) {
            if (dns_rbl_listing(filter, &ans->addrs[i])) {
                dns_addr_text(&ans->addrs[i], j->rbl_addr, sizeof(j->rbl_addr));
                j->async_status = DNS_OK;
                break;
            }
        }
    } else if (ans->status == DNS_OK) {
        str_copy(j->async_text, sizeof(j->async_text), ans->txt);
    }
    smtpd_check_job_continue(j);
}

/* ---- reply templates ---- */

/* The expanded reply before smtpd_check_reject() trims it to a reply's
 * length: room for a long template and a TXT record of CHECK_TEXT_MAX. */
#define RBL_REPLY_MAX (8 * CHECK_TEXT_MAX)

struct rbl_vars {
    const char *code, *domain, *reason, *cls, *what;
    struct smtpd_check_job *j;
};

static const char *rbl_var(const char *name, size_t n, void *context)
{
    const struct rbl_vars *v = context;
    struct smtpd_session *s = v->j->s;
    const struct address *sender = smtpd_check_sender(v->j);
    const struct mac_var vars[] = {
        { "rbl_code", v->code }, { "rbl_domain", v->domain }, { "rbl_reason", v->reason },
        { "rbl_txt", v->reason }, { "rbl_class", v->cls }, { "rbl_what", v->what },
        { "client_address", s->client_addr },
        { "client_name", s->check ? s->check->name : "unknown" },
        { "reverse_client_name", s->check ? s->check->reverse_name : "unknown" },
        { "helo_name", s->helo_name ? s->helo_name : "" },
        { "sender", sender ? sender->address : "" },
        { "recipient", v->j->rcpt ? v->j->rcpt : "" },
        { "sender_name", "" },
    };
    return mac_var_find(vars, sizeof(vars) / sizeof(vars[0]), name, n);
}

static enum smtpd_check_result rbl_reply(struct smtpd_check_job *j, const struct smtpd_restriction *r,
                                         const char *cls, const char *what)
{
    char code[8];
    snprintf(code, sizeof(code), "%d", cfg_reply_code(P_maps_rbl_reject_code));
    struct rbl_vars v = { code, r->arg, j->async_text, cls, what, j };
    struct strbuf tmpl = STRBUF_INIT(4096), out = STRBUF_INIT(RBL_REPLY_MAX);
    const char *t = smtpd_check_cfg.default_rbl_reply;
    if (smtpd_check_cfg.rbl_reply_maps) {
        int rc = maplist_lookup(smtpd_check_cfg.rbl_reply_maps, r->arg, &tmpl);
        if (rc < 0) {
            sb_free(&tmpl);
            return smtpd_check_reject(j, 451, "4.3.0", "<%s>: Temporary lookup failure", r->arg);
        }
        if (rc > 0)
            t = sb_str(&tmpl);
    }
    enum smtpd_check_result res;
    const char *e = NULL;
    /* An undefined name makes the template bad, as in Postfix. */
    const struct mac_expand_spec spec = { .lookup = rbl_var, .context = &v, .depth_max = 4 };
    if (mac_expand(&out, t, &spec) == MAC_EXP_OK)
        e = sb_str(&out);
    if (!e || strlen(e) < 5 || (e[0] != '4' && e[0] != '5') || !isdigit((unsigned char)e[1])
        || !isdigit((unsigned char)e[2]) || e[3] != ' ') {
        msg_warn("DNS blocklist %s: bad reply template \"%.100s\"", r->arg, t);
        res = smtpd_check_reject(j, 451, "4.3.5", "Server configuration error");
    } else {
        int c = atoi(e);
        const char *text = e + 4;
        char dsn[ACTION_DSN_MAX + 1] = "5.7.1";
        size_t d = smtpd_dsn_prefix_len(text);
        if (d && d < sizeof(dsn)) {
            memcpy(dsn, text, d);
            dsn[d] = 0;
            text += d;
            while (*text == ' ')
                text++;
        }
        res = smtpd_check_reject(j, c, dsn, "%s", text);
    }
    sb_free(&tmpl);
    sb_free(&out);
    return res;
}

/* ---- reject_rbl_client and reject_rhsbl_* ---- */

static const char *address_domain(const struct address *a)
{
    if (!a || (a->flags & (ADDR_F_NULL | ADDR_F_NODOMAIN | ADDR_F_LITERAL)) || !*a->domain)
        return NULL;
    return a->domain;
}

enum smtpd_check_result smtpd_rbl_check(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    struct smtpd_session *s = j->s;
    const char *what = NULL, *cls = "Client host";
    switch (r->type) {
    case R_RBL_CLIENT:
        what = s->client_addr;
        break;
    case R_RHSBL_CLIENT:
        what = s->check && strcmp(s->check->name, "unknown") != 0 ? s->check->name : NULL;
        break;
    case R_RHSBL_SENDER:
        what = address_domain(smtpd_check_sender(j));
        cls = "Sender address";
        break;
    case R_RHSBL_HELO: {
        const char *h = j->helo_arg ? j->helo_arg : s->helo_name;
        what = h && h[0] != '[' ? h : NULL;
        cls = "Helo command";
        break;
    }
    case R_RHSBL_RCPT:
        what = address_domain(smtpd_check_recipient(j));
        cls = "Recipient address";
        break;
    default:
        break;
    }
    if (!what)
        return CHK_DUNNO;
    char query[DNS_NAME_MAX + 64];
    if (r->type == R_RBL_CLIENT) {
        if (!dns_rbl_query_name(what, r->arg, query, sizeof(query)))
            return CHK_DUNNO;
    } else {
        snprintf(query, sizeof(query), "%s.%s", what, r->arg);
        size_t n = strlen(query);
        if (n > 0 && query[n - 1] == '.')
            query[n - 1] = 0;
    }
    if (!j->resumed) {
        j->dns_step = 0;
        j->async_r = r;
        j->dns = dnsev_lookup(smtpd_check_cfg.dns, query, DNSEV_A, rbl_answer, j);
        return j->dns ? CHK_WAIT : CHK_DUNNO;
    }
    if (j->dns_step == 0) {
        if (j->async_status == DNS_TEMPFAIL) {
            msg_warn("%s: DNS blocklist lookup of %s failed: temporary failure", s->client_desc,
                     query);
            return smtpd_check_defer_if_permit(j, 451, "4.3.0", "<%s>: %s rejected: Temporary lookup "
                                               "failure (DNS blocklist %s)", what, cls, r->arg);
        }
        if (j->async_status != DNS_OK)
            return CHK_DUNNO;
        j->dns_step = 1;
        j->dns = dnsev_lookup(smtpd_check_cfg.dns, query, DNSEV_TXT, rbl_answer, j);
        if (j->dns)
            return CHK_WAIT;
        j->async_text[0] = 0;
    }
    return rbl_reply(j, r, cls, what);
}

/* ---- reject_unknown_sender_domain / reject_unknown_recipient_domain ---- */

static void domain_answer(void *ctx, const struct dnsev_answer *ans)
{
    struct smtpd_check_job *j = ctx;
    j->async_status = ans->status;
    j->async_text[0] = 0;
    if (ans->status == DNS_OK && j->dns_step == 0) {
        for (size_t i = 0; i < ans->nnames; i++)
            if (!ans->names[i][0])
                str_copy(j->async_text, sizeof(j->async_text), "nullmx");
    }
    smtpd_check_job_continue(j);
}

enum smtpd_check_result smtpd_rbl_unknown_domain(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    bool sender = r->type == R_UNKNOWN_SENDER_DOMAIN;
    const struct address *a = sender ? smtpd_check_sender(j) : smtpd_check_recipient(j);
    const char *domain = address_domain(a);
    if (!domain)
        return CHK_DUNNO;
    /* our own destinations need no DNS */
    if (!sender && smtpd_access_destination_ok(j->s, a))
        return CHK_DUNNO;
    const char *cls = sender ? "Sender address" : "Recipient address";
    const char *dsn = sender ? "4.1.8" : "4.1.2";
    static const enum dnsev_type steps[] = { DNSEV_MX, DNSEV_A, DNSEV_AAAA };
    if (j->resumed) {
        int st = j->async_status;
        if (st == DNS_OK) {
            if (j->dns_step == 0 && strcmp(j->async_text, "nullmx") == 0)
                return smtpd_check_reject(j, 550, "5.7.27", "<%s>: %s rejected: Domain %s does not "
                                          "accept mail (nullMX)", a->address, cls, domain);
            return CHK_DUNNO;
        }
        if (st == DNS_TEMPFAIL)
            return smtpd_check_defer_if_permit(j, 450, dsn, "<%s>: %s rejected: Domain not found",
                                               a->address, cls);
        if (st == DNS_NOTFOUND || j->dns_step == 2)
            return smtpd_check_reject(j, cfg_reply_code(P_unknown_address_reject_code), dsn,
                                      "<%s>: %s rejected: Domain not found", a->address, cls);
        j->dns_step++;
    } else {
        j->dns_step = 0;
    }
    j->async_r = r;
    j->dns = dnsev_lookup(smtpd_check_cfg.dns, domain, steps[j->dns_step], domain_answer, j);
    if (!j->dns)
        return smtpd_check_reject(j, cfg_reply_code(P_unknown_address_reject_code), dsn,
                                  "<%s>: %s rejected: Domain not found", a->address, cls);
    return CHK_WAIT;
}
