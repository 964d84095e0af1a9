/* test_smtp_policy.c: unit tests of the SMTP client's TLS and SASL setting
 * parsers with good and hostile values: security levels, protocol lists
 * with names, exclusions and bounds, smtp_tls_policy_maps values and
 * their attributes (duplicates, unknown names, match= where it is not
 * allowed, over-long values), SASL security options, and the AUTH
 * mechanisms of EHLO replies. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smtp_policy.h"

static int policy(const char *value, struct smtp_tls_policy *p)
{
    struct strbuf why = STRBUF_INIT(512);
    int rc = smtp_tls_policy_parse(value, p, &why);
    CHECK((rc < 0) == (why.len > 0));
    sb_free(&why);
    return rc;
}

static unsigned protocols(const char *value)
{
    struct strbuf why = STRBUF_INIT(512);
    unsigned mask = 0;
    int rc = smtp_tls_protocols_parse(value, &mask, &why);
    sb_free(&why);
    return rc < 0 ? 0xffff : mask;
}

static void test_levels(void)
{
    struct strbuf why = STRBUF_INIT(256);
    enum smtp_tls_level level;
    CHECK(smtp_tls_level_parse("may", &level, &why) == 0 && level == SMTP_TLS_MAY);
    CHECK(smtp_tls_level_parse("SECURE", &level, &why) == 0 && level == SMTP_TLS_SECURE);
    CHECK(smtp_tls_level_parse("dane", &level, &why) == 0 && level == SMTP_TLS_DANE);
    CHECK(smtp_tls_level_parse("Dane-Only", &level, &why) == 0 && level == SMTP_TLS_DANE_ONLY);
    CHECK(smtp_tls_level_parse("fingerprint", &level, &why) < 0);
    CHECK(strstr(sb_str(&why), "not supported") != NULL);
    sb_reset(&why);
    CHECK(smtp_tls_level_parse("maybe", &level, &why) < 0);
    CHECK(strstr(sb_str(&why), "invalid TLS security level") != NULL);
    CHECK(smtp_tls_level_parse("", &level, &why) < 0);
    CHECK_STR(smtp_tls_level_name(SMTP_TLS_VERIFY), "verify");
    CHECK_STR(smtp_tls_level_name(SMTP_TLS_DANE_ONLY), "dane-only");
    sb_free(&why);
}

static void test_protocols(void)
{
    unsigned all = SMTP_TLS_PROTO_ALL & ~SMTP_TLS_PROTO_SSLV2;
    CHECK(protocols("") == all);
    CHECK(protocols(">=TLSv1.2") == (SMTP_TLS_PROTO_TLSV1_2 | SMTP_TLS_PROTO_TLSV1_3));
    CHECK(protocols(">=tlsv1.2") == (SMTP_TLS_PROTO_TLSV1_2 | SMTP_TLS_PROTO_TLSV1_3));
    CHECK(protocols("<=TLSv1.1") == (SMTP_TLS_PROTO_SSLV3 | SMTP_TLS_PROTO_TLSV1 | SMTP_TLS_PROTO_TLSV1_1));
    CHECK(protocols("!SSLv2, !SSLv3") == (all & ~SMTP_TLS_PROTO_SSLV3));
    CHECK(protocols("!SSLv2:!SSLv3:!TLSv1:!TLSv1.1") == (SMTP_TLS_PROTO_TLSV1_2 | SMTP_TLS_PROTO_TLSV1_3));
    CHECK(protocols("TLSv1.3") == SMTP_TLS_PROTO_TLSV1_3);
    CHECK(protocols("TLSv1.2 TLSv1.3 !TLSv1.3") == SMTP_TLS_PROTO_TLSV1_2);
    CHECK(protocols(">=TLSv1 <=TLSv1.2 !TLSv1.1")
          == (SMTP_TLS_PROTO_TLSV1 | SMTP_TLS_PROTO_TLSV1_2));
    /* nothing left, or names that do not exist */
    CHECK(protocols(">=TLSv1.3 <=TLSv1.2") == 0xffff);
    CHECK(protocols("SSLv2") == 0xffff);
    CHECK(protocols("TLSv1.4") == 0xffff);
    CHECK(protocols(">=") == 0xffff);
    CHECK(protocols("!") == 0xffff);
    CHECK(protocols("=>TLSv1.2") == 0xffff);
    char longname[2000];
    memset(longname, 'T', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    CHECK(protocols(longname) == 0xffff);
    unsigned m = SMTP_TLS_PROTO_TLSV1 | SMTP_TLS_PROTO_TLSV1_2;
    CHECK(smtp_tls_protocols_lowest(m) == SMTP_TLS_PROTO_TLSV1);
    CHECK(smtp_tls_protocols_highest(m) == SMTP_TLS_PROTO_TLSV1_2);
}

