/* test_smtpd_parse.c: unit tests of smtpd's pure parsers (command verbs,
 * MAIL/RCPT with ESMTP parameters, xtext, HELO, BDAT) and of the DATA/BDAT
 * content decoder, with hostile input: huge lines, NUL bytes, unbalanced
 * brackets, bad xtext, duplicate parameters, 8-bit bytes and every SMTP
 * smuggling sequence, also split at every possible read boundary. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smtp_command.h"
#include "smtpd_content.h"
#include "strbuf.h"

static const struct smtp_parse_opts opts = { .size_limit = 10240000, .smtputf8_enable = true };

/* ---- verbs ---- */

static enum smtp_verb verb(const char *line, const char **arg)
{
    return smtp_parse_verb(line, strlen(line), arg);
}

static void test_verbs(void)
{
    const char *arg;
    CHECK(verb("EHLO client.example", &arg) == SMTP_EHLO);
    CHECK_STR(arg, "client.example");
    CHECK(verb("ehlo   x", &arg) == SMTP_EHLO);
    CHECK_STR(arg, "x");
    CHECK(verb("MAIL FROM:<a@b>", &arg) == SMTP_MAIL);
    CHECK_STR(arg, "FROM:<a@b>");
    CHECK(verb("DATA", &arg) == SMTP_DATA);
    CHECK_STR(arg, "");
    CHECK(verb("QuIt", &arg) == SMTP_QUIT);
    CHECK(verb("BDAT 10 LAST", &arg) == SMTP_BDAT);
    CHECK(verb("MAILX FROM:<a@b>", &arg) == SMTP_UNKNOWN);
    CHECK(verb("MAIL:FROM", &arg) == SMTP_UNKNOWN);
    CHECK(verb("", &arg) == SMTP_UNKNOWN);
    CHECK(verb(" NOOP", &arg) == SMTP_UNKNOWN);
    CHECK(verb("XYZZY", &arg) == SMTP_UNKNOWN);
    CHECK(verb("EXPN list", &arg) == SMTP_EXPN);
    CHECK(verb("TURN", &arg) == SMTP_TURN);
    CHECK(verb("ETRN example.com", &arg) == SMTP_ETRN);
    CHECK(verb("HELP", &arg) == SMTP_HELP);
    CHECK_STR(smtp_verb_stat_name(SMTP_EHLO), "ehlo");
    CHECK_STR(smtp_verb_name(SMTP_RCPT), "RCPT");
    const char nul[] = "NO\0OP";
    CHECK(smtp_line_has_nul(nul, sizeof(nul) - 1));
    CHECK(!smtp_line_has_nul("NOOP", 4));
    CHECK(smtp_line_bad_utf8("MAIL \xff", 6));
    CHECK(!smtp_line_bad_utf8("MAIL \xc3\xa9", 7));
}

/* ---- MAIL ---- */

static int mail(const char *arg, struct smtp_mail_args *m, struct smtp_parse_error *err)
{
    return smtp_parse_mail(arg, &opts, m, err);
}

static void expect_mail_err(const char *arg, int code, const char *text)
{
    struct smtp_mail_args m;
    struct smtp_parse_error err;
    CHECK(mail(arg, &m, &err) == -1);
    CHECK(err.code == code);
    if (text)
        CHECK_STR(err.text, text);
    if (err.code != code)
        fprintf(stderr, "  MAIL %s -> %d %s\n", arg, err.code, err.text);
    CHECK(m.sender.address == NULL && m.envid == NULL && m.auth == NULL);
}

