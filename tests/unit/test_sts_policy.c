/* test_sts_policy.c: unit tests of the MTA-STS (RFC 8461) parsers with good
 * and hostile input: TXT records (other records, a malformed id, extra
 * fields), policy files (CRLF and LF, missing and repeated fields, bad
 * modes and patterns, max_age bounds, oversized input), the leading
 * wildcard rule of mx patterns, and cached policy headers. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sts_policy.h"

static int txt(const char *record, char id[STS_ID_MAX + 1])
{
    struct strbuf why = STRBUF_INIT(512);
    int rc = sts_txt_parse(record, id, &why);
    CHECK((rc < 0) == (why.len > 0));
    sb_free(&why);
    return rc;
}

static int policy(const char *text, struct sts_policy *p)
{
    struct strbuf why = STRBUF_INIT(512);
    int rc = sts_policy_parse(text, strlen(text), p, &why);
    CHECK((rc < 0) == (why.len > 0));
    sb_free(&why);
    return rc;
}

static void test_txt(void)
{
    char id[STS_ID_MAX + 1];
    CHECK(txt("v=STSv1; id=20160831085700Z;", id) == 1);
    CHECK_STR(id, "20160831085700Z");
    CHECK(txt("v=STSv1;id=abc", id) == 1);
    CHECK_STR(id, "abc");
    CHECK(txt("v = STSv1 ; ext=1 ; id = X1 ;", id) == 1);
    CHECK_STR(id, "X1");
    CHECK(txt("v=spf1 -all", id) == 0);
    CHECK(txt("v=STSv2; id=1", id) == 0);
    CHECK(txt("", id) == 0);
    CHECK(txt("v=STSv1;", id) < 0);
    CHECK(txt("v=STSv1; id=", id) < 0);
    CHECK(txt("v=STSv1; id=a-b", id) < 0);
    CHECK(txt("v=STSv1; id=123456789012345678901234567890123", id) < 0);
    CHECK(txt("v=STSv1; id=12345678901234567890123456789012", id) == 1);
    CHECK(txt("v=STSv1; garbage; id=1", id) < 0);
}

static void test_policy(void)
{
    struct sts_policy p;
    CHECK(policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
                 "mx: backupmx.example.com\r\nmax_age: 604800\r\n", &p) == 0);
    CHECK(p.mode == STS_ENFORCE && p.max_age == 604800 && p.nmx == 3);
    CHECK_STR(p.mx[1], "*.example.net");
    CHECK(policy("version: STSv1\nmode: testing\nmx: MX.Example.COM\nmax_age: 86400", &p) == 0);
    CHECK(p.mode == STS_TESTING && p.nmx == 1);
    CHECK_STR(p.mx[0], "mx.example.com");
    CHECK(policy("version: STSv1\nmode: none\nmax_age: 1\n", &p) == 0 && p.mode == STS_NONE);
    CHECK(policy("version: STSv1\nmode: enforce\nmax_age: 99999999999\nmx: a.b\n", &p) < 0);
    CHECK(policy("version: STSv1\nmode: enforce\nmax_age: 9999999999\nmx: a.b\n", &p) == 0);
    CHECK(p.max_age == STS_MAX_AGE_MAX);
    CHECK(policy("version: STSv1\nmode: enforce\nmax_age: 10\nmx: a.b\nfoo: bar\n", &p) == 0);
    /* the first of a repeated field counts */
    CHECK(policy("version: STSv1\nmode: testing\nmode: enforce\nmax_age: 10\nmx: a.b\n", &p) == 0);
    CHECK(p.mode == STS_TESTING);
    CHECK(policy("mode: enforce\nmax_age: 10\nmx: a.b\n", &p) < 0);
    CHECK(policy("version: STSv2\nmode: enforce\nmax_age: 10\nmx: a.b\n", &p) < 0);
    CHECK(policy("version: STSv1\nmode: Enforce\nmax_age: 10\nmx: a.b\n", &p) < 0);
    CHECK(policy("version: STSv1\nmode: enforce\nmx: a.b\n", &p) < 0);
    CHECK(policy("version: STSv1\nmode: enforce\nmax_age: 10\n", &p) < 0);
    CHECK(policy("version: STSv1\nmode: enforce\nmax_age: -1\nmx: a.b\n", &p) < 0);
    CHECK(policy("version: STSv1\nmode: enforce\nmax_age: 10\nmx: a..b\n", &p) < 0);
    CHECK(policy("version: STSv1\nmode: enforce\nmax_age: 10\nmx: a.*.b\n", &p) < 0);
    CHECK(policy("version: STSv1\nmode: enforce\nmax_age: 10\nmx: a b\n", &p) < 0);
    CHECK(policy("version: STSv1\nmode: enforce\nmax_age: 10\nno colon here\n", &p) < 0);
    CHECK(policy("<html>not found</html>", &p) < 0);
    /* more patterns than are kept: the first ones are */
    struct strbuf big = STRBUF_INIT(0);
    sb_appends(&big, "version: STSv1\nmode: enforce\nmax_age: 10\n");
    for (int i = 0; i < STS_MX_MAX + 10; i++)
        sb_appendf(&big, "mx: mx%d.example.com\n", i);
    CHECK(policy(sb_str(&big), &p) == 0 && p.nmx == STS_MX_MAX);
    sb_free(&big);
    char *huge = malloc(STS_POLICY_SIZE_MAX + 2);
    memset(huge, '\n', STS_POLICY_SIZE_MAX + 1);
    huge[STS_POLICY_SIZE_MAX + 1] = 0;
    CHECK(policy(huge, &p) < 0);
    free(huge);
    const char nul[] = "version: STSv1\nmode: enforce\0\nmax_age: 10\nmx: a.b\n";
    struct strbuf why = STRBUF_INIT(256);
    CHECK(sts_policy_parse(nul, sizeof(nul) - 1, &p, &why) < 0);
    sb_free(&why);
}

