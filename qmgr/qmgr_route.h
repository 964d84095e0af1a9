/* qmgr_route.h: where a recipient goes: the transport (a master.cf
 * service) and the next hop it is given. */
#ifndef TERN_QMGR_ROUTE_H
#define TERN_QMGR_ROUTE_H

struct qmgr_route {
    char *transport;   /* "local", "smtp", "relay", ... */
    char *nexthop;     /* domain, or [host]:port */
};

/* 0 with *route filled (free with qmgr_route_free), or -1 when the address
 * cannot be routed at all (the caller bounces it with 5.1.3). */
int qmgr_resolve(const char *recipient, struct qmgr_route *route);
void qmgr_route_free(struct qmgr_route *route);

#endif
