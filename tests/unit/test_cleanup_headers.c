/* test_cleanup_headers.c: unit tests of cleanup's header-section processing:
 * chunk boundaries anywhere, folded fields, where the header section ends,
 * missing fields added, the hop count, the size limit, 8-bit bytes, and the
 * Received: and Date: text cleanup writes. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "util.h"
#include "cleanup/cleanup.h"

#define DATE "Mon, 1 Jan 2024 00:00:00 +0000 (UTC)"

static const struct header_additions add = {
    .received = "Received: by test\n",
    .message_id = "<id@test>",
    .date = DATE,
    .from = NULL,
};

/* Run content through the processor in chunks of `step` bytes, as cleanup
 * does: header_feed until the section ends, then body bytes as they are. */
static int process_with(const char *content, size_t len, size_t step, size_t limit,
                        const struct header_additions *a, struct strbuf *out, struct header_state *h)
{
    size_t off = 0;
    header_state_init(h, limit);
    sb_reset(out);
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        if (!h->done) {
            size_t used = 0;
            int rc = header_feed(h, content + off, n, &used);
            if (rc < 0)
                return -1;
            if (rc == 1) {
                CHECK(h->done);
                header_emit(h, a, out);
                sb_append(out, content + off + used, n - used);
            }
        } else {
            sb_append(out, content + off, n);
        }
        off += n;
    }
    if (!h->done) {
        header_finish(h);
        header_emit(h, a, out);
    }
    return 0;
}

static int process(const char *content, size_t step, struct strbuf *out, struct header_state *h)
{
    return process_with(content, strlen(content), step, 1000, &add, out, h);
}

/* Every chunk size from 1 to the whole message gives the same result. */
static void check_all_steps(const char *in, const char *want)
{
    struct strbuf out = STRBUF_INIT(0);
    struct header_state h;
    for (size_t step = 1; step <= strlen(in) + 1; step++) {
        CHECK(process(in, step, &out, &h) == 0);
        CHECK_STR(sb_str(&out), want);
        header_state_free(&h);
    }
    sb_free(&out);
}

static void test_folded_and_chunked(void)
{
    const char *msg = "Subject: hi\nTo: a@b,\n c@d,\n\te@f\nMessage-ID:\n  <x@y>\n\nbody line\n.dots\n";
    check_all_steps(msg, "Received: by test\nSubject: hi\nTo: a@b,\n c@d,\n\te@f\n"
                    "Message-ID:\n  <x@y>\nDate: " DATE "\n\nbody line\n.dots\n");
    struct strbuf out = STRBUF_INIT(0), v = STRBUF_INIT(0);
    struct header_state h;
    CHECK(process(msg, 5, &out, &h) == 0);
    CHECK(h.nfields == 3);
    CHECK(header_count(&h, "to") == 1);
    const struct header_field *f = header_find(&h, "TO");
    CHECK(f != NULL);
    if (f) {
        header_value(&h, f, &v, 100);
        CHECK_STR(sb_str(&v), "a@b, c@d,\te@f");
    }
    f = header_find(&h, "message-id");
    CHECK(f != NULL);
    if (f) {
        header_value(&h, f, &v, 100);
        CHECK_STR(sb_str(&v), "<x@y>");
        header_value(&h, f, &v, 3);     /* bounded */
        CHECK_STR(sb_str(&v), "<x@");
    }
    header_state_free(&h);
    sb_free(&out);
    sb_free(&v);
}

static void test_where_the_section_ends(void)
{
    /* no header section at all: the first line is body */
    check_all_steps("just text\nmore\n", "Received: by test\nMessage-ID: <id@test>\n"
                    "Date: " DATE "\n\njust text\nmore\n");
    /* a first line starting with a blank is body, not a continuation */
    check_all_steps(" indented\nX: y\n", "Received: by test\nMessage-ID: <id@test>\n"
                    "Date: " DATE "\n\n indented\nX: y\n");
    /* fields, then a line that is no field: the body starts there */
    check_all_steps("Subject: x\nnot a header\nY: z\n", "Received: by test\nSubject: x\n"
                    "Message-ID: <id@test>\nDate: " DATE "\n\nnot a header\nY: z\n");
    /* only fields, the last without its LF */
    check_all_steps("Subject: x\nDate: today", "Received: by test\nSubject: x\nDate: today\n"
                    "Message-ID: <id@test>\n");
    /* empty content */
    check_all_steps("", "Received: by test\nMessage-ID: <id@test>\nDate: " DATE "\n");
    /* an empty line written as CR LF also ends the section */
    check_all_steps("A: 1\n\r\nbody\n", "Received: by test\nA: 1\nMessage-ID: <id@test>\n"
                    "Date: " DATE "\n\nbody\n");
    /* the obsolete "name :" form is a field */
    check_all_steps("Subject : s\n\nb\n", "Received: by test\nSubject : s\nMessage-ID: <id@test>\n"
                    "Date: " DATE "\n\nb\n");
    /* a body after the empty line is not looked at */
    check_all_steps("A: 1\n\nMessage-ID: <no>\nDate: no\n", "Received: by test\nA: 1\n"
                    "Message-ID: <id@test>\nDate: " DATE "\n\nMessage-ID: <no>\nDate: no\n");
}