static void test_mail(void)
{
    struct smtp_mail_args m;
    struct smtp_parse_error err;
    CHECK(mail("FROM:<sender@example.com>", &m, &err) == 0);
    CHECK_STR(m.sender.address, "sender@example.com");
    CHECK(m.size == -1 && m.body == SMTP_BODY_NONE && m.ret == SMTP_RET_NONE && !m.smtputf8);
    smtp_mail_args_free(&m);

    CHECK(mail("from: <>", &m, &err) == 0);
    CHECK(m.sender.flags & ADDR_F_NULL);
    CHECK_STR(m.sender.address, "");
    smtp_mail_args_free(&m);

    CHECK(mail("FROM:<a@example.com> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ+2B314 AUTH=<>", &m, &err) == 0);
    CHECK(m.size == 1000);
    CHECK(m.body == SMTP_BODY_8BITMIME);
    CHECK(m.ret == SMTP_RET_HDRS);
    CHECK_STR(m.envid, "QQ+314");
    CHECK_STR(m.auth, "<>");
    smtp_mail_args_free(&m);

    CHECK(mail("FROM:<a@example.com> body=binarymime ret=full smtputf8", &m, &err) == 0);
    CHECK(m.body == SMTP_BODY_BINARYMIME && m.ret == SMTP_RET_FULL && m.smtputf8);
    smtp_mail_args_free(&m);

    CHECK(mail("FROM:a@example.com SIZE=5", &m, &err) == 0);   /* without <>, as Postfix allows */
    CHECK_STR(m.sender.address, "a@example.com");
    smtp_mail_args_free(&m);

    CHECK(mail("FROM:<\"odd > user\"@example.com> SIZE=5", &m, &err) == 0);
    CHECK_STR(m.sender.local, "odd > user");
    CHECK(m.size == 5);
    smtp_mail_args_free(&m);

    CHECK(mail("FROM:<j\xc3\xb6rg@example.com> SMTPUTF8", &m, &err) == 0);
    CHECK(m.sender.flags & ADDR_F_UTF8);
    smtp_mail_args_free(&m);

    expect_mail_err("", 501, "5.5.4 Syntax: MAIL FROM:<address>");
    expect_mail_err("FROM:", 501, "5.5.4 Syntax: MAIL FROM:<address>");
    expect_mail_err("TO:<a@b.example>", 501, "5.5.4 Syntax: MAIL FROM:<address>");
    expect_mail_err("FROM:<a@example.com", 501, "5.1.7 Bad sender address syntax");
    expect_mail_err("FROM:<<a@example.com>", 501, "5.1.7 Bad sender address syntax");
    expect_mail_err("FROM:<a@example.com>>", 501, NULL);
    expect_mail_err("FROM:<a b@example.com>", 501, "5.1.7 Bad sender address syntax");
    expect_mail_err("FROM:<a@example.com>junk", 501, NULL);
    expect_mail_err("FROM:<a@example.com> SIZE=abc", 501, "5.5.4 Bad message size syntax");
    expect_mail_err("FROM:<a@example.com> SIZE=", 501, NULL);
    expect_mail_err("FROM:<a@example.com> SIZE", 501, "5.5.4 Bad message size syntax");
    expect_mail_err("FROM:<a@example.com> SIZE=-1", 501, "5.5.4 Bad message size syntax");
    expect_mail_err("FROM:<a@example.com> SIZE=99999999999999999999999", 501, "5.5.4 Bad message size syntax");
    expect_mail_err("FROM:<a@example.com> SIZE=10240001", 552, "5.3.4 Message size exceeds fixed limit");
    expect_mail_err("FROM:<a@example.com> SIZE=1 SIZE=2", 501, "5.5.4 Error: duplicate SIZE parameter");
    expect_mail_err("FROM:<a@example.com> BODY=9BIT", 501, "5.5.4 Bad BODY keyword syntax");
    expect_mail_err("FROM:<a@example.com> BODY=7BIT BODY=7BIT", 501, NULL);
    expect_mail_err("FROM:<a@example.com> RET=ALL", 501, "5.5.4 Bad RET parameter syntax");
    expect_mail_err("FROM:<a@example.com> ENVID=a+2", 501, "5.5.4 Bad ENVID parameter syntax");
    expect_mail_err("FROM:<a@example.com> ENVID=a+ZZb", 501, NULL);
    expect_mail_err("FROM:<a@example.com> ENVID=a+00b", 501, NULL);   /* decodes to NUL */
    expect_mail_err("FROM:<a@example.com> ENVID=a+0Ab", 501, NULL);   /* decodes to LF */
    expect_mail_err("FROM:<a@example.com> ENVID=a=b", 501, NULL);
    expect_mail_err("FROM:<a@example.com> ENVID=\xc3\xa9", 501, NULL);
    expect_mail_err("FROM:<a@example.com> SMTPUTF8=yes", 501, NULL);
    expect_mail_err("FROM:<a@example.com> XFOO=1", 555, "5.5.4 Unsupported option: XFOO");
    expect_mail_err("FROM:<a@example.com> =1", 501, NULL);
    expect_mail_err("FROM:<a@example.com> AUTH=<> AUTH=<>", 503, "5.5.4 Error: multiple AUTH= options");
    expect_mail_err("FROM:<j\xc3\xb6rg@example.com>", 553, "5.6.7 Must declare SMTPUTF8 to send unicode address");
    expect_mail_err("FROM:<a@example.com> NOTIFY=NEVER", 555, NULL);   /* RCPT parameter */

    struct smtp_parse_opts no8 = { .size_limit = 0, .smtputf8_enable = false };
    CHECK(smtp_parse_mail("FROM:<a@example.com> SMTPUTF8", &no8, &m, &err) == -1);
    CHECK(err.code == 555);
    CHECK(smtp_parse_mail("FROM:<a@example.com> SIZE=999999999999", &no8, &m, &err) == 0);
    smtp_mail_args_free(&m);

    /* an ENVID of 101 characters is over the RFC 3461 bound */
    char envid[200];
    snprintf(envid, sizeof(envid), "FROM:<a@example.com> ENVID=%0101d", 0);
    expect_mail_err(envid, 501, "5.5.4 Bad ENVID parameter syntax");
}