static void test_policies(void)
{
    struct smtp_tls_policy p;
    CHECK(policy("encrypt", &p) == 0 && p.level == SMTP_TLS_ENCRYPT && !p.has_match);
    CHECK(policy("  secure  ", &p) == 0 && p.level == SMTP_TLS_SECURE);
    CHECK(policy("verify match=mx.example.com:.example.net", &p) == 0);
    CHECK(p.level == SMTP_TLS_VERIFY && p.has_match);
    CHECK_STR(p.match, "mx.example.com:.example.net");
    CHECK(policy("secure match=nexthop, match=dot-nexthop", &p) == 0);
    CHECK_STR(p.match, "nexthop:dot-nexthop");
    CHECK(policy("may protocols=>=TLSv1.2 ciphers=high exclude=aNULL:MD5", &p) == 0);
    CHECK(p.has_protocols && p.protocols == (SMTP_TLS_PROTO_TLSV1_2 | SMTP_TLS_PROTO_TLSV1_3));
    CHECK(p.has_ciphers && strcmp(p.ciphers, "high") == 0);
    CHECK(p.has_exclude && strcmp(p.exclude, "aNULL:MD5") == 0);
    CHECK(policy("encrypt servername=smtp.example.org", &p) == 0 && p.has_servername);
    CHECK_STR(p.servername, "smtp.example.org");
    CHECK(policy("dane", &p) == 0 && p.level == SMTP_TLS_DANE);
    CHECK(policy("dane-only protocols=>=TLSv1.2", &p) == 0 && p.level == SMTP_TLS_DANE_ONLY);
    CHECK(policy("dane match=nexthop", &p) < 0);   /* names come from the TLSA records */
    /* none ignores what follows, as Postfix does */
    CHECK(policy("none whatever=1 junk", &p) == 0 && p.level == SMTP_TLS_NONE);

    CHECK(policy("", &p) < 0);
    CHECK(policy(" ,, ", &p) < 0);
    CHECK(policy("verify match=", &p) < 0);
    CHECK(policy("encrypt match=mx.example.com", &p) < 0);      /* match needs verify or secure */
    CHECK(policy("may ciphers=strong", &p) < 0);
    CHECK(policy("may ciphers=high ciphers=low", &p) < 0);
    CHECK(policy("may protocols=TLSv9", &p) < 0);
    CHECK(policy("may protocols=>=TLSv1.2 protocols=TLSv1.3", &p) < 0);
    CHECK(policy("may tafile=/etc/x", &p) < 0);
    CHECK(policy("may =x", &p) < 0);
    CHECK(policy("may ciphers", &p) < 0);
    CHECK(policy("verify match=bad/name", &p) < 0);
    CHECK(policy("verify match=a\001b", &p) < 0);
    CHECK(policy("encrypt servername=*.example.com", &p) < 0);
    CHECK(policy("encrypt exclude=a;b", &p) < 0);
    CHECK(policy("encrypted", &p) < 0);
    CHECK(policy("averyveryveryveryverylongattributename=1 ", &p) < 0);

    /* bounded: over-long values and many match items are refused, not cut */
    char big[5000];
    strcpy(big, "verify match=");
    size_t n = strlen(big);
    while (n < sizeof(big) - 10) {
        memcpy(big + n, "a.example:", 10);
        n += 10;
    }
    big[n] = 0;
    CHECK(policy(big, &p) < 0);
    strcpy(big, "verify");
    for (int i = 0; i < 60; i++)
        strcat(big, " match=abcdefgh.example");
    CHECK(policy(big, &p) < 0);            /* more than the match buffer holds */

    const char *item;
    size_t len;
    CHECK(smtp_tls_match_item("::a:bb::c:", 0, &item, &len) && len == 1 && item[0] == 'a');
    CHECK(smtp_tls_match_item("::a:bb::c:", 1, &item, &len) && len == 2 && strncmp(item, "bb", 2) == 0);
    CHECK(smtp_tls_match_item("::a:bb::c:", 2, &item, &len) && len == 1 && item[0] == 'c');
    CHECK(!smtp_tls_match_item("::a:bb::c:", 3, &item, &len));
    CHECK(!smtp_tls_match_item("", 0, &item, &len));
}

