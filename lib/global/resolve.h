/* resolve.h: the one resolver that decides what a recipient address is and
 * where it goes. smtpd's relay check and reject_unlisted_recipient, qmgr's
 * routing and local(8)'s view of its recipient all call resolve_address(),
 * so that nothing is accepted that delivery would route elsewhere or bounce
 * as unknown.
 *
 * The steps, in order (each a later place to grow, e.g. canonical and
 * virtual alias rewriting before the class decision):
 *   1. an address without a domain takes myorigin's;
 *   2. while the domain is local, sender routing in the local part is
 *      resolved: "user@host" in a quoted local part
 *      (resolve_dequoted_address), "user%host" (allow_percent_hack),
 *      "host!user" (swap_bangpath), at most RESOLVE_HOPS_MAX hops;
 *   3. the class of the final domain, in Postfix's order: local
 *      (mydestination, or an address literal of one of this host's own
 *      interface addresses or of proxy_interfaces), virtual
 *      (virtual_mailbox_domains), relay (relay_domains), remote (anything
 *      else), or bad; the lists may hold tables (lib/global/domains.h),
 *      whose failure is a -1 answer. A virtual alias domain is not a class
 *      here: its addresses are rewritten by cleanup, and one that is left
 *      is unknown (qmgr and smtpd ask rewrite.h before the class);
 *   4. the default transport and next hop of that class (local_transport,
 *      virtual_transport, relay_transport, default_transport, relayhost).
 *      transport_maps is qmgr's business, on top of this answer. */
#ifndef TERN_RESOLVE_H
#define TERN_RESOLVE_H

#include <stdbool.h>

struct address;

#define RESOLVE_HOPS_MAX 10          /* sender routing hops followed */
#define RESOLVE_OWN_ADDRS_MAX 1024   /* interface addresses remembered */

enum resolve_class {
    RESOLVE_LOCAL = 1,   /* delivered on this host (local_transport) */
    RESOLVE_RELAY,       /* relay_domains (relay_transport) */
    RESOLVE_REMOTE,      /* anywhere else (default_transport) */
    RESOLVE_BAD,         /* cannot be routed: r->why says why */
    RESOLVE_VIRTUAL,     /* virtual_mailbox_domains (virtual_transport) */
};

/* struct resolve_result .flags */
#define RESOLVE_F_ROUTED   0x01   /* the local part carried sender routing
                                     (%, ! or a quoted @), resolved or not */
#define RESOLVE_F_LITERAL  0x02   /* the final domain is an address literal */
#define RESOLVE_F_NODOMAIN 0x04   /* the address had no domain: myorigin's */
#define RESOLVE_F_HOPPED   0x08   /* sender routing was resolved: delivery sees
                                     another address than the one given */

struct resolve_result {
    enum resolve_class class;
    unsigned flags;      /* RESOLVE_F_* */
    char *address;       /* local@domain as delivery sees it, in external
                            form (local part quoted when it must be) */
    char *local;         /* final local part, unquoted, case preserved */
    char *local_lc;      /* the same, lower-cased (ASCII) */
    char *domain;        /* final domain, lower-cased, no trailing dot */
    char *transport;     /* the class's default transport */
    char *nexthop;       /* its next hop: relayhost, the transport's own
                            "transport:nexthop", or the domain */
    const char *why;     /* RESOLVE_BAD: a static reason */
};

/* Read the parameters (mydestination, relay_domains,
 * virtual_mailbox_domains, myorigin,
 * proxy_interfaces, allow_percent_hack, swap_bangpath,
 * resolve_dequoted_address and the transports) and, on the first call
 * only, this host's interface
 * addresses: call it before a daemon drops privileges or enters a sandbox.
 * The addresses are read once per process; `tern reload` restarts the
 * daemons, so run it after the host's addresses change. */
void resolve_init(void);

/* Resolve a parsed address (lib/global/address.h). Returns 0 with *r filled (free
 * it with resolve_result_free; r->class may be RESOLVE_BAD), or -1 when no
 * decision can be made now and the caller should try again later (r->why:
 * a table of mydestination or relay_domains could not be looked up, or
 * this host's addresses are not known). */
int resolve_address(const struct address *a, struct resolve_result *r);

/* The same for an address in text form (bare or in <>; no domain allowed;
 * UTF-8 allowed); a text that does not parse is RESOLVE_BAD. */
int resolve_text(const char *text, struct resolve_result *r);

void resolve_result_free(struct resolve_result *r);

/* Is domain one of this host's final destinations: in mydestination, or an
 * address literal ("[192.0.2.1]", "[IPv6:::1]", any case and IPv6
 * spelling) of one of its interface addresses or of proxy_interfaces?
 * domain is lower-case. */
bool resolve_domain_is_local(const char *domain);

const char *resolve_class_name(enum resolve_class c);

#endif
