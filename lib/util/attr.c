/* attr.c: the framed attribute encoding of every internal connection (see
 * attr.h for the wire format). The reader is strict and bounded: a frame is
 * taken apart only after its whole length has arrived and been checked, and
 * every length inside it is checked against what is left of the frame. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "attr.h"
#include "strbuf.h"
#include "util.h"

#define ATTR_HEADER_LEN 4   /* the uint32 payload length in front of a frame */

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

/* Names are 1..ATTR_NAME_MAX bytes of [a-z0-9_]: nothing a log line or a
 * comparison could misread. */
static bool attr_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > ATTR_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* ---- encoding ---- */

void attr_begin(struct attr_writer *w, struct strbuf *out)
{
    static const unsigned char zero[ATTR_HEADER_LEN];
    w->out = out;
    w->start = out->len;
    w->failed = sb_append(out, zero, sizeof(zero)) < 0;
}

void attr_put_bytes(struct attr_writer *w, const char *name, const void *v, size_t n)
{
    size_t nlen = strnlen(name, ATTR_NAME_MAX + 1);
    if (w->failed || !attr_name_ok(name, nlen) || n > UINT32_MAX - 1) {
        w->failed = 1;
        return;
    }
    unsigned char nl = (unsigned char)nlen, vl[4];
    put_u32(vl, (uint32_t)n);
    size_t before = w->out->len;
    if (sb_append(w->out, &nl, 1) < 0 || sb_append(w->out, name, nlen) < 0
        || sb_append(w->out, vl, sizeof(vl)) < 0 || sb_append(w->out, v, n) < 0
        || sb_appendc(w->out, 0) < 0) {
        sb_truncate(w->out, before);
        w->failed = 1;
    }
}

void attr_put_str(struct attr_writer *w, const char *name, const char *value)
{
    if (!value)
        value = "";
    attr_put_bytes(w, name, value, strlen(value));
}

void attr_put_strs(struct attr_writer *w, ...)
{
    va_list ap;
    va_start(ap, w);
    for (const char *name; (name = va_arg(ap, const char *)) != NULL;)
        attr_put_str(w, name, va_arg(ap, const char *));
    va_end(ap);
}

void attr_put_int(struct attr_writer *w, const char *name, long long v)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%lld", v);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        w->failed = 1;
        return;
    }
    attr_put_bytes(w, name, buf, (size_t)n);
}

int attr_end(struct attr_writer *w)
{
    size_t payload = w->failed ? 0 : w->out->len - w->start - ATTR_HEADER_LEN;
    if (w->failed || payload > UINT32_MAX) {
        /* Drop the partial frame so frames already in the buffer stay valid. */
        sb_truncate(w->out, w->start);
        w->failed = 1;
        return -1;
    }
    put_u32((unsigned char *)w->out->data + w->start, (uint32_t)payload);
    return 0;
}

int attr_frame_str(struct strbuf *out, const char *name, const char *value)
{
    struct attr_writer w;
    attr_begin(&w, out);
    attr_put_str(&w, name, value);
    return attr_end(&w);
}

/* ---- decoding ---- */

ssize_t attr_frame_size(const void *buf, size_t avail, size_t limit)
{
    if (avail < ATTR_HEADER_LEN)
        return 0;
    uint32_t len = get_u32(buf);
    if (len > limit || (unsigned long long)len + ATTR_HEADER_LEN > (unsigned long long)SSIZE_MAX)
        return -1;
    return avail - ATTR_HEADER_LEN >= len ? (ssize_t)len + ATTR_HEADER_LEN : 0;
}

int attr_reader_init(struct attr_reader *r, const void *frame, size_t framelen)
{
    r->p = NULL;
    r->len = 0;
    r->pos = 0;
    r->error = NULL;
    if (!frame || framelen < ATTR_HEADER_LEN || get_u32(frame) != framelen - ATTR_HEADER_LEN) {
        r->error = "frame length mismatch";
        return -1;
    }
    r->p = (const unsigned char *)frame + ATTR_HEADER_LEN;
    r->len = framelen - ATTR_HEADER_LEN;
    return 0;
}

/* One decoded attribute; name is not NUL-terminated (nlen bytes). */
struct attr_item {
    const char *name;
    size_t nlen;
    const unsigned char *value;
    size_t vlen;
    size_t next;   /* reader position after this attribute */
};

/* Decode the attribute at r->pos without consuming it: 1 found, 0 at the end
 * of the frame, -1 malformed (r->error says how). */
