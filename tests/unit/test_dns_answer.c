/* test_dns_answer.c: unit tests of the DNS answer header (RCODE, AD bit)
 * and of TLSA record parsing (lib/dns/dns_answer.c), on answers built here
 * byte by byte: well-formed ones, ones with CNAME and RRSIG records among
 * the TLSA records, compressed names, and hostile ones (cut short, records
 * too small or too large, more records than kept); CNAME chains; and
 * which resolvers' AD bit lib/dns/dns.c believes (no query is sent). */
#include <ares.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dns.h"
#include "dns_answer.h"
#include "strbuf.h"

struct msg {
    unsigned char b[12000];
    size_t len;
};

static void put(struct msg *m, const void *p, size_t n)
{
    memcpy(m->b + m->len, p, n);
    m->len += n;
}

static void put16(struct msg *m, unsigned v)
{
    unsigned char b[2] = { (unsigned char)(v >> 8), (unsigned char)v };
    put(m, b, 2);
}

/* A response header: flags byte 3 holds AD (0x20) and the RCODE. */
static void header(struct msg *m, bool ad, int rcode, unsigned ancount)
{
    m->len = 0;
    put16(m, 0x1234);
    unsigned char flags[2] = { 0x81, (unsigned char)((ad ? 0x20 : 0) | 0x80 | rcode) };
    put(m, flags, 2);
    put16(m, 1);
    put16(m, ancount);
    put16(m, 0);
    put16(m, 0);
    /* the question: _25._tcp.mx.example TLSA IN, at offset 12 */
    static const unsigned char qname[] = "\003_25\004_tcp\002mx\007example";
    put(m, qname, sizeof(qname));         /* with the root label's 0 */
    put16(m, 52);
    put16(m, 1);
}

/* One record owned by the question's name (a compression pointer). */
static void record(struct msg *m, unsigned type, const unsigned char *rdata, size_t rdlen)
{
    put16(m, 0xc00c);
    put16(m, type);
    put16(m, 1);
    put16(m, 0);
    put16(m, 60);
    put16(m, (unsigned)rdlen);
    put(m, rdata, rdlen);
}

static void tlsa(struct msg *m, int usage, int sel, int mtype, size_t dlen, unsigned char fill)
{
    unsigned char rd[5000];
    rd[0] = (unsigned char)usage;
    rd[1] = (unsigned char)sel;
    rd[2] = (unsigned char)mtype;
    memset(rd + 3, fill, dlen);
    record(m, 52, rd, dlen + 3);
}

static void test_header(void)
{
    struct msg m;
    bool ad = true;
    header(&m, true, 0, 0);
    CHECK(dns_answer_header(m.b, (int)m.len, &ad) == ARES_SUCCESS && ad);
    header(&m, false, 3, 0);
    CHECK(dns_answer_header(m.b, (int)m.len, &ad) == ARES_ENOTFOUND && !ad);
    header(&m, true, 2, 0);
    CHECK(dns_answer_header(m.b, (int)m.len, &ad) == ARES_ESERVFAIL);
    header(&m, false, 5, 0);
    CHECK(dns_answer_header(m.b, (int)m.len, &ad) == ARES_EREFUSED);
    CHECK(dns_answer_header(m.b, 11, &ad) == ARES_EBADRESP && !ad);
    m.b[2] &= 0x7f;                                   /* a query, not a response */
    CHECK(dns_answer_header(m.b, (int)m.len, &ad) == ARES_EBADRESP);
    CHECK(dns_answer_header(NULL, 0, &ad) == ARES_EBADRESP);
}

static void test_tlsa(void)
{
    struct msg m;
    static struct dns_tlsa out[4];
    size_t n = 99;
    /* two TLSA records among a CNAME and an RRSIG */
    header(&m, true, 0, 4);
    static const unsigned char cname[] = "\004next\007example";
    record(&m, 5, cname, sizeof(cname));
    tlsa(&m, 3, 1, 1, 32, 0xab);
    record(&m, 46, (const unsigned char *)"signature bytes", 15);
    tlsa(&m, 2, 0, 0, 700, 0x30);
    CHECK(dns_answer_tlsa(m.b, (int)m.len, out, 4, &n) == ARES_SUCCESS && n == 2);
    CHECK(out[0].usage == 3 && out[0].selector == 1 && out[0].mtype == 1 && out[0].len == 32);
    CHECK(out[0].data[0] == 0xab && out[0].data[31] == 0xab);
    CHECK(out[1].usage == 2 && out[1].mtype == 0 && out[1].len == 700 && out[1].data[699] == 0x30);

    /* no TLSA records: NOERROR with a CNAME only, or nothing */
    header(&m, true, 0, 1);
    record(&m, 5, cname, sizeof(cname));
    CHECK(dns_answer_tlsa(m.b, (int)m.len, out, 4, &n) == ARES_ENODATA && n == 0);
    header(&m, true, 0, 0);
    CHECK(dns_answer_tlsa(m.b, (int)m.len, out, 4, &n) == ARES_ENODATA && n == 0);

    /* cut short anywhere: nothing counts */
    header(&m, true, 0, 2);
    tlsa(&m, 3, 1, 1, 32, 1);
    tlsa(&m, 3, 1, 1, 32, 2);
    for (size_t cut = 1; cut < m.len; cut++) {
        n = 99;
        int st = dns_answer_tlsa(m.b, (int)(m.len - cut), out, 4, &n);
        CHECK(st == ARES_EBADRESP && n == 0);
    }

    /* the answer count says more records than there are */
    header(&m, true, 0, 3);
    tlsa(&m, 3, 1, 1, 32, 1);
    CHECK(dns_answer_tlsa(m.b, (int)m.len, out, 4, &n) == ARES_EBADRESP && n == 0);

    /* records without data, or with more than is kept, are skipped */
    header(&m, true, 0, 3);
    tlsa(&m, 3, 1, 1, 0, 0);
    tlsa(&m, 3, 0, 0, DNS_TLSA_DATA_MAX + 1, 7);
    tlsa(&m, 3, 0, 0, DNS_TLSA_DATA_MAX, 7);
    CHECK(dns_answer_tlsa(m.b, (int)m.len, out, 4, &n) == ARES_SUCCESS && n == 1
          && out[0].len == DNS_TLSA_DATA_MAX);

    /* at most max records are kept */
    header(&m, true, 0, 6);
    for (int i = 0; i < 6; i++)
        tlsa(&m, 3, 1, 1, 32, (unsigned char)i);
    CHECK(dns_answer_tlsa(m.b, (int)m.len, out, 4, &n) == ARES_SUCCESS && n == 4);
    CHECK(out[3].data[0] == 3);

    /* a name pointing past the message */
    header(&m, true, 0, 1);
    put16(&m, 0xcfff);
    CHECK(dns_answer_tlsa(m.b, (int)m.len, out, 4, &n) == ARES_EBADRESP && n == 0);

    /* an error RCODE is no TLSA answer */
    header(&m, true, 2, 1);
    tlsa(&m, 3, 1, 1, 32, 1);
    CHECK(dns_answer_tlsa(m.b, (int)m.len, out, 4, &n) == ARES_EBADRESP && n == 0);
}

