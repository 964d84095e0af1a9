/* qmgr_resolve.c: routes a recipient. The default route comes from the
 * one resolver (lib/global/resolve.c, the same call smtpd's relay check and
 * recipient tables make): sender routing in the local part resolved, then
 * local_transport for mydestination and this host's address literals,
 * relay_transport for relay_domains, default_transport for the rest, with
 * relayhost as the next hop of all non-local mail. Then transport_maps,
 * asked about the resolved address, may override either half, as in
 * Postfix's transport(5):
 * keys are tried from the most to the least specific (user+ext@domain,
 * user@domain, domain, .parent for each parent domain, *), and a value is
 * "transport:nexthop" where an empty half keeps the default. A message
 * queued with a content filter (its content_filter attribute: the
 * receiving service's content_filter or a FILTER action) goes to that
 * transport:nexthop instead. An address verification probe takes
 * address_verify_transport_maps and address_verify_relayhost instead of
 * transport_maps and relayhost (by default the same), and never a filter. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "domains.h"
#include "resolve.h"
#include "rewrite.h"
#include "log.h"
#include "maps.h"
#include "qmgr_route.h"
#include "strbuf.h"
#include "util.h"

/* transport_maps, and address_verify_transport_maps for probes */
struct transport_tables {
    const char *param;
    struct maplist *maps;         /* NULL: none configured, or it did not open */
    bool configured;
};
static struct transport_tables mail_tables = { .param = "transport_maps" };
static struct transport_tables probe_tables = { .param = "address_verify_transport_maps" };
static bool transport_maps_opened;

static void tables_open(struct transport_tables *t, const char *spec)
{
    t->configured = *spec != 0;
    if (!t->configured)
        return;
    struct strbuf err = STRBUF_INIT(1024);
    t->maps = maplist_open(spec, &err);
    /* Without its table qmgr cannot route correctly: mail waits instead of
     * going the default way (qmgr_resolve answers "temporary failure"). */
    if (!t->maps)
        msg_warn("%s: %s; mail is deferred until it is fixed", t->param, sb_str(&err));
    sb_free(&err);
}

/* Once, as root in pre_init: the tables are not reachable by path inside
 * a chroot. */
void qmgr_resolve_init(void)
{
    if (transport_maps_opened)
        return;
    transport_maps_opened = true;
    rewrite_init();                  /* virtual_alias_domains (lib/global/rewrite.h) */
    const char *spec = cfg_str(P_transport_maps), *probe = cfg_str(P_address_verify_transport_maps);
    tables_open(&mail_tables, spec);
    if (strcmp(spec, probe) == 0) {  /* the default: the same tables, opened once */
        probe_tables.maps = mail_tables.maps;
        probe_tables.configured = mail_tables.configured;
    } else {
        tables_open(&probe_tables, probe);
    }
}

/* Looks up key; 1 found, 0 not, -1 table error. */
static int lookup(const struct transport_tables *t, const char *key, struct strbuf *value)
{
    return maplist_lookup(t->maps, key, value);
}

/* The transport table answer for local@domain, most specific key first. */
static int transport_lookup(const struct transport_tables *t, const char *local,
                            const char *domain, struct strbuf *value)
{
    struct strbuf key = STRBUF_INIT(0);
    int rc;
    sb_appendf(&key, "%s@%s", local, domain);
    if ((rc = lookup(t, key.data, value)) != 0)
        goto out;
    const char *delims = cfg_str(P_recipient_delimiter);
    size_t base = *delims ? strcspn(local, delims) : strlen(local);
    if (base > 0 && local[base]) {             /* user+ext: try user@domain */
        sb_reset(&key);
        sb_appendf(&key, "%.*s@%s", (int)base, local, domain);
        if ((rc = lookup(t, key.data, value)) != 0)
            goto out;
    }
    if ((rc = lookup(t, domain, value)) != 0)
        goto out;
    for (const char *p = strchr(domain, '.'); p; p = strchr(p + 1, '.'))
        if ((rc = lookup(t, p, value)) != 0)     /* ".parent.example" */
            goto out;
    rc = lookup(t, "*", value);
out:
    sb_free(&key);
    return rc;
}

/* error: and retry: carry a reason where other transports carry a next hop */
static bool is_reason_transport(const char *transport)
{
    return strcmp(transport, "error") == 0 || strcmp(transport, "retry") == 0;
}

/* Apply a transport_maps value to the default route. */
static void apply_override(const char *value, struct qmgr_route *route)
{
    while (*value == ' ' || *value == '\t')
        value++;
    const char *colon = strchr(value, ':');
    size_t tlen = colon ? (size_t)(colon - value) : strlen(value);
    while (tlen > 0 && (value[tlen - 1] == ' ' || value[tlen - 1] == '\t'))
        tlen--;
    if (tlen > 0) {
        free(route->transport);
        route->transport = xstrndup(value, tlen);
        if (is_reason_transport(route->transport) && !(colon && colon[1])) {
            /* "error" alone: its reason is not the recipient's domain */
            free(route->nexthop);
            route->nexthop = xstrdup("");
        }
    }
    if (colon && colon[1]) {
        free(route->nexthop);
        route->nexthop = xstrdup(colon + 1);
    }
}

