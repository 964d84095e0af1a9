/* resolve.c: the one resolver (see resolve.h): sender routing in local
 * parts resolved the way delivery will, the class of the final domain, and
 * the default transport and next hop of that class. Address literals are
 * local exactly when they name one of this host's interface addresses, read
 * with getifaddrs(); smtpd and qmgr answer the same for them, so a literal
 * that smtpd accepts as local never leaves through smtp. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "address.h"
#include "config.h"
#include "domains.h"
#include "log.h"
#include "resolve.h"
#include "strbuf.h"
#include "util.h"

struct own_addr {
    int family;                  /* AF_INET or AF_INET6 */
    unsigned char bytes[16];     /* 4 or 16 used */
};

struct addr_set {
    struct own_addr *items;
    size_t n;
};

static struct {
    bool loaded;                 /* the interface addresses were read */
    struct addr_set own;         /* getifaddrs(), once per process */
    struct addr_set proxies;     /* proxy_interfaces, at every resolve_init() */
    unsigned route_ops;          /* ADDR_ROUTE_* */
} rs;

/* ---- this host's own addresses ---- */

/* IPv4-mapped IPv6 addresses are the IPv4 address they map. */
static void own_addr_set(struct own_addr *o, int family, const void *bytes)
{
    memset(o, 0, sizeof(*o));
    if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)bytes)) {
        o->family = AF_INET;
        memcpy(o->bytes, (const unsigned char *)bytes + 12, 4);
    } else {
        o->family = family;
        memcpy(o->bytes, bytes, family == AF_INET ? 4 : 16);
    }
}

static bool set_has(const struct addr_set *set, const struct own_addr *o)
{
    for (size_t i = 0; i < set->n; i++)
        if (memcmp(&set->items[i], o, sizeof(*o)) == 0)
            return true;
    return false;
}

static void set_add(struct addr_set *set, int family, const void *bytes)
{
    if (!set->items)
        set->items = xcalloc(RESOLVE_OWN_ADDRS_MAX, sizeof(*set->items));
    if (set->n >= RESOLVE_OWN_ADDRS_MAX)
        return;
    struct own_addr o;
    own_addr_set(&o, family, bytes);
    if (!set_has(set, &o))
        set->items[set->n++] = o;
}

/* Every address of every interface, up or down (an address that comes up
 * later is still ours). */
static void own_load(void)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) < 0) {
        msg_warn("cannot list this host's interface addresses: %m; mail to address "
                 "literals is refused (smtpd) or deferred (qmgr) until a restart");
        return;
    }
    rs.own.n = 0;
    for (struct ifaddrs *i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr)
            continue;
        if (i->ifa_addr->sa_family == AF_INET)
            set_add(&rs.own, AF_INET, &((const struct sockaddr_in *)i->ifa_addr)->sin_addr);
        else if (i->ifa_addr->sa_family == AF_INET6)
            set_add(&rs.own, AF_INET6, &((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr);
    }
    freeifaddrs(list);
    rs.loaded = true;
}

/* proxy_interfaces: addresses on which mail reaches this host through a
 * proxy or NAT. IP addresses only (a host name would need DNS at start). */
static void proxies_load(void)
{
    size_t n;
    char **words = cfg_list_split(cfg_str(P_proxy_interfaces), &n);
    rs.proxies.n = 0;
    for (size_t i = 0; i < n; i++) {
        char text[INET6_ADDRSTRLEN + 8];
        unsigned char bin[16];
        const char *w = words[i];
        size_t len = strlen(w);
        if (len > 2 && w[0] == '[' && w[len - 1] == ']') {
            w++;
            len -= 2;
        }
        if (len >= sizeof(text)) {
            msg_warn("proxy_interfaces: \"%s\" ignored: not an IP address", words[i]);
            continue;
        }
        memcpy(text, w, len);
        text[len] = 0;
        if (inet_pton(AF_INET, text, bin) == 1)
            set_add(&rs.proxies, AF_INET, bin);
        else if (inet_pton(AF_INET6, text, bin) == 1)
            set_add(&rs.proxies, AF_INET6, bin);
        else
            msg_warn("proxy_interfaces: \"%s\" ignored: not an IP address", words[i]);
    }
    cfg_list_free(words, n);
}

