/* test_tlsrpt.c: unit tests of SMTP TLS Reporting (RFC 8460): the
 * _smtp._tls TXT record parser with good and hostile records (other
 * records, no v=, a bad or missing rua, unknown schemes, extensions, too
 * long, two TLSRPT records), the record line (a round trip with hostile
 * bytes, the PIPE_BUF bound with a huge policy, malformed lines), and the
 * JSON report built from a day's records (fields, counts, escaping). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tlsrpt.h"

static int txt(const char *record, struct tlsrpt_rua *rua)
{
    struct strbuf why = STRBUF_INIT(512);
    int rc = tlsrpt_txt_parse(record, rua, &why);
    CHECK((rc < 0) == (why.len > 0));
    sb_free(&why);
    return rc;
}

static void test_txt(void)
{
    struct tlsrpt_rua r;
    CHECK(txt("v=TLSRPTv1; rua=mailto:reports@example.com", &r) == 1);
    CHECK(r.n == 1 && !r.dest[0].https);
    CHECK_STR(r.dest[0].uri, "reports@example.com");
    CHECK(txt("v=TLSRPTv1;rua=mailto:a@example.net,https://reports.example.net/tlsrpt;", &r) == 1);
    CHECK(r.n == 2 && r.dest[1].https);
    CHECK_STR(r.dest[1].uri, "https://reports.example.net/tlsrpt");
    CHECK(txt("v=TLSRPTv1 ; rua = mailto:a@example.net", &r) == -1);   /* "rua " is no field name */
    CHECK(txt("v=TLSRPTv1 ;rua=mailto:a@example.net , mailto:b@example.net ; ext.1=x", &r) == 1);
    CHECK(r.n == 2);
    CHECK_STR(r.dest[1].uri, "b@example.net");
    /* percent-encoded mailto and header fields after '?' */
    CHECK(txt("v=TLSRPTv1; rua=mailto:tls%2Breports@example.org?subject=x", &r) == 1);
    CHECK_STR(r.dest[0].uri, "tls+reports@example.org");
    /* not TLSRPT at all */
    CHECK(txt("v=spf1 -all", &r) == 0);
    CHECK(txt("v=TLSRPTv10; rua=mailto:a@b.c", &r) == 0);
    CHECK(txt("rua=mailto:a@example.com", &r) == 0);
    CHECK(txt("", &r) == 0);
    /* malformed */
    CHECK(txt("v=TLSRPTv1", &r) == -1);
    CHECK(txt("v=TLSRPTv1;", &r) == -1);
    CHECK(txt("v=TLSRPTv1; rua=", &r) == -1);
    CHECK(txt("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", &r) == -1);
    CHECK(txt("v=TLSRPTv1 rua=mailto:a@example.com", &r) == -1);
    CHECK(txt("v=TLSRPTv1;; rua=mailto:a@example.com", &r) == -1);
    CHECK(txt("v=TLSRPTv1; rua=mailto:a@example.com; bad", &r) == -1);
    CHECK(txt("v=TLSRPTv1; rua=mailto:a@example.com; x=a=b", &r) == -1);
    CHECK(txt("v=TLSRPTv1; rua=mailto:not-an-address", &r) == -1);
    CHECK(txt("v=TLSRPTv1; rua=mailto:a@exa mple.com", &r) == -1);
    CHECK(txt("v=TLSRPTv1; rua=mailto:a%00b@example.com", &r) == -1);
    CHECK(txt("v=TLSRPTv1; rua=mailto:<a@example.com>", &r) == -1);
    CHECK(txt("v=TLSRPTv1; rua=mailto:a@example.com%0d%0aBcc:x@y.z", &r) == -1);
    CHECK(txt("v=TLSRPTv1; rua=http://example.com/", &r) == -1);     /* only unknown schemes */
    CHECK(txt("v=TLSRPTv1; rua=https://", &r) == -1);
    CHECK(txt("v=TLSRPTv1; rua=https://a\"b/", &r) == -1);
    /* an unknown scheme next to a usable one is ignored */
    CHECK(txt("v=TLSRPTv1; rua=ftp://x.example,mailto:a@example.com", &r) == 1);
    CHECK(r.n == 1);
    /* bounds: at most TLSRPT_RUA_MAX destinations, a record of at most TLSRPT_TXT_MAX */
    struct strbuf big = STRBUF_INIT(0);
    sb_appends(&big, "v=TLSRPTv1; rua=");
    for (int i = 0; i < 20; i++)
        sb_appendf(&big, "%smailto:r%d@example.com", i ? "," : "", i);
    CHECK(txt(sb_str(&big), &r) == 1);
    CHECK(r.n == TLSRPT_RUA_MAX);
    sb_reset(&big);
    sb_appends(&big, "v=TLSRPTv1; rua=mailto:a@example.com; x=");
    for (int i = 0; i < TLSRPT_TXT_MAX; i++)
        sb_appendc(&big, 'y');
    CHECK(txt(sb_str(&big), &r) == -1);
    sb_free(&big);
}

