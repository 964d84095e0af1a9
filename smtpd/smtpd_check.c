/* smtpd_check.c: the relay decision. A recipient is accepted when the client
 * is in mynetworks, or when the recipient's final domain (after any routing
 * the sender put in the local part) is ours (mydestination) or one we relay
 * to (relay_domains). Everything else is "Relay access denied". */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "config.h"
#include "log.h"
#include "netlist.h"
#include "smtpd.h"
#include "strbuf.h"
#include "util.h"

#define ROUTE_HOPS_MAX 10

/* Domains of a mydestination/relay_domains list, normalized; entries that are
 * lookup tables or files are not supported yet and are skipped with a warning. */
static char **domain_list(const char *param, const char *value, size_t *count)
{
    size_t n = 0;
    char **words = cfg_list_split(value, &n);
    char **out = xcalloc(n + 1, sizeof(*out));
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (strchr(words[i], ':') || words[i][0] == '/') {
            msg_warn("%s: entry \"%s\" ignored: lookup tables and files are not supported yet",
                     param, words[i]);
            continue;
        }
        out[used++] = address_domain_normalize(words[i]);
    }
    cfg_list_free(words, n);
    *count = used;
    return out;
}

static char *myorigin_domain(void)
{
    const char *o = cfg_str(P_myorigin);
    const char *at = strrchr(o, '@');
    return address_domain_normalize(at ? at + 1 : o);
}

void check_init(void)
{
    struct strbuf err = STRBUF_INIT(1024);
    smtpd_cfg.mynetworks = netlist_parse(cfg_str(P_mynetworks), &err);
    if (!smtpd_cfg.mynetworks)
        msg_fatal("main.cf: mynetworks: %s", sb_str(&err));
    sb_free(&err);
    smtpd_cfg.mydestination = domain_list("mydestination", cfg_str(P_mydestination),
                                          &smtpd_cfg.nmydestination);
    smtpd_cfg.relay_domains = domain_list("relay_domains", cfg_str(P_relay_domains),
                                          &smtpd_cfg.nrelay_domains);
    smtpd_cfg.myorigin_domain = myorigin_domain();
}

bool check_client_trusted(const struct sockaddr *sa)
{
    return netlist_match(smtpd_cfg.mynetworks, sa);
}

/* "[1.2.3.4]" / "[ipv6:...]" naming the address the client connected to. */
static bool literal_is_local(const struct smtpd_session *s, const char *domain)
{
    char text[INET6_ADDRSTRLEN + 8];
    unsigned char bin[16];
    size_t n = strlen(domain);
    if (n < 3 || n - 2 >= sizeof(text))
        return false;
    memcpy(text, domain + 1, n - 2);
    text[n - 2] = 0;
    const char *a = strncmp(text, "ipv6:", 5) == 0 ? text + 5 : text;
    if (s->local.ss_family == AF_INET && inet_pton(AF_INET, a, bin) == 1)
        return memcmp(bin, &((const struct sockaddr_in *)&s->local)->sin_addr, 4) == 0;
    if (s->local.ss_family == AF_INET6 && inet_pton(AF_INET6, a, bin) == 1)
        return memcmp(bin, &((const struct sockaddr_in6 *)&s->local)->sin6_addr, 16) == 0;
    return false;
}

static bool domain_is_local(const struct smtpd_session *s, const char *domain)
{
    if (domain[0] == '[')
        return literal_is_local(s, domain);
    for (size_t i = 0; i < smtpd_cfg.nmydestination; i++)
        if (strcmp(smtpd_cfg.mydestination[i], domain) == 0)
            return true;
    return false;
}

/* relay_domains entries match the domain and its subdomains (Postfix's
 * parent_domain_matches_subdomains); ".example.com" matches subdomains only. */
static bool domain_is_relay(const char *domain)
{
    size_t dlen = strlen(domain);
    for (size_t i = 0; i < smtpd_cfg.nrelay_domains; i++) {
        const char *e = smtpd_cfg.relay_domains[i];
        bool sub_only = e[0] == '.';
        const char *base = sub_only ? e + 1 : e;
        size_t blen = strlen(base);
        if (blen == 0 || blen > dlen)
            continue;
        if (!sub_only && dlen == blen && strcmp(domain, base) == 0)
            return true;
        if (dlen > blen && domain[dlen - blen - 1] == '.' && strcmp(domain + dlen - blen, base) == 0)
            return true;
    }
    return false;
}

/* Peel the routing out of a local part until none is left; the domain then
 * reached is where the mail would really go. Returns a malloc'ed domain, or
 * NULL when the routing is malformed or too deep. */
static char *final_domain(const char *local, const char *domain)
{
    char *cur_local = xstrdup(local), *cur_domain = xstrdup(domain);
    for (int hop = 0; hop <= ROUTE_HOPS_MAX; hop++) {
        char *next_local, *next_domain;
        int r = address_unroute(cur_local, &next_local, &next_domain);
        if (r == 0) {
            free(cur_local);
            return cur_domain;
        }
        free(cur_local);
        free(cur_domain);
        if (r < 0 || !address_domain_valid(next_domain, strlen(next_domain), true)) {
            free(next_local);
            free(next_domain);
            return NULL;
        }
        cur_local = next_local;
        cur_domain = next_domain;
    }
    free(cur_local);
    free(cur_domain);
    return NULL;
}

bool check_rcpt_permitted(struct smtpd_session *s, const struct address *a)
{
    if (s->client_trusted)
        return true;
    if ((a->flags & ADDR_F_NODOMAIN) && !(a->flags & ADDR_F_ROUTED)
        && strcmp(a->local_lc, "postmaster") == 0)
        return true;
    /* An address without a domain is completed with myorigin later. */
    const char *domain = (a->flags & ADDR_F_NODOMAIN) ? smtpd_cfg.myorigin_domain : a->domain;
    char *dest = final_domain(a->local, domain);
    bool ok = dest && (domain_is_local(s, dest) || domain_is_relay(dest));
    free(dest);
    return ok;
}