/* "[192.0.2.1]" or "[ipv6:...]" (any case, any IPv6 spelling) into *o;
 * false when domain is not such a literal. */
static bool literal_parse(const char *domain, struct own_addr *o)
{
    char text[INET6_ADDRSTRLEN + 8];
    unsigned char bin[16];
    size_t n = strlen(domain);
    if (n < 3 || domain[0] != '[' || domain[n - 1] != ']' || n - 2 >= sizeof(text))
        return false;
    memcpy(text, domain + 1, n - 2);
    text[n - 2] = 0;
    if (strncasecmp(text, "ipv6:", 5) == 0) {
        if (inet_pton(AF_INET6, text + 5, bin) != 1)
            return false;
        own_addr_set(o, AF_INET6, bin);
        return true;
    }
    if (inet_pton(AF_INET, text, bin) != 1)
        return false;
    own_addr_set(o, AF_INET, bin);
    return true;
}

/* 1 one of ours, 0 not, -1 not known (the interface list is missing). */
static int literal_is_local(const char *domain)
{
    struct own_addr o;
    if (!literal_parse(domain, &o))
        return 0;
    if (set_has(&rs.proxies, &o))
        return 1;
    if (!rs.loaded)
        return -1;
    return set_has(&rs.own, &o);
}

/* 1 local, 0 not, -1 not known now. */
static int destination_local(const char *domain)
{
    return domain[0] == '[' ? literal_is_local(domain) : domain_is_local(domain);
}

bool resolve_domain_is_local(const char *domain)
{
    return destination_local(domain) == 1;
}

/* ---- set-up ---- */

void resolve_init(void)
{
    domains_init();
    rs.route_ops = (cfg_bool(P_resolve_dequoted_address) ? ADDR_ROUTE_AT : 0)
                   | (cfg_bool(P_allow_percent_hack) ? ADDR_ROUTE_PERCENT : 0)
                   | (cfg_bool(P_swap_bangpath) ? ADDR_ROUTE_BANG : 0);
    proxies_load();
    if (!rs.loaded)
        own_load();
}

const char *resolve_class_name(enum resolve_class c)
{
    switch (c) {
    case RESOLVE_LOCAL: return "local";
    case RESOLVE_RELAY: return "relay";
    case RESOLVE_REMOTE: return "remote";
    case RESOLVE_BAD: return "bad";
    case RESOLVE_VIRTUAL: return "virtual";
    }
    return "?";
}

/* ---- resolving ---- */

/* error: and retry: carry a reason where other transports carry a next hop. */
static bool is_reason_transport(const char *transport)
{
    return strcmp(transport, "error") == 0 || strcmp(transport, "retry") == 0;
}

/* The class's transport, "transport" or "transport:nexthop" as Postfix
 * writes them; relayhost is the next hop of all mail not delivered on this host. */
static void default_route(struct resolve_result *r)
{
    enum param_id p = r->class == RESOLVE_LOCAL ? P_local_transport
                      : r->class == RESOLVE_VIRTUAL ? P_virtual_transport
                      : r->class == RESOLVE_RELAY ? P_relay_transport : P_default_transport;
    const char *value = cfg_str(p), *colon = strchr(value, ':');
    bool here = r->class == RESOLVE_LOCAL || r->class == RESOLVE_VIRTUAL;
    const char *relayhost = here ? "" : cfg_str(P_relayhost);
    r->transport = colon ? xstrndup(value, (size_t)(colon - value)) : xstrdup(value);
    if (*relayhost)
        r->nexthop = xstrdup(relayhost);
    else if (colon && colon[1])
        r->nexthop = xstrdup(colon + 1);
    else
        r->nexthop = xstrdup(is_reason_transport(r->transport) ? "" : r->domain);
}

static int resolve_bad(struct resolve_result *r, const char *why)
{
    r->class = RESOLVE_BAD;
    r->why = why;
    return 0;
}

