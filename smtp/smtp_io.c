/* smtp_io.c: the SMTP client's I/O on one connection: whole replies read
 * line by line within a deadline (lines cut at a bound, the rest of an
 * over-long line skipped), and commands and content written within a
 * deadline. The socket is non-blocking; every wait is a poll() with the
 * time that is left, so a server that stalls costs at most the timeout of
 * the stage it stalls in. After STARTTLS the same reads and writes go
 * through OpenSSL: SSL_read/SSL_write are tried first, and their
 * WANT_READ/WANT_WRITE become the same deadline-bounded polls. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "smtp.h"
#include "util.h"

#define SMTP_READ_CHUNK 8192
#define SMTP_IN_LIMIT (SMTP_REPLY_LINE_MAX + SMTP_READ_CHUNK)
#define SMTP_OUT_LIMIT (16 * 1024 * 1024)

void smtp_session_init(struct smtp_session *s, int fd, const char *host, const char *addr, int port)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->port = port;
    str_copy(s->host, sizeof(s->host), host);
    str_copy(s->addr, sizeof(s->addr), addr);
    snprintf(s->name, sizeof(s->name), "%s[%s]", host, addr);
    /* port 0: an LMTP server's UNIX-domain socket, "host[path]" as Postfix logs it */
    if (port)
        snprintf(s->desc, sizeof(s->desc), "%s[%s]:%d", host, addr, port);
    else
        snprintf(s->desc, sizeof(s->desc), "%s[%s]", host, addr);
    s->connected_usec = now_usec();
    s->uses = 1;
    sb_init(&s->in, SMTP_IN_LIMIT);
    sb_init(&s->out, SMTP_OUT_LIMIT);
    smtp_reply_init(&s->reply);
}

void smtp_session_free(struct smtp_session *s)
{
    smtp_tls_stop(s);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    sb_free(&s->in);
    sb_free(&s->out);
    smtp_reply_free(&s->reply);
}

static int io_fail(struct smtp_session *s, const char *why, bool timeout)
{
    s->io_error = why;
    s->timed_out = timeout;
    return -1;
}

/* Wait until fd is ready for events or the deadline (ms) passes. */
static int io_wait(struct smtp_session *s, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_usec() / 1000;
        if (left <= 0)
            return io_fail(s, "timeout", true);
        struct pollfd pfd = { s->fd, events, 0 };
        int rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return io_fail(s, strerror(errno), false);
    }
}

/* A failed SSL_read or SSL_write: 1 when it may be retried after the
 * poll it asks for, else -1 with s->io_error set and the TLS state dead. */
static int tls_retry(struct smtp_session *s, int rc, long long deadline)
{
    int err = SSL_get_error(s->ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
        return io_wait(s, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) < 0 ? -1 : 1;
    s->tls_dead = true;
    if (err == SSL_ERROR_ZERO_RETURN)
        return io_fail(s, "lost connection", false);
    if (err == SSL_ERROR_SYSCALL) {
        int e = errno;
        ERR_clear_error();
        return io_fail(s, e == 0 || e == EPIPE || e == ECONNRESET ? "lost connection" : strerror(e),
                       false);
    }
    /* Static: a session struct moves (into and out of the cache), and
     * only the session in use does I/O. */
    static char text[256];
    unsigned long code = ERR_get_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    ERR_clear_error();
    snprintf(text, sizeof(text), "TLS error: %s", reason ? reason : "protocol error");
    return io_fail(s, text, false);
}

static int tls_read_more(struct smtp_session *s, long long deadline)
{
    char buf[SMTP_READ_CHUNK];
    if (s->tls_dead)
        return io_fail(s, "lost connection", false);
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(s->ssl, buf, sizeof(buf));
        if (n > 0)
            return sb_append(&s->in, buf, (size_t)n) == 0 ? 0 : io_fail(s, "input overflow", false);
        if (tls_retry(s, n, deadline) < 0)
            return -1;
    }
}

