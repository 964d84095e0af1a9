/* fuzz_resolve.c: libFuzzer target for the address resolver (lib/global/resolve.c)
 * on recipient addresses as clients send them: sender routing with %, !
 * and quoted @, address literals, trailing dots, quoting. Besides crashes,
 * leaks and sanitizer reports, the answer must be consistent: a resolved
 * address resolves to itself (delivery sees what smtpd saw), a local one
 * has no routing left in its local part, and the flags match the domain.
 * sources: lib/global/resolve.c lib/global/domains.c lib/global/address.c lib/global/config.c lib/util/mac_expand.c lib/global/match_list.c lib/global/maps.c lib/util/progress.c lib/util/file_watch.c lib/global/map_proxy.c lib/global/mail_owner.c lib/util/safe_open.c lib/global/proxy_proto.c lib/util/attr.c lib/global/map_db.c lib/global/map_pcre.c lib/global/map_text.c lib/global/map_unix.c lib/global/map_cidr.c lib/global/map_static.c lib/global/map_sqlite.c lib/global/map_rules.c lib/global/map_query.c lib/global/map_query_domain.c lib/global/map_expand.c lib/global/map_module.c lib/global/module.c lib/global/chroot.c lib/util/netlist.c -ldb-5.3 -lpcre2-8 -lsqlite3 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_global.h"
#include "lib/global/resolve.h"

static const char *const settings[][2] = {
    { "myhostname", "mx.example.com" },
    { "mydestination", "$myhostname, localhost, Example.COM." },
    { "relay_domains", "relay.example, .sub.example" },
    { "virtual_mailbox_domains", "vmail.example, relay.example" },
    { "relayhost", "" },
};

static void configure_once(void)
{
    if (!FUZZ_CONFIGURE_ONCE(settings))
        return;
    resolve_init();
    if (!resolve_domain_is_local("localhost") || !resolve_domain_is_local("example.com")
        || !resolve_domain_is_local("[127.0.0.1]") || resolve_domain_is_local("relay.example"))
        abort();
}

static void check_result(const struct resolve_result *r)
{
    if (r->class == RESOLVE_BAD) {
        if (!r->why || r->address)
            abort();
        return;
    }
    if (r->class != RESOLVE_LOCAL && r->class != RESOLVE_RELAY && r->class != RESOLVE_REMOTE
        && r->class != RESOLVE_VIRTUAL)
        abort();
    if (!r->address || !r->local || !r->local_lc || !r->domain || !r->transport || !r->nexthop
        || !*r->domain || !*r->local)
        abort();
    if (((r->flags & RESOLVE_F_LITERAL) != 0) != (r->domain[0] == '['))
        abort();
    if (r->class == RESOLVE_LOCAL && strpbrk(r->local, "%!@"))
        abort();
    if (r->class == RESOLVE_LOCAL && !resolve_domain_is_local(r->domain))
        abort();
    /* virtual_mailbox_domains, and only those, are virtual (before relay_domains) */
    if ((r->class == RESOLVE_VIRTUAL) != (strcmp(r->domain, "vmail.example") == 0
                                          || strcmp(r->domain, "relay.example") == 0))
        abort();
    /* the resolved address is a fixed point */
    struct resolve_result again;
    if (resolve_text(r->address, &again) == 0) {
        if (again.class != r->class || !again.address || strcmp(again.address, r->address) != 0
            || strcmp(again.domain, r->domain) != 0 || strcmp(again.local, r->local) != 0)
            abort();
        resolve_result_free(&again);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2048)
        return 0;
    configure_once();
    char *text = fuzz_text(data, size, 2048);
    if (strlen(text) == size) {
        struct resolve_result r;
        if (resolve_text(text, &r) == 0) {
            check_result(&r);
            resolve_result_free(&r);
        }
    }
    free(text);
    return 0;
}