static int attr_decode_next(struct attr_reader *r, struct attr_item *it)
{
    size_t pos = r->pos;
    if (!r->p || pos >= r->len)
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
    it->name = (const char *)r->p + pos;
    it->nlen = nl;
    pos += nl;
    uint32_t vl = get_u32(r->p + pos);
    pos += 4;
    /* value bytes plus the mandatory 0 must fit in what is left */
    if (vl >= r->len - pos || r->p[pos + vl] != 0) {
        r->error = "truncated or unterminated attribute value";
        return -1;
    }
    it->value = r->p + pos;
    it->vlen = vl;
    it->next = pos + vl + 1;
    return 1;
}

static bool attr_item_is(const struct attr_item *it, const char *name)
{
    return strlen(name) == it->nlen && memcmp(it->name, name, it->nlen) == 0;
}

int attr_get_bytes(struct attr_reader *r, const char *name, const void **value, size_t *len)
{
    struct attr_item it;
    int rc = attr_decode_next(r, &it);
    if (rc == 0)
        r->error = "missing attribute";
    else if (rc > 0 && !attr_item_is(&it, name))
        r->error = "unexpected attribute";
    if (rc <= 0 || !attr_item_is(&it, name))
        return -1;
    *value = it.value;
    if (len)
        *len = it.vlen;
    r->pos = it.next;
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

/* Strict decimal: an optional '-', then digits only; no space, no '+', no
 * overflow. Accumulates negatively so LLONG_MIN is representable. */
static int parse_decimal(const char *s, long long *out)
{
    bool neg = *s == '-';
    const char *p = s + neg;
    long long v = 0;
    if (*p == 0)
        return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        int d = *p - '0';
        if (v < (LLONG_MIN + d) / 10)
            return -1;
        v = v * 10 - d;
    }
    if (!neg && v == LLONG_MIN)
        return -1;
    *out = neg ? v : -v;
    return 0;
}

int attr_get_int(struct attr_reader *r, const char *name, long long min, long long max,
                 long long *value)
{
    const char *s;
    size_t saved = r->pos;
    long long v;
    if (attr_get_str(r, name, &s) < 0)
        return -1;
    if (parse_decimal(s, &v) < 0 || v < min || v > max) {
        r->pos = saved;
        r->error = "bad or out-of-range integer attribute";
        return -1;
    }
    *value = v;
    return 0;
}

int attr_opt_str(struct attr_reader *r, const char *name, const char **value)
{
    struct attr_item it;
    int rc = attr_decode_next(r, &it);
    if (rc <= 0)
        return rc;
    if (!attr_item_is(&it, name))
        return 0;
    return attr_get_str(r, name, value) < 0 ? -1 : 1;
}

const char *attr_peek_name(struct attr_reader *r, char *buf, size_t bufsz)
{
    struct attr_item it;
    if (attr_decode_next(r, &it) <= 0 || it.nlen + 1 > bufsz)
        return NULL;
    memcpy(buf, it.name, it.nlen);
    buf[it.nlen] = 0;
    return buf;
}

int attr_reader_done(struct attr_reader *r)
{
    if (!r->p || r->pos != r->len) {
        r->error = "unexpected extra attributes";
        return -1;
    }
    return 0;
}

int attr_refuse(const char **why, const char *text)
{
    if (why)
        *why = text;
    return -1;
}

/* ---- blocking helpers ---- */

static long long attr_deadline(int timeout)
{
    return timeout > 0 ? now_usec() / 1000 + (long long)timeout * 1000 : 0;
}

/* Wait until fd is ready for events or the deadline (ms since the epoch;
 * 0 = none). Errors and hang-ups count as ready: the next read or write
 * reports them. */
