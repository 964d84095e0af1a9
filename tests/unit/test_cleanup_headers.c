/* test_cleanup_headers.c: unit tests of cleanup's header-section processing:
 * chunk boundaries anywhere, folded headers, missing headers added, no header
 * section at all, the hop count, and the size limit. */
#include <string.h>

#include "check.h"
#include "../../cleanup/cleanup.h"

static const struct header_additions add = {
    .received = "Received: by test\n",
    .message_id = "<id@test>",
    .date = "Mon, 1 Jan 2024 00:00:00 +0000",
    .from = NULL,
};

/* Run content through the processor in chunks of `step` bytes. */
static int process(const char *content, size_t step, struct strbuf *out, struct header_state *h)
{
    size_t len = strlen(content), off = 0;
    header_state_init(h, 1000);
    sb_reset(out);
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        if (!h->in_body) {
            size_t used = 0;
            int rc = header_feed(h, content + off, n, &used);
            if (rc < 0)
                return -1;
            if (rc == 1) {
                header_emit(h, &add, out);
                sb_append(out, content + off + used, n - used);
            }
        } else {
            sb_append(out, content + off, n);
        }
        off += n;
    }
    if (!h->in_body) {
        header_finish(h);
        header_emit(h, &add, out);
    }
    return 0;
}

int main(void)
{
    struct strbuf out = STRBUF_INIT(0);
    struct header_state h;
    const char *msg = "Subject: hi\nTo: a@b,\n c@d\nMessage-ID: <x@y>\n\nbody line\n.dots\n";
    for (size_t step = 1; step <= strlen(msg); step++) {
        CHECK(process(msg, step, &out, &h) == 0);
        CHECK_STR(sb_str(&out), "Received: by test\nSubject: hi\nTo: a@b,\n c@d\nMessage-ID: <x@y>\n"
                  "Date: Mon, 1 Jan 2024 00:00:00 +0000\n\nbody line\n.dots\n");
        CHECK_STR(h.message_id, "<x@y>");
        header_state_free(&h);
    }

    /* no header section: the first line is body */
    CHECK(process("just text\nmore\n", 3, &out, &h) == 0);
    CHECK_STR(sb_str(&out), "Received: by test\nMessage-ID: <id@test>\n"
              "Date: Mon, 1 Jan 2024 00:00:00 +0000\n\njust text\nmore\n");
    header_state_free(&h);

    /* headers, then a non-header line without the empty line */
    CHECK(process("Subject: x\nnot a header\n", 5, &out, &h) == 0);
    CHECK(strstr(sb_str(&out), "Subject: x\nMessage-ID: <id@test>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\nnot a header\n") != NULL);
    header_state_free(&h);

    /* only headers, no body, last line without LF */
    CHECK(process("Subject: x\nDate: today", 4, &out, &h) == 0);
    CHECK_STR(sb_str(&out), "Received: by test\nSubject: x\nDate: today\nMessage-ID: <id@test>\n");
    header_state_free(&h);

    /* Received: headers are counted, case-insensitively */
    CHECK(process("Received: a\nRECEIVED: b\nreceived : c\nX: y\n\nb\n", 7, &out, &h) == 0);
    CHECK(h.received_count == 3);
    header_state_free(&h);

    /* 8-bit bytes in headers are kept as they are */
    CHECK(process("Subject: \xc3\xa9t\xc3\xa9\n\nx\n", 2, &out, &h) == 0);
    CHECK(strstr(sb_str(&out), "Subject: \xc3\xa9t\xc3\xa9\n") != NULL);
    header_state_free(&h);

    /* over the limit (1000 bytes in these tests) */
    char big[3000];
    memset(big, 0, sizeof(big));
    strcpy(big, "Subject: ");
    memset(big + 9, 'a', 1500);
    strcat(big, "\n\nbody\n");
    CHECK(process(big, 100, &out, &h) == -1);
    CHECK(h.too_big);
    header_state_free(&h);

    /* a long body does not count against the header limit */
    char body[5000] = "S: 1\n\n";
    memset(body + 6, 'b', 4000);
    CHECK(process(body, 64, &out, &h) == 0);
    header_state_free(&h);

    /* the date formatter produces an RFC 5322 date */
    char date[80];
    cleanup_rfc5322_date(0, date, sizeof(date));
    CHECK(strlen(date) > 25 && date[3] == ',');
    sb_free(&out);
    return check_summary();
}