static void test_choose(void)
{
    struct tlsrpt_rua r;
    struct strbuf why = STRBUF_INIT(512);
    const char *one[] = { "v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.com" };
    CHECK(tlsrpt_txt_choose(one, 2, &r, &why) == 1 && r.n == 1);
    const char *two[] = { "v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1; rua=mailto:b@example.com" };
    CHECK(tlsrpt_txt_choose(two, 2, &r, &why) == -1 && r.n == 0);
    CHECK_STR(sb_str(&why), "more than one TLSRPT record");
    const char *none[] = { "v=spf1 -all", "hello" };
    CHECK(tlsrpt_txt_choose(none, 2, &r, &why) == 0);
    const char *bad[] = { "v=TLSRPTv1; rua=gopher://x" };
    CHECK(tlsrpt_txt_choose(bad, 1, &r, &why) == -1);
    sb_free(&why);
}

static void test_domain_ok(void)
{
    CHECK(tlsrpt_domain_ok("example.com"));
    CHECK(tlsrpt_domain_ok("xn--bcher-kva.example"));
    CHECK(!tlsrpt_domain_ok(""));
    CHECK(!tlsrpt_domain_ok("a..b"));
    CHECK(!tlsrpt_domain_ok("a b.example"));
    CHECK(!tlsrpt_domain_ok("a\"b.example"));
    CHECK(!tlsrpt_domain_ok(".example"));
}

static void make(struct tlsrpt_record *r, const char *domain, enum tlsrpt_policy_type type,
                 enum tlsrpt_result result, const char *mx, const char *ip)
{
    tlsrpt_record_init(r);
    r->time = 1796428800;
    snprintf(r->domain, sizeof(r->domain), "%s", domain);
    r->type = type;
    r->result = result;
    snprintf(r->sending_ip, sizeof(r->sending_ip), "127.0.0.1");
    snprintf(r->mx_host, sizeof(r->mx_host), "%s", mx);
    snprintf(r->receiving_ip, sizeof(r->receiving_ip), "%s", ip);
}

