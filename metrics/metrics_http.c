/* metrics_http.c: the Prometheus endpoint (see metrics_http.h). The
 * request comes from the network, is read by the shared HTTP reader
 * (lib/util/http_request.h) and is bounded in size
 * (METRICS_HTTP_HEAD_LIMIT) and in time (metrics_http_timeout for the
 * whole request and the whole answer); nothing of it is kept except the
 * verdict. The answer is the exposition of the collector's current values,
 * fetched over private/metrics (lib/global/metrics_query.h). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "http_request.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "metrics_query.h"
#include "strbuf.h"
#include "util.h"

#define EXPOSITION_LIMIT (16 * 1024 * 1024)
#define LINGER_MS 1000                          /* reading what follows a refused request */
#define LINGER_BYTES (256 * 1024)

static void answer(int fd, int code, const char *type, const struct strbuf *body, int timeout)
{
    struct strbuf out = STRBUF_INIT(EXPOSITION_LIMIT + 1024);
    const char *text = body ? sb_str(body) : http_status_text(code);
    size_t len = body ? body->len : strlen(text) + 1;
    sb_appendf(&out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
               code, http_status_text(code), type, len, code == 405 ? "Allow: GET\r\n" : "");
    sb_append(&out, text, body ? body->len : strlen(text));
    if (!body)
        sb_appendc(&out, '\n');
    if (attr_write(fd, &out, timeout) < 0)
        msg_debug("HTTP client went away before its answer was sent: %m");
    sb_free(&out);
}

/* After an error answer: the client may still be sending (an oversized
 * request); its bytes are read and dropped for a moment, so that closing
 * with unread input does not reset the connection before the client has
 * read the answer. */
static void linger(int fd)
{
    char sink[4096];
    long long deadline = now_usec() / 1000 + LINGER_MS;
    size_t dropped = 0;
    shutdown(fd, SHUT_WR);
    while (dropped < LINGER_BYTES) {
        long long left = deadline - now_usec() / 1000;
        struct pollfd p = { fd, POLLIN, 0 };
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return;
        ssize_t n = read(fd, sink, sizeof(sink));
        if (n <= 0)
            return;
        dropped += (size_t)n;
    }
}

void metrics_http_serve(int fd)
{
    int timeout = (int)cfg_time(P_metrics_http_timeout);
    if (timeout < 1)
        timeout = 1;
    char head[METRICS_HTTP_HEAD_LIMIT];
    size_t got;
    long n = http_read_head(fd, head, sizeof(head), now_usec() / 1000 + 1000LL * timeout, &got);
    if (n == 0)
        return;
    int code = n == -1 ? 408 : n == -2 ? 431 : metrics_http_judge(head, (size_t)n);
    if (code != 200) {
        answer(fd, code, "text/plain; charset=utf-8", NULL, timeout);
        linger(fd);
        return;
    }
    struct metric_sample *samples = NULL;
    ssize_t count = metrics_query_current(&samples);
    if (count < 0) {
        msg_warn("cannot get the current values from the metrics collector (%s): %m", METRICS_SOCKET);
        answer(fd, 503, "text/plain; charset=utf-8", NULL, timeout);
        return;
    }
    struct strbuf body = STRBUF_INIT(EXPOSITION_LIMIT);
    if (metrics_format_exposition(&body, samples, (size_t)count) < 0)
        answer(fd, 503, "text/plain; charset=utf-8", NULL, timeout);
    else
        answer(fd, 200, "text/plain; version=0.0.4; charset=utf-8", &body, timeout);
    sb_free(&body);
    free(samples);
}
