/* test_soft_bounce.c: unit tests of lib/global/soft_bounce.c: with
 * soft_bounce = no nothing changes; with yes a 5 outcome becomes 4 with its
 * DSN class, and a 5XX reply becomes 4XX with a leading enhanced code, while
 * other replies, odd shapes and the text are left alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "soft_bounce.h"
#include "strbuf.h"

static char dir[] = "/tmp/tern-test-soft-bounce-XXXXXX";

static void configure(const char *text)
{
    char path[sizeof(dir) + 16];
    struct strbuf err = STRBUF_INIT(1024);
    snprintf(path, sizeof(path), "%s/main.cf", dir);
    FILE *fp = fopen(path, "w");
    if (!fp) {
        CHECK(!"cannot write main.cf");
        return;
    }
    fputs(text, fp);
    fclose(fp);
    CHECK(cfg_load(dir, &err) == 0);
    sb_free(&err);
}

static void expect_reply(int code, const char *text, int want_code, const char *want_text)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", text);
    CHECK(soft_bounce_reply(code, buf) == want_code);
    CHECK_STR(buf, want_text);
}

static void expect_status(int status, const char *dsn, int want_status, const char *want_dsn)
{
    char buf[16];
    snprintf(buf, sizeof(buf), "%s", dsn);
    CHECK(soft_bounce_status(status, buf) == want_status);
    CHECK_STR(buf, want_dsn);
}

static void test_off(void)
{
    configure("soft_bounce = no\n");
    CHECK(!soft_bounce_enabled());
    expect_status(5, "5.1.1", 5, "5.1.1");
    expect_reply(550, "5.1.1 <x@y>: Recipient address rejected", 550,
                 "5.1.1 <x@y>: Recipient address rejected");
}

static void test_on(void)
{
    configure("soft_bounce = yes\n");
    CHECK(soft_bounce_enabled());
    expect_status(5, "5.1.1", 4, "4.1.1");
    expect_status(5, "5.7.1", 4, "4.7.1");
    expect_status(4, "4.4.1", 4, "4.4.1");
    expect_status(2, "2.0.0", 2, "2.0.0");
    expect_status(5, "weird", 4, "weird");          /* not a DSN: only the status */
    expect_reply(550, "5.1.1 <x@y>: User unknown", 450, "4.1.1 <x@y>: User unknown");
    expect_reply(554, "5.7.1 first line\nsecond line", 454, "4.7.1 first line\nsecond line");
    expect_reply(502, "5.5.1 Error: command not implemented", 402,
                 "4.5.1 Error: command not implemented");
    expect_reply(550, "Access denied: 5.1.1 stays in the text", 450,
                 "Access denied: 5.1.1 stays in the text");
    expect_reply(550, "5.x odd code", 450, "5.x odd code");
    expect_reply(250, "2.0.0 Ok", 250, "2.0.0 Ok");
    expect_reply(421, "4.3.2 Shutting down", 421, "4.3.2 Shutting down");
    expect_reply(599, "", 499, "");
    expect_reply(600, "5.1.1 not a reply code", 600, "5.1.1 not a reply code");
    CHECK(soft_bounce_reply(553, NULL) == 453);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    test_off();
    test_on();
    char path[sizeof(dir) + 16];
    snprintf(path, sizeof(path), "%s/main.cf", dir);
    unlink(path);
    rmdir(dir);
    return check_summary();
}
