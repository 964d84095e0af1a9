/* test_attr.c: unit tests of the internal IPC encoding: round trips of
 * every type, strictness of the reader, and hostile frames that must be
 * refused without a crash; the blocking helpers over a socketpair and a
 * real UNIX socket (timeouts, EOF, oversize frames, a full backlog). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attr.h"
#include "check.h"
#include "strbuf.h"
#include "util.h"

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

/* Encode {n=text} and decode it with attr_get_int. */
static int int_of(const char *text, long long min, long long max, long long *v)
{
    struct strbuf out = STRBUF_INIT(0);
    struct attr_writer w;
    struct attr_reader r;
    attr_begin(&w, &out);
    attr_put_str(&w, "n", text);
    int rc = -1;
    if (attr_end(&w) == 0 && attr_reader_init(&r, out.data, out.len) == 0
        && attr_get_int(&r, "n", min, max, v) == 0 && attr_reader_done(&r) == 0)
        rc = 0;
    sb_free(&out);
    return rc;
}

static void test_round_trip(void)
{
    struct strbuf out = STRBUF_INIT(0);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_str(&w, "sender", "a@example.org");
    attr_put_int(&w, "nrcpt", -42);
    attr_put_bytes(&w, "data", "x\0y\xff", 4);
    attr_put_str(&w, "empty", "");
    attr_put_int(&w, "big", LLONG_MAX);
    attr_put_int(&w, "small", LLONG_MIN);
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
    CHECK(attr_peek_name(&r, name, 4) == NULL);              /* buffer too small */
    CHECK(attr_opt_str(&r, "other", &s) == 0);
    CHECK(attr_get_str(&r, "sender", &s) == 0);
    CHECK_STR(s, "a@example.org");
    CHECK(attr_get_int(&r, "nrcpt", -100, 100, &n) == 0 && n == -42);
    CHECK(attr_get_str(&r, "data", &s) == -1);        /* NUL inside: not a string */
    CHECK(attr_get_bytes(&r, "data", &b, &blen) == 0 && blen == 4 && memcmp(b, "x\0y\xff", 4) == 0);
    CHECK(attr_reader_done(&r) == -1);                /* "empty" is left over */
    CHECK(attr_opt_str(&r, "empty", &s) == 1 && *s == 0);
    CHECK(attr_get_int(&r, "big", LLONG_MIN, LLONG_MAX, &n) == 0 && n == LLONG_MAX);
    CHECK(attr_get_int(&r, "small", LLONG_MIN, LLONG_MAX, &n) == 0 && n == LLONG_MIN);
    CHECK(attr_reader_done(&r) == 0);
    CHECK(attr_peek_name(&r, name, sizeof(name)) == NULL);
    CHECK(attr_opt_str(&r, "more", &s) == 0);
    CHECK(attr_get_str(&r, "more", &s) == -1);        /* missing */
    CHECK(attr_get_bytes(&r, "more", &b, NULL) == -1);

    /* wrong order and range; a refused value is not consumed */
    CHECK(attr_reader_init(&r, out.data, out.len) == 0);
    CHECK(attr_get_str(&r, "nrcpt", &s) == -1);
    CHECK(attr_reader_init(&r, out.data, out.len) == 0);
    CHECK(attr_get_str(&r, "sender", &s) == 0);
    CHECK(attr_get_int(&r, "nrcpt", 0, 100, &n) == -1);
    CHECK(attr_get_int(&r, "nrcpt", -42, -42, &n) == 0 && n == -42);

    /* several frames in one buffer are framed one by one */
    size_t first = out.len;
    attr_begin(&w, &out);
    attr_put_str(&w, "protocol", "x");
    CHECK(attr_end(&w) == 0);
    CHECK(attr_frame_size(out.data, out.len, 1 << 20) == (ssize_t)first);
    ssize_t second = attr_frame_size(out.data + first, out.len - first, 1 << 20);
    CHECK(second > 0 && (size_t)second == out.len - first);
    CHECK(decode_str(out.data + first, (size_t)second, "protocol", &s) == 0 && strcmp(s, "x") == 0);
    sb_free(&out);
}

