/* test_address.c: unit tests of the address parser (quoting, source routes,
 * %, ! and @ routing, address literals, trailing dots, case, UTF-8, hostile
 * input) and of mynetworks-style network lists (IPv4, IPv6, mapped, negation). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "check.h"
#include "netlist.h"
#include "strbuf.h"

static enum address_error parse(const char *text, unsigned opts, struct address *a)
{
    return address_parse(text, strlen(text), opts, a, NULL);
}

/* Parses ok and gives the expected pieces. */
static void expect_ok(const char *text, unsigned opts, const char *address,
                      const char *local_lc, const char *domain, unsigned flags)
{
    struct address a;
    enum address_error e = parse(text, opts, &a);
    CHECK(e == ADDR_OK);
    if (e != ADDR_OK) {
        fprintf(stderr, "  while parsing \"%s\"\n", text);
        return;
    }
    CHECK_STR(a.address, address);
    CHECK_STR(a.local_lc, local_lc);
    CHECK_STR(a.domain, domain);
    CHECK((a.flags & flags) == flags);
    address_free(&a);
}

static void expect_err(const char *text, unsigned opts, enum address_error want)
{
    struct address a;
    const char *why = NULL;
    enum address_error e = address_parse(text, strlen(text), opts, &a, &why);
    CHECK(e == want);
    if (e != want)
        fprintf(stderr, "  \"%s\" gave %d, expected %d\n", text, e, want);
    CHECK(why != NULL || e == ADDR_OK);
    CHECK(a.address == NULL);
    if (e == ADDR_OK)
        address_free(&a);
}

