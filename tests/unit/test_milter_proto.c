/* test_milter_proto.c: unit tests of the milter packet codec: framing
 * limits, the commands we send, and the decoding and validation of every
 * reply and modification request a filter may send; and of the message the
 * filters edit, read from its spool file and rendered in pieces. */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "milter.h"
#include "milter_proto.h"
#include "strbuf.h"
#include "util.h"

/* Build a reply packet (command byte + payload) from a literal. */
static int decode(const char *pkt, size_t len, struct milter_reply *r)
{
    const char *why = NULL;
    return milter_reply_decode((const unsigned char *)pkt, len, r, &why);
}

static void test_framing(void)
{
    struct strbuf b = STRBUF_INIT(0);
    CHECK(milter_put_optneg(&b, 6, 0x1FF, 0x1FFFFF) == 0);
    CHECK(b.len == 17);
    CHECK(memcmp(b.data, "\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff", 17) == 0);
    CHECK(milter_packet_size((unsigned char *)b.data, b.len, 100) == 17);
    CHECK(milter_packet_size((unsigned char *)b.data, 16, 100) == 0);
    CHECK(milter_packet_size((unsigned char *)b.data, 3, 100) == 0);
    CHECK(milter_packet_size((unsigned char *)"\0\0\0\0", 4, 100) == -1);
    CHECK(milter_packet_size((unsigned char *)"\0\0\1\0", 4, 100) == -1);
    CHECK(milter_packet_size((unsigned char *)"\xff\xff\xff\xff", 4, MILTER_PACKET_LIMIT) == -1);

    sb_reset(&b);
    const char *names[] = { "j", "{client_addr}", "{empty}", "_" };
    const char *values[] = { "mx.example", "192.0.2.1", "", NULL };
    CHECK(milter_put_macros(&b, 'C', names, values, 4) == 0);
    static const char want[] = "\0\0\0\x27" "DCj\0mx.example\0{client_addr}\0" "192.0.2.1\0";
    CHECK(b.len == sizeof(want) - 1);
    CHECK(memcmp(b.data, want, b.len) == 0);

    sb_reset(&b);
    CHECK(milter_put_connect(&b, "host.example", '4', 2525, "192.0.2.1") == 0);
    static const char cw[] = "\0\0\0\x1b" "Chost.example\0" "4\x09\xdd" "192.0.2.1\0";
    CHECK(b.len == sizeof(cw) - 1 && memcmp(b.data, cw, b.len) == 0);
    sb_reset(&b);
    CHECK(milter_put_connect(&b, "localhost", 'U', 0, NULL) == 0);
    CHECK(b.len == 4 + 1 + 10 + 1);

    sb_reset(&b);
    const char *argv[] = { "<a@example.org>", "SIZE=100" };
    CHECK(milter_put_argv(&b, SMFIC_MAIL, argv, 2) == 0);
    CHECK(b.len == 4 + 1 + 16 + 9 && b.data[4] == 'M');

    /* a full buffer leaves it unchanged */
    struct strbuf small = STRBUF_INIT(10);
    CHECK(milter_put_optneg(&small, 6, 0, 0) == -1);
    CHECK(small.len == 0);
    sb_free(&small);
    sb_free(&b);
}

static void test_optneg(void)
{
    struct milter_optneg o;
    const char *why = NULL;
    static const unsigned char plain[] = { 0,0,0,6, 0,0,0,0x11, 0,0,0x04,0x00 };
    CHECK(milter_optneg_decode(plain, sizeof(plain), &o, &why) == 0);
    CHECK(o.version == 6 && o.actions == 0x11 && o.protocol == 0x400);
    CHECK(o.macros[MILTER_STAGE_CONNECT] == NULL);

    static const unsigned char lists[] = { 0,0,0,6, 0,0,1,0xff, 0,0,0,0,
        0,0,0,0, 'j',' ','{','d','a','e','m','o','n','_','n','a','m','e','}',0,
        0,0,0,5, 'i',0 };
    CHECK(milter_optneg_decode(lists, sizeof(lists), &o, &why) == 0);
    CHECK_STR(o.macros[MILTER_STAGE_CONNECT], "j {daemon_name}");
    CHECK_STR(o.macros[MILTER_STAGE_EOM], "i");

    CHECK(milter_optneg_decode(plain, 11, &o, &why) == -1);
    static const unsigned char badstage[] = { 0,0,0,6, 0,0,0,0, 0,0,0,0, 0,0,0,9, 'i',0 };
    CHECK(milter_optneg_decode(badstage, sizeof(badstage), &o, &why) == -1);
    static const unsigned char unterminated[] = { 0,0,0,6, 0,0,0,0, 0,0,0,0, 0,0,0,1, 'i' };
    CHECK(milter_optneg_decode(unterminated, sizeof(unterminated), &o, &why) == -1);
    static const unsigned char shortstage[] = { 0,0,0,6, 0,0,0,0, 0,0,0,0, 0,0 };
    CHECK(milter_optneg_decode(shortstage, sizeof(shortstage), &o, &why) == -1);
}

