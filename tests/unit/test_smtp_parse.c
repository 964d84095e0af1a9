/* test_smtp_parse.c: unit tests of the SMTP client's pure parts with
 * hostile input (lib/global/smtp_reply.c, smtp/smtp_nexthop.c): reply lines (bad codes, mixed codes, over-long and
 * endless replies, control bytes and broken UTF-8), enhanced status codes,
 * EHLO keywords and SIZE values, xtext, next hops, and the DATA encoder
 * (CRLF, dot-stuffing, unterminated last lines), also fed in every split. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smtp_nexthop.h"
#include "smtp_reply.h"

static int add(struct smtp_reply *r, const char *line)
{
    return smtp_reply_add_line(r, line, strlen(line));
}

static const char *oneline(const struct smtp_reply *r)
{
    static struct strbuf out = STRBUF_INIT(0);
    sb_reset(&out);
    smtp_reply_oneline(r, &out);
    return sb_str(&out);
}

/* ---- replies ---- */

static void test_reply_lines(void)
{
    struct smtp_reply r;
    smtp_reply_init(&r);
    CHECK(add(&r, "220 mx.example ESMTP ready") == 1);
    CHECK(r.code == 220 && r.nlines == 1 && r.complete);
    CHECK_STR(oneline(&r), "220 mx.example ESMTP ready");

    /* A new line after a complete reply starts the next reply. */
    CHECK(add(&r, "250-first") == 0);
    CHECK(!r.complete);
    CHECK(add(&r, "250-second") == 0);
    CHECK(add(&r, "250 last") == 1);
    CHECK(r.code == 250 && r.nlines == 3);
    CHECK_STR(oneline(&r), "250-first 250-second 250 last");

    CHECK(add(&r, "250") == 1);                 /* code alone */
    CHECK_STR(oneline(&r), "250");

    smtp_reply_reset(&r);
    CHECK(add(&r, "250-a") == 0);
    CHECK(add(&r, "251 b") == -1);              /* code changes inside a reply */
    smtp_reply_reset(&r);
    CHECK(add(&r, "abc") == -1);
    CHECK(add(&r, "25") == -1);
    CHECK(add(&r, "") == -1);
    CHECK(add(&r, "199 x") == -1);
    CHECK(add(&r, "600 x") == -1);
    CHECK(add(&r, "2x0 x") == -1);
    CHECK(add(&r, "250x") == -1);
    CHECK(add(&r, "250_x") == -1);
    CHECK(add(&r, " 250 x") == -1);
    smtp_reply_free(&r);
}

static void test_reply_bounds(void)
{
    struct smtp_reply r;
    smtp_reply_init(&r);
    /* An endless multi-line reply is malformed after SMTP_REPLY_LINES_MAX lines. */
    int rc = 0, i;
    for (i = 0; i < 1000 && rc == 0; i++)
        rc = add(&r, "250-more");
    CHECK(rc == -1 && i == SMTP_REPLY_LINES_MAX + 1);
    CHECK(r.lines.len <= SMTP_REPLY_TEXT_MAX);

    /* A long line is cut at SMTP_REPLY_LINE_MAX; text stays bounded. */
    smtp_reply_reset(&r);
    size_t big = 100000;
    char *line = malloc(big);
    memset(line, 'x', big);
    memcpy(line, "550 ", 4);
    CHECK(smtp_reply_add_line(&r, line, big) == 1);
    CHECK(r.lines.len == SMTP_REPLY_LINE_MAX);

    /* Many long lines: the kept text stops at SMTP_REPLY_TEXT_MAX, the count goes on. */
    smtp_reply_reset(&r);
    memcpy(line, "550-", 4);
    for (i = 0; i < 20; i++)
        CHECK(smtp_reply_add_line(&r, line, SMTP_REPLY_LINE_MAX) == 0);
    CHECK(r.lines.len <= SMTP_REPLY_TEXT_MAX && r.nlines == 20);
    CHECK(add(&r, "550 end") == 1);
    free(line);
    smtp_reply_free(&r);
}