/* ---- RCPT ---- */

static void expect_rcpt_err(const char *arg, bool utf8, int code, const char *text)
{
    struct smtp_rcpt_args r;
    struct smtp_parse_error err;
    CHECK(smtp_parse_rcpt(arg, &opts, utf8, &r, &err) == -1);
    CHECK(err.code == code);
    if (text)
        CHECK_STR(err.text, text);
    if (err.code != code)
        fprintf(stderr, "  RCPT %s -> %d %s\n", arg, err.code, err.text);
    CHECK(r.rcpt.address == NULL && r.orcpt == NULL);
}

/* strict_rfc821_envelopes: the address must be in <>, as Postfix asks */
static void test_strict_rfc821(void)
{
    const struct smtp_parse_opts strict = { .size_limit = 10240000, .smtputf8_enable = true,
                                            .strict_rfc821 = true };
    struct smtp_mail_args m;
    struct smtp_rcpt_args r;
    struct smtp_parse_error err;
    CHECK(smtp_parse_mail("FROM:a@b", &strict, &m, &err) < 0);
    CHECK(err.code == 501);
    CHECK_STR(err.text, "5.1.7 Bad sender address syntax");
    CHECK(smtp_parse_mail("FROM: <a@b> SIZE=10", &strict, &m, &err) == 0);
    CHECK_STR(m.sender.address, "a@b");
    smtp_mail_args_free(&m);
    CHECK(smtp_parse_mail("FROM:<>", &strict, &m, &err) == 0);
    smtp_mail_args_free(&m);
    CHECK(smtp_parse_rcpt("TO:c@d", &strict, false, &r, &err) < 0);
    CHECK(err.code == 501);
    CHECK_STR(err.text, "5.1.3 Bad recipient address syntax");
    CHECK(smtp_parse_rcpt("TO:<c@d>", &strict, false, &r, &err) == 0);
    CHECK_STR(r.rcpt.address, "c@d");
    smtp_rcpt_args_free(&r);
    /* without it a bare address is taken, as before */
    CHECK(smtp_parse_rcpt("TO:c@d", &opts, false, &r, &err) == 0);
    smtp_rcpt_args_free(&r);
}

/* REQUIRETLS (RFC 8689): a keyword without a value, only in a TLS session,
 * unknown (an unsupported option) where the server does not offer it. */
