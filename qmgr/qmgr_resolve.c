/* qmgr_resolve.c: routes a recipient: its final domain (after any sender
 * routing in the local part, decided by lib/domains.c exactly as smtpd's
 * relay check decides it) picks the transport: local_transport for
 * mydestination, relay_transport for relay_domains, default_transport for
 * the rest; relayhost, when set, is the next hop for all non-local mail. */
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "config.h"
#include "domains.h"
#include "qmgr_route.h"
#include "util.h"

static char *transport_name(const char *value, char **nexthop)
{
    /* "transport" or "transport:nexthop", as Postfix writes them */
    const char *colon = strchr(value, ':');
    if (!colon)
        return xstrdup(value);
    if (colon[1] && !*nexthop)
        *nexthop = xstrdup(colon + 1);
    return xstrndup(value, (size_t)(colon - value));
}

int qmgr_resolve(const char *recipient, struct qmgr_route *route)
{
    struct address a;
    route->transport = route->nexthop = NULL;
    if (address_parse(recipient, strlen(recipient),
                      ADDR_ALLOW_BARE | ADDR_ALLOW_NODOMAIN | ADDR_ALLOW_UTF8, &a, NULL) != ADDR_OK)
        return -1;
    const char *domain = (a.flags & ADDR_F_NODOMAIN) ? domain_myorigin() : a.domain;
    char *final = address_final_domain(a.local, domain);
    address_free(&a);
    if (!final || !*final) {
        free(final);
        return -1;
    }
    char *nexthop = NULL;
    if (domain_is_local(final)) {
        route->transport = transport_name(cfg_str(P_local_transport), &nexthop);
    } else {
        const char *relayhost = cfg_str(P_relayhost);
        if (*relayhost)
            nexthop = xstrdup(relayhost);
        route->transport = transport_name(cfg_str(domain_is_relay(final) ? P_relay_transport
                                                  : P_default_transport), &nexthop);
    }
    if (nexthop) {
        route->nexthop = nexthop;
        free(final);
    } else {
        route->nexthop = final;
    }
    return 0;
}

void qmgr_route_free(struct qmgr_route *route)
{
    free(route->transport);
    free(route->nexthop);
    route->transport = route->nexthop = NULL;
}
