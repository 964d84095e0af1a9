/* metrics_http.h: the Prometheus endpoint of the metrics program: one
 * HTTP/1.x request per connection, GET /metrics only, answered from the
 * collector's current values (metrics.h's exposition) and closed. */
#ifndef TERN_METRICS_HTTP_H
#define TERN_METRICS_HTTP_H

#include <stddef.h>

#define METRICS_HTTP_HEAD_LIMIT 8192    /* request line and headers */

/* The status a request head (everything up to the blank line, len bytes,
 * not NUL-terminated) gets: 200 for GET /metrics (a query string is
 * ignored), 404 for another path, 405 for another method, 400 for
 * anything malformed, 505 for an HTTP version other than 1.0 and 1.1. */
int metrics_http_judge(const char *head, size_t len);

/* Serve one accepted connection (the SINGLE server's serve). */
void metrics_http_serve(int fd);

#endif