static void test_requiretls(void)
{
    const struct smtp_parse_opts tls = { .size_limit = 10240000, .smtputf8_enable = true,
                                         .requiretls_known = true, .requiretls_allowed = true };
    const struct smtp_parse_opts clear = { .size_limit = 10240000, .smtputf8_enable = true,
                                           .requiretls_known = true, .requiretls_allowed = false };
    struct smtp_mail_args m;
    struct smtp_parse_error err;
    CHECK(smtp_parse_mail("FROM:<a@b> REQUIRETLS", &tls, &m, &err) == 0);
    CHECK(m.requiretls);
    CHECK_STR(m.sender.address, "a@b");
    smtp_mail_args_free(&m);
    CHECK(!m.requiretls);
    CHECK(smtp_parse_mail("FROM:<a@b> SIZE=10 requiretls BODY=8BITMIME", &tls, &m, &err) == 0);
    CHECK(m.requiretls && m.size == 10 && m.body == SMTP_BODY_8BITMIME);
    smtp_mail_args_free(&m);
    CHECK(smtp_parse_mail("FROM:<> REQUIRETLS", &tls, &m, &err) == 0);
    CHECK(m.requiretls);
    smtp_mail_args_free(&m);
    CHECK(smtp_parse_mail("FROM:<a@b>", &tls, &m, &err) == 0);
    CHECK(!m.requiretls);
    smtp_mail_args_free(&m);
    /* outside TLS: refused with RFC 8689's code, nothing kept */
    CHECK(smtp_parse_mail("FROM:<a@b> REQUIRETLS", &clear, &m, &err) < 0);
    CHECK(err.code == 530);
    CHECK(strncmp(err.text, "5.7.10 ", 7) == 0);
    CHECK(m.sender.address == NULL && !m.requiretls);
    /* not offered at all (requiretls_enable = no, or sendmail -bs) */
    CHECK(smtp_parse_mail("FROM:<a@b> REQUIRETLS", &opts, &m, &err) < 0);
    CHECK(err.code == 555);
    CHECK_STR(err.text, "5.5.4 Unsupported option: REQUIRETLS");
    /* a value, twice, a near miss */
    CHECK(smtp_parse_mail("FROM:<a@b> REQUIRETLS=YES", &tls, &m, &err) < 0);
    CHECK(err.code == 501);
    CHECK_STR(err.text, "5.5.4 Bad REQUIRETLS parameter syntax");
    CHECK(smtp_parse_mail("FROM:<a@b> REQUIRETLS REQUIRETLS", &tls, &m, &err) < 0);
    CHECK(err.code == 501);
    CHECK_STR(err.text, "5.5.4 Error: duplicate REQUIRETLS parameter");
    CHECK(smtp_parse_mail("FROM:<a@b> REQUIRETLSX", &tls, &m, &err) < 0);
    CHECK(err.code == 555);
    CHECK(smtp_parse_mail("FROM:<a@b> REQUIRETLS=", &tls, &m, &err) < 0);
    CHECK(err.code == 501);
    /* a bad address after it frees what was parsed */
    CHECK(smtp_parse_mail("FROM:<a@@b> REQUIRETLS", &tls, &m, &err) < 0);
    CHECK(!m.requiretls);
}