static void test_int_parsing(void)
{
    long long v;
    CHECK(int_of("0", 0, 10, &v) == 0 && v == 0);
    CHECK(int_of("-0", -1, 1, &v) == 0 && v == 0);
    CHECK(int_of("9223372036854775807", 0, LLONG_MAX, &v) == 0 && v == LLONG_MAX);
    CHECK(int_of("-9223372036854775808", LLONG_MIN, 0, &v) == 0 && v == LLONG_MIN);
    const char *bad[] = { "", "-", " 5", "5 ", "+5", "0x10", "1e3", "5.0", "--5", "9223372036854775808",
                          "-9223372036854775809", "99999999999999999999999", "1-", "\t1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (int_of(bad[i], LLONG_MIN, LLONG_MAX, &v) == 0)
            fprintf(stderr, "accepted integer \"%s\"\n", bad[i]);
        CHECK(int_of(bad[i], LLONG_MIN, LLONG_MAX, &v) == -1);
    }
    CHECK(int_of("11", 0, 10, &v) == -1);
    CHECK(int_of("-1", 0, 10, &v) == -1);
}

static void test_writer_refusals(void)
{
    struct strbuf out = STRBUF_INIT(0);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_str(&w, "Bad-Name", "v");
    CHECK(attr_end(&w) == -1 && out.len == 0);
    char longname[100];
    memset(longname, 'a', 65);
    longname[65] = 0;
    attr_begin(&w, &out);
    attr_put_str(&w, longname, "v");
    CHECK(attr_end(&w) == -1 && out.len == 0);
    longname[64] = 0;                                 /* 64 is the most allowed */
    attr_begin(&w, &out);
    attr_put_str(&w, longname, "v");
    CHECK(attr_end(&w) == 0);
    attr_begin(&w, &out);
    attr_put_str(&w, "", "v");
    CHECK(attr_end(&w) == -1);
    /* a failed frame leaves the frames before it intact */
    size_t before = out.len;
    attr_begin(&w, &out);
    attr_put_str(&w, "ok", "v");
    attr_put_str(&w, "no way", "v");
    attr_put_str(&w, "ok", "v");
    CHECK(attr_end(&w) == -1 && out.len == before);
    /* the writer respects the buffer limit */
    struct strbuf small = STRBUF_INIT(16);
    attr_begin(&w, &small);
    attr_put_str(&w, "name", "a value that does not fit");
    CHECK(attr_end(&w) == -1 && small.len == 0);
    sb_free(&out);
    sb_free(&small);
}

static void test_hostile_frames(void)
{
    unsigned char buf[512];
    struct attr_reader r;
    const char *s;
    size_t len = raw_frame(buf, "ok", 2, "hi", 2, 0);
    CHECK(decode_str(buf, len, "ok", &s) == 0 && strcmp(s, "hi") == 0);
    len = raw_frame(buf, "ok", 200, "hi", 2, 0);           /* value runs past the frame */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    len = raw_frame(buf, "ok", 3, "hi", 2, 0);             /* value eats the terminator */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    len = raw_frame(buf, "ok", 0xffffffff, "hi", 2, 0);    /* huge length */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    len = raw_frame(buf, "ok", 2, "hi", 2, 'x');           /* missing 0 terminator */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    len = raw_frame(buf, "ok", 2, "hi", 2, -1);            /* truncated */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    len = raw_frame(buf, "o;", 2, "hi", 2, 0);             /* bad name byte */
    CHECK(decode_str(buf, len, "o;", &s) == -1);
    len = raw_frame(buf, "OK", 2, "hi", 2, 0);             /* upper case is not allowed */
    CHECK(decode_str(buf, len, "OK", &s) == -1);
    char longname[70];
    memset(longname, 'a', 65);
    longname[65] = 0;
    len = raw_frame(buf, longname, 2, "hi", 2, 0);         /* name of 65 bytes */
    CHECK(decode_str(buf, len, longname, &s) == -1);
    len = raw_frame(buf, "ok", 3, "h\0i", 3, 0);           /* NUL in a string */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    buf[4] = 0;                                            /* zero-length name */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    len = raw_frame(buf, "ok", 2, "hi", 2, 0);
    buf[4] = 60;                                           /* name longer than the frame */
    CHECK(decode_str(buf, len, "ok", &s) == -1);
    len = raw_frame(buf, "ok", 2, "hi", 2, 0);
    put_u32(buf, (uint32_t)(len - 3));                     /* header disagrees with length */
    CHECK(attr_reader_init(&r, buf, len) == -1);
    CHECK(attr_reader_done(&r) == -1);
    CHECK(attr_reader_init(&r, buf, 2) == -1);
    CHECK(attr_reader_init(&r, NULL, 0) == -1);
    /* an empty frame is valid and has nothing in it */
    unsigned char empty[4] = { 0, 0, 0, 0 };
    CHECK(attr_reader_init(&r, empty, 4) == 0 && attr_reader_done(&r) == 0);
    CHECK(attr_get_str(&r, "ok", &s) == -1);
    /* leftover attribute */
    len = raw_frame(buf, "ok", 2, "hi", 2, 0);
    memcpy(buf + len, buf + 4, len - 4);
    put_u32(buf, (uint32_t)(2 * len - 8));
    CHECK(decode_str(buf, 2 * len - 4, "ok", &s) == -1);
    /* every truncation of a valid frame is refused, never read past */
    len = raw_frame(buf, "ok", 2, "hi", 2, 0);
    for (size_t cut = 0; cut < len; cut++) {
        unsigned char *copy = malloc(cut ? cut : 1);
        memcpy(copy, buf, cut);
        if (cut >= 4)
            put_u32(copy, (uint32_t)(cut - 4));
        CHECK(decode_str(copy, cut, "ok", &s) == -1);
        free(copy);
    }
}

