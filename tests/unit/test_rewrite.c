/* test_rewrite.c: unit tests of address rewriting (lib/global/rewrite.c,
 * rewrite_header.c): canonical lookup order (user+ext@domain, user@domain,
 * user and user+ext only in our own domains, @domain), pattern tables that
 * only see the whole address, address extensions and
 * propagate_unmatched_extensions, "@other" results, the sender/recipient
 * tables and their classes, masquerading (Postfix's own reference cases),
 * virtual alias expansion (one-to-many, an alias to itself, loops and both
 * limits, duplicates), BCC, virtual_alias_domains, a table that cannot be
 * opened, receive_override_options, and address lists in header values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "resolve.h"
#include "rewrite.h"
#include "strbuf.h"

static char dir[] = "/tmp/tern-test-rewrite-XXXXXX";

static const char *table(const char *name, const char *text)
{
    static char spec[8][600];
    static int slot;
    char *s = spec[slot++ % 8];
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    CHECK(fp != NULL);
    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
    snprintf(s, sizeof(spec[0]), "%s", path);
    return s;
}

static void configure(const char *text)
{
    struct strbuf path = STRBUF_INIT(0), err = STRBUF_INIT(1024);
    sb_appendf(&path, "%s/main.cf", dir);
    FILE *fp = fopen(sb_str(&path), "w");
    CHECK(fp != NULL);
    if (fp) {
        fprintf(fp, "myhostname = host.tern.test\nmydomain = tern.test\n"
                    "mydestination = $myhostname, localhost\n%s", text);
        fclose(fp);
    }
    CHECK(cfg_load(dir, &err) == 0);
    resolve_init();
    rewrite_init();
    sb_free(&path);
    sb_free(&err);
}

static void expect_addr(const char *in, unsigned cls, const char *want)
{
    struct strbuf out = STRBUF_INIT(0);
    CHECK(rewrite_address(in, cls, &out) == 0);
    CHECK_STR(sb_str(&out), want);
    sb_free(&out);
}

/* The expansion of in, as "a b c" (sorted as it comes), or "LOOKUP" / "LIMIT". */
static void expect_virtual(const char *in, const char *want)
{
    struct rewrite_expansion x;
    struct strbuf got = STRBUF_INIT(0);
    int rc = rewrite_virtual(in, "TEST", &x);
    if (rc == REWRITE_LOOKUP_FAILED)
        sb_appends(&got, "LOOKUP");
    else if (rc == REWRITE_LIMIT_EXCEEDED)
        sb_appends(&got, "LIMIT");
    for (size_t i = 0; rc == 0 && i < x.n; i++)
        sb_appendf(&got, "%s%s", i ? " " : "", x.addrs[i]);
    CHECK_STR(sb_str(&got), want);
    rewrite_expansion_free(&x);
    sb_free(&got);
}

static void expect_header(const char *value, unsigned cls, const char *want)
{
    struct strbuf out = STRBUF_INIT(0);
    int rc = rewrite_header_value(value, strlen(value), cls, NULL, &out);
    CHECK(rc >= 0);
    CHECK_STR(rc > 0 ? sb_str(&out) : value, want);
    sb_free(&out);
}

