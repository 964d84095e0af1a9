/* test_resolve.c: unit tests of the one address resolver (lib/global/resolve.c):
 * the class of an address, the address delivery sees after sender routing
 * (%, !, quoted @) in local domains, the depth limit, malformed routing,
 * address literals of this host's own addresses in every spelling and of
 * proxy_interfaces, the default transports and next hops, and the three
 * routing parameters. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "resolve.h"
#include "strbuf.h"

static char dir[] = "/tmp/tern-test-resolve-XXXXXX";

static void configure(const char *text)
{
    struct strbuf path = STRBUF_INIT(0), err = STRBUF_INIT(1024);
    sb_appendf(&path, "%s/main.cf", dir);
    FILE *fp = fopen(sb_str(&path), "w");
    if (!fp) {
        CHECK(!"cannot write main.cf");
        return;
    }
    fputs(text, fp);
    fclose(fp);
    CHECK(cfg_load(dir, &err) == 0);
    resolve_init();
    sb_free(&path);
    sb_free(&err);
}

/* Resolves to class c, the address delivery sees, transport and next hop
 * (NULL: not checked), and the flags given (at least). */
static void expect(const char *text, enum resolve_class c, const char *address,
                   const char *transport, const char *nexthop, unsigned flags)
{
    struct resolve_result r;
    CHECK(resolve_text(text, &r) == 0);
    CHECK(r.class == c);
    if (r.class != c)
        fprintf(stderr, "  %s: class %s, expected %s\n", text, resolve_class_name(r.class),
                resolve_class_name(c));
    if (c == RESOLVE_BAD) {
        CHECK(r.why && *r.why);
        CHECK(r.address == NULL);
    } else {
        if (address)
            CHECK_STR(r.address, address);
        if (transport)
            CHECK_STR(r.transport, transport);
        if (nexthop)
            CHECK_STR(r.nexthop, nexthop);
        CHECK((r.flags & flags) == flags);
    }
    resolve_result_free(&r);
}

static bool host_has(int family, const char *text)
{
    unsigned char want[16];
    struct ifaddrs *list;
    bool found = false;
    if (inet_pton(family, text, want) != 1 || getifaddrs(&list) < 0)
        return false;
    for (struct ifaddrs *i = list; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != family)
            continue;
        const void *b = family == AF_INET
                        ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
                        : (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
        found = memcmp(b, want, family == AF_INET ? 4 : 16) == 0;
    }
    freeifaddrs(list);
    return found;
}

static const char *BASE =
    "myhostname = mx.example.com\n"
    "mydestination = $myhostname, localhost\n"
    "relay_domains = relay.example\n";

static void test_classes(void)
{
    configure(BASE);
    expect("user@localhost", RESOLVE_LOCAL, "user@localhost", "local", "localhost", 0);
    expect("<USER@LocalHost.>", RESOLVE_LOCAL, "USER@localhost", "local", NULL, 0);
    expect("user@mx.example.com", RESOLVE_LOCAL, "user@mx.example.com", "local", NULL, 0);
    expect("u@relay.example", RESOLVE_RELAY, "u@relay.example", "relay", "relay.example", 0);
    expect("u@sub.relay.example", RESOLVE_RELAY, "u@sub.relay.example", "relay", NULL, 0);
    expect("u@remote.example", RESOLVE_REMOTE, "u@remote.example", "smtp", "remote.example", 0);
    expect("postmaster", RESOLVE_LOCAL, "postmaster@mx.example.com", "local", NULL,
           RESOLVE_F_NODOMAIN);
    expect("\"a b\"@localhost", RESOLVE_LOCAL, "\"a b\"@localhost", NULL, NULL, 0);
    expect("\".%localhost\"@localhost", RESOLVE_LOCAL, "\".\"@localhost", NULL, NULL, 0);
    expect("<>", RESOLVE_BAD, NULL, NULL, NULL, 0);
    expect("not an address", RESOLVE_BAD, NULL, NULL, NULL, 0);
    CHECK(resolve_domain_is_local("localhost"));
    CHECK(!resolve_domain_is_local("remote.example"));
    CHECK(!resolve_domain_is_local("relay.example"));
}

