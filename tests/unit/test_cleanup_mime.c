/* test_cleanup_mime.c: unit tests of the MIME state machine behind the
 * content checks: which headers reach which class, multipart levels
 * (nested, closed, digest), attached messages, encoded message parts,
 * long lines in pieces, truncated headers, the nesting limit, body segment
 * offsets, chunk boundaries anywhere, and that the output (headers and body
 * lines written back) is the input byte for byte. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util.h"
#include "cleanup/cleanup_mime.h"

struct seen {
    struct strbuf log;       /* "H<class>:text|" and "B<offset>:text|" */
    struct strbuf out;       /* everything written back */
};

static void on_header(void *ctx, enum mime_class cls, const char *text, size_t len)
{
    struct seen *s = ctx;
    sb_appendf(&s->log, "H%d:%.*s|", (int)cls, (int)len, text);
    sb_append(&s->out, text, len);
    sb_appendc(&s->out, '\n');
}

static void on_body(void *ctx, const char *text, size_t len, bool eol, unsigned long long offset)
{
    struct seen *s = ctx;
    sb_appendf(&s->log, "B%llu:%.*s|", offset, (int)len, text);
    sb_append(&s->out, text, len);
    if (eol)
        sb_appendc(&s->out, '\n');
}

/* Primary header fields (LF between them, folded ones allowed), then the
 * body fed in chunks of step bytes. */
static void run(const char *primary, const char *body, size_t step, const struct mime_limits *lim,
                struct seen *s, int *errors)
{
    struct mime_state m;
    struct mime_callbacks cb = { on_header, on_body, s };
    sb_init(&s->log, 0);
    sb_init(&s->out, 0);
    cleanup_mime_init(&m, lim, &cb);
    for (const char *p = primary; *p;) {
        size_t n = strcspn(p, "\n");
        while (p[n] == '\n' && (p[n + 1] == ' ' || p[n + 1] == '\t'))
            n += 1 + strcspn(p + n + 1, "\n");     /* a folded field */
        cleanup_mime_primary_header(&m, p, n);
        p += n + (p[n] == '\n');
    }
    cleanup_mime_primary_done(&m);
    size_t len = strlen(body);
    for (size_t off = 0; off < len; off += step)
        cleanup_mime_feed(&m, body + off, len - off < step ? len - off : step);
    cleanup_mime_finish(&m);
    *errors = m.errors;
    cleanup_mime_free(&m);
}

static const struct mime_limits deflim = { 998, 102400, 100, false };

static void test_multipart(void)
{
    const char *primary = "Subject: x\nContent-Type: multipart/mixed;\n boundary=\"b1\"";
    const char *body =
        "preamble\n"
        "--b1\n"
        "Content-Type: text/plain\n"
        "X-Part: one\n"
        "\n"
        "hello\n"
        "--b1\n"
        "Content-Type: message/rfc822\n"
        "\n"
        "Subject: inner\n"
        "Content-Type: text/plain\n"
        " ; charset=us-ascii\n"
        "\n"
        "inner body\n"
        "--b1--\n"
        "epilogue\n";
    for (size_t step = 1; step <= strlen(body); step = step * 2 + 1) {
        struct seen s;
        int errors;
        run(primary, body, step, &deflim, &s, &errors);
        CHECK(errors == 0);
        CHECK_STR(sb_str(&s.log),
                  "B0:preamble|B9:--b1|"
                  "H1:Content-Type: text/plain|H1:X-Part: one|B0:|B0:hello|B6:--b1|"
                  "H1:Content-Type: message/rfc822|B0:|"
                  "H2:Subject: inner|H1:Content-Type: text/plain\n ; charset=us-ascii|B0:|"
                  "B0:inner body|B11:--b1--|B0:epilogue|");
        CHECK_STR(sb_str(&s.out), body);
        sb_free(&s.log);
        sb_free(&s.out);
    }
}

static void test_nested_multipart_and_close(void)
{
    const char *primary = "Content-Type: multipart/mixed; boundary=outer";
    const char *body =
        "--outer\n"
        "Content-Type: multipart/alternative; boundary=inner\n"
        "\n"
        "--inner\n"
        "X-A: 1\n"
        "\n"
        "a\n"
        "--outer\n"            /* closes the inner level too */
        "X-B: 2\n"
        "\n"
        "--inner\n"            /* no longer a boundary */
        "--outer--\n"
        "X-C: 3\n";           /* epilogue: body, not a header */
    struct seen s;
    int errors;
    run(primary, body, 7, &deflim, &s, &errors);
    CHECK_STR(sb_str(&s.log),
              "B0:--outer|H1:Content-Type: multipart/alternative; boundary=inner|B0:|"
              "B0:--inner|H1:X-A: 1|B0:|B0:a|B2:--outer|H1:X-B: 2|B0:|B0:--inner|B8:--outer--|"
              "B0:X-C: 3|");
    CHECK_STR(sb_str(&s.out), body);
    sb_free(&s.log);
    sb_free(&s.out);
}