static void test_sasl(void)
{
    struct strbuf why = STRBUF_INIT(256);
    unsigned f;
    CHECK(smtp_sasl_options_parse("noplaintext, noanonymous", &f, &why) == 0);
    CHECK(f == (SMTP_SASL_NOPLAINTEXT | SMTP_SASL_NOANONYMOUS));
    CHECK(smtp_sasl_mechs_allowed(f) == 0);
    CHECK(smtp_sasl_options_parse("noanonymous", &f, &why) == 0);
    CHECK(smtp_sasl_mechs_allowed(f) == (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN));
    CHECK(smtp_sasl_options_parse("", &f, &why) == 0 && f == 0);
    CHECK(smtp_sasl_options_parse("nodictionary", &f, &why) == 0 && smtp_sasl_mechs_allowed(f) == 0);
    CHECK(smtp_sasl_options_parse("noanonymous, nosuchthing", &f, &why) < 0);
    CHECK(strstr(sb_str(&why), "nosuchthing") != NULL);

    CHECK(smtp_sasl_mechs_parse("PLAIN LOGIN", 11) == (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN));
    CHECK(smtp_sasl_mechs_parse("cram-md5 login", 14) == SMTP_AUTH_LOGIN);
    CHECK(smtp_sasl_mechs_parse("PLAINX LOGI", 11) == 0);
    CHECK(smtp_sasl_mechs_parse("PLAIN", 3) == 0);          /* bounded by len */
    CHECK(smtp_sasl_mechs_parse("PL\0AIN", 6) == 0);
    CHECK(smtp_sasl_mechs_parse(", ,", 3) == 0);

    const char *ehlo = "250-mx.example\n250-PIPELINING\n250-AUTH CRAM-MD5 PLAIN\n250 SIZE 100";
    CHECK(smtp_ehlo_auth_mechs(ehlo, strlen(ehlo)) == SMTP_AUTH_PLAIN);
    ehlo = "250-mx.example\n250-AUTH=LOGIN\n250 AUTH GSSAPI";
    CHECK(smtp_ehlo_auth_mechs(ehlo, strlen(ehlo)) == SMTP_AUTH_LOGIN);
    ehlo = "250 AUTH PLAIN";                 /* the greeting line is not a keyword */
    CHECK(smtp_ehlo_auth_mechs(ehlo, strlen(ehlo)) == 0);
    ehlo = "250-x\n250-AUTHPLAIN\n250 AUTH";
    CHECK(smtp_ehlo_auth_mechs(ehlo, strlen(ehlo)) == 0);
    sb_free(&why);
}

int main(void)
{
    test_levels();
    test_protocols();
    test_policies();
    test_sasl();
    return check_summary();
}