static void test_record(void)
{
    struct tlsrpt_record r, back;
    struct strbuf line = STRBUF_INIT(0), why = STRBUF_INIT(256);
    make(&r, "example.com", TLSRPT_POLICY_STS, TLSRPT_CERTIFICATE_EXPIRED, "mx\x01 %,-\xff.example.com",
         "192.0.2.1");
    snprintf(r.reason, sizeof(r.reason), "certificate has expired");
    tlsrpt_item_add(&r.policy, "version: STSv1");
    tlsrpt_item_add(&r.policy, "mode: enforce");
    tlsrpt_item_add(&r.policy, "mx: a,b\nc");
    tlsrpt_item_add(&r.policy, "-");
    tlsrpt_item_add(&r.mx, "*.example.com");
    CHECK(tlsrpt_record_format(&r, &line) == 0);
    CHECK(line.len < TLSRPT_LINE_MAX && line.data[line.len - 1] == '\n');
    CHECK(memchr(line.data, '\n', line.len - 1) == NULL);
    tlsrpt_record_init(&back);
    CHECK(tlsrpt_record_parse(line.data, line.len - 1, &back, &why) == 0);
    CHECK(back.time == r.time && back.type == r.type && back.result == r.result);
    CHECK_STR(back.domain, "example.com");
    CHECK_STR(back.mx_host, r.mx_host);
    CHECK_STR(back.reason, r.reason);
    CHECK_STR(sb_str(&back.policy), "version: STSv1\nmode: enforce\nmx: a,b c\n-");
    CHECK_STR(sb_str(&back.mx), "*.example.com");
    tlsrpt_record_free(&back);
    /* a huge policy: the line stays below PIPE_BUF, whole items only */
    sb_reset(&r.policy);
    char item[TLSRPT_ITEM_MAX + 100];
    memset(item, 'p', sizeof(item) - 1);
    item[sizeof(item) - 1] = 0;
    for (int i = 0; i < 100; i++)
        tlsrpt_item_add(&r.policy, item);
    for (int i = 0; i < 100; i++)
        tlsrpt_item_add(&r.mx, item);
    sb_reset(&line);
    CHECK(tlsrpt_record_format(&r, &line) == 0);
    CHECK(line.len <= TLSRPT_LINE_MAX && line.len < 4096);
    tlsrpt_record_init(&back);
    CHECK(tlsrpt_record_parse(line.data, line.len - 1, &back, &why) == 0);
    CHECK(back.policy.len > 0 && back.policy.len % (TLSRPT_ITEM_MAX + 1) == TLSRPT_ITEM_MAX);
    tlsrpt_record_free(&back);
    tlsrpt_record_free(&r);
    /* malformed lines */
    const char *bad[] = {
        "",
        "TLSRPT1 1 example.com sts success - - - - -",
        "TLSRPT1 1 example.com sts success - - - - - - extra",
        "TLSRPT1 1 example.com sts success - - - - - - ",
        "TLSRPT2 1 example.com sts success - - - - - -",
        "TLSRPT1 x example.com sts success - - - - - -",
        "TLSRPT1 1 example.com ftp success - - - - - -",
        "TLSRPT1 1 example.com sts great - - - - - -",
        "TLSRPT1 1 ex%0ample.com sts success - - - - - -",
        "TLSRPT1 1 ex%00mple.com sts success - - - - - -",
        "TLSRPT1 1 example.com sts success - - - - - a,,b",
        "TLSRPT1 1 example.com sts success - - - - - %",
        "TLSRPT1 1  sts success - - - - - -",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tlsrpt_record_init(&back);
        int rc = tlsrpt_record_parse(bad[i], strlen(bad[i]), &back, &why);
        if (rc == 0)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK(rc < 0);
        tlsrpt_record_free(&back);
    }
    const char *good = "TLSRPT1 1 example.com tlsa dnssec-invalid - mx.example.com - - - -";
    tlsrpt_record_init(&back);
    CHECK(tlsrpt_record_parse(good, strlen(good), &back, &why) == 0);
    CHECK(back.result == TLSRPT_DNSSEC_INVALID && back.type == TLSRPT_POLICY_TLSA);
    tlsrpt_record_free(&back);
    sb_free(&line);
    sb_free(&why);
}