static void test_mx_match(void)
{
    struct sts_policy p;
    CHECK(policy("version: STSv1\nmode: enforce\nmax_age: 10\nmx: mail.example.com\n"
                 "mx: *.example.net\n", &p) == 0);
    CHECK(sts_mx_match(&p, "mail.example.com"));
    CHECK(sts_mx_match(&p, "MAIL.example.com."));
    CHECK(!sts_mx_match(&p, "mail.example.com.evil"));
    CHECK(!sts_mx_match(&p, "xmail.example.com"));
    CHECK(sts_mx_match(&p, "mx1.example.net"));
    CHECK(!sts_mx_match(&p, "example.net"));
    CHECK(!sts_mx_match(&p, "a.b.example.net"));     /* one label only */
    CHECK(!sts_mx_match(&p, ".example.net"));
    CHECK(!sts_mx_match(&p, "mx1.example.network"));
    CHECK(!sts_mx_match(&p, ""));
    struct strbuf out = STRBUF_INIT(512);
    sts_mx_list(&p, &out);
    CHECK_STR(sb_str(&out), "mail.example.com, *.example.net");
    sb_free(&out);
}

static void test_cache(void)
{
    struct sts_cached c;
    struct strbuf why = STRBUF_INIT(256);
    const char *text = "id: abc123\nfetched: 1700000000\nexpires: 1700086400\n\nversion: STSv1\n";
    CHECK(sts_cache_parse(text, strlen(text), &c, &why) == 0);
    CHECK_STR(c.id, "abc123");
    CHECK(c.fetched == 1700000000 && c.expires == 1700086400);
    CHECK(c.policy_len == strlen("version: STSv1\n") && strncmp(c.policy, "version", 7) == 0);
    const char *bad[] = {
        "id: abc\nfetched: 1\n\nx", "id: a-b\nfetched: 1\nexpires: 2\n\n", "fetched: 1\nexpires: 2\n\n",
        "id: abc\nfetched: x\nexpires: 2\n\n", "id: abc\nfetched: 1\nexpires: 2\n", "junk\n\n", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sb_reset(&why);
        CHECK(sts_cache_parse(bad[i], strlen(bad[i]), &c, &why) < 0 && why.len > 0);
    }
    sb_free(&why);
}

int main(void)
{
    test_txt();
    test_policy();
    test_mx_match();
    test_cache();
    CHECK_STR(sts_mode_name(STS_ENFORCE), "enforce");
    return check_summary();
}