static void test_digest_and_encoded_message(void)
{
    /* digest parts default to message/rfc822; a base64 message/rfc822 is body */
    const char *primary = "Content-Type: multipart/digest; boundary=d";
    const char *body =
        "--d\n"
        "\n"
        "Subject: in digest\n"
        "\n"
        "text\n"
        "--d\n"
        "Content-Type: message/rfc822\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "U3ViamVjdDogeA==\n"
        "--d--\n";
    struct seen s;
    int errors;
    run(primary, body, 5, &deflim, &s, &errors);
    CHECK_STR(sb_str(&s.log),
              "B0:--d|B0:|H2:Subject: in digest|B0:|B0:text|B5:--d|"
              "H1:Content-Type: message/rfc822|H1:Content-Transfer-Encoding: base64|B0:|"
              "B0:U3ViamVjdDogeA==|B17:--d--|");
    sb_free(&s.log);
    sb_free(&s.out);
}

static void test_primary_message_and_no_blank_line(void)
{
    /* a message/rfc822 top level; the nested block ends at a non-header line */
    struct seen s;
    int errors;
    run("Content-Type: message/rfc822", "From: a@b\nnot a header\nmore\n", 3, &deflim, &s, &errors);
    CHECK_STR(sb_str(&s.log), "H2:From: a@b|B0:not a header|B13:more|");
    sb_free(&s.log);
    sb_free(&s.out);
    /* without a boundary parameter, multipart is body */
    run("Content-Type: multipart/mixed", "--x\nContent-Type: text/plain\n", 4, &deflim, &s,
        &errors);
    CHECK_STR(sb_str(&s.log), "B0:--x|B4:Content-Type: text/plain|");
    sb_free(&s.log);
    sb_free(&s.out);
    /* MIME processing off: everything is body */
    struct mime_limits off = deflim;
    off.disabled = true;
    run("Content-Type: message/rfc822", "Subject: x\n", 4, &off, &s, &errors);
    CHECK_STR(sb_str(&s.log), "B0:Subject: x|");
    sb_free(&s.log);
    sb_free(&s.out);
}

static void test_long_lines_and_headers(void)
{
    struct mime_limits lim = { 80, 100, 100, false };
    char body[1024], expect[2048];
    /* a 200-byte body line in pieces of 80 */
    memset(body, 'x', 200);
    strcpy(body + 200, "\nend");
    struct seen s;
    int errors;
    run("", body, 13, &lim, &s, &errors);
    snprintf(expect, sizeof(expect), "B0:%.80s|B80:%.80s|B160:%.40s|B201:end|", body, body, body);
    CHECK_STR(sb_str(&s.log), expect);
    CHECK_STR(sb_str(&s.out), body);
    sb_free(&s.log);
    sb_free(&s.out);
    /* a nested header over header_limit keeps its first 100 bytes */
    strcpy(body, "X-Long: ");
    memset(body + 8, 'y', 150);
    strcpy(body + 158, "\n\nb\n");
    run("Content-Type: message/rfc822", body, 9, &lim, &s, &errors);
    snprintf(expect, sizeof(expect), "H2:%.100s|B0:|B0:b|", body);
    CHECK_STR(sb_str(&s.log), expect);
    sb_free(&s.log);
    sb_free(&s.out);
}

static void test_nesting_limit(void)
{
    struct mime_limits lim = { 998, 102400, 3, false };
    struct strbuf body = STRBUF_INIT(0);
    for (int i = 0; i < 10; i++)
        sb_appendf(&body, "--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n", i, i + 1);
    sb_appends(&body, "--b10\nSubject: deep\n\n");
    struct seen s;
    int errors;
    run("Content-Type: multipart/mixed; boundary=b0", sb_str(&body), 17, &lim, &s, &errors);
    CHECK(errors & MIME_ERR_NESTING);
    CHECK_STR(sb_str(&s.out), sb_str(&body));
    CHECK(strstr(sb_str(&s.log), "B0:--b3|") != NULL);   /* level 3 was not followed */
    sb_free(&s.log);
    sb_free(&s.out);
    sb_free(&body);
}

static void test_classes_and_names(void)
{
    CHECK(cleanup_mime_is_mime_header("content-type: x", 15));
    CHECK(cleanup_mime_is_mime_header("MIME-Version : 1.0", 18));
    CHECK(!cleanup_mime_is_mime_header("Content-Length: 5", 17));
    CHECK(!cleanup_mime_is_mime_header("Subject: x", 10));
    CHECK(cleanup_mime_header_name_len("X-A:", 4) == 3);
    CHECK(cleanup_mime_header_name_len(" X-A:", 5) == 0);
    CHECK(cleanup_mime_header_name_len("no colon", 8) == 0);
    /* quoted boundary with comments and other parameters around it */
    struct seen s;
    int errors;
    run("Content-Type: (c) multipart/mixed (x) ; charset=\"a;b\"; boundary=\"q \\\"z\"",
        "--q \"z\nA: 1\n\nx\n", 3, &deflim, &s, &errors);
    CHECK_STR(sb_str(&s.log), "B0:--q \"z|H1:A: 1|B0:|B0:x|");
    sb_free(&s.log);
    sb_free(&s.out);
}

int main(void)
{
    test_multipart();
    test_nested_multipart_and_close();
    test_digest_and_encoded_message();
    test_primary_message_and_no_blank_line();
    test_long_lines_and_headers();
    test_nesting_limit();
    test_classes_and_names();
    return check_summary();
}