/* Flip random bytes of a valid frame and walk it with every reader call:
 * whatever the result, no read outside the frame (ASan checks that). */
static void test_mutations(void)
{
    struct strbuf out = STRBUF_INIT(0);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_str(&w, "sender", "someone@example.org");
    attr_put_int(&w, "count", 7);
    attr_put_bytes(&w, "data", "\0\1\2\3", 4);
    attr_end(&w);
    unsigned seed = 12345;
    int rounds = 0;
    for (int round = 0; round < 20000; round++) {
        unsigned char *copy = malloc(out.len);
        memcpy(copy, out.data, out.len);
        for (int k = 0; k < 1 + round % 4; k++) {
            seed = seed * 1103515245u + 12345u;
            copy[4 + (seed >> 8) % (out.len - 4)] = (unsigned char)(seed >> 20);
        }
        struct attr_reader r;
        const char *s;
        const void *b;
        long long n;
        char name[ATTR_NAME_MAX + 1];
        if (attr_reader_init(&r, copy, out.len) == 0) {
            (void)attr_peek_name(&r, name, sizeof(name));
            (void)attr_opt_str(&r, "sender", &s);
            (void)attr_get_int(&r, "count", 0, 100, &n);
            (void)attr_get_bytes(&r, "data", &b, NULL);
            (void)attr_reader_done(&r);
        }
        free(copy);
        rounds++;
    }
    CHECK(rounds == 20000);
    sb_free(&out);
}

static void test_socketpair_helpers(void)
{
    struct strbuf out = STRBUF_INIT(0), in = STRBUF_INIT(0);
    struct attr_writer w;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(attr_send_protocol(sv[0], "cleanup", 5) == 0);
    CHECK(attr_expect_protocol(sv[1], "cleanup", 1024, 5) == 0);
    CHECK(attr_send_protocol(sv[0], "qmgr", 5) == 0);
    CHECK(attr_expect_protocol(sv[1], "cleanup", 1024, 5) == -1 && errno == EPROTO);
    CHECK(attr_send_protocol(sv[0], "Bad Name", 5) == 0);  /* values may be anything */
    CHECK(attr_expect_protocol(sv[1], "Bad Name", 1024, 5) == 0);
    attr_begin(&w, &out);
    attr_put_bytes(&w, "data", "0123456789", 10);
    attr_end(&w);
    CHECK(attr_write(sv[0], &out, 5) == 0);
    CHECK(attr_read(sv[1], &in, 8, 5) == -1 && errno == EMSGSIZE);   /* over the limit */
    CHECK(attr_write(sv[0], &out, 5) == 0);
    close(sv[0]);
    CHECK(attr_read(sv[1], &in, 1024, 5) == -1);   /* rest of the oversize frame: garbage */
    close(sv[1]);

    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(attr_write(sv[0], &out, 5) == 0);
    CHECK(attr_write(sv[0], &out, 5) == 0);
    CHECK(attr_read(sv[1], &in, 1024, 5) == 0 && in.len == out.len);
    CHECK(attr_read(sv[1], &in, 1024, 5) == 0 && memcmp(in.data, out.data, out.len) == 0);
    long long t0 = now_usec();
    CHECK(attr_read(sv[1], &in, 1024, 1) == -1 && errno == ETIMEDOUT);
    CHECK(now_usec() - t0 >= 900000 && now_usec() - t0 < 3000000);
    CHECK(write(sv[0], out.data, 6) == 6);                  /* EOF inside a frame */
    close(sv[0]);
    CHECK(attr_read(sv[1], &in, 1024, 5) == -1 && errno == EPIPE);
    CHECK(attr_read(sv[1], &in, 1024, 5) == -1 && errno == EPIPE);   /* and at a boundary */
    close(sv[1]);

    /* a peer that never reads: the write times out instead of hanging */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct strbuf huge = STRBUF_INIT(0);
    attr_begin(&w, &huge);
    char *blob = calloc(1, 8 << 20);
    attr_put_bytes(&w, "data", blob, 8 << 20);
    CHECK(attr_end(&w) == 0);
    t0 = now_usec();
    CHECK(attr_write(sv[0], &huge, 1) == -1 && errno == ETIMEDOUT);
    CHECK(now_usec() - t0 < 3000000);
    close(sv[1]);
    CHECK(attr_write(sv[0], &huge, 1) == -1 && errno == EPIPE);   /* no SIGPIPE */
    close(sv[0]);
    free(blob);
    sb_free(&huge);
    sb_free(&out);
    sb_free(&in);
}