static void test_reply_sanitize(void)
{
    struct smtp_reply r;
    smtp_reply_init(&r);
    const char ctl[] = "550 a\x01" "b\x7f" "c\x00" "d\te";
    CHECK(smtp_reply_add_line(&r, ctl, sizeof(ctl) - 1) == 1);
    CHECK_STR(oneline(&r), "550 a?b?c?d e");
    CHECK(add(&r, "550 caf\xc3\xa9 ok") == 1);           /* well-formed UTF-8 stays */
    CHECK_STR(oneline(&r), "550 caf\xc3\xa9 ok");
    CHECK(add(&r, "550 bad \xc3 \xff") == 1);             /* broken UTF-8 does not */
    CHECK_STR(oneline(&r), "550 bad ? ?");
    CHECK(add(&r, "550 \xed\xa0\x80") == 1);              /* a surrogate is not UTF-8 */
    CHECK_STR(oneline(&r), "550 ???");
    smtp_reply_free(&r);
}

static void test_dsn(void)
{
    struct smtp_reply r;
    char dsn[SMTP_DSN_SIZE];
    smtp_reply_init(&r);
    add(&r, "550 5.1.1 <x@y>: Recipient address rejected");
    smtp_reply_dsn(&r, 0, dsn);
    CHECK_STR(dsn, "5.1.1");
    smtp_reply_dsn(&r, 4, dsn);                 /* made temporary by the caller */
    CHECK_STR(dsn, "4.1.1");
    add(&r, "550 4.1.1 class does not match the code");
    smtp_reply_dsn(&r, 0, dsn);
    CHECK_STR(dsn, "5.0.0");
    add(&r, "450 no code here");
    smtp_reply_dsn(&r, 0, dsn);
    CHECK_STR(dsn, "4.0.0");
    add(&r, "250 2.0.0");
    smtp_reply_dsn(&r, 0, dsn);
    CHECK_STR(dsn, "2.0.0");
    add(&r, "250 2.123.456 ok");
    smtp_reply_dsn(&r, 0, dsn);
    CHECK_STR(dsn, "2.123.456");
    add(&r, "550 5.1234.1 too many digits");
    smtp_reply_dsn(&r, 0, dsn);
    CHECK_STR(dsn, "5.0.0");
    add(&r, "550 5.1.1x glued");
    smtp_reply_dsn(&r, 0, dsn);
    CHECK_STR(dsn, "5.0.0");
    add(&r, "550 5..1 empty");
    smtp_reply_dsn(&r, 0, dsn);
    CHECK_STR(dsn, "5.0.0");
    add(&r, "550");
    smtp_reply_dsn(&r, 0, dsn);
    CHECK_STR(dsn, "5.0.0");
    size_t len;
    CHECK(smtp_dsn_valid("4.4.2", &len) && len == 5);
    CHECK(!smtp_dsn_valid("3.4.2", &len));
    CHECK(!smtp_dsn_valid("4.4", &len));
    smtp_reply_free(&r);
}

static void test_first_word(void)
{
    struct smtp_reply r;
    char w[16];
    smtp_reply_init(&r);
    add(&r, "220 tern.test ESMTP Tern");
    smtp_reply_first_word(&r, w, sizeof(w));
    CHECK_STR(w, "tern.test");
    add(&r, "250-mx.example.org Hello");
    add(&r, "250 PIPELINING");
    smtp_reply_first_word(&r, w, sizeof(w));
    CHECK_STR(w, "mx.example.org");
    add(&r, "220");
    smtp_reply_first_word(&r, w, sizeof(w));
    CHECK_STR(w, "");
    add(&r, "220 a-very-long-host-name.example.org");
    smtp_reply_first_word(&r, w, sizeof(w));
    CHECK(strlen(w) == sizeof(w) - 1);
    smtp_reply_free(&r);
}

/* ---- EHLO ---- */