static void test_routing(void)
{
    configure(BASE);
    /* sender routing in a local domain is resolved as delivery will */
    expect("user%localhost@localhost", RESOLVE_LOCAL, "user@localhost", "local", "localhost",
           RESOLVE_F_ROUTED);
    expect("localhost!user@localhost", RESOLVE_LOCAL, "user@localhost", NULL, NULL,
           RESOLVE_F_ROUTED);
    expect("\"user@localhost\"@localhost", RESOLVE_LOCAL, "user@localhost", NULL, NULL,
           RESOLVE_F_ROUTED);
    expect("nosuchuser%LOCALHOST.@localhost", RESOLVE_LOCAL, "nosuchuser@localhost", NULL, NULL, 0);
    expect("user%remote.example@localhost", RESOLVE_REMOTE, "user@remote.example", "smtp",
           "remote.example", RESOLVE_F_ROUTED);
    expect("remote.example!user@localhost", RESOLVE_REMOTE, "user@remote.example", "smtp",
           "remote.example", RESOLVE_F_ROUTED);
    expect("\"user@remote.example\"@localhost", RESOLVE_REMOTE, "user@remote.example", NULL,
           "remote.example", RESOLVE_F_ROUTED);
    expect("user%relay.example@localhost", RESOLVE_RELAY, "user@relay.example", "relay", NULL,
           RESOLVE_F_ROUTED);
    /* HOPPED says delivery sees another address than the one given */
    struct resolve_result r;
    CHECK(resolve_text("user%localhost@localhost", &r) == 0 && (r.flags & RESOLVE_F_HOPPED));
    resolve_result_free(&r);
    CHECK(resolve_text("user%localhost@remote.example", &r) == 0 && !(r.flags & RESOLVE_F_HOPPED));
    resolve_result_free(&r);
    CHECK(resolve_text("user@localhost", &r) == 0 && r.flags == 0);
    resolve_result_free(&r);
    /* hop by hop: the rightmost % first, then the next */
    expect("a%remote.example%localhost@localhost", RESOLVE_REMOTE, "a@remote.example", NULL,
           NULL, RESOLVE_F_ROUTED);
    expect("remote.example!user%localhost@localhost", RESOLVE_REMOTE, "user@remote.example",
           NULL, NULL, RESOLVE_F_ROUTED);
    expect("\"u%remote.example@localhost\"@localhost", RESOLVE_REMOTE, "u@remote.example", NULL,
           NULL, RESOLVE_F_ROUTED);
    /* a foreign domain's local part is not ours to interpret */
    expect("user%localhost@remote.example", RESOLVE_REMOTE, "user%localhost@remote.example",
           "smtp", "remote.example", RESOLVE_F_ROUTED);
    expect("user%remote.example@relay.example", RESOLVE_RELAY,
           "user%remote.example@relay.example", NULL, NULL, RESOLVE_F_ROUTED);
    /* a bare name takes myorigin's domain, then routes like any other */
    expect("user%remote.example", RESOLVE_REMOTE, "user@remote.example", NULL, NULL,
           RESOLVE_F_ROUTED | RESOLVE_F_NODOMAIN);
    /* malformed routing and too many hops cannot be routed at all */
    expect("user%@localhost", RESOLVE_BAD, NULL, NULL, NULL, 0);
    expect("%localhost@localhost", RESOLVE_BAD, NULL, NULL, NULL, 0);
    expect("localhost!@localhost", RESOLVE_BAD, NULL, NULL, NULL, 0);
    expect("user%.@localhost", RESOLVE_BAD, NULL, NULL, NULL, 0);
    expect("user%a..b@localhost", RESOLVE_BAD, NULL, NULL, NULL, 0);
    expect("user%localhost..@localhost", RESOLVE_BAD, NULL, NULL, NULL, 0);
    expect("\"user@bad domain\"@localhost", RESOLVE_BAD, NULL, NULL, NULL, 0);
    struct strbuf deep = STRBUF_INIT(0);
    sb_appends(&deep, "u");
    for (int i = 0; i < RESOLVE_HOPS_MAX; i++)
        sb_appends(&deep, "%localhost");
    sb_appends(&deep, "@localhost");
    expect(sb_str(&deep), RESOLVE_LOCAL, "u@localhost", NULL, NULL, RESOLVE_F_ROUTED);
    sb_reset(&deep);
    sb_appends(&deep, "u");
    for (int i = 0; i <= RESOLVE_HOPS_MAX; i++)
        sb_appends(&deep, "%localhost");
    sb_appends(&deep, "@localhost");
    expect(sb_str(&deep), RESOLVE_BAD, NULL, NULL, NULL, 0);
    sb_free(&deep);
}