static void test_replies(void)
{
    struct milter_reply r;
    CHECK(decode("c", 1, &r) == 0 && r.cmd == SMFIR_CONTINUE);
    CHECK(decode("a", 1, &r) == 0 && r.cmd == SMFIR_ACCEPT);
    CHECK(decode("r", 1, &r) == 0 && r.cmd == SMFIR_REJECT);
    CHECK(decode("t", 1, &r) == 0 && r.cmd == SMFIR_TEMPFAIL);
    CHECK(decode("d", 1, &r) == 0 && r.cmd == SMFIR_DISCARD);
    CHECK(decode("p", 1, &r) == 0 && r.cmd == SMFIR_PROGRESS);
    CHECK(decode("s", 1, &r) == 0 && r.cmd == SMFIR_SKIP);
    CHECK(decode("cx", 2, &r) == -1);           /* trailing data */
    CHECK(decode("f", 1, &r) == -1);            /* CONN_FAIL: not implemented */
    CHECK(decode("Z", 1, &r) == -1);
    CHECK(decode("", 0, &r) == -1);

    CHECK(decode("y550 5.7.1 no\0", 14, &r) == 0 && strcmp(r.text, "550 5.7.1 no") == 0);
    CHECK(decode("y550 5.7.1 no", 13, &r) == -1);
    CHECK(decode("y550\0x\0", 7, &r) == -1);
    CHECK(decode("qspam\0", 6, &r) == 0 && strcmp(r.text, "spam") == 0);
    CHECK(decode("q", 1, &r) == -1);

    CHECK(decode("hX-A\0one\0", 9, &r) == 0 && strcmp(r.name, "X-A") == 0
          && strcmp(r.value, "one") == 0);
    CHECK(decode("hX-A\0one", 8, &r) == -1);
    CHECK(decode("hX A\0one\0", 9, &r) == -1);         /* space in name */
    CHECK(decode("hX:A\0one\0", 9, &r) == -1);         /* colon in name */
    CHECK(decode("h\0one\0", 6, &r) == -1);            /* empty name */
    CHECK(decode("hX-A\0a\nb\0", 9, &r) == -1);        /* unfolded line end */
    CHECK(decode("hX-A\0a\n\tb\0", 10, &r) == 0);      /* folded */
    CHECK(decode("hX-A\0a\r\n b\0", 11, &r) == 0);
    CHECK(decode("hX-A\0a\rb\0", 9, &r) == -1);        /* bare CR */

    CHECK(decode("i\0\0\0\x02X-B\0v\0", 11, &r) == 0 && r.cmd == SMFIR_INSHEADER
          && r.index == 2 && strcmp(r.name, "X-B") == 0);
    CHECK(decode("m\0\0\0\x01Subject\0\0", 14, &r) == 0 && r.cmd == SMFIR_CHGHEADER
          && r.index == 1 && r.value[0] == 0);
    CHECK(decode("m\0\0\0", 4, &r) == -1);

    CHECK(decode("+<x@example.org>\0", 17, &r) == 0 && strcmp(r.text, "<x@example.org>") == 0);
    CHECK(decode("+\0", 2, &r) == -1);
    CHECK(decode("-<x@example.org>\0", 17, &r) == 0 && r.cmd == SMFIR_DELRCPT);
    CHECK(decode("-a\nb\0", 5, &r) == -1);
    CHECK(decode("2<x@example.org>\0NOTIFY=NEVER\0", 30, &r) == 0
          && strcmp(r.args, "NOTIFY=NEVER") == 0);
    CHECK(decode("2<x@example.org>\0", 17, &r) == 0 && r.args == NULL);
    CHECK(decode("e<s@example.org>\0", 17, &r) == 0 && r.args == NULL);
    CHECK(decode("e<>\0RET=HDRS\0", 13, &r) == 0 && strcmp(r.args, "RET=HDRS") == 0);
    CHECK(decode("e<>\0RET=HDRS\0x", 14, &r) == -1);
    CHECK(decode("bnew body\r\n", 11, &r) == 0 && r.body_len == 10);
    CHECK(decode("b", 1, &r) == 0 && r.body_len == 0);

    CHECK(milter_reply_is_edit('h') && milter_reply_is_edit('b') && milter_reply_is_edit('q'));
    CHECK(!milter_reply_is_edit('c') && !milter_reply_is_edit('y') && !milter_reply_is_edit(0));
}