static void test_ehlo(void)
{
    struct smtp_reply r;
    unsigned long long size;
    smtp_reply_init(&r);
    add(&r, "250-mx.example Hello");
    add(&r, "250-pipelining");
    add(&r, "250-SIZE 10240000");
    add(&r, "250-8BITMIME");
    add(&r, "250-ENHANCEDSTATUSCODES");
    add(&r, "250-SMTPUTF8");
    add(&r, "250-AUTH PLAIN LOGIN");
    add(&r, "250-STARTTLS");
    add(&r, "250 DSN");
    unsigned f = smtp_ehlo_parse(&r, &size);
    CHECK(f == (SMTP_FEAT_PIPELINING | SMTP_FEAT_SIZE | SMTP_FEAT_8BITMIME | SMTP_FEAT_SMTPUTF8
                | SMTP_FEAT_AUTH | SMTP_FEAT_STARTTLS | SMTP_FEAT_DSN));
    CHECK(size == 10240000);

    smtp_reply_reset(&r);
    add(&r, "250-PIPELINING mx.example");      /* the greeting line is not a keyword */
    add(&r, "250-SIZE");
    add(&r, "250-8BITMIMEX");
    add(&r, "250 XPIPELINING");
    f = smtp_ehlo_parse(&r, &size);
    CHECK(f == SMTP_FEAT_SIZE && size == 0);

    smtp_reply_reset(&r);
    add(&r, "250-x");
    add(&r, "250 SIZE 99999999999999999999999");   /* no overflow: no limit */
    f = smtp_ehlo_parse(&r, &size);
    CHECK(f == SMTP_FEAT_SIZE && size == 0);
    smtp_reply_reset(&r);
    add(&r, "250-x");
    add(&r, "250 SIZE -5");
    smtp_ehlo_parse(&r, &size);
    CHECK(size == 0);
    smtp_reply_reset(&r);
    add(&r, "250 only-the-name");
    CHECK(smtp_ehlo_parse(&r, &size) == 0);
    smtp_reply_reset(&r);
    add(&r, "250-x");
    add(&r, "250-requiretls");
    add(&r, "250 REQUIRETLSX");
    CHECK(smtp_ehlo_parse(&r, &size) == SMTP_FEAT_REQUIRETLS);
    smtp_reply_free(&r);
}

/* ---- xtext ---- */

static void test_xtext(void)
{
    struct strbuf out = STRBUF_INIT(64);
    CHECK(smtp_xtext_append(&out, "a+b=c@d") == 0);
    CHECK_STR(sb_str(&out), "a+2Bb+3Dc@d");
    sb_reset(&out);
    CHECK(smtp_xtext_append(&out, "sp ace\x01") == 0);
    CHECK_STR(sb_str(&out), "sp+20ace+01");
    sb_reset(&out);
    CHECK(smtp_xtext_append(&out, "caf\xc3\xa9") == -1);
    CHECK(out.len == 0);
    sb_free(&out);
    struct strbuf tiny = STRBUF_INIT(4);
    CHECK(smtp_xtext_append(&tiny, "++++") == -1);
    CHECK(tiny.len == 0);
    sb_free(&tiny);
}

/* ---- next hop ---- */