/* A probe's next hop: address_verify_relayhost where relayhost would be. */
static void probe_relayhost(const struct resolve_result *r, struct qmgr_route *route)
{
    const char *relayhost = cfg_str(P_relayhost), *probe = cfg_str(P_address_verify_relayhost);
    if (r->class == RESOLVE_LOCAL || r->class == RESOLVE_VIRTUAL || strcmp(relayhost, probe) == 0)
        return;
    if (*relayhost && strcmp(route->nexthop, relayhost) != 0)
        return;                      /* the transport's own next hop */
    free(route->nexthop);
    route->nexthop = xstrdup(*probe ? probe : r->domain);
}

static enum qmgr_route_result resolve_route(const char *recipient, bool probe,
                                            struct qmgr_route *route, struct strbuf *why)
{
    struct resolve_result r;
    route->transport = route->nexthop = NULL;
    if (resolve_text(recipient, &r) < 0) {
        sb_set(why, r.why);
        return QMGR_ROUTE_TEMP;
    }
    if (r.class == RESOLVE_BAD) {
        resolve_result_free(&r);
        return QMGR_ROUTE_BAD;
    }
    /* An address still in a virtual alias domain was aliased by nothing
     * (cleanup expands the ones virtual_alias_maps lists): as in Postfix,
     * it bounces as unknown instead of going to the domain's MX. Local
     * domains win over virtual alias domains. */
    int alias_domain = r.class == RESOLVE_LOCAL ? 0 : rewrite_virtual_alias_domain(r.domain);
    if (alias_domain != 0) {
        resolve_result_free(&r);
        if (alias_domain < 0) {
            sb_set(why, "virtual_alias_domains lookup failure");
            return QMGR_ROUTE_TEMP;
        }
        route->transport = xstrdup("error");
        route->nexthop = xstrdup(cfg_bool(P_show_user_unknown_table_name)
                                 ? "5.1.1 User unknown in virtual alias table"
                                 : "5.1.1 User unknown");
        return QMGR_ROUTE_OK;
    }
    route->transport = r.transport;
    route->nexthop = r.nexthop;
    r.transport = r.nexthop = NULL;
    if (probe)
        probe_relayhost(&r, route);
    enum qmgr_route_result result = QMGR_ROUTE_OK;
    if (!transport_maps_opened)
        qmgr_resolve_init();
    const struct transport_tables *t = probe ? &probe_tables : &mail_tables;
    if (t->configured) {
        struct strbuf value = STRBUF_INIT(0);
        int rc = t->maps ? transport_lookup(t, r.local, r.domain, &value) : -1;
        if (rc > 0) {
            apply_override(value.data, route);
        } else if (rc < 0) {
            sb_set(why, "transport table lookup failure");
            result = QMGR_ROUTE_TEMP;
        }
        sb_free(&value);
    }
    resolve_result_free(&r);
    if (result != QMGR_ROUTE_OK)
        qmgr_route_free(route);
    return result;
}

enum qmgr_route_result qmgr_resolve(const char *recipient, struct qmgr_route *route, struct strbuf *why)
{
    return resolve_route(recipient, false, route, why);
}

enum qmgr_route_result qmgr_resolve_probe(const char *recipient, struct qmgr_route *route,
                                          struct strbuf *why)
{
    return resolve_route(recipient, true, route, why);
}

enum qmgr_route_result qmgr_resolve_filter(const char *recipient, const char *filter,
                                           struct qmgr_route *route, struct strbuf *why)
{
    /* The recipient must be routable at all; then the filter replaces the
     * route. Without a destination, default_filter_nexthop is the next hop,
     * and when that is empty the recipient's domain, as in Postfix. */
    enum qmgr_route_result result = qmgr_resolve(recipient, route, why);
    const char *colon = strchr(filter, ':');
    if (result != QMGR_ROUTE_OK || !colon || colon == filter)
        return result;
    free(route->transport);
    route->transport = xstrndup(filter, (size_t)(colon - filter));
    if (colon[1]) {
        free(route->nexthop);
        route->nexthop = xstrdup(colon + 1);
    } else {
        const char *dflt = cfg_str(P_default_filter_nexthop);
        const char *at = strrchr(recipient, '@');
        free(route->nexthop);
        route->nexthop = xstrdup(*dflt ? dflt : at && at[1] ? at + 1 : domain_myorigin());
    }
    return QMGR_ROUTE_OK;
}

void qmgr_route_free(struct qmgr_route *route)
{
    free(route->transport);
    free(route->nexthop);
    route->transport = route->nexthop = NULL;
}