static void test_literals(void)
{
    configure(BASE);
    /* 127.0.0.1 is on every host's loopback interface */
    CHECK(host_has(AF_INET, "127.0.0.1"));
    expect("root@[127.0.0.1]", RESOLVE_LOCAL, "root@[127.0.0.1]", "local", "[127.0.0.1]",
           RESOLVE_F_LITERAL);
    expect("root@[IPv6:::ffff:127.0.0.1]", RESOLVE_LOCAL, NULL, "local", NULL, RESOLVE_F_LITERAL);
    expect("\"user%[127.0.0.1]\"@localhost", RESOLVE_LOCAL, "user@[127.0.0.1]", "local", NULL,
           RESOLVE_F_ROUTED | RESOLVE_F_LITERAL);
    expect("\"user@localhost\"@[127.0.0.1]", RESOLVE_LOCAL, "user@localhost", NULL, NULL, 0);
    CHECK(resolve_domain_is_local("[127.0.0.1]"));
    if (host_has(AF_INET6, "::1")) {
        static const char *spellings[] = {
            "root@[IPv6:::1]", "root@[IPV6:0:0::1]", "root@[ipv6:0:0:0:0:0:0:0:1]",
            "root@[IPv6:0000:0000:0000:0000:0000:0000:0000:0001]", NULL,
        };
        for (int i = 0; spellings[i]; i++)
            expect(spellings[i], RESOLVE_LOCAL, NULL, "local", NULL, RESOLVE_F_LITERAL);
    }
    /* not an address of this host: relayed like any remote domain */
    if (!host_has(AF_INET, "203.0.113.254"))
        expect("root@[203.0.113.254]", RESOLVE_REMOTE, "root@[203.0.113.254]", "smtp",
               "[203.0.113.254]", RESOLVE_F_LITERAL);
    if (!host_has(AF_INET, "127.0.0.2"))
        expect("root@[127.0.0.2]", RESOLVE_REMOTE, NULL, "smtp", NULL, RESOLVE_F_LITERAL);
    if (!host_has(AF_INET6, "2001:db8::1"))
        expect("root@[IPv6:2001:db8::1]", RESOLVE_REMOTE, NULL, "smtp", NULL, RESOLVE_F_LITERAL);
    /* routing through a foreign literal leaves the host */
    if (!host_has(AF_INET, "203.0.113.254"))
        expect("\"user%[203.0.113.254]\"@localhost", RESOLVE_REMOTE, "user@[203.0.113.254]", NULL,
               "[203.0.113.254]", RESOLVE_F_ROUTED);
}

static void test_proxy_interfaces(void)
{
    if (host_has(AF_INET, "203.0.113.77") || host_has(AF_INET6, "2001:db8::77"))
        return;
    struct strbuf cf = STRBUF_INIT(0);
    sb_appendf(&cf, "%sproxy_interfaces = 203.0.113.77, [2001:db8::77] not.an.address\n", BASE);
    configure(sb_str(&cf));
    expect("root@[203.0.113.77]", RESOLVE_LOCAL, NULL, "local", NULL, RESOLVE_F_LITERAL);
    expect("root@[IPv6:2001:DB8:0::77]", RESOLVE_LOCAL, NULL, "local", NULL, RESOLVE_F_LITERAL);
    expect("root@[127.0.0.1]", RESOLVE_LOCAL, NULL, "local", NULL, RESOLVE_F_LITERAL);
    configure(BASE);      /* read again at every resolve_init() */
    expect("root@[203.0.113.77]", RESOLVE_REMOTE, NULL, "smtp", NULL, RESOLVE_F_LITERAL);
    sb_free(&cf);
}

