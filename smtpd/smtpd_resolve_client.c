/* smtpd_resolve_client.c: the client's name, found as Postfix finds it at
 * connect: the address's PTR name, which counts only when that name's
 * A/AAAA records lead back to the address (forward-confirmed); otherwise
 * the client is "unknown". A temporary DNS failure is remembered, so that
 * reject_unknown_client_hostname answers 450 rather than refusing for
 * good. The lookup runs in the event loop before the greeting and the
 * "connect from name[addr]" line. */
#include <arpa/inet.h>
#include <string.h>

#include "config.h"
#include "dns_event.h"
#include "log.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "util.h"

static void (*resolved_fn)(struct smtpd_session *s);

static void finish(struct smtpd_session *s)
{
    s->check->resolve_q = NULL;
    resolved_fn(s);
    smtpd_session_finish_if_done(s);
}

static bool same_address(const struct smtpd_session *s, const struct dns_addr *a)
{
    unsigned char bin[16];
    if (inet_pton(a->family, s->client_addr, bin) != 1)
        return false;
    return memcmp(bin, a->family == AF_INET ? (const void *)&a->u.v4 : (const void *)&a->u.v6,
                  a->family == AF_INET ? 4 : 16) == 0;
}

static void forward_answer(void *ctx, const struct dnsev_answer *ans)
{
    struct smtpd_session *s = ctx;
    struct smtpd_check_state *c = s->check;
    if (ans->status == DNS_OK) {
        for (size_t i = 0; i < ans->naddr; i++) {
            if (same_address(s, &ans->addrs[i])) {
                str_copy(c->name, sizeof(c->name), c->reverse_name);
                c->name_status = 2;
                finish(s);
                return;
            }
        }
        msg_warn("hostname %s does not resolve to address %s", c->reverse_name, s->client_addr);
        c->name_status = 5;
    } else {
        msg_warn("hostname %s does not resolve to address %s: %s", c->reverse_name,
                 s->client_addr, ans->why);
        c->name_status = ans->status == DNS_TEMPFAIL ? 4 : 5;
    }
    finish(s);
}

static void reverse_answer(void *ctx, const struct dnsev_answer *ans)
{
    struct smtpd_session *s = ctx;
    struct smtpd_check_state *c = s->check;
    if (ans->status != DNS_OK || ans->nnames == 0) {
        c->reverse_status = c->name_status = ans->status == DNS_TEMPFAIL ? 4 : 5;
        finish(s);
        return;
    }
    str_copy(c->reverse_name, sizeof(c->reverse_name), ans->names[0]);
    str_lower(c->reverse_name);
    size_t n = strlen(c->reverse_name);
    if (n > 1 && c->reverse_name[n - 1] == '.')
        c->reverse_name[n - 1] = 0;
    c->reverse_status = 2;
    bool v6 = strchr(s->client_addr, ':') != NULL;
    c->resolve_q = dnsev_lookup(smtpd_check_cfg.dns, c->reverse_name, v6 ? DNSEV_HOST6 : DNSEV_HOST4,
                                forward_answer, s);
    if (!c->resolve_q) {
        c->name_status = 5;
        finish(s);
    }
}

bool smtpd_resolve_client_start(struct smtpd_session *s, void (*done)(struct smtpd_session *s))
{
    struct smtpd_check_state *c = s->check;
    resolved_fn = done;
    if (!cfg_bool(P_smtpd_peername_lookup) || strcmp(s->client_addr, "unknown") == 0)
        return false;
    c->resolve_q = dnsev_lookup(smtpd_check_cfg.dns, s->client_addr, DNSEV_PTR, reverse_answer, s);
    return c->resolve_q != NULL;
}

void smtpd_resolve_client_cancel(struct smtpd_session *s)
{
    if (s->check && s->check->resolve_q) {
        dnsev_cancel(s->check->resolve_q);
        s->check->resolve_q = NULL;
    }
}