/* A frame far larger than the socket buffer, written by another process
 * while this one reads: partial reads and writes on both sides. */
static void test_large_frame(void)
{
    size_t big = 3 << 20;
    struct strbuf out = STRBUF_INIT(0), in = STRBUF_INIT(0);
    struct attr_writer w;
    char *blob = malloc(big);
    for (size_t i = 0; i < big; i++)
        blob[i] = (char)(i * 7 + (i >> 9));
    attr_begin(&w, &out);
    attr_put_str(&w, "name", "value");
    attr_put_bytes(&w, "data", blob, big);
    CHECK(attr_end(&w) == 0);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[1]);
        _exit(attr_write(sv[0], &out, 10) == 0 ? 0 : 1);
    }
    close(sv[0]);
    CHECK(attr_read(sv[1], &in, big + 100, 10) == 0);
    struct attr_reader r;
    const char *s;
    const void *b;
    size_t blen = 0;
    CHECK(attr_reader_init(&r, in.data, in.len) == 0 && attr_get_str(&r, "name", &s) == 0
          && attr_get_bytes(&r, "data", &b, &blen) == 0 && attr_reader_done(&r) == 0);
    CHECK(blen == big && memcmp(b, blob, big) == 0);
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(sv[1]);
    free(blob);
    sb_free(&out);
    sb_free(&in);
}

static int listen_unix(const char *path, int backlog)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    str_copy(sun.sun_path, sizeof(sun.sun_path), path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, backlog) < 0)
        return -1;
    return fd;
}

static void test_unix_connect(void)
{
    char dir[] = "/tmp/tern-test-attr-XXXXXX";
    char path[128];
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    snprintf(path, sizeof(path), "%s/sock", dir);
    CHECK(unix_connect(path, 1) == -1 && (errno == ENOENT || errno == ECONNREFUSED));
    CHECK(unix_connect("/nonexistent/socket", 1) == -1);
    char longpath[300];
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = 0;
    CHECK(unix_connect(longpath, 1) == -1 && errno == ENAMETOOLONG);

    int lfd = listen_unix(path, 0);
    CHECK(lfd >= 0);
    int c = unix_connect(path, 2);
    CHECK(c >= 0);
    int s = accept(lfd, NULL, NULL);
    CHECK(s >= 0);
    CHECK(attr_send_protocol(s, "qmgr", 2) == 0);
    CHECK(attr_expect_protocol(c, "qmgr", 1024, 2) == 0);
    close(s);
    close(c);

    /* Nobody accepts and the backlog is full: the connect gives up in time. */
    int held[4], nheld = 0, timed_out = 0;
    long long t0 = now_usec();
    for (int i = 0; i < 4; i++) {
        int fd = unix_connect(path, 1);
        if (fd >= 0) {
            held[nheld++] = fd;
        } else {
            timed_out = errno == ETIMEDOUT;
            break;
        }
    }
    CHECK(timed_out);
    CHECK(now_usec() - t0 < 4000000);
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    close(lfd);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);   /* attr_write must not raise it */
    test_round_trip();
    test_int_parsing();
    test_writer_refusals();
    test_hostile_frames();
    test_mutations();
    test_socketpair_helpers();
    test_large_frame();
    test_unix_connect();
    return check_summary();
}