/* LMTP next hops: unix:PATH, inet:HOST[:PORT], HOST[:PORT]; never MX. */
static void test_lmtp_nexthop(void)
{
    struct smtp_nexthop nh;
    CHECK(smtp_lmtp_nexthop_parse("unix:private/dovecot-lmtp", 24, &nh) == 0);
    CHECK(strcmp(nh.path, "private/dovecot-lmtp") == 0 && !nh.use_mx);
    CHECK(smtp_lmtp_nexthop_parse("unix:/run/dovecot/lmtp", 24, &nh) == 0 && nh.path[0] == '/');
    CHECK(smtp_lmtp_nexthop_parse("inet:127.0.0.1:2424", 24, &nh) == 0);
    CHECK(nh.literal && nh.port == 2424 && !nh.use_mx && !nh.path[0]);
    CHECK(smtp_lmtp_nexthop_parse("inet:[127.0.0.1]", 24, &nh) == 0 && nh.literal && nh.port == 24);
    CHECK(smtp_lmtp_nexthop_parse("inet:mail.example.com", 24, &nh) == 0);
    CHECK(!nh.use_mx && !nh.literal && strcmp(nh.host, "mail.example.com") == 0 && nh.port == 24);
    CHECK(smtp_lmtp_nexthop_parse("mail.example.com:25", 24, &nh) == 0 && !nh.use_mx && nh.port == 25);
    CHECK(smtp_lmtp_nexthop_parse("[mail.example.com]:26", 24, &nh) == 0 && nh.port == 26);
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = 0;
    memcpy(longpath, "unix:", 5);
    const char *const bad[] = { "unix:", "inet:", "unix:a\nb", "inet:host:0", "inet:[x", longpath };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(smtp_lmtp_nexthop_parse(bad[i], 24, &nh) == -1);
}

static void test_nexthop(void)
{
    struct smtp_nexthop nh;
    CHECK(smtp_nexthop_parse("[127.0.0.1]:2525", 25, &nh) == 0);
    CHECK_STR(nh.host, "127.0.0.1");
    CHECK(nh.port == 2525 && !nh.use_mx && nh.literal && nh.addr.family == AF_INET);
    CHECK(smtp_nexthop_parse("[127.0.0.1]", 25, &nh) == 0 && nh.port == 25 && nh.literal);
    CHECK(smtp_nexthop_parse("[ipv6:::1]:26", 25, &nh) == 0);
    CHECK(nh.literal && nh.addr.family == AF_INET6 && nh.port == 26);
    CHECK(smtp_nexthop_parse("[2001:db8::1]", 25, &nh) == 0 && nh.addr.family == AF_INET6);
    CHECK(smtp_nexthop_parse("[relay.example.com]:587", 25, &nh) == 0);
    CHECK(!nh.use_mx && !nh.literal && nh.port == 587);
    CHECK_STR(nh.host, "relay.example.com");
    CHECK(smtp_nexthop_parse("example.com", 25, &nh) == 0 && nh.use_mx && nh.port == 25);
    CHECK(smtp_nexthop_parse("example.com.", 25, &nh) == 0);
    CHECK_STR(nh.host, "example.com");
    CHECK(smtp_nexthop_parse("example.com:2525", 25, &nh) == 0 && nh.use_mx && nh.port == 2525);

    static const char *const bad[] = {
        "", "[", "[]", "[]:25", "[127.0.0.1", "[127.0.0.1]:", "[127.0.0.1]:0", "[127.0.0.1]:65536",
        "[127.0.0.1]:25x", "[127.0.0.1]x", "[127.0.0.1]:-1", ":25", "example.com:", "example.com:0",
        "exa mple.com", "example..com", "-example.com", "ex\nample.com", "[a b]", "example.com:25:25",
        "[[127.0.0.1]]", "1.2.3.4:25:1", ".",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = smtp_nexthop_parse(bad[i], 25, &nh);
        if (rc == 0)
            fprintf(stderr, "accepted bad next hop \"%s\"\n", bad[i]);
        CHECK(rc == -1);
    }
    char longname[400];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    CHECK(smtp_nexthop_parse(longname, 25, &nh) == -1);
}

/* ---- content ---- */

static const char *encode_all(const char *in, size_t len)
{
    static struct strbuf out = STRBUF_INIT(0);
    struct smtp_encoder e;
    smtp_encoder_init(&e);
    sb_reset(&out);
    CHECK(smtp_encode(&e, in, len, &out) == 0);
    CHECK(smtp_encode_end(&e, &out) == 0);
    return sb_str(&out);
}

static const char *encode(const char *in)
{
    return encode_all(in, strlen(in));
}

