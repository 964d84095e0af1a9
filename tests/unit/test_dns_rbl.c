/* test_dns_rbl.c: unit tests of the DNS blocklist helpers smtpd and
 * postscreen share: query names of IPv4 and IPv6 clients, and the reply
 * filters (numbers, ranges, alternatives, malformed patterns). */
#include <arpa/inet.h>
#include <string.h>

#include "check.h"
#include "dns_rbl.h"

static struct dns_addr v4(const char *text)
{
    struct dns_addr a = { .family = AF_INET };
    inet_pton(AF_INET, text, &a.u.v4);
    return a;
}

static void test_query_names(void)
{
    char q[300];
    CHECK(dns_rbl_query_name("192.0.2.1", "zen.example", q, sizeof(q)));
    CHECK_STR(q, "1.2.0.192.zen.example");
    CHECK(dns_rbl_query_name("2001:db8::1", "bl.example", q, sizeof(q)));
    CHECK(strncmp(q, "1.0.0.0.0.0.0.0", 15) == 0);
    CHECK(strstr(q, "8.b.d.0.1.0.0.2.bl.example") != NULL);
    CHECK(!dns_rbl_query_name("not-an-address", "zen.example", q, sizeof(q)));
    CHECK(!dns_rbl_query_name("192.0.2.1", "zen.example", q, 8));   /* does not fit */
}

static void test_filters(void)
{
    struct dns_addr a = v4("127.0.0.2"), b = v4("127.0.0.20"), c = v4("127.0.5.4");
    CHECK(dns_rbl_filter_matches("127.0.0.2", &a));
    CHECK(!dns_rbl_filter_matches("127.0.0.2", &b));
    CHECK(dns_rbl_filter_matches("127.0.0.[2..11]", &a));
    CHECK(!dns_rbl_filter_matches("127.0.0.[2..11]", &b));
    CHECK(dns_rbl_filter_matches("127.0.[0..255].[2;4]", &c));
    CHECK(!dns_rbl_filter_matches("127.0.[0..255].[2;3]", &c));
    CHECK(dns_rbl_filter_valid("127.0.[0..255].[2;4;8..9]"));
    CHECK(!dns_rbl_filter_valid("127.0.0"));
    CHECK(!dns_rbl_filter_valid("127.0.0.2.5"));
    CHECK(!dns_rbl_filter_valid("127.0.0.[2"));
    CHECK(!dns_rbl_filter_valid("127.0.0.[]"));
    CHECK(!dns_rbl_filter_valid("127.0.0.300"));
    CHECK(!dns_rbl_filter_valid("127.0.0.[x..2]"));
    struct dns_addr six = { .family = AF_INET6 };
    CHECK(!dns_rbl_filter_matches("127.0.0.2", &six));
    /* without a filter: 127.0.0.0/8 lists, except the error codes, and
     * nothing outside it (a lapsed list domain with a wildcard) */
    struct dns_addr err = v4("127.255.255.254"), web = v4("192.0.2.80"), high = v4("127.255.0.1");
    CHECK(dns_rbl_listing(NULL, &a) && dns_rbl_listing(NULL, &c) && dns_rbl_listing(NULL, &high));
    CHECK(!dns_rbl_listing(NULL, &err) && !dns_rbl_listing(NULL, &web) && !dns_rbl_listing(NULL, &six));
    CHECK(dns_rbl_listing("127.0.0.2", &a) && !dns_rbl_listing("127.0.0.2", &b));
}

int main(void)
{
    test_query_names();
    test_filters();
    return check_summary();
}