/* A record owned by a name written out in full (no compression). */
static void record_named(struct msg *m, const unsigned char *owner, size_t olen, unsigned type,
                         const unsigned char *rdata, size_t rdlen)
{
    put(m, owner, olen);
    put16(m, type);
    put16(m, 1);
    put16(m, 0);
    put16(m, 60);
    put16(m, (unsigned)rdlen);
    put(m, rdata, rdlen);
}

static void test_cname(void)
{
    struct msg m;
    char target[DNS_NAME_MAX + 1];
    static const unsigned char next[] = "\004next\007example", last[] = "\004last\007example";
    static const unsigned char addr[4] = { 192, 0, 2, 1 };
    /* question -> next.example -> last.example, then the address */
    header(&m, true, 0, 3);
    record(&m, 5, next, sizeof(next));
    record_named(&m, next, sizeof(next), 5, last, sizeof(last));
    record_named(&m, last, sizeof(last), 1, addr, 4);
    CHECK(dns_answer_cname(m.b, (int)m.len, target, sizeof(target)));
    CHECK_STR(target, "last.example");
    /* the records in another order: the chain is still followed */
    header(&m, true, 0, 2);
    record_named(&m, next, sizeof(next), 5, last, sizeof(last));
    record(&m, 5, next, sizeof(next));
    CHECK(dns_answer_cname(m.b, (int)m.len, target, sizeof(target)));
    CHECK_STR(target, "last.example");
    /* no alias */
    header(&m, true, 0, 1);
    tlsa(&m, 3, 1, 1, 32, 1);
    CHECK(!dns_answer_cname(m.b, (int)m.len, target, sizeof(target)) && target[0] == 0);
    /* a loop ends after a bounded number of links */
    header(&m, true, 0, 2);
    record(&m, 5, next, sizeof(next));
    record_named(&m, next, sizeof(next), 5, (const unsigned char *)"\300\014", 2);
    CHECK(dns_answer_cname(m.b, (int)m.len, target, sizeof(target)));
    /* an alias to an invalid name, or cut short */
    header(&m, true, 0, 1);
    record(&m, 5, (const unsigned char *)"\003a b\000", 5);
    CHECK(!dns_answer_cname(m.b, (int)m.len, target, sizeof(target)) && target[0] == 0);
    header(&m, true, 0, 1);
    record(&m, 5, next, sizeof(next));
    CHECK(!dns_answer_cname(m.b, (int)m.len - 3, target, sizeof(target)));
}

/* Whether the AD bit of servers is believed, with trust_remote off or on. */
static bool ad_believed(const char *servers, bool trust_remote)
{
    struct strbuf err = STRBUF_INIT(256);
    struct dns_resolver *r = dns_open(servers, 5, &err);
    CHECK(r != NULL);
    bool believed = r && dns_set_dnssec(r, trust_remote);
    dns_close(r);
    sb_free(&err);
    return believed;
}

static void test_ad_trust(void)
{
    CHECK(ad_believed("127.0.0.1", false));
    CHECK(ad_believed("127.0.0.53:53, 127.1.2.3:5353", false));
    CHECK(ad_believed("[::1]:53", false));
    CHECK(!ad_believed("192.0.2.1", false));
    CHECK(!ad_believed("127.0.0.1, 192.0.2.1", false));    /* one remote server is enough */
    CHECK(!ad_believed("[2001:db8::1]:53", false));
    CHECK(!ad_believed("[::ffff:127.0.0.1]:53", false));  /* not the loopback address ::1 */
    CHECK(ad_believed("192.0.2.1", true));
}

int main(void)
{
    test_header();
    test_tlsa();
    test_cname();
    test_ad_trust();
    return check_summary();
}
