/* local_copy.c: writing a delivered copy of a message: the "From " line,
 * Return-Path:, X-Original-To: and Delivered-To: in front, ">From " quoting for mbox, a
 * blank line after it, and a hard size bound; and reading the Delivered-To:
 * headers a message already has, for mail loop detection. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "local.h"
#include "queue.h"
#include "util.h"

#define COPY_FLUSH_AT 65536

/* Envelope values go into header lines: nothing there may end a line. */
static void append_clean(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        sb_appendc(out, c < 0x20 || c == 0x7f ? '?' : c);
    }
}

void local_copy_prefix(struct strbuf *out, int flags, const char *sender, const char *orig_to,
                       const char *delivered_to, long long now_sec)
{
    if (flags & COPY_FROM_LINE) {
        time_t t = (time_t)now_sec;
        struct tm tm;
        char date[64];
        localtime_r(&t, &tm);
        strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
        sb_appends(out, "From ");
        if (*sender) {
            /* the separator line is split on white space by every reader */
            for (const char *p = sender; *p; p++) {
                unsigned char c = (unsigned char)*p;
                sb_appendc(out, c <= 0x20 || c == 0x7f ? '_' : c);
            }
        } else {
            sb_appends(out, "MAILER-DAEMON");
        }
        sb_appendf(out, "  %s\n", date);
    }
    sb_appends(out, "Return-Path: <");
    append_clean(out, sender);
    sb_appends(out, ">\n");
    if (orig_to && *orig_to) {
        sb_appends(out, "X-Original-To: ");
        append_clean(out, orig_to);
        sb_appendc(out, '\n');
    }
    sb_appends(out, "Delivered-To: ");
    append_clean(out, delivered_to);
    sb_appendc(out, '\n');
}

/* ---- ">From " quoting ---- */

void local_from_quote_init(struct from_quote *q)
{
    q->at_line_start = true;
    q->held = 0;
}

/* Bytes of "From " are held back while they match at a line start; the
 * decision is made when the match completes or fails, so a chunk boundary
 * anywhere in "From " changes nothing. */
int local_from_quote_feed(struct from_quote *q, const char *data, size_t len, struct strbuf *out)
{
    static const char pat[] = "From ";
    for (size_t i = 0; i < len; i++) {
        if (q->at_line_start || q->held > 0) {
            q->at_line_start = false;
            if (data[i] == pat[q->held]) {
                if (++q->held == 5) {
                    q->held = 0;
                    if (sb_appends(out, ">From ") < 0)
                        return -1;
                }
                continue;
            }
            if (q->held > 0 && sb_append(out, pat, q->held) < 0)
                return -1;
            q->held = 0;
        }
        /* copy the rest of the line in one piece */
        const char *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) + 1 : len;
        if (sb_append(out, data + i, end - i) < 0)
            return -1;
        i = end - 1;
        q->at_line_start = nl != NULL;
    }
    return 0;
}

int local_from_quote_finish(struct from_quote *q, struct strbuf *out)
{
    int rc = q->held > 0 ? sb_append(out, "From ", q->held) : 0;
    q->held = 0;
    return rc;
}

/* ---- writing a copy ---- */

struct copy_sink {
    int fd;
    int flags;
    struct strbuf buf;
    struct from_quote quote;
    unsigned long long written, limit;
    char last;                    /* last content byte, for the final newline */
    int err;
};

static int sink_flush(struct copy_sink *s)
{
    if (s->buf.len == 0)
        return 0;
    if (s->limit && s->written + s->buf.len > s->limit) {
        s->err = EFBIG;
        return -1;
    }
    if (write_all(s->fd, s->buf.data, s->buf.len) < 0) {
        s->err = errno ? errno : EIO;
        return -1;
    }
    s->written += s->buf.len;
    sb_reset(&s->buf);
    return 0;
}

static int sink_content(const char *data, size_t len, void *ctx)
{
    struct copy_sink *s = ctx;
    int rc = (s->flags & COPY_QUOTE_FROM) ? local_from_quote_feed(&s->quote, data, len, &s->buf)
                                          : sb_append(&s->buf, data, len);
    if (rc < 0) {
        s->err = ENOMEM;
        return -1;
    }
    if (len)
        s->last = data[len - 1];
    return s->buf.len >= COPY_FLUSH_AT ? sink_flush(s) : 0;
}

int local_copy_write(int fd, const struct local_delivery *d, int flags, unsigned long long limit,
                     unsigned long long *written)
{
    struct copy_sink s = { .fd = fd, .flags = flags, .limit = limit, .last = '\n' };
    sb_init(&s.buf, 4 * COPY_FLUSH_AT);
    local_from_quote_init(&s.quote);
    local_copy_prefix(&s.buf, flags, d->msg->sender, d->orig_to, d->delivered_to,
                      now_usec() / 1000000);
    int rc = qfile_read_content(d->msg->fd, (off_t)d->msg->content_offset, sink_content, &s);
    if (rc < 0 && s.err == 0)
        s.err = EIO;           /* the queue file itself is unreadable */
    if (rc == 0 && (flags & COPY_QUOTE_FROM))
        local_from_quote_finish(&s.quote, &s.buf);
    if (rc == 0 && s.last != '\n')
        sb_appendc(&s.buf, '\n');
    if (rc == 0 && (flags & COPY_BLANK_LINE))
        sb_appendc(&s.buf, '\n');
    if (rc == 0)
        rc = sink_flush(&s);
    *written = s.written;
    sb_free(&s.buf);
    if (rc < 0) {
        errno = s.err ? s.err : EIO;
        return -1;
    }
    return 0;
}

/* ---- Delivered-To: headers for loop detection ---- */

void local_delivered_scan_init(struct delivered_scan *s)
{
    memset(s, 0, sizeof(*s));
    sb_init(&s->line, 8192);
}

static void scan_line(struct delivered_scan *s)
{
    const char *l = sb_str(&s->line);
    if (s->line.len == 0) {
        s->done = true;            /* the empty line that ends the header */
        return;
    }
    if (strncasecmp(l, "Delivered-To:", 13) != 0 || s->nvalues >= LOCAL_DELIVERED_MAX)
        return;
    const char *v = l + 13;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
        n--;
    s->values = xrealloc(s->values, (s->nvalues + 1) * sizeof(*s->values));
    s->values[s->nvalues++] = str_lower(xstrndup(v, n));
}

void local_delivered_scan_feed(struct delivered_scan *s, const char *data, size_t len)
{
    for (size_t i = 0; i < len && !s->done; i++) {
        if (++s->seen > LOCAL_HEADER_SCAN_MAX) {
            s->done = true;
            break;
        }
        if (data[i] == '\n') {
            scan_line(s);
            sb_reset(&s->line);
        } else if (sb_appendc(&s->line, data[i]) < 0) {
            /* an overlong line cannot be one of ours: keep its start only */
        }
    }
}

void local_delivered_scan_finish(struct delivered_scan *s)
{
    if (!s->done && s->line.len)
        scan_line(s);
    s->done = true;
    sb_free(&s->line);
}

void local_delivered_scan_free(struct delivered_scan *s)
{
    for (size_t i = 0; i < s->nvalues; i++)
        free(s->values[i]);
    free(s->values);
    sb_free(&s->line);
    memset(s, 0, sizeof(*s));
}