/* The same result however the content is cut into chunks. */
static void check_every_split(const char *in)
{
    size_t len = strlen(in);
    char *whole = strdup(encode(in));
    for (size_t cut1 = 0; cut1 <= len; cut1++) {
        for (size_t cut2 = cut1; cut2 <= len; cut2++) {
            struct strbuf out = STRBUF_INIT(0);
            struct smtp_encoder e;
            smtp_encoder_init(&e);
            smtp_encode(&e, in, cut1, &out);
            smtp_encode(&e, in + cut1, cut2 - cut1, &out);
            smtp_encode(&e, in + cut2, len - cut2, &out);
            smtp_encode_end(&e, &out);
            if (strcmp(sb_str(&out), whole) != 0)
                fprintf(stderr, "split %zu/%zu of \"%s\" differs\n", cut1, cut2, in);
            CHECK(strcmp(sb_str(&out), whole) == 0);
            sb_free(&out);
        }
    }
    free(whole);
}

static void test_encoder(void)
{
    CHECK_STR(encode(""), ".\r\n");
    CHECK_STR(encode("a\nb\n"), "a\r\nb\r\n.\r\n");
    CHECK_STR(encode("\n"), "\r\n.\r\n");
    CHECK_STR(encode(".x\n..\n.\nmid.dle\n"), "..x\r\n...\r\n..\r\nmid.dle\r\n.\r\n");
    CHECK_STR(encode("no newline at end"), "no newline at end\r\n.\r\n");
    CHECK_STR(encode("."), "..\r\n.\r\n");
    CHECK_STR(encode("a\r\nb\r\n"), "a\r\nb\r\n.\r\n");            /* CRLF is one line end */
    /* A CR alone (an old or tampered queue file) is a line end, never a
     * bare CR on the wire, and a dot after it is stuffed. */
    CHECK_STR(encode("a\rb\n"), "a\r\nb\r\n.\r\n");
    CHECK_STR(encode("a\r"), "a\r\n.\r\n");
    CHECK_STR(encode("\r.\n"), "\r\n..\r\n.\r\n");
    CHECK_STR(encode("x\r.\rmore"), "x\r\n..\r\nmore\r\n.\r\n");
    CHECK_STR(encode("x\r.\r\nmore\n"), "x\r\n..\r\nmore\r\n.\r\n");
    CHECK_STR(encode("\r\r\n\n\r"), "\r\n\r\n\r\n\r\n.\r\n");
    CHECK_STR(encode("x\n\r\n.\r\n"), "x\r\n\r\n..\r\n.\r\n");    /* no smuggled end of data */
    const char *hostile[] = { "a\r.\rb", "\r.\r", "\n.\n", "\r\n.\r", "\n.\r\n", ".\r.\n.", "\r" };
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        const char *w = encode(hostile[i]);
        size_t wl = strlen(w);
        CHECK(smtp_wire_clean(w, wl));
        CHECK(strstr(w, "\r\n.\r\n") == w + wl - 5 || strcmp(w, ".\r\n") == 0);
    }
    CHECK(!smtp_wire_clean("a\rb", 4) && !smtp_wire_clean("a\nb", 4) && !smtp_wire_clean("\r", 1));
    CHECK(smtp_wire_clean("a\r\nb\r\n", 6));
    check_every_split(".a\n..\r\nb\r.\n\r\r\n.");
    check_every_split("line\n.\n\n.\r");
    check_every_split("x\r.\r\r\n.\rmore\r");

    /* Long lines are sent as they are. */
    size_t n = 5000;
    char *longline = malloc(n + 2);
    memset(longline, 'y', n);
    longline[n] = '\n';
    longline[n + 1] = 0;
    const char *out = encode(longline);
    CHECK(strlen(out) == n + 2 + 3 && memchr(out, '\r', n) == NULL);
    free(longline);

    /* The output limit is honoured. */
    struct strbuf tiny = STRBUF_INIT(4);
    struct smtp_encoder e;
    smtp_encoder_init(&e);
    CHECK(smtp_encode(&e, "abcdef\n", 7, &tiny) == -1);
    sb_free(&tiny);
}