static void test_transports(void)
{
    struct strbuf cf = STRBUF_INIT(0);
    sb_appendf(&cf, "%srelayhost = [smart.example]:2525\nlocal_transport = local:mx\n", BASE);
    configure(sb_str(&cf));
    expect("u@remote.example", RESOLVE_REMOTE, NULL, "smtp", "[smart.example]:2525", 0);
    expect("u@relay.example", RESOLVE_RELAY, NULL, "relay", "[smart.example]:2525", 0);
    expect("u@localhost", RESOLVE_LOCAL, NULL, "local", "mx", 0);
    sb_reset(&cf);
    sb_appendf(&cf, "%sdefault_transport = error:5.7.1 no mail leaves this host\n"
               "relay_transport = error\n", BASE);
    configure(sb_str(&cf));
    expect("u@remote.example", RESOLVE_REMOTE, NULL, "error", "5.7.1 no mail leaves this host", 0);
    expect("u@relay.example", RESOLVE_RELAY, NULL, "error", "", 0);
    sb_free(&cf);
}

/* virtual_mailbox_domains: after mydestination, before relay_domains
 * (Postfix's order); virtual_transport with the domain as next hop, and
 * no relayhost. */
static void test_virtual(void)
{
    struct strbuf cf = STRBUF_INIT(0);
    sb_appendf(&cf, "%srelayhost = [smart.example]\n"
               "virtual_mailbox_domains = vmail.example, relay.example, localhost\n", BASE);
    configure(sb_str(&cf));
    expect("u@vmail.example", RESOLVE_VIRTUAL, "u@vmail.example", "virtual", "vmail.example", 0);
    expect("U@VMail.Example.", RESOLVE_VIRTUAL, "U@vmail.example", "virtual", NULL, 0);
    expect("u@relay.example", RESOLVE_VIRTUAL, NULL, "virtual", NULL, 0);
    expect("u@sub.vmail.example", RESOLVE_REMOTE, NULL, "smtp", "[smart.example]", 0);
    expect("u@localhost", RESOLVE_LOCAL, NULL, "local", NULL, 0);
    /* sender routing is resolved only in local domains */
    expect("a%remote.example@vmail.example", RESOLVE_VIRTUAL, "a%remote.example@vmail.example",
           "virtual", NULL, RESOLVE_F_ROUTED);
    sb_reset(&cf);
    sb_appendf(&cf, "%svirtual_mailbox_domains = vmail.example\nvirtual_transport = lmtp:unix:x\n",
               BASE);
    configure(sb_str(&cf));
    expect("u@vmail.example", RESOLVE_VIRTUAL, NULL, "lmtp", "unix:x", 0);
    CHECK_STR(resolve_class_name(RESOLVE_VIRTUAL), "virtual");
    sb_free(&cf);
}

static void test_parameters(void)
{
    struct strbuf cf = STRBUF_INIT(0);
    sb_appendf(&cf, "%sallow_percent_hack = no\n", BASE);
    configure(sb_str(&cf));
    expect("user%remote.example@localhost", RESOLVE_LOCAL, "user%remote.example@localhost",
           "local", NULL, RESOLVE_F_ROUTED);
    expect("remote.example!user@localhost", RESOLVE_REMOTE, "user@remote.example", NULL, NULL, 0);
    sb_reset(&cf);
    sb_appendf(&cf, "%sswap_bangpath = no\n", BASE);
    configure(sb_str(&cf));
    expect("remote.example!user@localhost", RESOLVE_LOCAL, "remote.example!user@localhost",
           "local", NULL, 0);
    expect("user%remote.example@localhost", RESOLVE_REMOTE, "user@remote.example", NULL, NULL, 0);
    sb_reset(&cf);
    sb_appendf(&cf, "%sresolve_dequoted_address = no\n", BASE);
    configure(sb_str(&cf));
    expect("\"user@remote.example\"@localhost", RESOLVE_LOCAL,
           "\"user@remote.example\"@localhost", "local", NULL, 0);
    sb_free(&cf);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    test_classes();
    test_routing();
    test_literals();
    test_proxy_interfaces();
    test_transports();
    test_parameters();
    test_virtual();
    char path[sizeof(dir) + 16];
    snprintf(path, sizeof(path), "%s/main.cf", dir);
    unlink(path);
    rmdir(dir);
    return check_summary();
}