static int io_read_more(struct smtp_session *s, long long deadline)
{
    char buf[SMTP_READ_CHUNK];
    if (s->ssl)
        return tls_read_more(s, deadline);
    for (;;) {
        if (io_wait(s, POLLIN, deadline) < 0)
            return -1;
        ssize_t n = read(s->fd, buf, sizeof(buf));
        if (n > 0)
            return sb_append(&s->in, buf, (size_t)n) == 0 ? 0 : io_fail(s, "input overflow", false);
        if (n == 0)
            return io_fail(s, "lost connection", false);
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return io_fail(s, strerror(errno), false);
    }
}

static void log_reply_line(void *ctx, const char *line, size_t len)
{
    const struct smtp_session *s = ctx;
    msg_debug("< %s: %.*s", s->desc, (int)(len < 512 ? len : 512), line);
}

/* Take what is buffered: 1 reply complete, 0 need more input, -1 malformed. */
static int reply_from_buffer(struct smtp_session *s)
{
    int rc = smtp_reply_feed(&s->reply, &s->in, &s->skip_to_lf, log_reply_line, s);
    return rc < 0 ? io_fail(s, "malformed reply", false) : rc;
}

int smtp_read_reply(struct smtp_session *s, int timeout)
{
    long long deadline = now_usec() / 1000 + (long long)timeout * 1000;
    smtp_reply_reset(&s->reply);
    s->io_error = NULL;
    s->timed_out = false;
    for (;;) {
        int rc = reply_from_buffer(s);
        if (rc > 0 && s->reply.code == 421)
            s->server_closing = true;       /* never to be kept for another transaction */
        if (rc != 0)
            return rc > 0 ? 0 : -1;
        if (io_read_more(s, deadline) < 0)
            return -1;
    }
}

int smtp_write(struct smtp_session *s, const void *data, size_t len, int timeout)
{
    long long deadline = now_usec() / 1000 + (long long)timeout * 1000;
    const char *p = data;
    s->io_error = NULL;
    s->timed_out = false;
    while (len > 0 && s->ssl) {
        if (s->tls_dead)
            return io_fail(s, "lost connection", false);
        ERR_clear_error();
        int n = SSL_write(s->ssl, p, len > 65536 ? 65536 : (int)len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (tls_retry(s, n, deadline) < 0) {
            return -1;
        }
    }
    while (len > 0) {
        if (io_wait(s, POLLOUT, deadline) < 0)
            return -1;
        ssize_t n = send(s->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return io_fail(s, errno == EPIPE || errno == ECONNRESET ? "lost connection"
                                                                    : strerror(errno), false);
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int smtp_queue_command(struct smtp_session *s, const char *fmt, ...)
{
    char line[SMTP_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* Our own text, but built from queue file data: never let it carry a
     * line break or run past the bound. */
    if (n < 0 || (size_t)n >= sizeof(line) || strpbrk(line, "\r\n"))
        return -1;
    msg_debug("> %s: %s", s->desc, line);
    if (sb_append(&s->out, line, (size_t)n) < 0 || sb_append(&s->out, "\r\n", 2) < 0)
        return -1;
    return 0;
}

int smtp_queue_secret(struct smtp_session *s, const char *shown, const char *line)
{
    size_t n = strlen(line);
    if (n >= SMTP_LINE_MAX || strpbrk(line, "\r\n"))
        return -1;
    msg_debug("> %s: %s", s->desc, shown);
    if (sb_append(&s->out, line, n) < 0 || sb_append(&s->out, "\r\n", 2) < 0)
        return -1;
    return 0;
}

int smtp_flush(struct smtp_session *s, int timeout)
{
    int rc = smtp_write(s, s->out.data, s->out.len, timeout);
    /* The buffer may have held a password: leave none of it behind. */
    if (s->out.data)
        OPENSSL_cleanse(s->out.data, s->out.len);
    sb_reset(&s->out);
    return rc;
}