static void test_scan(void)
{
    struct smtp_content_info info = { 0 };
    smtp_content_scan(&info, "a\nb\n", 4);
    CHECK(info.bytes == 4 && info.lines == 2 && !info.eight_bit);
    smtp_content_scan(&info, "caf\xc3\xa9\n", 6);
    CHECK(info.bytes == 10 && info.lines == 3 && info.eight_bit);
    /* The body is counted a word at a time: the same as byte by byte for
     * random bodies of every length and alignment, with an 8-bit byte or
     * not. */
    static const char bytes[] = "ab\r\n\n\r\x0a\x0d\x8a\x8dz";
    unsigned seed = 777;
    for (int round = 0; round < 2000; round++) {
        char body[80];
        size_t n = (size_t)round % sizeof(body), lines = 0;
        bool high = false;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            body[i] = bytes[(seed >> 16) % (sizeof(bytes) - 1)];
            if (round % 3 && (unsigned char)body[i] > 0x7f)
                body[i] = 'x';
            lines += body[i] == '\n' || body[i] == '\r';
            high |= (unsigned char)body[i] > 0x7f;
        }
        struct smtp_content_info b = { 0 };
        smtp_content_scan(&b, "\n", 1);           /* the header section ends at once */
        size_t off = (size_t)round % 5 < n ? (size_t)round % 5 : n;
        smtp_content_scan(&b, body, off);
        smtp_content_scan(&b, body + off, n - off);
        CHECK(b.lines == lines + 1 && b.eight_bit == high && b.bytes == n + 1);
    }
}

/* "TLS-Required: No" (RFC 8689 section 4.2.2), found in the header section
 * only, however the content is cut into chunks. */
static bool tls_required_no(const char *content)
{
    size_t len = strlen(content);
    bool every = true, whole;
    struct smtp_content_info info = { 0 };
    smtp_content_scan(&info, content, len);
    whole = info.tls_required_no;
    for (size_t cut = 0; cut <= len; cut++) {
        struct smtp_content_info split = { 0 };
        smtp_content_scan(&split, content, cut);
        smtp_content_scan(&split, content + cut, len - cut);
        if (split.tls_required_no != whole || split.bytes != len)
            every = false;
    }
    CHECK(every);
    return whole;
}

static void test_scan_tls_required(void)
{
    CHECK(tls_required_no("From: a@b\nTLS-Required: No\nSubject: x\n\nbody\n"));
    CHECK(tls_required_no("tls-required:no\n\n"));
    CHECK(tls_required_no("TLS-Required:   nO \t\r\n\r\nbody\n"));
    CHECK(!tls_required_no("TLS-Required: Yes\n\n"));
    CHECK(!tls_required_no("TLS-Required: Not really\n\n"));
    CHECK(!tls_required_no("X-TLS-Required: No\n\n"));
    CHECK(!tls_required_no("Subject: x\n TLS-Required: No\n\n"));
    /* in the body it is text, not a header field */
    CHECK(!tls_required_no("Subject: x\n\nTLS-Required: No\n"));
    CHECK(!tls_required_no("Subject: x\r\n\r\nTLS-Required: No\n"));
    /* a long line that begins like it is another field */
    CHECK(!tls_required_no("TLS-Required: No                                            x\n\n"));
    CHECK(tls_required_no("X-Long: 0123456789012345678901234567890123456789012345678901234567890\n"
                          "TLS-Required: No\n\n"));
}

int main(void)
{
    test_reply_lines();
    test_reply_bounds();
    test_reply_sanitize();
    test_dsn();
    test_first_word();
    test_ehlo();
    test_xtext();
    test_nexthop();
    test_lmtp_nexthop();
    test_encoder();
    test_scan();
    test_scan_tls_required();
    return check_summary();
}