static void test_json(void)
{
    struct tlsrpt_summary s;
    tlsrpt_summary_init(&s);
    struct tlsrpt_record r;
    for (int i = 0; i < 3; i++) {
        make(&r, "Example.COM", TLSRPT_POLICY_STS, TLSRPT_SUCCESS, "mx.example.com", "192.0.2.1");
        tlsrpt_item_add(&r.policy, "version: STSv1");
        tlsrpt_item_add(&r.policy, "mode: enforce");
        tlsrpt_item_add(&r.mx, "mx.example.com");
        tlsrpt_summary_add(&s, &r);
        tlsrpt_record_free(&r);
    }
    for (int i = 0; i < 2; i++) {
        make(&r, "example.com", TLSRPT_POLICY_STS, TLSRPT_CERTIFICATE_NOT_TRUSTED, "mx.example.com",
             "192.0.2.1");
        snprintf(r.reason, sizeof(r.reason), "self \"signed\"");
        tlsrpt_item_add(&r.policy, "version: STSv1");
        tlsrpt_item_add(&r.policy, "mode: enforce");
        tlsrpt_item_add(&r.mx, "mx.example.com");
        tlsrpt_summary_add(&s, &r);
        tlsrpt_record_free(&r);
    }
    make(&r, "other.example", TLSRPT_POLICY_TLSA, TLSRPT_DNSSEC_INVALID, "mx.other.example", "");
    tlsrpt_summary_add(&s, &r);
    tlsrpt_record_free(&r);
    tlsrpt_summary_sort(&s);
    CHECK(s.ndomains == 2 && s.records == 6);
    CHECK_STR(s.domains[0].name, "example.com");
    CHECK(tlsrpt_summary_find(&s, "EXAMPLE.com") == &s.domains[0]);
    CHECK(tlsrpt_summary_find(&s, "other.example") == &s.domains[1]);
    CHECK(tlsrpt_summary_find(&s, "nowhere.example") == NULL);
    struct tlsrpt_meta m = { "Org \"X\"", "postmaster@example.net", "id1@example.net", 1796428800,
                             1796428800 + 86399 };
    struct strbuf out = STRBUF_INIT(0);
    tlsrpt_report_json(&s.domains[0], &m, &out);
    CHECK_STR(sb_str(&out),
              "{\"organization-name\":\"Org \\\"X\\\"\",\"date-range\":{\"start-datetime\":"
              "\"2026-12-05T00:00:00Z\",\"end-datetime\":\"2026-12-05T23:59:59Z\"},"
              "\"contact-info\":\"postmaster@example.net\",\"report-id\":\"id1@example.net\","
              "\"policies\":[{\"policy\":{\"policy-type\":\"sts\",\"policy-string\":"
              "[\"version: STSv1\",\"mode: enforce\"],\"policy-domain\":\"example.com\","
              "\"mx-host\":[\"mx.example.com\"]},\"summary\":{\"total-successful-session-count\":3,"
              "\"total-failure-session-count\":2},\"failure-details\":[{\"result-type\":"
              "\"certificate-not-trusted\",\"sending-mta-ip\":\"127.0.0.1\","
              "\"receiving-mx-hostname\":\"mx.example.com\",\"receiving-ip\":\"192.0.2.1\","
              "\"failed-session-count\":2,\"failure-reason-code\":\"self \\\"signed\\\"\"}]}]}");
    sb_reset(&out);
    tlsrpt_report_json(&s.domains[1], &m, &out);
    CHECK(strstr(sb_str(&out), "\"policy-type\":\"tlsa\",\"policy-string\":[],") != NULL);
    CHECK(strstr(sb_str(&out), "\"result-type\":\"dnssec-invalid\"") != NULL);
    CHECK(strstr(sb_str(&out), "receiving-ip") == NULL);
    sb_free(&out);
    tlsrpt_summary_free(&s);
    /* many domains: the table grows and finds them all again */
    tlsrpt_summary_init(&s);
    for (int i = 0; i < 3000; i++) {
        char name[64];
        snprintf(name, sizeof(name), "d%d.example", i % 1000);
        make(&r, name, TLSRPT_POLICY_STS, TLSRPT_SUCCESS, "mx", "");
        tlsrpt_summary_add(&s, &r);
        tlsrpt_record_free(&r);
    }
    CHECK(s.ndomains == 1000);
    tlsrpt_summary_sort(&s);
    CHECK(s.domains[0].policies[0].successes == 3);
    tlsrpt_summary_free(&s);
}

static void test_x509(void)
{
    CHECK(tlsrpt_result_of_x509(0) == TLSRPT_SUCCESS);
    CHECK(tlsrpt_result_of_x509(10) == TLSRPT_CERTIFICATE_EXPIRED);        /* X509_V_ERR_CERT_HAS_EXPIRED */
    CHECK(tlsrpt_result_of_x509(18) == TLSRPT_CERTIFICATE_NOT_TRUSTED);    /* DEPTH_ZERO_SELF_SIGNED */
    CHECK(tlsrpt_result_of_x509(62) == TLSRPT_CERTIFICATE_HOST_MISMATCH);  /* HOSTNAME_MISMATCH */
    CHECK_STR(tlsrpt_result_name(TLSRPT_STS_WEBPKI_INVALID), "sts-webpki-invalid");
}

int main(void)
{
    test_txt();
    test_choose();
    test_domain_ok();
    test_record();
    test_json();
    test_x509();
    return check_summary();
}