static void test_missing_fields(void)
{
    /* present fields (any case) are not added again */
    check_all_steps("message-ID: <m@x>\nDATE: d\n\nb\n",
                    "Received: by test\nmessage-ID: <m@x>\nDATE: d\n\nb\n");
    /* From: only when asked for, and only when missing */
    struct strbuf out = STRBUF_INIT(0);
    struct header_state h;
    struct header_additions local = add;
    local.from = "<u@example.org>";
    const char *in = "Subject: s\n\nb\n";
    CHECK(process_with(in, strlen(in), 4, 1000, &local, &out, &h) == 0);
    CHECK_STR(sb_str(&out), "Received: by test\nSubject: s\nMessage-ID: <id@test>\nDate: " DATE
              "\nFrom: <u@example.org>\n\nb\n");
    header_state_free(&h);
    in = "from: me\n\nb\n";
    CHECK(process_with(in, strlen(in), 4, 1000, &local, &out, &h) == 0);
    CHECK_STR(sb_str(&out), "Received: by test\nfrom: me\nMessage-ID: <id@test>\nDate: " DATE
              "\n\nb\n");
    header_state_free(&h);
    sb_free(&out);
}

static void test_hops(void)
{
    struct strbuf out = STRBUF_INIT(0);
    struct header_state h;
    CHECK(process("Received: a\n\tmore\nRECEIVED: b\nreceived : c\nX-Received: no\n\n"
                  "Received: body\n", 7, &out, &h) == 0);
    CHECK(header_count(&h, "received") == 3);
    CHECK(header_count(&h, "x-received") == 1);
    CHECK(header_count(&h, "date") == 0);
    header_state_free(&h);
    sb_free(&out);
}

static void test_limit(void)
{
    struct strbuf out = STRBUF_INIT(0);
    struct header_state h;
    /* one field over the limit (1000 bytes in these tests) */
    char *big = malloc(3000);
    memset(big, 'a', 2999);
    big[2999] = 0;
    memcpy(big, "Subject: ", 9);
    memcpy(big + 1500, "\n\nbody\n", 7);
    CHECK(process(big, 100, &out, &h) == -1);
    CHECK(h.too_big);
    header_state_free(&h);
    /* many small fields over the limit, the LF landing on the limit */
    char many[1200];
    for (size_t i = 0; i < sizeof(many); i += 6)
        memcpy(many + i, "A: 12\n", 6);
    CHECK(process_with(many, 1002, 1, 1002, &add, &out, &h) == 0);
    CHECK(h.nfields == 167);
    header_state_free(&h);
    CHECK(process_with(many, 1002, 1, 1001, &add, &out, &h) == -1);
    header_state_free(&h);
    /* a long first body line does not count against the limit */
    memset(big, 'b', 2999);
    CHECK(process(big, 64, &out, &h) == 0);
    CHECK(out.len > 2999 && memcmp(out.data + out.len - 2999, big, 2999) == 0);
    header_state_free(&h);
    /* nor does a long body after the header section */
    memcpy(big, "S: 1\n\n", 6);
    CHECK(process(big, 64, &out, &h) == 0);
    CHECK(out.len > 2999 && memcmp(out.data + out.len - 2993, big + 6, 2993) == 0);
    header_state_free(&h);
    free(big);
    sb_free(&out);
}