static void test_rcpt(void)
{
    struct smtp_rcpt_args r;
    struct smtp_parse_error err;
    char buf[64];
    CHECK(smtp_parse_rcpt("TO:<user@example.com>", &opts, false, &r, &err) == 0);
    CHECK_STR(r.rcpt.address, "user@example.com");
    CHECK(r.notify == 0 && r.orcpt == NULL);
    smtp_rcpt_args_free(&r);

    CHECK(smtp_parse_rcpt("To:<user@example.com> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;user+2Bx@example.com",
                          &opts, false, &r, &err) == 0);
    CHECK(r.notify == (SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY));
    CHECK_STR(smtp_notify_string(r.notify, buf, sizeof(buf)), "SUCCESS,FAILURE,DELAY");
    CHECK_STR(r.orcpt, "rfc822;user+x@example.com");
    smtp_rcpt_args_free(&r);

    CHECK(smtp_parse_rcpt("TO:<u@example.com> notify=never", &opts, false, &r, &err) == 0);
    CHECK(r.notify == SMTP_NOTIFY_NEVER);
    CHECK_STR(smtp_notify_string(r.notify, buf, sizeof(buf)), "NEVER");
    smtp_rcpt_args_free(&r);

    CHECK(smtp_parse_rcpt("TO:<postmaster>", &opts, false, &r, &err) == 0);
    CHECK(r.rcpt.flags & ADDR_F_NODOMAIN);
    smtp_rcpt_args_free(&r);

    CHECK(smtp_parse_rcpt("TO:<@hop.example:u@example.com>", &opts, false, &r, &err) == 0);
    CHECK_STR(r.rcpt.address, "u@example.com");
    CHECK(r.rcpt.flags & ADDR_F_ROUTE);
    smtp_rcpt_args_free(&r);

    CHECK(smtp_parse_rcpt("TO:<j\xc3\xb6rg@example.com> ORCPT=utf-8;j\xc3\xb6rg@example.com",
                          &opts, true, &r, &err) == 0);
    smtp_rcpt_args_free(&r);

    expect_rcpt_err("", false, 501, "5.5.4 Syntax: RCPT TO:<address>");
    expect_rcpt_err("FROM:<a@example.com>", false, 501, "5.5.4 Syntax: RCPT TO:<address>");
    expect_rcpt_err("TO:<>", false, 501, "5.1.3 Bad recipient address syntax");
    expect_rcpt_err("TO:<a@example.com", false, 501, "5.1.3 Bad recipient address syntax");
    expect_rcpt_err("TO:<a@exa mple.com>", false, 501, "5.1.3 Bad recipient address syntax");
    expect_rcpt_err("TO:<a@example.com> NOTIFY=NEVER,SUCCESS", false, 501,
                    "5.5.4 Error: Bad NOTIFY parameter syntax");
    expect_rcpt_err("TO:<a@example.com> NOTIFY=SUCCESS,SUCCESS", false, 501, NULL);
    expect_rcpt_err("TO:<a@example.com> NOTIFY=SUCCESS,", false, 501, NULL);
    expect_rcpt_err("TO:<a@example.com> NOTIFY=,SUCCESS", false, 501, NULL);
    expect_rcpt_err("TO:<a@example.com> NOTIFY=SOMETIMES", false, 501, NULL);
    expect_rcpt_err("TO:<a@example.com> NOTIFY", false, 501, NULL);
    expect_rcpt_err("TO:<a@example.com> NOTIFY=NEVER NOTIFY=NEVER", false, 501,
                    "5.5.4 Error: duplicate NOTIFY parameter");
    expect_rcpt_err("TO:<a@example.com> ORCPT=rfc822", false, 501, "5.5.4 Error: Bad ORCPT parameter syntax");
    expect_rcpt_err("TO:<a@example.com> ORCPT=;a@b", false, 501, NULL);
    expect_rcpt_err("TO:<a@example.com> ORCPT=rfc822;", false, 501, NULL);
    expect_rcpt_err("TO:<a@example.com> ORCPT=rfc822;a+4", false, 501, NULL);
    expect_rcpt_err("TO:<a@example.com> ORCPT=rfc822;a+0D+0A", false, 501, NULL);
    expect_rcpt_err("TO:<a@example.com> ORCPT=rfc822;a@b ORCPT=rfc822;a@b", false, 501, NULL);
    expect_rcpt_err("TO:<a@example.com> SIZE=10", false, 555, "5.5.4 Unsupported option: SIZE");
    expect_rcpt_err("TO:<j\xc3\xb6rg@example.com>", false, 553, NULL);
}

/* ---- xtext, HELO, BDAT ---- */

static void test_xtext(void)
{
    char *s = xtext_decode("abc+2Bdef+3D", 12, 100, false);
    CHECK_STR(s, "abc+def=");
    free(s);
    s = xtext_decode("a+2b", 4, 100, false);   /* lower-case hex is tolerated */
    CHECK_STR(s, "a+");
    free(s);
    CHECK(xtext_decode("a+", 2, 100, false) == NULL);
    CHECK(xtext_decode("a+2", 3, 100, false) == NULL);
    CHECK(xtext_decode("a+G0", 4, 100, false) == NULL);
    CHECK(xtext_decode("a b", 3, 100, false) == NULL);
    CHECK(xtext_decode("abcdef", 6, 5, false) == NULL);
    CHECK(xtext_decode("+7F", 3, 5, false) == NULL);
    CHECK(xtext_decode("\xc3\xa9", 2, 5, false) == NULL);
    s = xtext_decode("\xc3\xa9", 2, 5, true);
    CHECK_STR(s, "\xc3\xa9");
    free(s);
    CHECK(xtext_decode("\xc3", 1, 5, true) == NULL);
    s = xtext_decode("", 0, 5, false);
    CHECK_STR(s, "");
    free(s);
}