static void test_replycode(void)
{
    struct strbuf t = STRBUF_INIT(4096);
    int code;
    CHECK(milter_replycode_parse("550 5.7.1 Go away", &code, &t) == 0);
    CHECK(code == 550);
    CHECK_STR(sb_str(&t), "5.7.1 Go away");
    CHECK(milter_replycode_parse("451-4.7.1 first\r\n451 4.7.1 100%% sure", &code, &t) == 0);
    CHECK(code == 451);
    CHECK_STR(sb_str(&t), "4.7.1 first\n4.7.1 100% sure");
    CHECK(milter_replycode_parse("550 50% off", &code, &t) == 0);
    CHECK_STR(sb_str(&t), "50 off");
    CHECK(milter_replycode_parse("250 2.0.0 ok", &code, &t) == -1);
    CHECK(milter_replycode_parse("550-5.7.1 a\r\n451 4.7.1 b", &code, &t) == -1);
    CHECK(milter_replycode_parse("550-5.7.1 a", &code, &t) == -1);
    CHECK(milter_replycode_parse("550 5.7.1 a\r\n550 5.7.1 b", &code, &t) == -1);
    CHECK(milter_replycode_parse("550 4.7.1 mismatch", &code, &t) == -1);
    CHECK(milter_replycode_parse("55", &code, &t) == -1);
    CHECK(milter_replycode_parse("550x5.7.1", &code, &t) == -1);
    CHECK(milter_replycode_parse("550 a\nb", &code, &t) == -1);
    CHECK(milter_replycode_parse("", &code, &t) == -1);
    sb_free(&t);
}

/* The content as a file, the way smtpd and pickup spool it. */
static int content_fd(const char *data, size_t len)
{
    int fd = memfd_create("content", MFD_CLOEXEC);
    CHECK(fd >= 0 && write_all(fd, data, len) == (ssize_t)len);
    return fd;
}

static void parse(struct milter_msg *m, const char *data, size_t len, size_t header_limit)
{
    CHECK(milter_msg_parse(m, content_fd(data, len), (off_t)len, header_limit, 1 << 24) == 0);
}

static int to_strbuf(const char *data, size_t len, void *arg)
{
    return sb_append(arg, data, len);
}

static void render(const struct milter_msg *m, struct strbuf *out)
{
    sb_reset(out);
    CHECK(milter_msg_render(m, to_strbuf, out) == 0);
    CHECK(milter_msg_size(m) == (off_t)out->len);
}

static void body_is(const struct milter_msg *m, const char *want)
{
    char buf[256];
    ssize_t n = milter_msg_body_read(m, 0, buf, sizeof(buf));
    CHECK(n == (ssize_t)strlen(want) && m->body_len == n);
    CHECK(n > 0 && memcmp(buf, want, (size_t)n) == 0);
}