static void test_eight_bit(void)
{
    /* 8-bit bytes in a value are kept as they are */
    check_all_steps("Subject: \xc3\xa9t\xc3\xa9 \xff\n\nx\n", "Received: by test\nSubject: "
                    "\xc3\xa9t\xc3\xa9 \xff\nMessage-ID: <id@test>\nDate: " DATE "\n\nx\n");
    /* an 8-bit byte in a name makes the line body */
    check_all_steps("A: 1\nSubj\xc3\xa9t: x\n\ny\n", "Received: by test\nA: 1\n"
                    "Message-ID: <id@test>\nDate: " DATE "\n\nSubj\xc3\xa9t: x\n\ny\n");
    /* NUL bytes are content like any other */
    struct strbuf out = STRBUF_INIT(0);
    struct header_state h;
    CHECK(process_with("A: \0b\n\nc\0\n", 10, 3, 1000, &add, &out, &h) == 0);
    CHECK(out.len > 11 && memcmp(out.data + 18, "A: \0b\n", 6) == 0);
    CHECK(memcmp(out.data + out.len - 3, "c\0\n", 3) == 0);
    header_state_free(&h);
    sb_free(&out);
}

static void test_received(void)
{
    struct strbuf out = STRBUF_INIT(0);
    struct received_info ri = {
        .helo_name = "helo.example", .client_name = "mx.example", .client_addr = "192.0.2.1",
        .protocol = "ESMTP", .hostname = "tern.test", .mail_name = "Tern",
        .queue_id = "ID1", .rcpt = "u@tern.test", .date = DATE,
    };
    CHECK(received_header_append(&out, &ri) == 0);
    CHECK_STR(sb_str(&out), "Received: from helo.example (mx.example [192.0.2.1])\n"
              "\tby tern.test (Tern) with ESMTP id ID1\n\tfor <u@tern.test>; " DATE "\n");
    /* no HELO, IPv6, several recipients */
    ri.helo_name = NULL;
    ri.client_addr = "2001:db8::1";
    ri.rcpt = NULL;
    sb_reset(&out);
    received_header_append(&out, &ri);
    CHECK_STR(sb_str(&out), "Received: from mx.example (mx.example [IPv6:2001:db8::1])\n"
              "\tby tern.test (Tern) with ESMTP id ID1; " DATE "\n");
    /* a line break in HELO is never written into the header */
    ri.helo_name = "evil\nX-Injected: 1";
    ri.client_name = NULL;
    ri.client_addr = "192.0.2.2";
    sb_reset(&out);
    received_header_append(&out, &ri);
    CHECK_STR(sb_str(&out), "Received: from unknown (unknown [192.0.2.2])\n"
              "\tby tern.test (Tern) with ESMTP id ID1; " DATE "\n");
    /* local submission */
    struct received_info local = { .hostname = "tern.test", .mail_name = "Tern", .uid = "1000",
                                   .queue_id = "ID2", .rcpt = "a@b", .date = DATE };
    sb_reset(&out);
    received_header_append(&out, &local);
    CHECK_STR(sb_str(&out), "Received: by tern.test (Tern, from userid 1000)\n\tid ID2\n"
              "\tfor <a@b>; " DATE "\n");
    /* smtpd in front of a proxy filter: no queue file, so no ID */
    ri.helo_name = "helo.example";
    ri.client_name = "mx.example";
    ri.queue_id = NULL;
    ri.rcpt = "u@tern.test";
    sb_reset(&out);
    received_header_append(&out, &ri);
    CHECK_STR(sb_str(&out), "Received: from helo.example (mx.example [192.0.2.2])\n"
              "\tby tern.test (Tern) with ESMTP\n\tfor <u@tern.test>; " DATE "\n");
    sb_free(&out);
}

static void test_date_and_log(void)
{
    char date[80];
    setenv("TZ", "UTC", 1);
    tzset();
    format_rfc5322_date(0, date, sizeof(date));
    CHECK_STR(date, "Thu, 1 Jan 1970 00:00:00 +0000 (UTC)");
    format_rfc5322_date(1795391016LL * 1000000 + 5, date, sizeof(date));
    CHECK_STR(date, "Sun, 22 Nov 2026 23:43:36 +0000 (UTC)");
    setenv("TZ", "EST5", 1);
    tzset();
    format_rfc5322_date(0, date, sizeof(date));
    CHECK_STR(date, "Wed, 31 Dec 1969 19:00:00 -0500 (EST)");
    struct strbuf out = STRBUF_INIT(0);
    cleanup_log_safe(&out, "<a\nb\x01\xc3\xa9>", 8, 100);
    CHECK_STR(sb_str(&out), "<a?b?\xc3\xa9>");
    cleanup_log_safe(&out, "abcdef", 6, 3);
    CHECK_STR(sb_str(&out), "abc");
    sb_free(&out);
}

int main(void)
{
    test_folded_and_chunked();
    test_where_the_section_ends();
    test_missing_fields();
    test_hops();
    test_limit();
    test_eight_bit();
    test_received();
    test_date_and_log();
    return check_summary();
}