static void test_canonical_order(void)
{
    struct strbuf mc = STRBUF_INIT(0);
    sb_appendf(&mc, "recipient_delimiter = +\ncanonical_maps = texthash:%s, pcre:%s\n",
               table("canon", "full+ext@example.org    exact@example.net\n"
                              "full@example.org        base@example.net\n"
                              "local+x                 bare-ext@example.net\n"
                              "local                   bare@example.net\n"
                              "@example.org            @example.com\n"
                              "@catch.example          one@example.net\n"
                              "nouser                  plain\n"),
               table("canon.pcre", "/^pattern@/ matched@example.net\n/^local$/ never@example.net\n"));
    configure(sb_str(&mc));
    /* user+ext@domain first, then user@domain (extension propagated) */
    expect_addr("full+ext@example.org", REWRITE_ENV_RCPT, "exact@example.net");
    expect_addr("full+other@example.org", REWRITE_ENV_RCPT, "base+other@example.net");
    expect_addr("full@example.org", REWRITE_ENV_RCPT, "base@example.net");
    /* the mapping is recursive: @example.org applies to its own results */
    expect_addr("x@example.org", REWRITE_ENV_RCPT, "x@example.com");
    /* bare user keys only in our own domains (myorigin, mydestination) */
    expect_addr("local+x@host.tern.test", REWRITE_ENV_RCPT, "bare-ext@example.net");
    expect_addr("local+y@localhost", REWRITE_ENV_RCPT, "bare+y@example.net");
    expect_addr("local@elsewhere.example", REWRITE_ENV_RCPT, "local@elsewhere.example");
    /* @domain last; "@other" keeps the user, extension included */
    expect_addr("Anyone+tag@example.org", REWRITE_ENV_RCPT, "Anyone+tag@example.com");
    expect_addr("who+tag@catch.example", REWRITE_ENV_RCPT, "one@example.net");
    /* an answer without a domain takes myorigin's */
    expect_addr("nouser@localhost", REWRITE_HDR_SENDER, "plain@host.tern.test");
    /* pattern tables see the whole address only */
    expect_addr("pattern@x.example", REWRITE_ENV_SENDER, "matched@example.net");
    /* no domain: looked up as if at myorigin */
    expect_addr("local", REWRITE_ENV_RCPT, "bare@example.net");
    /* the null sender is never rewritten */
    expect_addr("", REWRITE_ENV_SENDER, "");
    sb_free(&mc);
}

static void test_canonical_classes(void)
{
    struct strbuf mc = STRBUF_INIT(0);
    sb_appendf(&mc, "canonical_maps = texthash:%s\nsender_canonical_maps = texthash:%s\n"
                    "recipient_canonical_maps = texthash:%s\n"
                    "canonical_classes = envelope_recipient, header_sender\n"
                    "propagate_unmatched_extensions =\nrecipient_delimiter = +\n",
               table("c2", "a@x.example b@x.example\nb@x.example c@x.example\n"
                           "u@x.example v@x.example\n"),
               table("s2", "s@x.example a@x.example\n"),
               table("r2", "r@x.example a@x.example\n"));
    configure(sb_str(&mc));
    /* recursive: a -> b -> c; sender table first, then canonical_maps per class */
    expect_addr("a@x.example", REWRITE_ENV_RCPT, "c@x.example");
    expect_addr("a@x.example", REWRITE_ENV_SENDER, "a@x.example");
    expect_addr("s@x.example", REWRITE_ENV_SENDER, "a@x.example");
    expect_addr("s@x.example", REWRITE_HDR_SENDER, "c@x.example");
    expect_addr("r@x.example", REWRITE_ENV_RCPT, "c@x.example");
    expect_addr("r@x.example", REWRITE_HDR_RCPT, "a@x.example");
    /* no propagation: the extension is dropped when the base matched */
    expect_addr("u+tag@x.example", REWRITE_ENV_RCPT, "v@x.example");
    sb_free(&mc);
}

