/* fuzz_smtp_reply.c: libFuzzer target for what a remote SMTP server sends
 * the smtp client: the input is a stream of reply bytes, fed in pieces to
 * the reply reader the client uses (lines cut at the bound, multi-line
 * replies, codes that must agree), and each complete reply is read the
 * ways the client reads it: as one log line, its enhanced status code, the
 * server name, and the EHLO keywords with SIZE and AUTH. The same bytes are
 * also the content of a message for the DATA encoder, whose output must
 * never hold a bare CR or LF and must end with its only CR LF . CR LF line.
 * Any crash, leak or sanitizer report, or a broken rule, is a bug.
 * sources: lib/global/smtp_reply.c lib/global/smtp_command.c smtp/smtp_nexthop.c smtp/smtp_policy.c lib/global/address.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_nexthop.h"
#include "smtp_reply.h"
#include "smtp/smtp_policy.h"

static void read_reply(const struct smtp_reply *r)
{
    struct strbuf one = STRBUF_INIT(4096);
    char dsn[SMTP_DSN_SIZE], word[64];
    smtp_reply_oneline(r, &one);
    if (strlen(sb_str(&one)) != one.len || strpbrk(sb_str(&one), "\r\n"))
        abort();                    /* a log line must stay one line of text */
    static const int classes[] = { 0, 2, 4, 5 };
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        int cls = classes[i], want = cls ? cls : r->code / 100;
        smtp_reply_dsn(r, cls, dsn);
        size_t len;
        if (want != 3 && (!smtp_dsn_valid(dsn, &len) || dsn[len] != 0 || dsn[0] - '0' != want))
            abort();
    }
    smtp_reply_first_word(r, word, sizeof(word));
    if (strlen(word) >= sizeof(word))
        abort();
    unsigned long long size_limit;
    (void)smtp_ehlo_parse(r, &size_limit);
    (void)smtp_ehlo_auth_mechs(sb_str(&r->lines), r->lines.len);
    sb_free(&one);
}

/* No bare CR or LF, and the only "CR LF . CR LF" (or a leading ". CR LF")
 * is the end. */
static void check_wire(const struct strbuf *w)
{
    const char *p = w->data;
    size_t n = w->len;
    if (!smtp_wire_clean(p, n) || n < 3 || memcmp(p + n - 3, ".\r\n", 3) != 0)
        abort();
    if (n > 3 && (n < 5 || memcmp(p + n - 5, "\r\n", 2) != 0))
        abort();
    if (n > 3 && memcmp(p, ".\r\n", 3) == 0)
        abort();
    for (size_t i = 0; i + 5 < n; i++)
        if (memcmp(p + i, "\r\n.\r\n", 5) == 0)
            abort();
}

static void encode(const uint8_t *data, size_t size)
{
    struct smtp_encoder e;
    struct strbuf out = STRBUF_INIT(0);
    smtp_encoder_init(&e);
    size_t step = size > 0 ? (data[0] % 7) + 1 : 1;
    for (size_t pos = 0; pos < size; pos += step) {
        size_t take = size - pos < step ? size - pos : step;
        if (smtp_encode(&e, (const char *)data + pos, take, &out) < 0)
            abort();
    }
    if (smtp_encode_end(&e, &out) < 0)
        abort();
    check_wire(&out);
    /* The SIZE the client announces (content bytes plus one per CR or
     * LF) is not below what it sends, apart from stuffing dots and the CR LF
     * that ends an unterminated last line, which Postfix leaves out too. */
    struct smtp_content_info info = { 0 };
    smtp_content_scan(&info, (const char *)data, size);
    size_t dots = 0;
    for (size_t i = 0; i + 1 < out.len; i++)
        if (out.data[i] == '.' && (i == 0 || out.data[i - 1] == '\n'))
            dots++;
    if (info.bytes + info.lines + dots + 2 < out.len - 3)
        abort();
    sb_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    struct smtp_reply r;
    struct strbuf in = STRBUF_INIT(SMTP_REPLY_LINE_MAX + 8192);
    bool skip = false;
    smtp_reply_init(&r);
    /* pieces of varying size, as reads deliver them */
    size_t pos = 0, step = size > 0 ? (size_t)data[0] * 13 + 1 : 1;
    for (int replies = 0; replies < 256;) {
        int rc = smtp_reply_feed(&r, &in, &skip, NULL, NULL);
        if (rc < 0)
            break;
        if (rc > 0) {
            if (!r.complete || r.code < 200 || r.code > 599 || r.nlines > SMTP_REPLY_LINES_MAX)
                abort();
            read_reply(&r);
            replies++;
            continue;
        }
        if (pos >= size)
            break;
        size_t take = size - pos < step ? size - pos : step;
        if (sb_append(&in, (const char *)data + pos, take) < 0)
            break;
        pos += take;
    }
    smtp_reply_free(&r);
    sb_free(&in);

    struct smtp_nexthop nh;
    char text[300];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = 0;
    (void)smtp_nexthop_parse(text, 25, &nh);
    encode(data, size);
    return 0;
}