static void test_helo_bdat(void)
{
    char *h = smtp_parse_helo("client.example.com");
    CHECK_STR(h, "client.example.com");
    free(h);
    h = smtp_parse_helo("[192.0.2.1]  ");
    CHECK_STR(h, "[192.0.2.1]");
    free(h);
    CHECK(smtp_parse_helo("") == NULL);
    CHECK(smtp_parse_helo("two words") == NULL);
    CHECK(smtp_parse_helo("bad\x01") == NULL);
    CHECK(smtp_parse_helo("bad\xff") == NULL);
    char big[400];
    memset(big, 'h', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    CHECK(smtp_parse_helo(big) == NULL);

    long long n;
    bool last;
    CHECK(smtp_parse_bdat("100", &n, &last) == 0 && n == 100 && !last);
    CHECK(smtp_parse_bdat("0 LAST", &n, &last) == 0 && n == 0 && last);
    CHECK(smtp_parse_bdat("7 last", &n, &last) == 0 && n == 7 && last);
    CHECK(smtp_parse_bdat("", &n, &last) == -1);
    CHECK(smtp_parse_bdat("x", &n, &last) == -1);
    CHECK(smtp_parse_bdat("-1", &n, &last) == -1);
    CHECK(smtp_parse_bdat("10x", &n, &last) == -1);
    CHECK(smtp_parse_bdat("9999999999999999999999", &n, &last) == -1);
    CHECK(smtp_parse_bdat("5 X", &n, &last) == -2 && n == 5);
    CHECK(smtp_parse_bdat("5 LAST junk", &n, &last) == -2);
    CHECK(smtp_parse_bdat("5 LASTX", &n, &last) == -2);
}

/* ---- content decoder ---- */

struct decoded {
    char text[4096];
    size_t len;
    size_t consumed;
    bool done, bare_lf, bare_cr;
    unsigned long long size;
};

/* Decode DATA input in pieces of `step` bytes (0: all at once). */
static struct decoded decode(const char *in, size_t n, size_t step, bool after_crlf)
{
    struct decoded r;
    struct smtpd_content_decoder d;
    struct strbuf out = STRBUF_INIT(0);
    smtpd_content_decoder_init(&d, after_crlf);
    size_t pos = 0;
    while (pos < n && !d.done) {
        size_t chunk = step ? (n - pos < step ? n - pos : step) : n - pos;
        pos += smtpd_content_decode_data(&d, in + pos, chunk, &out);
    }
    memset(&r, 0, sizeof(r));
    r.len = out.len < sizeof(r.text) ? out.len : sizeof(r.text) - 1;
    if (out.len)
        memcpy(r.text, out.data, r.len);
    r.consumed = pos;
    r.done = d.done;
    r.bare_lf = d.saw_bare_lf;
    r.bare_cr = d.saw_bare_cr;
    r.size = d.size;
    sb_free(&out);
    return r;
}

/* Check content, end and bare-LF verdict for every way of splitting the input. */
static void expect_data(const char *in, const char *content, bool done, size_t consumed, bool bare_lf)
{
    size_t n = strlen(in);
    for (size_t step = 0; step <= n; step++) {
        struct decoded r = decode(in, n, step, true);
        bool ok = r.len == strlen(content) && memcmp(r.text, content, r.len) == 0
            && r.done == done && r.consumed == consumed && r.bare_lf == bare_lf;
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "  step %zu: input \"%s\" gave \"%.*s\" done=%d consumed=%zu bare=%d\n",
                    step, in, (int)r.len, r.text, r.done, r.consumed, r.bare_lf);
            return;
        }
    }
}