/* Postfix's cleanup_masquerade reference cases, and the classes. */
static void test_masquerade(void)
{
    configure("masquerade_domains = a.b.c, b.c\n");
    expect_addr("xxx@aa.a.b.c", REWRITE_ENV_SENDER, "xxx@a.b.c");
    expect_addr("xxx@a.b.c", REWRITE_ENV_SENDER, "xxx@a.b.c");
    expect_addr("xxx@aaa.b.c", REWRITE_ENV_SENDER, "xxx@b.c");
    expect_addr("xxx@b.c", REWRITE_HDR_RCPT, "xxx@b.c");
    /* the domain follows the last '@' outside quotes; a quoted one is part
     * of the local part (found by fuzzing: "x@"aa.a.b.c was cut at it) */
    expect_addr("\"x@y\"@aa.a.b.c", REWRITE_ENV_SENDER, "\"x@y\"@a.b.c");
    expect_addr("\"x@\"aa.a.b.c", REWRITE_ENV_SENDER, "\"x@\"aa.a.b.c");
    /* envelope recipients are not in the default masquerade_classes */
    expect_addr("xxx@aa.a.b.c", REWRITE_ENV_RCPT, "xxx@aa.a.b.c");
    configure("masquerade_domains = !a.b.c, b.c\n");
    expect_addr("xxx@aa.a.b.c", REWRITE_ENV_SENDER, "xxx@aa.a.b.c");
    expect_addr("xxx@a.b.c", REWRITE_ENV_SENDER, "xxx@a.b.c");
    expect_addr("xxx@aaa.b.c", REWRITE_ENV_SENDER, "xxx@b.c");
    configure("masquerade_domains = a.b.c, b.c\nmasquerade_exceptions = xxx\n");
    expect_addr("xxx@aa.a.b.c", REWRITE_ENV_SENDER, "xxx@aa.a.b.c");
    expect_addr("yyy@aa.a.b.c", REWRITE_ENV_SENDER, "yyy@a.b.c");
    struct strbuf mc = STRBUF_INIT(0);
    sb_appendf(&mc, "masquerade_domains = b.c\nmasquerade_exceptions = texthash:%s\n"
                    "masquerade_classes = envelope_recipient\n",
               table("except", "root yes\n"));
    configure(sb_str(&mc));
    expect_addr("Root@x.b.c", REWRITE_ENV_RCPT, "Root@x.b.c");
    expect_addr("joe@x.b.c", REWRITE_ENV_RCPT, "joe@b.c");
    expect_addr("joe@x.b.c", REWRITE_ENV_SENDER, "joe@x.b.c");
    sb_free(&mc);
}

static void test_virtual(void)
{
    struct strbuf mc = STRBUF_INIT(0);
    sb_appendf(&mc, "virtual_alias_maps = texthash:%s\nrecipient_delimiter = +\n"
                    "virtual_alias_expansion_limit = 4\nvirtual_alias_recursion_limit = 5\n",
               table("virtual", "virt.example anything\n"
                                "info@virt.example alice, bob@remote.example, sales@virt.example\n"
                                "sales@virt.example carol@host.tern.test, bob@remote.example\n"
                                "self@virt.example self@virt.example, copy@remote.example\n"
                                "a@virt.example b@virt.example\n"
                                "b@virt.example a@virt.example\n"
                                "d1@virt.example d2@virt.example\nd2@virt.example d3@virt.example\n"
                                "d3@virt.example d4@virt.example\nd4@virt.example d5@virt.example\n"
                                "d5@virt.example d6@virt.example\n"
                                "big@virt.example 1@r.example 2@r.example 3@r.example 4@r.example "
                                "5@r.example\n"
                                "user@virt.example \"quoted name\"@r.example, <angle@r.example>\n"
                                "catch@virt.example dan\n"));
    configure(sb_str(&mc));
    expect_virtual("info@virt.example",
                   "alice@host.tern.test bob@remote.example carol@host.tern.test");
    expect_virtual("self@virt.example", "self@virt.example copy@remote.example");
    expect_virtual("a@virt.example", "LIMIT");
    expect_virtual("d1@virt.example", "LIMIT");          /* depth 5 > limit */
    expect_virtual("d2@virt.example", "d6@virt.example"); /* depth 4 is fine */
    expect_virtual("big@virt.example", "LIMIT");
    expect_virtual("user@virt.example", "\"quoted name\"@r.example angle@r.example");
    expect_virtual("catch+x@virt.example", "dan+x@host.tern.test");
    expect_virtual("other@elsewhere.example", "other@elsewhere.example");
    struct rewrite_expansion x;
    CHECK(rewrite_virtual("info@virt.example", "TEST", &x) == 0 && x.listed);
    rewrite_expansion_free(&x);
    CHECK(rewrite_virtual("nobody@virt.example", "TEST", &x) == 0 && !x.listed && x.n == 1);
    rewrite_expansion_free(&x);
    /* virtual_alias_domains defaults to $virtual_alias_maps: the domain key */
    CHECK(rewrite_virtual_alias_domain("virt.example") == 1);
    CHECK(rewrite_virtual_alias_domain("sub.virt.example") == 0);
    CHECK(rewrite_virtual_alias_domain("elsewhere.example") == 0);
    sb_free(&mc);
}