static void test_msg(void)
{
    static const char text[] = "Subject: one\nX-A: a1\n\tfolded\nX-B: b\nx-a: a2\n\nbody\n";
    struct milter_msg m;
    struct strbuf out = STRBUF_INIT(0);
    parse(&m, text, sizeof(text) - 1, 1 << 20);
    CHECK(m.nhdrs == 4 && m.blank_line);
    CHECK_STR(m.hdrs[1].value, " a1\n\tfolded");
    body_is(&m, "body\n");
    render(&m, &out);
    CHECK_STR(sb_str(&out), text);              /* unchanged: byte for byte */

    CHECK(milter_msg_change_header(&m, 2, "X-A", "second", false) == 0);   /* the 2nd X-A */
    CHECK(milter_msg_change_header(&m, 0, "X-B", "", false) == 0);         /* 0 is 1; delete */
    CHECK(milter_msg_change_header(&m, 1, "X-None", "", false) == 0);      /* nothing to delete */
    CHECK(milter_msg_change_header(&m, 3, "X-New", "v", false) == 0);      /* absent: added */
    CHECK(milter_msg_insert_header(&m, 0, "X-Top", "t", false) == 0);
    CHECK(milter_msg_insert_header(&m, 99, "X-End", "e", true) == 0);      /* past the end */
    CHECK(milter_msg_add_header(&m, "X-Fold", "l1\r\n\tl2", false) == 0);
    render(&m, &out);
    static const char edited[] = "X-Top: t\nSubject: one\nX-A: a1\n\tfolded\nx-a: second\n"
        "X-New: v\nX-End:e\nX-Fold: l1\n\tl2\n\nbody\n";
    CHECK_STR(sb_str(&out), edited);
    /* in pieces of any size, the same bytes */
    for (size_t piece = 1; piece < 12; piece++) {
        struct milter_render r = MILTER_RENDER_INIT;
        char buf[16];
        size_t len;
        sb_reset(&out);
        while (milter_msg_render_next(&m, &r, buf, piece, &len) == 0 && len > 0) {
            CHECK(len <= piece);
            sb_append(&out, buf, len);
        }
        CHECK_STR(sb_str(&out), edited);
    }
    /* a replacement body comes from its own file */
    milter_msg_set_body(&m, content_fd("new\n", 4), 4);
    body_is(&m, "new\n");
    milter_msg_set_body(&m, -1, 0);
    render(&m, &out);
    CHECK(out.len > 0 && out.data[out.len - 1] == '\n' && out.data[out.len - 2] == '\n');
    milter_msg_free(&m);

    /* no empty line: the body starts at the first line that is no header */
    parse(&m, "A: 1\nnot a header\n", 18, 1 << 20);
    CHECK(m.nhdrs == 1 && !m.blank_line);
    body_is(&m, "not a header\n");
    render(&m, &out);
    CHECK_STR(sb_str(&out), "A: 1\nnot a header\n");
    milter_msg_free(&m);
    /* a NUL ends the headers: values travel as C strings */
    parse(&m, "A: 1\nB: x\0y\n\nb\n", 14, 1 << 20);
    CHECK(m.nhdrs == 1 && !m.blank_line && m.body_len == 9);
    render(&m, &out);
    CHECK(out.len == 14 && memcmp(out.data, "A: 1\nB: x\0y\n\nb\n", 14) == 0);
    milter_msg_free(&m);
    parse(&m, "", 0, 1 << 20);
    render(&m, &out);
    CHECK(out.len == 0);
    milter_msg_free(&m);
    /* only the header section up to the limit is read: a header cut by it
     * starts the body, and the message renders as it came */
    static const char cut[] = "A: 1\nB: 22222\n\nbody\n";
    parse(&m, cut, sizeof(cut) - 1, 8);
    CHECK(m.nhdrs == 1 && !m.blank_line && m.body_len == (off_t)sizeof(cut) - 1 - 5);
    render(&m, &out);
    CHECK_STR(sb_str(&out), cut);
    milter_msg_free(&m);
    /* a file shorter than it should be is a read error, not a short message */
    CHECK(milter_msg_parse(&m, content_fd("A: 1\n\nbody\n", 11), 50, 1 << 20, 1 << 20) == -1);
    milter_msg_free(&m);
    CHECK(milter_msg_parse(&m, content_fd("A: 1\n\nbody\n", 11), 50, 8, 1 << 20) == 0);
    struct strbuf lost = STRBUF_INIT(0);
    CHECK(milter_msg_render(&m, to_strbuf, &lost) == -1);
    sb_free(&lost);
    milter_msg_free(&m);

    /* a header of many folds is parsed in linear time */
    struct strbuf big = STRBUF_INIT(0);
    sb_appends(&big, "X-Long: start\n");
    for (int i = 0; i < 200000; i++)
        sb_appends(&big, " x\n");
    sb_appends(&big, "\nbody\n");
    parse(&m, big.data, big.len, 1 << 24);
    CHECK(m.nhdrs == 1 && strlen(m.hdrs[0].value) == 6 + 200000 * 3);
    render(&m, &out);
    CHECK(out.len == big.len && memcmp(out.data, big.data, big.len) == 0);
    milter_msg_free(&m);
    sb_free(&big);
    sb_free(&out);
}

int main(void)
{
    test_msg();
    test_framing();
    test_optneg();
    test_replies();
    test_replycode();
    return check_summary();
}
