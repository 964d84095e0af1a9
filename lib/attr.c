/* attr.c: the framed attribute encoding of every internal connection (see
 * attr.h for the wire format). The reader is strict and bounded: a frame is
 * taken apart only after its whole length has arrived and been checked. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "strbuf.h"
#include "util.h"

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int attr_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > ATTR_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

void attr_begin(struct attr_writer *w, struct strbuf *out)
{
    static const unsigned char zero[4];
    w->out = out;
    w->start = out->len;
    w->failed = sb_append(out, zero, 4) < 0;
}

void attr_put_bytes(struct attr_writer *w, const char *name, const void *v, size_t n)
{
    size_t nlen = strlen(name);
    unsigned char hdr[4];
    if (w->failed || !attr_name_ok(name, nlen) || n > UINT32_MAX - 1) {
        w->failed = 1;
        return;
    }
    unsigned char nl = (unsigned char)nlen;
    put_u32(hdr, (uint32_t)n);
    size_t before = w->out->len;
    if (sb_append(w->out, &nl, 1) < 0 || sb_append(w->out, name, nlen) < 0
        || sb_append(w->out, hdr, 4) < 0 || sb_append(w->out, v, n) < 0
        || sb_appendc(w->out, 0) < 0) {
        sb_truncate(w->out, before);
        w->failed = 1;
    }
}

void attr_put_str(struct attr_writer *w, const char *name, const char *value)
{
    attr_put_bytes(w, name, value, strlen(value));
}

void attr_put_int(struct attr_writer *w, const char *name, long long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", v);
    attr_put_str(w, name, buf);
}

int attr_end(struct attr_writer *w)
{
    if (w->failed) {
        sb_truncate(w->out, w->start);
        return -1;
    }
    size_t payload = w->out->len - w->start - 4;
    if (payload > UINT32_MAX) {
        sb_truncate(w->out, w->start);
        return -1;
    }
    put_u32((unsigned char *)w->out->data + w->start, (uint32_t)payload);
    return 0;
}

ssize_t attr_frame_size(const void *buf, size_t avail, size_t limit)
{
    if (avail < 4)
        return 0;
    uint32_t len = get_u32(buf);
    if (len > limit)
        return -1;
    return avail >= (size_t)len + 4 ? (ssize_t)len + 4 : 0;
}

int attr_reader_init(struct attr_reader *r, const void *frame, size_t framelen)
{
    r->error = NULL;
    r->pos = 0;
    if (framelen < 4 || get_u32(frame) != framelen - 4) {
        r->p = NULL;
        r->len = 0;
        r->error = "frame length mismatch";
        return -1;
    }
    r->p = (const unsigned char *)frame + 4;
    r->len = framelen - 4;
    return 0;
}

/* Decode the attribute at r->pos without consuming it. */
static int attr_peek(struct attr_reader *r, const char **name, size_t *nlen,
                     const unsigned char **value, size_t *vlen, size_t *next)
{
    size_t pos = r->pos;
    if (pos >= r->len)
        return 0;
    size_t nl = r->p[pos++];
    if (nl == 0 || nl > ATTR_NAME_MAX || r->len - pos < nl + 4) {
        r->error = "truncated or bad attribute name";
        return -1;
    }
    if (!attr_name_ok((const char *)r->p + pos, nl)) {
        r->error = "bad attribute name";
        return -1;
    }
    *name = (const char *)r->p + pos;
    *nlen = nl;
    pos += nl;
    uint32_t vl = get_u32(r->p + pos);
    pos += 4;
    if (vl > r->len - pos || r->len - pos - vl < 1 || r->p[pos + vl] != 0) {
        r->error = "truncated attribute value";
        return -1;
    }
    *value = r->p + pos;
    *vlen = vl;
    *next = pos + vl + 1;
    return 1;
}

int attr_get_bytes(struct attr_reader *r, const char *name, const void **value, size_t *len)
{
    const char *n;
    size_t nl, vl, next;
    const unsigned char *v;
    int rc = attr_peek(r, &n, &nl, &v, &vl, &next);
    if (rc <= 0 || nl != strlen(name) || memcmp(n, name, nl) != 0) {
        if (rc == 0)
            r->error = "missing attribute";
        else if (rc > 0)
            r->error = "unexpected attribute";
        return -1;
    }
    *value = v;
    if (len)
        *len = vl;
    r->pos = next;
    return 0;
}

int attr_get_str(struct attr_reader *r, const char *name, const char **value)
{
    const void *v;
    size_t len, saved = r->pos;
    if (attr_get_bytes(r, name, &v, &len) < 0)
        return -1;
    if (memchr(v, 0, len)) {
        r->pos = saved;           /* a refused attribute is not consumed */
        r->error = "NUL byte in string attribute";
        return -1;
    }
    *value = v;
    return 0;
}

