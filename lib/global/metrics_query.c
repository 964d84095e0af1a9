/* metrics_query.c: asking the metrics collector for its values (see
 * metrics_query.h). The answers come from another process and are checked
 * as strictly as any frame: nothing is taken from a malformed one. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "log.h"
#include "metrics_query.h"
#include "strbuf.h"
#include "util.h"

#define SERIES_LIMIT (8 * 1024 * 1024)

/* Connect, send the frame, read the answer into in: a reader on it, or -1. */
static int ask(const struct strbuf *frame, struct strbuf *in, size_t limit, struct attr_reader *r)
{
    int fd = unix_connect(METRICS_SOCKET, METRICS_QUERY_TIMEOUT);
    if (fd < 0)
        return -1;
    int rc = attr_expect_protocol(fd, METRICS_PROTOCOL, 1024, METRICS_QUERY_TIMEOUT) == 0
        && attr_write(fd, frame, METRICS_QUERY_TIMEOUT) == 0
        && attr_read(fd, in, limit, METRICS_QUERY_TIMEOUT) == 0
        && attr_reader_init(r, in->data, in->len) == 0 ? 0 : -1;
    close(fd);
    return rc;
}

ssize_t metrics_query_current(struct metric_sample **samples)
{
    struct strbuf frame = STRBUF_INIT(1024), in = STRBUF_INIT(METRICS_CURRENT_LIMIT);
    attr_frame_str(&frame, "request", "current");
    ssize_t n = -1;
    struct attr_reader r;
    long long status;
    *samples = NULL;
    if (ask(&frame, &in, METRICS_CURRENT_LIMIT, &r) == 0 && attr_get_int(&r, "status", 0, 0, &status) == 0) {
        size_t cap = 0, count = 0;
        struct metric_sample s;
        const char *why = NULL;
        int rc;
        while ((rc = metrics_get_sample(&r, &s, &why)) == 1) {
            if (count == cap) {
                cap = cap ? 2 * cap : 64;
                *samples = xrealloc(*samples, cap * sizeof(**samples));
            }
            (*samples)[count++] = s;
        }
        if (rc == 0 && attr_reader_done(&r) == 0) {
            n = (ssize_t)count;
        } else {
            msg_warn("malformed answer from the metrics collector: %s", why ? why : "extra data");
            free(*samples);
            *samples = NULL;
        }
    }
    sb_free(&frame);
    sb_free(&in);
    return n;
}

ssize_t metrics_query_series(const struct metric_sample *s, long step, time_t from, time_t to,
                             time_t *first, long long *points, size_t max)
{
    struct strbuf frame = STRBUF_INIT(64 * 1024), in = STRBUF_INIT(SERIES_LIMIT);
    struct attr_writer w;
    attr_begin(&w, &frame);
    attr_put_str(&w, "request", "series");
    metrics_put_sample(&w, s);
    attr_put_int(&w, "step", step);
    attr_put_int(&w, "from", (long long)from);
    attr_put_int(&w, "to", (long long)to);
    ssize_t n = -1;
    struct attr_reader r;
    long long status, f, st;
    const char *text;
    if (attr_end(&w) == 0 && ask(&frame, &in, SERIES_LIMIT, &r) == 0
        && attr_get_int(&r, "status", 0, 1, &status) == 0 && status == 0
        && attr_get_int(&r, "first", 0, 1LL << 40, &f) == 0
        && attr_get_int(&r, "step", 60, 3600, &st) == 0
        && attr_get_str(&r, "points", &text) == 0 && attr_reader_done(&r) == 0) {
        *first = (time_t)f;
        n = 0;
        const char *p = text;
        while (*p && (size_t)n < max) {
            while (*p == ' ')
                p++;
            if (!*p)
                break;
            char *end;
            long long v = *p == '-' && (p[1] == ' ' || !p[1]) ? -1 : strtoll(p, &end, 10);
            if (v == -1 && *p == '-')
                end = (char *)p + 1;
            if (end == p)
                break;
            points[n++] = v;
            p = end;
        }
    }
    sb_free(&frame);
    sb_free(&in);
    return n;
}
