/* test_log_delivery.c: the delivery log line (lib/global/log_delivery.c) written
 * to a maillog_file, compared byte for byte with the lines qmgr, smtp and
 * local wrote before they shared one function (pflogsumm reads them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "log_delivery.h"

static char logpath[256];

/* The text of the last line in the log, after "tern/PROG[PID]: ". */
static const char *last_line(void)
{
    static char line[4096], last[4096];
    FILE *f = fopen(logpath, "r");
    last[0] = 0;
    while (f && fgets(line, sizeof(line), f))
        snprintf(last, sizeof(last), "%s", line);
    if (f)
        fclose(f);
    char *text = strstr(last, "]: ");
    if (!text)
        return "";
    text += 3;
    text[strcspn(text, "\n")] = 0;
    return text;
}

int main(void)
{
    char dir[] = "/tmp/test_log_delivery.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    snprintf(logpath, sizeof(logpath), "%s/maillog", dir);
    log_open("test_log_delivery");
    log_configure("tern", "mail", logpath);

    CHECK_STR(delivery_status_name(2), "sent");
    CHECK_STR(delivery_status_name(4), "deferred");
    CHECK_STR(delivery_status_name(5), "bounced");
    CHECK_STR(delivery_status_name(3), "?");
    CHECK(delivery_queue_delay(0, 5000000) == 0);
    CHECK(delivery_queue_delay(6000000, 5000000) == 0);
    CHECK(delivery_queue_delay(1000000, 5000000) == 4000000);
    CHECK(delivery_orig_to("rfc822;Other@Example.org", "b@example.org") != NULL);
    CHECK(delivery_orig_to("rfc822;B@Example.ORG", "b@example.org") == NULL);
    CHECK(delivery_orig_to("utf-8;x@example.org", "b@example.org") == NULL);

    /* smtp: orig_to, conn_use, all four delays */
    struct delivery_delays d = { 1250000, 0, 30000, 120000 };
    log_delivery("20R90Q6F6780305X", "b@example.org",
                 delivery_orig_to("rfc822;Other@Example.org", "b@example.org"),
                 "mx.example.org[192.0.2.1]:25", 3, &d, "2.0.0", "sent", "250 2.0.0 Ok");
    CHECK_STR(last_line(), "20R90Q6F6780305X: to=<b@example.org>, orig_to=<Other@Example.org>, "
              "relay=mx.example.org[192.0.2.1]:25, conn_use=3, delay=1.4, delays=1.25/0/0.03/0.12, "
              "dsn=2.0.0, status=sent (250 2.0.0 Ok)");
    /* smtp, first use of a connection: no conn_use */
    struct delivery_delays d1 = { 0, 0, 12000000, 0 };
    log_delivery("20R90Q6F6780305X", "b@example.org", NULL, "none", 1, &d1, "4.4.1",
                 delivery_status_name(4), "connect to x[192.0.2.1]:25: Connection refused");
    CHECK_STR(last_line(), "20R90Q6F6780305X: to=<b@example.org>, relay=none, delay=12, "
              "delays=0/0/12/0, dsn=4.4.1, status=deferred (connect to x[192.0.2.1]:25: "
              "Connection refused)");
    /* local */
    struct delivery_delays d2 = { 250000000, 0, 0, 5000 };
    log_delivery("20R90Q6F6780305X", "user@tern.test", "alias@tern.test", "local", 0, &d2,
                 "5.2.2", delivery_status_name(5), "mailbox full");
    CHECK_STR(last_line(), "20R90Q6F6780305X: to=<user@tern.test>, orig_to=<alias@tern.test>, "
              "relay=local, delay=250, delays=250/0/0/0.01, dsn=5.2.2, status=bounced "
              "(mailbox full)");
    /* qmgr: what it decided itself */
    struct delivery_delays d3 = { 3600000000LL, 0, 0, 0 };
    log_delivery("20R90Q6F6780305X", "x@example.org", NULL, "none", 0, &d3, "5.1.1", "bounced",
                 "unknown user");
    CHECK_STR(last_line(), "20R90Q6F6780305X: to=<x@example.org>, relay=none, delay=3600, "
              "delays=3600/0/0/0, dsn=5.1.1, status=bounced (unknown user)");
    /* control bytes never reach the log */
    log_delivery("20R90Q6F6780305X", "a\nb@x", NULL, "local", 0, &d2, "2.0.0", "sent", "ok\r");
    CHECK(strchr(last_line(), '\r') == NULL && strstr(last_line(), "to=<a?b@x>") != NULL);

    unlink(logpath);
    rmdir(dir);
    return check_summary();
}