int attr_get_int(struct attr_reader *r, const char *name, long long min, long long max,
                 long long *value)
{
    const char *s;
    if (attr_get_str(r, name, &s) < 0)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max
        || (*s != '-' && (*s < '0' || *s > '9'))) {
        r->error = "bad integer attribute";
        return -1;
    }
    *value = v;
    return 0;
}

int attr_opt_str(struct attr_reader *r, const char *name, const char **value)
{
    const char *n;
    size_t nl, vl, next;
    const unsigned char *v;
    int rc = attr_peek(r, &n, &nl, &v, &vl, &next);
    if (rc <= 0)
        return rc;
    if (nl != strlen(name) || memcmp(n, name, nl) != 0)
        return 0;
    return attr_get_str(r, name, value) < 0 ? -1 : 1;
}

const char *attr_peek_name(struct attr_reader *r, char *buf, size_t bufsz)
{
    const char *n;
    size_t nl, vl, next;
    const unsigned char *v;
    if (attr_peek(r, &n, &nl, &v, &vl, &next) <= 0 || nl + 1 > bufsz)
        return NULL;
    memcpy(buf, n, nl);
    buf[nl] = 0;
    return buf;
}

int attr_reader_done(struct attr_reader *r)
{
    if (r->pos != r->len) {
        r->error = "extra attributes";
        return -1;
    }
    return 0;
}

/* Wait until fd is ready for events or the deadline (ms since epoch; 0 = none). */
static int attr_wait(int fd, short events, long long deadline_ms)
{
    for (;;) {
        int wait = -1;
        if (deadline_ms) {
            long long left = deadline_ms - now_usec() / 1000;
            if (left <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            wait = left > 1000000 ? 1000000 : (int)left;
        }
        struct pollfd pfd = { .fd = fd, .events = events };
        int rc = poll(&pfd, 1, wait);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

static long long attr_deadline(int timeout)
{
    return timeout > 0 ? now_usec() / 1000 + (long long)timeout * 1000 : 0;
}

int attr_write(int fd, const struct strbuf *frames, int timeout)
{
    long long deadline = attr_deadline(timeout);
    size_t off = 0;
    while (off < frames->len) {
        if (attr_wait(fd, POLLOUT, deadline) < 0)
            return -1;
        ssize_t n = send(fd, frames->data + off, frames->len - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            if (errno == ENOTSOCK)
                n = write(fd, frames->data + off, frames->len - off);
            if (n < 0)
                return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

/* Read exactly n more bytes into buf. */
static int attr_read_n(int fd, struct strbuf *buf, size_t n, long long deadline)
{
    char chunk[8192];
    while (n > 0) {
        if (attr_wait(fd, POLLIN, deadline) < 0)
            return -1;
        ssize_t got = read(fd, chunk, n < sizeof(chunk) ? n : sizeof(chunk));
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        if (got == 0) {
            errno = EPIPE;
            return -1;
        }
        if (sb_append(buf, chunk, (size_t)got) < 0) {
            errno = EMSGSIZE;
            return -1;
        }
        n -= (size_t)got;
    }
    return 0;
}

int attr_read(int fd, struct strbuf *buf, size_t limit, int timeout)
{
    long long deadline = attr_deadline(timeout);
    sb_reset(buf);
    if (attr_read_n(fd, buf, 4, deadline) < 0)
        return -1;
    uint32_t len = get_u32((const unsigned char *)buf->data);
    if (len > limit) {
        errno = EMSGSIZE;
        return -1;
    }
    return attr_read_n(fd, buf, len, deadline);
}

int attr_send_protocol(int fd, const char *name, int timeout)
{
    struct strbuf out = STRBUF_INIT(1024);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_str(&w, "protocol", name);
    int rc = attr_end(&w) < 0 ? -1 : attr_write(fd, &out, timeout);
    sb_free(&out);
    return rc;
}

int attr_expect_protocol(int fd, const char *name, size_t limit, int timeout)
{
    struct strbuf in = STRBUF_INIT(limit + 4);
    struct attr_reader r;
    const char *got;
    int rc = -1;
    if (attr_read(fd, &in, limit, timeout) == 0
        && attr_reader_init(&r, in.data, in.len) == 0
        && attr_get_str(&r, "protocol", &got) == 0 && attr_reader_done(&r) == 0) {
        rc = strcmp(got, name) == 0 ? 0 : -1;
        if (rc < 0)
            errno = EPROTO;
    } else if (errno == 0) {
        errno = EPROTO;
    }
    sb_free(&in);
    return rc;
}

int unix_connect(const char *path, int timeout)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (str_copy(sun.sun_path, sizeof(sun.sun_path), path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        int err = 0;
        socklen_t elen = sizeof(err);
        if (attr_wait(fd, POLLOUT, attr_deadline(timeout)) < 0
            || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
            int saved = err ? err : errno;
            close(fd);
            errno = saved;
            return -1;
        }
    }
    set_nonblock(fd, false);
    return fd;
}
