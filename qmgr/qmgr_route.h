/* qmgr_route.h: where a recipient goes: the transport (a master.cf
 * service, or the built-in "error" and "retry") and the next hop it is
 * given. */
#ifndef TERN_QMGR_ROUTE_H
#define TERN_QMGR_ROUTE_H

struct strbuf;

struct qmgr_route {
    char *transport;   /* "local", "smtp", "relay", ... */
    char *nexthop;     /* domain, [host]:port, or the text of error:/retry: */
};

enum qmgr_route_result {
    QMGR_ROUTE_OK = 0,     /* *route filled (free with qmgr_route_free) */
    QMGR_ROUTE_BAD = -1,   /* the address cannot be routed: bounce with 5.1.3 */
    QMGR_ROUTE_TEMP = -2,  /* a table lookup failed: defer, *why says so */
};

/* Opens transport_maps (done by the first qmgr_resolve otherwise). */
void qmgr_resolve_init(void);
enum qmgr_route_result qmgr_resolve(const char *recipient, struct qmgr_route *route, struct strbuf *why);
/* The same for an address verification probe: address_verify_transport_maps
 * and address_verify_relayhost in place of transport_maps and relayhost. */
enum qmgr_route_result qmgr_resolve_probe(const char *recipient, struct qmgr_route *route,
                                          struct strbuf *why);
/* The route of a recipient of a message with a content_filter attribute
 * ("transport:nexthop", written by cleanup from the content_filter of the
 * service that received it or a FILTER action): the queued message keeps
 * it whatever main.cf says later. */
enum qmgr_route_result qmgr_resolve_filter(const char *recipient, const char *filter,
                                           struct qmgr_route *route, struct strbuf *why);
void qmgr_route_free(struct qmgr_route *route);

#endif