static void test_data_decoder(void)
{
    expect_data("Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\n\nbody\n", true, 23, false);
    expect_data(".\r\n", "", true, 3, false);
    expect_data("..leading dot\r\n.\r\n", ".leading dot\n", true, 18, false);
    expect_data("a\r\n..\r\n.\r\nMAIL FROM:<x@y>\r\n", "a\n.\n", true, 10, false);
    expect_data("x\r\n.\r\nRSET\r\n", "x\n", true, 6, false);
    expect_data("8bit \xc3\xa9\xff\r\n.\r\n", "8bit \xc3\xa9\xff\n", true, 13, false);
    /* smuggling: none of these end the data */
    expect_data("a\n.\nb\r\n.\r\n", "a\n.\nb\n", true, 10, true);          /* LF . LF */
    expect_data("a\n.\r\nb\r\n.\r\n", "a\n.\nb\n", true, 11, true);        /* LF . CR LF */
    expect_data("a\r.\rb\r\n.\r\n", "a\r.\rb\n", true, 10, false);         /* CR . CR */
    expect_data("a\r.\r\nb\r\n.\r\n", "a\r.\nb\n", true, 11, false);       /* CR . CR LF */
    expect_data("a\r\n.\nb\r\n.\r\n", "a\n.\nb\n", true, 11, true);        /* CR LF . LF */
    expect_data("a\r\n.\rb\r\n.\r\n", "a\n\rb\n", true, 11, false);        /* CR LF . CR (dot is stuffing) */
    expect_data("a\r\n.\r\r\n.\r\n", "a\n\r\n", true, 10, false);          /* CR LF . CR CR LF */
    expect_data("a\n.\n", "a\n.\n", false, 4, true);
    expect_data("a\r\r\n.\r\n", "a\r\n", true, 7, false);
    expect_data("\n.\r\n", "\n.\n", false, 4, true);
    /* a smuggled message stays content of the first */
    expect_data("one\r\n\n.\r\nMAIL FROM:<e@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nevil\r\n.\r\n",
                "one\n\n.\nMAIL FROM:<e@x>\nRCPT TO:<v@y>\nDATA\nevil\n", true, 56, true);
    /* after a DATA line that itself ended in a bare LF, ". CR LF" first is content */
    struct decoded r = decode(".\r\nx\r\n.\r\n", 9, 0, false);
    CHECK(r.done && r.len == 4 && memcmp(r.text, ".\nx\n", 4) == 0);
    /* size counts line ends as CR LF, without stuffing or the end marker */
    r = decode("ab\r\n..c\r\n.\r\n", 12, 0, true);
    CHECK(r.size == 8);
    /* NUL bytes are content */
    r = decode("a\0b\r\n.\r\n", 8, 0, true);
    CHECK(r.done && r.len == 4 && memcmp(r.text, "a\0b\n", 4) == 0);
    CHECK(!r.bare_cr);
    /* a CR that no LF follows is remembered for smtpd_forbid_bare_cr,
     * however the input is split */
    static const char *with_cr[] = { "a\r.\rb\r\n.\r\n", "x\r.\r\n.\r\n", "a\r\r\n.\r\n", "\r\r\n.\r\n" };
    for (size_t i = 0; i < sizeof(with_cr) / sizeof(with_cr[0]); i++)
        for (size_t step = 0; step <= strlen(with_cr[i]); step++) {
            r = decode(with_cr[i], strlen(with_cr[i]), step, true);
            CHECK(r.done && r.bare_cr && !r.bare_lf);
        }
    r = decode("a\r\nb\r\n.\r\n", 11, 1, true);
    CHECK(r.done && !r.bare_cr);
}

static void test_bdat_decoder(void)
{
    static const char in[] = "a\r\nb\nc\rd\r\n.\r\n\r";
    const char *want = "a\nb\nc\rd\n.\n\r";
    size_t n = sizeof(in) - 1;
    for (size_t step = 1; step <= n; step++) {
        struct smtpd_content_decoder d;
        struct strbuf out = STRBUF_INIT(0);
        smtpd_content_decoder_init(&d, true);
        for (size_t pos = 0; pos < n; pos += step)
            smtpd_content_decode_bdat(&d, in + pos, n - pos < step ? n - pos : step, &out);
        smtpd_content_finish_bdat(&d, &out);
        CHECK(out.len == strlen(want) && memcmp(out.data, want, out.len) == 0);
        CHECK(!d.done && d.saw_bare_cr);
        sb_free(&out);
    }
    /* CR LF split across chunks is no bare CR; a CR that ends the last chunk is */
    struct smtpd_content_decoder d;
    smtpd_content_decoder_init(&d, true);
    smtpd_content_decode_bdat(&d, "a\r", 2, NULL);
    smtpd_content_decode_bdat(&d, "\nb", 2, NULL);
    smtpd_content_finish_bdat(&d, NULL);
    CHECK(!d.saw_bare_cr && d.size == 4);
    smtpd_content_decode_bdat(&d, "c\r", 2, NULL);
    smtpd_content_finish_bdat(&d, NULL);
    CHECK(d.saw_bare_cr);
}

