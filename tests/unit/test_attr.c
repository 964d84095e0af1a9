/* test_attr.c: unit tests of the internal IPC encoding: round trips of
 * every type, strictness of the reader, and hostile frames that must be
 * refused without a crash; the blocking helpers over a socketpair. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attr.h"
#include "check.h"
#include "strbuf.h"

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

/* Build a frame by hand: name, value length field, value, terminator. */
static size_t raw_frame(unsigned char *buf, const char *name, uint32_t vlen_field,
                        const char *value, size_t vlen, int term)
{
    size_t pos = 4, nlen = strlen(name);
    buf[pos++] = (unsigned char)nlen;
    memcpy(buf + pos, name, nlen);
    pos += nlen;
    put_u32(buf + pos, vlen_field);
    pos += 4;
    memcpy(buf + pos, value, vlen);
    pos += vlen;
    if (term >= 0)
        buf[pos++] = (unsigned char)term;
    put_u32(buf, (uint32_t)(pos - 4));
    return pos;
}

static int decode_str(const void *frame, size_t len, const char *name, const char **v)
{
    struct attr_reader r;
    if (attr_reader_init(&r, frame, len) < 0)
        return -1;
    if (attr_get_str(&r, name, v) < 0)
        return -1;
    return attr_reader_done(&r);
}

int main(void)
{
    struct strbuf out = STRBUF_INIT(0);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_str(&w, "sender", "a@example.org");
    attr_put_int(&w, "nrcpt", -42);
    attr_put_bytes(&w, "data", "x\0y\xff", 4);
    attr_put_str(&w, "empty", "");
    CHECK(attr_end(&w) == 0);
    CHECK(attr_frame_size(out.data, out.len, 1 << 20) == (ssize_t)out.len);
    CHECK(attr_frame_size(out.data, out.len - 1, 1 << 20) == 0);
    CHECK(attr_frame_size(out.data, 3, 1 << 20) == 0);
    CHECK(attr_frame_size(out.data, out.len, 10) == -1);

    struct attr_reader r;
    const char *s;
    const void *b;
    size_t blen;
    long long n;
    char name[80];
    CHECK(attr_reader_init(&r, out.data, out.len) == 0);
    CHECK_STR(attr_peek_name(&r, name, sizeof(name)), "sender");
    CHECK(attr_opt_str(&r, "other", &s) == 0);
    CHECK(attr_get_str(&r, "sender", &s) == 0);
    CHECK_STR(s, "a@example.org");
    CHECK(attr_get_int(&r, "nrcpt", -100, 100, &n) == 0 && n == -42);
    CHECK(attr_get_str(&r, "data", &s) == -1);        /* NUL inside: not a string */
    CHECK(attr_get_bytes(&r, "data", &b, &blen) == 0 && blen == 4 && memcmp(b, "x\0y\xff", 4) == 0);
    CHECK(attr_reader_done(&r) == -1);                /* "empty" is left over */
    CHECK(attr_opt_str(&r, "empty", &s) == 1 && *s == 0);
    CHECK(attr_reader_done(&r) == 0);
    CHECK(attr_get_str(&r, "more", &s) == -1);        /* missing */

    /* wrong order and range */
    CHECK(attr_reader_init(&r, out.data, out.len) == 0);
    CHECK(attr_get_str(&r, "nrcpt", &s) == -1);
    CHECK(attr_reader_init(&r, out.data, out.len) == 0);
    CHECK(attr_get_str(&r, "sender", &s) == 0);
    CHECK(attr_get_int(&r, "nrcpt", 0, 100, &n) == -1);

    /* bad names are refused by the writer */
    sb_reset(&out);
    attr_begin(&w, &out);
    attr_put_str(&w, "Bad-Name", "v");
    CHECK(attr_end(&w) == -1 && out.len == 0);
    char longname[100];
    memset(longname, 'a', 65);
    longname[65] = 0;
    attr_begin(&w, &out);
    attr_put_str(&w, longname, "v");
    CHECK(attr_end(&w) == -1);
    /* the writer respects the buffer limit */
    struct strbuf small = STRBUF_INIT(16);
    attr_begin(&w, &small);
    attr_put_str(&w, "name", "a value that does not fit");
    CHECK(attr_end(&w) == -1 && small.len == 0);

    /* hostile frames */
    unsigned char buf[256];
    size_t len = raw_frame(buf, "ok", 2, "hi", 2, 0);
    CHECK(decode_str(buf, len, "ok", &s) == 0 && strcmp(s, "hi") == 0);
    len = raw_frame(buf, "ok", 200, "hi", 2, 0);           /* value runs past the frame */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    len = raw_frame(buf, "ok", 0xffffffff, "hi", 2, 0);    /* huge length */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    len = raw_frame(buf, "ok", 2, "hi", 2, 'x');           /* missing 0 terminator */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    len = raw_frame(buf, "ok", 2, "hi", 2, -1);            /* truncated */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    len = raw_frame(buf, "o;", 2, "hi", 2, 0);             /* bad name byte */
    CHECK(decode_str(buf, len, "o;", &s) == -1);
    len = raw_frame(buf, "ok", 3, "h\0i", 3, 0);           /* NUL in a string */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    buf[4] = 0;                                            /* zero-length name */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    len = raw_frame(buf, "ok", 2, "hi", 2, 0);
    put_u32(buf, (uint32_t)(len - 3));                     /* header disagrees with length */
    CHECK(attr_reader_init(&r, buf, len) == -1);
    CHECK(attr_reader_init(&r, buf, 2) == -1);
    /* every truncation of a valid frame is refused, never read past */
    for (size_t cut = 0; cut < len; cut++) {
        unsigned char *copy = malloc(cut ? cut : 1);
        memcpy(copy, buf, cut);
        if (cut >= 4)
            put_u32(copy, (uint32_t)(cut - 4));
        CHECK(decode_str(copy, cut, "ok", &s) == -1);
        free(copy);
    }

    /* blocking helpers over a socketpair */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(attr_send_protocol(sv[0], "cleanup", 5) == 0);
    CHECK(attr_expect_protocol(sv[1], "cleanup", 1024, 5) == 0);
    CHECK(attr_send_protocol(sv[0], "qmgr", 5) == 0);
    CHECK(attr_expect_protocol(sv[1], "cleanup", 1024, 5) == -1);
    sb_reset(&out);
    attr_begin(&w, &out);
    attr_put_bytes(&w, "data", "0123456789", 10);
    attr_end(&w);
    CHECK(attr_write(sv[0], &out, 5) == 0);
    struct strbuf in = STRBUF_INIT(0);
    CHECK(attr_read(sv[1], &in, 8, 5) == -1 && errno == EMSGSIZE);   /* over the limit */
    CHECK(attr_write(sv[0], &out, 5) == 0);
    close(sv[0]);
    CHECK(attr_read(sv[1], &in, 1024, 5) == -1);   /* rest of the oversize frame: garbage */
    close(sv[1]);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(attr_write(sv[0], &out, 5) == 0);
    CHECK(attr_read(sv[1], &in, 1024, 5) == 0 && in.len == out.len);
    CHECK(attr_read(sv[1], &in, 1024, 1) == -1 && errno == ETIMEDOUT);
    close(sv[0]);
    CHECK(attr_read(sv[1], &in, 1024, 5) == -1 && errno == EPIPE);
    close(sv[1]);
    CHECK(unix_connect("/nonexistent/socket", 1) == -1);

    sb_free(&out);
    sb_free(&small);
    sb_free(&in);
    return check_summary();
}
