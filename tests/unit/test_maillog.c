/* test_maillog.c: reading Tern's log back (lib/global/maillog.c,
 * maillog_read.c): one line of each kind of tests/instance/golden/ taken
 * apart into its fields, both time stamp shapes and the year of a syslog
 * stamp, lines that must not parse, hostile addresses that stay data, and
 * the rotated copies of a log found in order and read plain or gzip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "maillog.h"
#include "strbuf.h"

static struct maillog_clock clock_;

/* Split and parse a copy of line (kept in a static buffer). */
static int parse(const char *line, struct maillog_line *l, struct maillog_event *ev)
{
    static char buf[MAILLOG_LINE_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", line);
    int rc = maillog_split(buf, "tern", &clock_, l);
    if (rc == 1)
        maillog_parse((char *)l->text, ev);
    return rc;
}

static void test_golden_lines(void)
{
    struct maillog_line l;
    struct maillog_event ev;
    CHECK(parse("Dec  6 10:00:01 tern tern/smtpd[12]: connect from unknown[127.0.0.1]", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_CONNECT);
    CHECK_STR(ev.client, "unknown[127.0.0.1]");
    CHECK_STR(l.program, "smtpd");
    CHECK_STR(l.host, "tern");

    CHECK(parse("Dec  6 10:00:01 h tern/smtpd[12]: 0123456789BCDFGH: client=unknown[127.0.0.1], "
                "sasl_method=PLAIN, sasl_username=golduser", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_CLIENT);
    CHECK_STR(ev.id, "0123456789BCDFGH");
    CHECK_STR(ev.client, "unknown[127.0.0.1]");
    CHECK_STR(ev.sasl_username, "golduser");

    CHECK(parse("Dec  6 10:00:01 h tern/qmgr[3]: 0123456789BCDFGH: from=<root@tern.test>, size=345, "
                "nrcpt=2 (queue active)", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_FROM);
    CHECK_STR(ev.addr, "root@tern.test");
    CHECK(ev.size == 345 && ev.nrcpt == 2);

    CHECK(parse("Dec  6 10:00:01 h tern/smtp[4]: 0123456789BCDFGH: to=<ok@remote.test>, "
                "relay=127.0.0.1[127.0.0.1]:2525, conn_use=2, delay=12.5, delays=0.01/0/0.02/0.09, "
                "dsn=2.0.0, status=sent (250 2.0.0 Ok: accepted (really))", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_DELIVERY);
    CHECK_STR(ev.addr, "ok@remote.test");
    CHECK_STR(ev.relay, "127.0.0.1[127.0.0.1]:2525");
    CHECK(ev.delay_usec == 12500000);
    CHECK_STR(ev.dsn, "2.0.0");
    CHECK_STR(ev.status, "sent");
    CHECK_STR(ev.reason, "250 2.0.0 Ok: accepted (really)");

    CHECK(parse("Dec  6 10:00:01 h tern/local[5]: 0123456789BCDFGH: to=<root@tern.test>, "
                "orig_to=<golden-alias@tern.test>, relay=local, delay=0.12, delays=0/0/0/0.12, "
                "dsn=2.0.0, status=sent (delivered to mailbox)", &l, &ev) == 1);
    CHECK_STR(ev.addr, "root@tern.test");
    CHECK_STR(ev.orig_to, "golden-alias@tern.test");
    CHECK_STR(ev.relay, "local");
    CHECK(ev.delay_usec == 120000);

    CHECK(parse("Dec  6 10:00:01 h tern/qmgr[5]: 0123456789BCDFGH: to=<x@y>, relay=none, "
                "dsn=5.4.7, status=expired, returned to sender", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_DELIVERY);
    CHECK_STR(ev.status, "expired");
    CHECK(ev.delay_usec == -1);

    CHECK(parse("Dec  6 10:00:01 h tern/smtpd[1]: NOQUEUE: reject: RCPT from unknown[127.0.0.1]: "
                "454 4.7.1 <anyone@elsewhere.test>: Relay access denied; from=<someone@example.org> "
                "to=<anyone@elsewhere.test> proto=ESMTP helo=<client.example>", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_REJECT);
    CHECK_STR(ev.id, "NOQUEUE");
    CHECK_STR(ev.action, "reject");
    CHECK_STR(ev.stage, "RCPT");
    CHECK_STR(ev.client, "unknown[127.0.0.1]");
    CHECK_STR(ev.reason, "454 4.7.1 <anyone@elsewhere.test>: Relay access denied");
    CHECK_STR(ev.sender, "someone@example.org");
    CHECK_STR(ev.rcpt, "anyone@elsewhere.test");

    CHECK(parse("Dec  6 10:00:01 h tern/cleanup[1]: 0123456789BCDFGH: reject: header Subject: spam "
                "from unknown[127.0.0.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<x>: 5.7.1 no spam",
                &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_REJECT);
    CHECK_STR(ev.stage, "header");
    CHECK_STR(ev.reason, "5.7.1 no spam");
    CHECK_STR(ev.sender, "a@b");
    CHECK_STR(ev.rcpt, "c@d");

    CHECK(parse("Dec  6 10:00:01 h tern/smtpd[1]: 0123456789BCDFGH: milter-hold: END-OF-MESSAGE from "
                "x[1.2.3.4]: milter triggers HOLD action; from=<a@b> to=<c@d> proto=ESMTP", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_HOLD);
    CHECK_STR(ev.stage, "END-OF-MESSAGE");

    CHECK(parse("Dec  6 10:00:01 h tern/qmgr[1]: 0123456789BCDFGH: sender non-delivery notification: "
                "1123456789BCDFGH", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_NOTIFICATION);
    CHECK_STR(ev.reason, "non-delivery");
    CHECK_STR(ev.new_id, "1123456789BCDFGH");

    CHECK(parse("Dec  6 10:00:01 h tern/pickup[1]: 0123456789BCDFGH: uid=0 from=<root>", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_PICKUP);
    CHECK_STR(ev.addr, "root");

    CHECK(parse("Dec  6 10:00:01 h tern/submission/smtpd[1]: Anonymous TLS connection established "
                "from x[1.2.3.4]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", &l,
                &ev) == 1);
    CHECK(ev.kind == MAILLOG_TLS_IN);
    CHECK_STR(ev.tls_version, "TLSv1.3");
    CHECK_STR(l.tag, "tern/submission/smtpd");
    CHECK_STR(l.program, "smtpd");

    CHECK(parse("Dec  6 10:00:01 h tern/smtpd[1]: disconnect from x[1.2.3.4] ehlo=2 starttls=1 "
                "mail=1 rcpt=1 data=1 quit=1 commands=7", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_DISCONNECT && ev.starttls == 1);
    CHECK(parse("Dec  6 10:00:01 h tern/smtpd[1]: disconnect from x[1.2.3.4] ehlo=1 commands=1", &l,
                &ev) == 1);
    CHECK(ev.kind == MAILLOG_DISCONNECT && ev.starttls == 0);

    CHECK(parse("Dec  6 10:00:01 h tern/qmgr[1]: 0123456789BCDFGH: removed", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_REMOVED);
    CHECK(parse("Dec  6 10:00:01 h tern/smtpd[1]: warning: something odd", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_OTHER);
}

static void test_prefix(void)
{
    struct maillog_line l;
    struct maillog_event ev;
    /* other programs, and lines that are not log lines */
    CHECK(parse("Dec  6 10:00:01 h postfix/smtpd[1]: connect from x", &l, &ev) == 0);
    CHECK(parse("Dec  6 10:00:01 h cron[1]: (root) CMD", &l, &ev) == 0);
    CHECK(parse("Dec  6 10:00:01 h ternx/smtpd[1]: connect from x", &l, &ev) == 0);
    CHECK(parse("garbage", &l, &ev) == -1);
    CHECK(parse("", &l, &ev) == -1);
    CHECK(parse("Dec 32 10:00:01 h tern/smtpd[1]: x", &l, &ev) == -1);
    CHECK(parse("Dec  6 25:00:01 h tern/smtpd[1]: x", &l, &ev) == -1);
    CHECK(parse("Dec  6 10:00:01 h tern/smtpd[1x]: x", &l, &ev) == -1);
    CHECK(parse("Dec  6 10:00:01 h tern/smtpd[1]:x", &l, &ev) == -1);
    CHECK(parse("2026-12-06T10:00:01 h tern/smtpd[1]: x", &l, &ev) == -1);   /* no zone */

    /* RFC 3339 */
    CHECK(parse("2026-12-06T10:00:01.123456+01:00 h tern/smtpd[1]: connect from x", &l, &ev) == 1);
    CHECK(l.time == 1796551201 - 3600);
    CHECK(parse("2026-12-06T09:00:01Z h tern/smtpd[1]: connect from x", &l, &ev) == 1);
    CHECK(l.time == 1796551201 - 3600);

    /* syslog's stamp without a year: the year that puts it at most a day ahead */
    struct tm tm = { .tm_year = 127, .tm_mon = 0, .tm_mday = 2, .tm_hour = 12, .tm_isdst = -1 };
    maillog_clock_init(&clock_, mktime(&tm));                   /* 2027-01-02 12:00 */
    CHECK(parse("Dec 31 23:59:59 h tern/smtpd[1]: connect from x", &l, &ev) == 1);
    struct tm got;
    localtime_r(&l.time, &got);
    CHECK(got.tm_year == 126 && got.tm_mon == 11 && got.tm_mday == 31 && got.tm_sec == 59);
    CHECK(parse("Jan  3 08:00:00 h tern/smtpd[1]: connect from x", &l, &ev) == 1);
    localtime_r(&l.time, &got);
    CHECK(got.tm_year == 127 && got.tm_mday == 3 && got.tm_hour == 8);
    maillog_clock_init(&clock_, time(NULL));
}

static void test_hostile(void)
{
    struct maillog_line l;
    struct maillog_event ev;
    /* an address holding the separators of the line: the fixed tail wins */
    CHECK(parse("Dec  6 10:00:01 h tern/qmgr[3]: 0123456789BCDFGH: from=<\"a>, size=1, nrcpt=9\"@x>, "
                "size=42, nrcpt=1 (queue active)", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_FROM);
    CHECK_STR(ev.addr, "\"a>, size=1, nrcpt=9\"@x");
    CHECK(ev.size == 42);
    CHECK(parse("Dec  6 10:00:01 h tern/qmgr[3]: 0123456789BCDFGH: from=<a@b>, size=99999999999999999999, "
                "nrcpt=1 (queue active)", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_MALFORMED);
    CHECK(parse("Dec  6 10:00:01 h tern/smtp[3]: 0123456789BCDFGH: to=<a@b>, relay=x, delay=abc, "
                "delays=0/0/0/0, dsn=2.0.0, status=sent (ok)", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_MALFORMED);
    CHECK(parse("Dec  6 10:00:01 h tern/smtp[3]: 0123456789BCDFGH: to=<a@b>, relay=x, delay=1, "
                "dsn=2.0.0, status=sent (unclosed", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_MALFORMED);
    CHECK(parse("Dec  6 10:00:01 h tern/smtp[3]: 0123456789BCDFGH: to=<a@b", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_MALFORMED);
    CHECK(parse("Dec  6 10:00:01 h tern/smtpd[1]: NOQUEUE: reject: RCPT from x: 550 %s%n; "
                "from=<%n> to=<; from=<x>", &l, &ev) == 1);
    CHECK(ev.kind == MAILLOG_REJECT);
    CHECK(parse("Dec  6 10:00:01 h tern/smtpd[1]: ID: to=<x>", &l, &ev) == 1);      /* not an ID */
    CHECK(ev.kind == MAILLOG_OTHER);
    CHECK(maillog_parse_delay("0.12") == 120000);
    CHECK(maillog_parse_delay("300") == 300000000);
    CHECK(maillog_parse_delay("1.") == -1);
    CHECK(maillog_parse_delay("") == -1);
    CHECK(maillog_parse_delay("99999999999999") == -1);
}

static void write_file(const char *path, const char *text, bool gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzputs(f, text);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "w");
        fputs(text, f);
        fclose(f);
    }
}

static void test_files(void)
{
    char dir[] = "/tmp/test_maillog.XXXXXX";
    if (!mkdtemp(dir))
        return;
    char path[512], base[512];
    const char *names[] = { "mail.log.10.gz", "mail.log.2.gz", "mail.log.1", "mail.log", "mail.log.old",
                            "mail.log.gz", "mail.logx.1", "mail.log-20261201" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        char text[128];
        snprintf(text, sizeof(text), "%s\nsecond", names[i]);
        write_file(path, text, strstr(names[i], ".gz") != NULL);
    }
    snprintf(base, sizeof(base), "%s/mail.log", dir);
    char *files[MAILLOG_FILES_MAX];
    size_t n = maillog_files(base, files, MAILLOG_FILES_MAX);
    CHECK(n == 5);
    const char *want[] = { "mail.log.10.gz", "mail.log.2.gz", "mail.log.1", "mail.log-20261201",
                           "mail.log" };
    for (size_t i = 0; i < n && i < 5; i++) {
        CHECK_STR(strrchr(files[i], '/') + 1, want[i]);
        struct strbuf err = STRBUF_INIT(256);
        struct maillog_reader *r = maillog_open(files[i], &err);
        char *line;
        size_t len;
        CHECK(r != NULL);
        CHECK(r && maillog_next(r, &line, &len, &err) == 1);
        if (r)
            CHECK_STR(line, want[i]);
        CHECK(r && maillog_next(r, &line, &len, &err) == 1);
        if (r)
            CHECK_STR(line, "second");
        CHECK(r && maillog_next(r, &line, &len, &err) == 0);
        maillog_close(r);
        sb_free(&err);
    }
    /* only the newest copies when there are too many */
    maillog_files_free(files, n);
    n = maillog_files(base, files, 2);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_STR(strrchr(files[0], '/') + 1, "mail.log-20261201");
        CHECK_STR(strrchr(files[1], '/') + 1, "mail.log");
    }
    maillog_files_free(files, n);

    /* a long line is cut, NUL bytes become '?', CR LF ends a line too */
    FILE *f = fopen(base, "w");
    for (int i = 0; i < MAILLOG_LINE_MAX * 3; i++)
        fputc('a', f);
    fputc('\n', f);
    fwrite("x\0y\r\nlast", 1, 9, f);
    fclose(f);
    struct strbuf err = STRBUF_INIT(256);
    struct maillog_reader *r = maillog_open(base, &err);
    char *line;
    size_t len;
    CHECK(r && maillog_next(r, &line, &len, &err) == 1 && len == MAILLOG_LINE_MAX);
    CHECK(r && maillog_next(r, &line, &len, &err) == 1 && strcmp(line, "x?y") == 0);
    CHECK(r && maillog_next(r, &line, &len, &err) == 1 && strcmp(line, "last") == 0);
    CHECK(r && maillog_next(r, &line, &len, &err) == 0);
    maillog_close(r);
    CHECK(maillog_open("/nonexistent/x", &err) == NULL && strstr(sb_str(&err), "cannot open"));

    /* the tail: the first whole line of the last bytes, to the end; a
     * gzip file (or a short one) from its start */
    f = fopen(base, "w");
    for (int i = 0; i < 1000; i++)
        fprintf(f, "line %04d\n", i);      /* 10 bytes each */
    fclose(f);
    r = maillog_open_tail(base, 95, &err);
    CHECK(r && maillog_next(r, &line, &len, &err) == 1 && strcmp(line, "line 0991") == 0);
    int rest = 0;
    while (r && maillog_next(r, &line, &len, &err) == 1)
        rest++;
    CHECK(rest == 8 && strcmp(line, "line 0999") == 0);
    CHECK(r && maillog_offset(r) <= 95);
    maillog_close(r);
    r = maillog_open_tail(base, 1 << 20, &err);
    CHECK(r && maillog_next(r, &line, &len, &err) == 1 && strcmp(line, "line 0000") == 0);
    maillog_close(r);
    write_file(base, "one\ntwo\nthree\n", true);
    r = maillog_open_tail(base, 4, &err);
    CHECK(r && maillog_next(r, &line, &len, &err) == 1 && strcmp(line, "one") == 0);
    maillog_close(r);
    sb_free(&err);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(void)
{
    maillog_clock_init(&clock_, time(NULL));
    test_golden_lines();
    test_prefix();
    test_hostile();
    test_files();
    return check_summary();
}