/* One hop of sender routing; 1 taken (*local, *domain replaced), 0 none
 * left, -1 malformed (r->why set). */
static int next_hop(char **local, char **domain, struct resolve_result *r)
{
    char *nl, *nd;
    int rc = address_unroute(*local, rs.route_ops, &nl, &nd);
    if (rc < 0)
        r->why = "malformed sender routing in the local part";
    if (rc <= 0)
        return rc;
    size_t n = strlen(nd);
    if (!address_domain_valid(nd, n, true) || nd[n - 1] == '.') {
        free(nl);
        free(nd);
        r->why = "malformed domain in sender routing";
        return -1;
    }
    free(*local);
    free(*domain);
    *local = nl;
    *domain = nd;
    return 1;
}

int resolve_address(const struct address *a, struct resolve_result *r)
{
    memset(r, 0, sizeof(*r));
    if (a->flags & ADDR_F_NULL)
        return resolve_bad(r, "the null address has no destination");
    char *local = xstrdup(a->local), *domain;
    if (a->flags & ADDR_F_NODOMAIN) {
        domain = xstrdup(domain_myorigin());
        r->flags |= RESOLVE_F_NODOMAIN;
    } else {
        domain = xstrdup(a->domain);
    }
    if (strpbrk(local, "%!@"))
        r->flags |= RESOLVE_F_ROUTED;
    int rc = 0, is_local = 0;
    for (int hops = 0;; hops++) {
        if (!*domain) {
            resolve_bad(r, "the address has no domain");
            goto out;
        }
        if ((is_local = destination_local(domain)) < 0) {
            r->why = domain[0] == '[' ? "this host's interface addresses are not known"
                                      : "mydestination lookup failed";
            rc = -1;
            goto out;
        }
        if (!is_local)
            break;
        int step = next_hop(&local, &domain, r);
        if (step == 0)
            break;
        if (step < 0) {
            resolve_bad(r, r->why);
            goto out;
        }
        r->flags |= RESOLVE_F_HOPPED;
        if (hops >= RESOLVE_HOPS_MAX) {
            resolve_bad(r, "too many levels of sender routing");
            goto out;
        }
    }
    if (domain[0] == '[')
        r->flags |= RESOLVE_F_LITERAL;
    int is_virtual = is_local ? 0 : domain_is_virtual_mailbox(domain);
    if (is_virtual < 0) {
        r->why = "virtual_mailbox_domains lookup failed";
        rc = -1;
        goto out;
    }
    int is_relay = is_local || is_virtual ? 0 : domain_is_relay(domain);
    if (is_relay < 0) {
        r->why = "relay_domains lookup failed";
        rc = -1;
        goto out;
    }
    r->class = is_local ? RESOLVE_LOCAL : is_virtual ? RESOLVE_VIRTUAL
               : is_relay ? RESOLVE_RELAY : RESOLVE_REMOTE;
    struct strbuf full = STRBUF_INIT(0);
    address_quote_local(local, &full);
    sb_appendf(&full, "@%s", domain);
    r->address = xstrdup(sb_str(&full));
    sb_free(&full);
    r->local = local;
    r->local_lc = str_lower(xstrdup(local));
    r->domain = domain;
    default_route(r);
    return 0;
out:
    free(local);
    free(domain);
    return rc;
}

int resolve_text(const char *text, struct resolve_result *r)
{
    struct address a;
    const char *why = NULL;
    if (address_parse(text, strlen(text), ADDR_ALLOW_BARE | ADDR_ALLOW_NODOMAIN | ADDR_ALLOW_UTF8,
                      &a, &why) != ADDR_OK) {
        memset(r, 0, sizeof(*r));
        return resolve_bad(r, why ? why : "bad address syntax");
    }
    int rc = resolve_address(&a, r);
    address_free(&a);
    return rc;
}

void resolve_result_free(struct resolve_result *r)
{
    FREE_ALL(r->address, r->local, r->local_lc, r->domain, r->transport, r->nexthop);
    memset(r, 0, sizeof(*r));
}
