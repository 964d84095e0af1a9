/* smtpd_check.c: the relay decision. A recipient is accepted when the client
 * is in mynetworks, or when the recipient's final domain (after any routing
 * the sender put in the local part) is ours (mydestination) or one we relay
 * to (relay_domains). Everything else is "Relay access denied". */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "config.h"
#include "domains.h"
#include "log.h"
#include "netlist.h"
#include "smtpd.h"
#include "strbuf.h"
#include "util.h"

void check_init(void)
{
    struct strbuf err = STRBUF_INIT(1024);
    smtpd_cfg.mynetworks = netlist_parse(cfg_str(P_mynetworks), &err);
    if (!smtpd_cfg.mynetworks)
        msg_fatal("main.cf: mynetworks: %s", sb_str(&err));
    sb_free(&err);
    domains_init();
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

static bool destination_is_local(const struct smtpd_session *s, const char *domain)
{
    return domain[0] == '[' ? literal_is_local(s, domain) : domain_is_local(domain);
}

bool check_rcpt_permitted(struct smtpd_session *s, const struct address *a)
{
    if (s->client_trusted)
        return true;
    if ((a->flags & ADDR_F_NODOMAIN) && !(a->flags & ADDR_F_ROUTED)
        && strcmp(a->local_lc, "postmaster") == 0)
        return true;
    /* An address without a domain is completed with myorigin later. */
    const char *domain = (a->flags & ADDR_F_NODOMAIN) ? domain_myorigin() : a->domain;
    char *dest = address_final_domain(a->local, domain);
    bool ok = dest && (destination_is_local(s, dest) || domain_is_relay(dest));
    free(dest);
    return ok;
}