static void test_plain(void)
{
    expect_ok("<user@example.com>", 0, "user@example.com", "user", "example.com", ADDR_F_BRACKETS);
    expect_ok("<User.Name@Example.COM>", 0, "User.Name@Example.COM", "user.name", "example.com", 0);
    expect_ok("<user@example.com.>", 0, "user@example.com", "user", "example.com", 0);
    expect_ok("<a+tag@sub.example.org>", 0, "a+tag@sub.example.org", "a+tag", "sub.example.org", 0);
    expect_ok("<john..doe.@example.com>", 0, "john..doe.@example.com", "john..doe.", "example.com", 0);
    expect_ok("<x@under_score.example>", 0, "x@under_score.example", "x", "under_score.example", 0);
    expect_ok("user@example.com", ADDR_ALLOW_BARE, "user@example.com", "user", "example.com", 0);
    expect_err("user@example.com", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@example.com", ADDR_ALLOW_BARE, ADDR_ERR_SYNTAX);
    expect_err("<<user@example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@example.com>>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@@example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@example..com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@.example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@-bad.example>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@bad-.example>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@>", 0, ADDR_ERR_SYNTAX);
    expect_err("<@example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user name@example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@exa mple.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user(comment)@example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<.@example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("", ADDR_ALLOW_BARE, ADDR_ERR_SYNTAX);
}

static void test_null_and_nodomain(void)
{
    expect_ok("<>", ADDR_ALLOW_NULL, "", "", "", ADDR_F_NULL);
    expect_err("<>", 0, ADDR_ERR_SYNTAX);
    expect_ok("<postmaster>", ADDR_ALLOW_NODOMAIN, "postmaster", "postmaster", "", ADDR_F_NODOMAIN);
    expect_ok("<PostMaster>", ADDR_ALLOW_NODOMAIN, "PostMaster", "postmaster", "", ADDR_F_NODOMAIN);
    expect_err("<postmaster>", 0, ADDR_ERR_SYNTAX);
}

static void test_quoted(void)
{
    struct address a;
    CHECK(parse("<\"john doe\"@example.com>", 0, &a) == ADDR_OK);
    CHECK_STR(a.address, "\"john doe\"@example.com");
    CHECK_STR(a.local, "john doe");
    CHECK(a.flags & ADDR_F_QUOTED);
    address_free(&a);
    CHECK(parse("<\"a\\\"b\\\\c\"@example.com>", 0, &a) == ADDR_OK);
    CHECK_STR(a.local, "a\"b\\c");
    address_free(&a);
    CHECK(parse("<\"user@other\"@example.com>", 0, &a) == ADDR_OK);
    CHECK_STR(a.local, "user@other");
    CHECK(a.flags & ADDR_F_AT);
    CHECK_STR(a.domain, "example.com");
    address_free(&a);
    CHECK(parse("<\"x>y\"@example.com>", 0, &a) == ADDR_OK);
    CHECK_STR(a.local, "x>y");
    address_free(&a);
    expect_err("<\"unterminated@example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<\"\"@example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<\"tab\there\"@example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<\"a\"b@example.com>", 0, ADDR_ERR_SYNTAX);
}

static void test_routes(void)
{
    expect_ok("<@relay.example:user@example.com>", 0, "user@example.com", "user", "example.com", ADDR_F_ROUTE);
    expect_ok("<@a.example,@b.example:user@example.com>", 0, "user@example.com", "user",
              "example.com", ADDR_F_ROUTE);
    expect_err("<@a.example,user@example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<@:user@example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<@a.example,:user@example.com>", 0, ADDR_ERR_SYNTAX);
    expect_err("<@a.example:>", 0, ADDR_ERR_SYNTAX);
}

static void test_routing_flags(void)
{
    expect_ok("<user%other.example@example.com>", 0, "user%other.example@example.com",
              "user%other.example", "example.com", ADDR_F_PERCENT);
    expect_ok("<host!user@example.com>", 0, "host!user@example.com", "host!user",
              "example.com", ADDR_F_BANG);
    struct address a;
    CHECK(parse("<plain@example.com>", 0, &a) == ADDR_OK);
    CHECK((a.flags & ADDR_F_ROUTED) == 0);
    address_free(&a);

    char *l, *d;
    CHECK(address_unroute("user%Other.Example.", ADDR_ROUTE_ALL, &l, &d) == 1);
    CHECK_STR(l, "user");
    CHECK_STR(d, "other.example");
    free(l); free(d);
    CHECK(address_unroute("a%b%c", ADDR_ROUTE_ALL, &l, &d) == 1);
    CHECK_STR(l, "a%b");
    CHECK_STR(d, "c");
    free(l); free(d);
    CHECK(address_unroute("host!rest!user", ADDR_ROUTE_ALL, &l, &d) == 1);
    CHECK_STR(d, "host");
    CHECK_STR(l, "rest!user");
    free(l); free(d);
    CHECK(address_unroute("u@h%x", ADDR_ROUTE_ALL, &l, &d) == 1);   /* '@' is the outermost */
    CHECK_STR(l, "u");
    CHECK_STR(d, "h%x");
    free(l); free(d);
    CHECK(address_unroute("plain", ADDR_ROUTE_ALL, &l, &d) == 0);
    CHECK(address_unroute("%host", ADDR_ROUTE_ALL, &l, &d) == -1);
    CHECK(address_unroute("user%", ADDR_ROUTE_ALL, &l, &d) == -1);
    CHECK(address_unroute("!user", ADDR_ROUTE_ALL, &l, &d) == -1);
    /* only the operators asked for */
    CHECK(address_unroute("h!u%x", ADDR_ROUTE_BANG, &l, &d) == 1);
    CHECK_STR(d, "h");
    CHECK_STR(l, "u%x");
    free(l); free(d);
    CHECK(address_unroute("u@h", ADDR_ROUTE_PERCENT | ADDR_ROUTE_BANG, &l, &d) == 0);
    CHECK(address_unroute("u%h!x", 0, &l, &d) == 0);
}

/* A local part in external form reads back as itself. */
static void expect_quoted(const char *local, const char *want)
{
    struct strbuf out = STRBUF_INIT(0);
    CHECK(address_quote_local(local, &out) == 0);
    CHECK_STR(sb_str(&out), want);
    sb_appends(&out, "@example.com");
    struct address a;
    CHECK(address_parse(sb_str(&out), out.len, ADDR_ALLOW_BARE, &a, NULL) == ADDR_OK);
    CHECK_STR(a.local, local);
    address_free(&a);
    sb_free(&out);
}

static void test_quote_local(void)
{
    expect_quoted("user", "user");
    expect_quoted("first.last+ext", "first.last+ext");
    expect_quoted("user%host", "user%host");
    expect_quoted("a b", "\"a b\"");
    expect_quoted("user@host", "\"user@host\"");
    expect_quoted("say \"hi\"", "\"say \\\"hi\\\"\"");
    expect_quoted("back\\slash", "\"back\\\\slash\"");
    expect_quoted(".", "\".\"");
    expect_quoted("..", "\"..\"");
}

static void test_literals(void)
{
    expect_ok("<user@[192.0.2.1]>", 0, "user@[192.0.2.1]", "user", "[192.0.2.1]", ADDR_F_LITERAL);
    expect_ok("<user@[IPv6:2001:DB8::1]>", 0, "user@[IPv6:2001:DB8::1]", "user",
              "[ipv6:2001:db8::1]", ADDR_F_LITERAL);
    expect_err("<user@[192.0.2.256]>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@[2001:db8::1]>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@[IPv6:zz::1]>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@[192.0.2.1>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@[x:y]>", 0, ADDR_ERR_SYNTAX);
    expect_err("<user@[]>", 0, ADDR_ERR_SYNTAX);
}

static void test_utf8(void)
{
    const char *u = "<j\xc3\xb6rg@b\xc3\xbc\x63her.example>";
    expect_err(u, 0, ADDR_ERR_UTF8);
    expect_ok(u, ADDR_ALLOW_UTF8, "j\xc3\xb6rg@b\xc3\xbc\x63her.example", "j\xc3\xb6rg",
              "b\xc3\xbc\x63her.example", ADDR_F_UTF8);
    expect_err("<j\xc3rg@example.com>", ADDR_ALLOW_UTF8, ADDR_ERR_BAD_UTF8);
    expect_err("<j\xc0\xafrg@example.com>", ADDR_ALLOW_UTF8, ADDR_ERR_BAD_UTF8);  /* overlong */
    expect_err("<j\xed\xa0\x80@example.com>", ADDR_ALLOW_UTF8, ADDR_ERR_BAD_UTF8); /* surrogate */
    expect_err("<\xff@example.com>", ADDR_ALLOW_UTF8, ADDR_ERR_BAD_UTF8);
    CHECK(utf8_valid("plain", 5));
    CHECK(!utf8_valid("a\0b", 3));
    CHECK(utf8_valid("\xf0\x9f\x98\x80", 4));
    CHECK(!utf8_valid("\xf0\x9f\x98", 3));
}

static void test_hostile(void)
{
    struct address a;
    char big[3000];
    memset(big, 'a', sizeof(big));
    big[0] = '<';
    big[sizeof(big) - 2] = '>';
    big[sizeof(big) - 1] = 0;
    CHECK(parse(big, 0, &a) == ADDR_ERR_TOO_LONG);
    /* a 600-byte local part is over the local-part bound */
    char local[700];
    memset(local, 'b', sizeof(local));
    memcpy(local, "<", 1);
    memcpy(local + 601, "@x.example>", 12);
    CHECK(parse(local, 0, &a) == ADDR_ERR_SYNTAX);
    /* a 64-byte label is over the label bound */
    char label[200];
    snprintf(label, sizeof(label), "<u@%064d.example>", 0);
    CHECK(parse(label, 0, &a) == ADDR_ERR_SYNTAX);
    const char nul[] = "<us\0er@example.com>";
    CHECK(address_parse(nul, sizeof(nul) - 1, 0, &a, NULL) == ADDR_ERR_SYNTAX);
    expect_err("<user@example.com\r>", 0, ADDR_ERR_SYNTAX);
    expect_err("<>", ADDR_ALLOW_BARE, ADDR_ERR_SYNTAX);
    expect_err("<", ADDR_ALLOW_BARE, ADDR_ERR_SYNTAX);
    expect_err(">", ADDR_ALLOW_BARE, ADDR_ERR_SYNTAX);
    expect_err("<@>", 0, ADDR_ERR_SYNTAX);
    expect_err("<\\@example.com>", 0, ADDR_ERR_SYNTAX);
    char *n = address_domain_normalize("Example.COM.");
    CHECK_STR(n, "example.com");
    free(n);
}

/* ---- network lists ---- */

static bool match(struct netlist *nl, const char *addr)
{
    return netlist_match_text(nl, addr);
}

static void test_netlist(void)
{
    struct strbuf err = STRBUF_INIT(1024);
    struct netlist *nl = netlist_parse("127.0.0.0/8, [::1]/128 192.0.2.7 10.0.0.0/9\t2001:db8::/32", &err);
    CHECK(nl != NULL);
    CHECK(netlist_count(nl) == 5);
    CHECK(match(nl, "127.0.0.1"));
    CHECK(match(nl, "127.255.255.255"));
    CHECK(!match(nl, "128.0.0.1"));
    CHECK(match(nl, "::1"));
    CHECK(!match(nl, "::2"));
    CHECK(match(nl, "192.0.2.7"));
    CHECK(!match(nl, "192.0.2.8"));
    CHECK(match(nl, "10.127.1.1"));
    CHECK(!match(nl, "10.128.0.0"));
    CHECK(match(nl, "2001:db8:ffff::1"));
    CHECK(!match(nl, "2001:db9::1"));
    CHECK(match(nl, "::ffff:127.0.0.1"));    /* v4-mapped */
    CHECK(!match(nl, "::ffff:192.0.2.8"));
    CHECK(!match(nl, "not-an-address"));

    struct sockaddr_in in4;
    memset(&in4, 0, sizeof(in4));
    in4.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.2", &in4.sin_addr);
    CHECK(netlist_match(nl, (struct sockaddr *)&in4));
    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    CHECK(netlist_match(nl, (struct sockaddr *)&in6));
    netlist_free(nl);

    nl = netlist_parse("!192.0.2.1 192.0.2.0/24 [2001:db8::1] 0.0.0.0/0x", &err);
    CHECK(nl == NULL);
    CHECK(strstr(sb_str(&err), "0.0.0.0/0x") != NULL);
    sb_reset(&err);
    nl = netlist_parse("!192.0.2.1 192.0.2.0/24 [2001:db8::1]", &err);
    CHECK(nl != NULL);
    CHECK(!match(nl, "192.0.2.1"));
    CHECK(match(nl, "192.0.2.2"));
    CHECK(match(nl, "2001:db8::1"));
    CHECK(!match(nl, "2001:db8::2"));
    netlist_free(nl);

    nl = netlist_parse("", &err);
    CHECK(nl != NULL && netlist_count(nl) == 0);
    CHECK(!match(nl, "127.0.0.1"));
    netlist_free(nl);
    nl = netlist_parse("0.0.0.0/0 ::/0", &err);
    CHECK(match(nl, "203.0.113.9") && match(nl, "2001:db8::9"));
    netlist_free(nl);

    static const char *bad[] = { "10.0.0.1/8", "10.0.0.0/33", "[::1]/129", "host.example",
        "hash:/etc/x", "[::1", "1.2.3.4/", "1.2.3.4/-1", "[1.2.3.4]junk", "999.1.1.1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sb_reset(&err);
        nl = netlist_parse(bad[i], &err);
        CHECK(nl == NULL);
        CHECK(err.len > 0);
        if (nl) {
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
            netlist_free(nl);
        }
    }
    sb_free(&err);
}

int main(void)
{
    test_plain();
    test_null_and_nodomain();
    test_quoted();
    test_routes();
    test_routing_flags();
    test_quote_local();
    test_literals();
    test_utf8();
    test_hostile();
    test_netlist();
    return check_summary();
}