static void test_domains_and_bcc(void)
{
    struct strbuf mc = STRBUF_INIT(0);
    sb_appendf(&mc, "virtual_alias_domains = one.example, .two.example, texthash:%s\n"
                    "recipient_bcc_maps = texthash:%s\nsender_bcc_maps = texthash:%s\n"
                    "always_bcc = all@archive.example\n",
               table("vdomains", "three.example x\n.four.example x\n"),
               table("rbcc", "ann@example.net copy@archive.example\n"),
               table("sbcc", "@example.org scopy@archive.example\n"));
    configure(sb_str(&mc));
    CHECK(rewrite_virtual_alias_domain("one.example") == 1);
    CHECK(rewrite_virtual_alias_domain("sub.one.example") == 0);
    CHECK(rewrite_virtual_alias_domain("two.example") == 0);
    CHECK(rewrite_virtual_alias_domain("sub.two.example") == 1);
    CHECK(rewrite_virtual_alias_domain("three.example") == 1);
    CHECK(rewrite_virtual_alias_domain("a.b.four.example") == 1);
    CHECK(rewrite_virtual_alias_domain("four.example") == 0);
    struct strbuf out = STRBUF_INIT(0);
    CHECK(rewrite_bcc("ann@example.net", false, &out) == 1);
    CHECK_STR(sb_str(&out), "copy@archive.example");
    CHECK(rewrite_bcc("ann@example.net", true, &out) == 0);
    CHECK(rewrite_bcc("joe@example.org", true, &out) == 1);
    CHECK_STR(sb_str(&out), "scopy@archive.example");
    CHECK(rewrite_bcc("", true, &out) == 0);
    CHECK_STR(rewrite_always_bcc(), "all@archive.example");
    CHECK(rewrite_active());
    sb_free(&out);
    sb_free(&mc);
}

static void test_broken_table(void)
{
    configure("virtual_alias_maps = hash:/nonexistent/virtual\n"
              "canonical_maps = hash:/nonexistent/canonical\n"
              "virtual_alias_domains = hash:/nonexistent/domains\n");
    struct strbuf out = STRBUF_INIT(0);
    CHECK(rewrite_address("a@b.example", REWRITE_ENV_RCPT, &out) == -1);
    expect_virtual("a@b.example", "LOOKUP");
    CHECK(rewrite_virtual_alias_domain("b.example") == -1);
    CHECK(rewrite_header_value("a@b.example", 11, REWRITE_HDR_RCPT, NULL, &out) == -1);
    sb_free(&out);
    configure("");
    CHECK(!rewrite_active());
}

static void test_overrides(void)
{
    CHECK(rewrite_receive_overrides("") == 0);
    CHECK(rewrite_receive_overrides("no_address_mappings") == RECEIVE_NO_MAPPINGS);
    CHECK(rewrite_receive_overrides("no_unknown_recipient_checks, no_header_body_checks no_milters")
          == (RECEIVE_NO_UNKNOWN_RCPT | RECEIVE_NO_CHECKS | RECEIVE_NO_MILTERS));
    CHECK(rewrite_receive_overrides("no_such_thing") == 0);
}

