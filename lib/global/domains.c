/* domains.c: the domain lists of main.cf (mydestination, relay_domains,
 * virtual_alias_domains, virtual_mailbox_domains) and myorigin, for the resolver
 * (lib/global/resolve.c). The lists are Postfix's match lists
 * (lib/global/match_list.h): literal names, "/file/name" and "type:name"
 * tables, "!" exclusions. */
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "config.h"
#include "domains.h"
#include "log.h"
#include "match_list.h"
#include "strbuf.h"
#include "util.h"

/* One list: its value when it was opened (a list is opened again only when
 * its value changes, so that calling domains_init() again after a chroot
 * or a privilege drop keeps the tables opened before), and whether it
 * could not be opened: then every question about it is a lookup error,
 * so mail waits instead of going where the administrator did not mean. */
struct domain_list {
    const char *param;
    enum param_id id;
    int flags;
    char *value;
    struct match_list *list;
    bool broken;
};

static struct domain_list lists[] = {
    { "mydestination", P_mydestination, 0, NULL, NULL, false },
    { "relay_domains", P_relay_domains, MATCH_F_PARENT, NULL, NULL, false },
    { "virtual_alias_domains", P_virtual_alias_domains, 0, NULL, NULL, false },
    { "virtual_mailbox_domains", P_virtual_mailbox_domains, 0, NULL, NULL, false },
};
enum { L_MYDEST, L_RELAY, L_VIRTUAL, L_VMAILBOX };

static char *myorigin;

static void list_open(struct domain_list *d)
{
    const char *value = cfg_str(d->id);
    if (d->value && strcmp(d->value, value) == 0)
        return;
    match_list_free(d->list);
    free(d->value);
    d->value = xstrdup(value);
    struct strbuf err = STRBUF_INIT(4096);
    d->list = match_list_open(d->param, value, MATCH_DOMAINS, d->flags, &err);
    d->broken = d->list == NULL;
    if (d->broken)
        msg_warn("main.cf: %s; mail to the domains it would list waits until it is fixed "
                 "(tern check)", sb_str(&err));
    sb_free(&err);
}

void domains_init(void)
{
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        list_open(&lists[i]);
    free(myorigin);
    const char *o = cfg_str(P_myorigin);
    const char *at = strrchr(o, '@');
    myorigin = address_domain_normalize(at ? at + 1 : o);
}

int domains_check(enum param_id id, struct strbuf *err)
{
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        if (lists[i].id == id) {
            struct match_list *l = match_list_open(lists[i].param, cfg_str(id), MATCH_DOMAINS,
                                                   lists[i].flags, err);
            match_list_free(l);
            return l ? 0 : -1;
        }
    sb_appendf(err, "%s is not a domain list", param_table()[id].name);
    return -1;
}

static int list_has(const struct domain_list *d, const char *domain)
{
    if (d->broken) {
        msg_warn("%s cannot be used (see the warning at start-up): %s is not looked up",
                 d->param, domain);
        return -1;
    }
    return match_list_domain(d->list, domain);
}

int domain_is_local(const char *domain)
{
    return list_has(&lists[L_MYDEST], domain);
}

int domain_is_relay(const char *domain)
{
    return list_has(&lists[L_RELAY], domain);
}

int domain_is_virtual_alias(const char *domain)
{
    return list_has(&lists[L_VIRTUAL], domain);
}

int domain_is_virtual_mailbox(const char *domain)
{
    return list_has(&lists[L_VMAILBOX], domain);
}

const char *domain_myorigin(void)
{
    return myorigin ? myorigin : "";
}