static int attr_wait(int fd, short events, long long deadline_ms)
{
    for (;;) {
        int wait_ms = -1;
        if (deadline_ms) {
            long long left = deadline_ms - now_usec() / 1000;
            if (left <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            wait_ms = left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd pfd = { .fd = fd, .events = events };
        int rc = poll(&pfd, 1, wait_ms);
        if (rc > 0 && (pfd.revents & POLLNVAL)) {
            errno = EBADF;
            return -1;
        }
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/* Write what fits now, never blocking, so the deadline holds even on a
 * blocking descriptor: send(MSG_DONTWAIT) for sockets (and EPIPE rather
 * than SIGPIPE for a vanished peer); for the pipes and stdin/stdout of a
 * daemon run by hand, POLLOUT promises room for PIPE_BUF bytes. */
static ssize_t attr_send_some(int fd, const void *p, size_t n)
{
    ssize_t got = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (got < 0 && errno == ENOTSOCK)
        got = write(fd, p, n < PIPE_BUF ? n : PIPE_BUF);
    return got;
}

int attr_write(int fd, const struct strbuf *frames, int timeout)
{
    long long deadline = attr_deadline(timeout);
    size_t off = 0;
    while (off < frames->len) {
        if (attr_wait(fd, POLLOUT, deadline) < 0)
            return -1;
        ssize_t n = attr_send_some(fd, frames->data + off, frames->len - off);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

/* Some bytes from fd without blocking: recv(MSG_DONTWAIT) on a socket, so
 * that a frame already waiting costs one system call and no poll; on a
 * pipe or a terminal, poll first, then read. */
static ssize_t attr_recv_some(int fd, void *p, size_t n, long long deadline)
{
    ssize_t got = recv(fd, p, n, MSG_DONTWAIT);
    if (got >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTSOCK))
        return got;
    bool socket = errno != ENOTSOCK;
    if (attr_wait(fd, POLLIN, deadline) < 0)
        return -2;
    if (!socket)
        return read(fd, p, n);
    errno = EAGAIN;             /* ready now: the caller tries again */
    return -1;
}

/* Append exactly n more bytes from fd to buf, read straight into it (a
 * content frame is 64 KiB: no copy through a small buffer, no system call
 * per 8 KiB). Never reads past them: the next frame on the stream belongs
 * to the next call. */
static int attr_read_n(int fd, struct strbuf *buf, size_t n, long long deadline)
{
    char *room = sb_room(buf, n);
    if (!room) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t have = 0;
    while (have < n) {
        ssize_t got = attr_recv_some(fd, room + have, n - have, deadline);
        if (got == -2)
            return -1;
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return -1;
        }
        if (got == 0) {
            errno = EPIPE;
            return -1;
        }
        have += (size_t)got;
    }
    sb_added(buf, n);
    return 0;
}

int attr_read(int fd, struct strbuf *buf, size_t limit, int timeout)
{
    long long deadline = attr_deadline(timeout);
    sb_reset(buf);
    if (attr_read_n(fd, buf, ATTR_HEADER_LEN, deadline) < 0)
        return -1;
    uint32_t len = get_u32((const unsigned char *)buf->data);
    if (len > limit) {
        /* The stream is out of step now; the caller must close it. */
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
    int rc = -1;
    if (attr_end(&w) < 0)
        errno = EINVAL;
    else
        rc = attr_write(fd, &out, timeout);
    sb_free(&out);
    return rc;
}

int attr_expect_protocol(int fd, const char *name, size_t limit, int timeout)
{
    struct strbuf in = STRBUF_INIT(0);
    struct attr_reader r;
    const char *got;
    int rc = -1;
    if (attr_read(fd, &in, limit, timeout) < 0) {
        sb_free(&in);
        return -1;
    }
    if (attr_reader_init(&r, in.data, in.len) == 0 && attr_get_str(&r, "protocol", &got) == 0
        && attr_reader_done(&r) == 0 && strcmp(got, name) == 0)
        rc = 0;
    else
        errno = EPROTO;
    sb_free(&in);
    return rc;
}

/* Limit how long connect() may block. On Linux a UNIX stream connect waits
 * for room in a full listen backlog and honours SO_SNDTIMEO while it does. */
static int set_send_timeout(int fd, int timeout)
{
    struct timeval tv = { .tv_sec = timeout > 0 ? timeout : 0, .tv_usec = 0 };
    return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int unix_connect(const char *path, int timeout)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (str_copy(sun.sun_path, sizeof(sun.sun_path), path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    long long deadline = attr_deadline(timeout);
    int rc;
    if (timeout > 0 && set_send_timeout(fd, timeout) < 0) {
        rc = -1;
    } else {
        /* A signal interrupts the wait, not the attempt: try again until
         * the deadline. */
        while ((rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun))) < 0 && errno == EINTR
               && (!deadline || now_usec() / 1000 < deadline))
            ;
        if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS
                       || errno == EINTR))
            errno = ETIMEDOUT;
    }
    if (rc == 0 && timeout > 0)
        rc = set_send_timeout(fd, 0);   /* writes are timed by attr_write */
    if (rc < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}