static void expect_filter(const char *setting, const char *want)
{
    configure(setting);
    char *got = rewrite_content_filter();
    CHECK(want ? got && strcmp(got, want) == 0 : got == NULL);
    free(got);
}

/* content_filter as smtpd and pickup hand it to cleanup */
static void test_content_filter(void)
{
    expect_filter("", NULL);
    expect_filter("content_filter =\n", NULL);
    expect_filter("content_filter = smtp-amavis:[127.0.0.1]:10024\n", "smtp-amavis:[127.0.0.1]:10024");
    expect_filter("content_filter = amavis\n", "amavis:");          /* transport alone */
    expect_filter("content_filter = lmtp:unix:private/f\n", "lmtp:unix:private/f");
    cfg_override("content_filter", "");                               /* -o content_filter= */
    CHECK(rewrite_content_filter() == NULL);
    configure("");
}

static void test_headers(void)
{
    struct strbuf mc = STRBUF_INIT(0);
    sb_appendf(&mc, "canonical_maps = texthash:%s\n",
               table("hcanon", "old@example.org new@example.org\nbob new-bob@example.org\n"
                               "@legacy.example @example.org\n"));
    configure(sb_str(&mc));
    CHECK(rewrite_header_class("From", 4) == REWRITE_HDR_SENDER);
    CHECK(rewrite_header_class("resent-reply-to", 15) == REWRITE_HDR_SENDER);
    CHECK(rewrite_header_class("CC", 2) == REWRITE_HDR_RCPT);
    CHECK(rewrite_header_class("Subject", 7) == 0);
    expect_header(" old@example.org", REWRITE_HDR_RCPT, " new@example.org");
    expect_header(" \"Old, Name\" <old@example.org>", REWRITE_HDR_RCPT,
                  " \"Old, Name\" <new@example.org>");
    expect_header(" (c) old@example.org (comment) , x@legacy.example", REWRITE_HDR_RCPT,
                  " (c) new@example.org (comment) , x@example.org");
    expect_header(" group: old@example.org,\n\tx@legacy.example;, last@legacy.example",
                  REWRITE_HDR_RCPT, " group: new@example.org,\n\tx@example.org;, last@example.org");
    expect_header(" undisclosed-recipients:;", REWRITE_HDR_RCPT, " undisclosed-recipients:;");
    expect_header(" <@relay.example:old@example.org>", REWRITE_HDR_RCPT,
                  " <@relay.example:new@example.org>");
    expect_header(" Name <old@example.org", REWRITE_HDR_RCPT, " Name <old@example.org");
    expect_header(" old@[IPv6:::1], y@[192.0.2.1]", REWRITE_HDR_RCPT,
                  " old@[IPv6:::1], y@[192.0.2.1]");
    expect_header(" \"old@example.org\" <old@example.org>", REWRITE_HDR_RCPT,
                  " \"old@example.org\" <new@example.org>");
    expect_header(" phrase without address", REWRITE_HDR_RCPT, " phrase without address");
    expect_header("", REWRITE_HDR_RCPT, "");
    expect_header(" <>", REWRITE_HDR_SENDER, " <>");
    /* a bare local name: looked up as at myorigin */
    expect_header(" bob", REWRITE_HDR_SENDER, " new-bob@example.org");
    struct strbuf out = STRBUF_INIT(0);
    CHECK(rewrite_header_value(" carl, old@example.org", 22, REWRITE_HDR_RCPT, "remote.example",
                               &out) == 1);
    CHECK_STR(sb_str(&out), " carl@remote.example, new@example.org");
    sb_free(&out);
    sb_free(&mc);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_canonical_order();
    test_canonical_classes();
    test_masquerade();
    test_virtual();
    test_domains_and_bcc();
    test_broken_table();
    test_overrides();
    test_content_filter();
    test_headers();
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return check_summary();
}