/* The decoders pass runs of plain bytes on whole: for random inputs made of
 * the bytes that matter, decoding byte by byte (every byte judged alone),
 * in odd pieces and all at once must agree on everything. */
static void test_decoder_runs(void)
{
    static const char alphabet[] = "ab.\r\n";
    unsigned seed = 12345;
    for (int round = 0; round < 3000; round++) {
        char in[48];
        size_t n = 1 + round % (sizeof(in) - 1);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        struct decoded one = decode(in, n, 1, round & 1), odd = decode(in, n, 5, round & 1),
                       all = decode(in, n, 0, round & 1);
        bool same = one.len == all.len && memcmp(one.text, all.text, one.len) == 0
            && one.len == odd.len && memcmp(one.text, odd.text, one.len) == 0
            && one.consumed == all.consumed && one.consumed == odd.consumed
            && one.done == all.done && one.done == odd.done
            && one.bare_lf == all.bare_lf && one.bare_cr == all.bare_cr && one.bare_cr == odd.bare_cr
            && one.size == all.size && one.size == odd.size;
        CHECK(same);
        struct smtpd_content_decoder d1, d2;
        struct strbuf o1 = STRBUF_INIT(0), o2 = STRBUF_INIT(0);
        smtpd_content_decoder_init(&d1, true);
        smtpd_content_decoder_init(&d2, true);
        for (size_t i = 0; i < n; i++)
            smtpd_content_decode_bdat(&d1, in + i, 1, &o1);
        smtpd_content_decode_bdat(&d2, in, n, &o2);
        smtpd_content_finish_bdat(&d1, &o1);
        smtpd_content_finish_bdat(&d2, &o2);
        CHECK(o1.len == o2.len && (o1.len == 0 || memcmp(o1.data, o2.data, o1.len) == 0)
              && d1.size == d2.size && d1.saw_bare_cr == d2.saw_bare_cr);
        sb_free(&o1);
        sb_free(&o2);
        if (!same)
            return;
    }
}

static void test_hostile_lines(void)
{
    /* a huge argument is bounded by the parsers, never overflows */
    size_t n = 200000;
    char *huge = malloc(n + 32);
    memcpy(huge, "FROM:<", 6);
    memset(huge + 6, 'a', n);
    memcpy(huge + 6 + n, "@example.com>", 14);
    struct smtp_mail_args m;
    struct smtp_parse_error err;
    CHECK(smtp_parse_mail(huge, &opts, &m, &err) == -1 && err.code == 501);
    memcpy(huge, "FROM:<a@example.com> ", 21);
    memset(huge + 21, 'X', n);
    huge[21 + n] = 0;
    CHECK(smtp_parse_mail(huge, &opts, &m, &err) == -1);
    CHECK(strlen(err.text) < sizeof(err.text));
    const char *arg;
    memset(huge, 'N', n);
    huge[n] = 0;
    CHECK(smtp_parse_verb(huge, n, &arg) == SMTP_UNKNOWN);
    free(huge);
    /* many parameters */
    struct strbuf many = STRBUF_INIT(0);
    sb_appends(&many, "FROM:<a@example.com>");
    for (int i = 0; i < 200; i++)
        sb_appends(&many, " BODY=7BIT");
    CHECK(smtp_parse_mail(sb_str(&many), &opts, &m, &err) == -1 && err.code == 501);
    sb_free(&many);
    CHECK(smtp_parse_mail("FROM:<a@example.com> \t SIZE=1 \t", &opts, &m, &err) == 0);
    smtp_mail_args_free(&m);
    CHECK(smtp_parse_mail("FROM:<\"unbalanced@example.com>", &opts, &m, &err) == -1);
    CHECK(smtp_parse_mail("FROM:<a@example.com> SIZE=1\xff", &opts, &m, &err) == -1);
    CHECK(smtp_parse_mail("FROM:<@:a@example.com>", &opts, &m, &err) == -1);
    CHECK(smtp_parse_mail("FROM:<a\\@example.com>", &opts, &m, &err) == -1);
}

int main(void)
{
    test_verbs();
    test_mail();
    test_rcpt();
    test_strict_rfc821();
    test_requiretls();
    test_xtext();
    test_helo_bdat();
    test_data_decoder();
    test_bdat_decoder();
    test_decoder_runs();
    test_hostile_lines();
    return check_summary();
}
