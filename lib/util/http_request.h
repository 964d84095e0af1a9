/* http_request.h: the one HTTP/1.x request reader and parser of Tern,
 * shared by the Prometheus endpoint (metrics/) and the web console
 * (console/). Everything it reads comes from the network: the head is
 * bounded in size, parsed strictly (RFC 9112: request line, field lines,
 * no obsolete line folding, no NUL or other controls), and a request body
 * is accepted only with one Content-Length (no chunked transfer coding). */
#ifndef TERN_HTTP_REQUEST_H
#define TERN_HTTP_REQUEST_H

#include <stddef.h>

#define HTTP_HEAD_LIMIT 8192        /* request line and header fields */
#define HTTP_HEADERS_MAX 64         /* header fields kept */

struct http_header {
    const char *name, *value;       /* NUL-terminated, inside the request */
};

struct http_request {
    char head[HTTP_HEAD_LIMIT + 1]; /* a copy of the head, cut into strings */
    const char *method;
    const char *path;               /* the target up to '?' */
    const char *query;              /* after '?', "" when absent */
    int minor;                      /* HTTP/1.minor */
    struct http_header headers[HTTP_HEADERS_MAX];
    size_t nheaders;
    long long content_length;       /* -1: no body announced */
};

/* The length of the head in buf[0..len) up to and including the blank line
 * that ends it (CRLF CRLF, or LF LF), or 0 when it is not complete yet. */
size_t http_head_length(const char *buf, size_t len);

/* Parse a complete head (as found by http_head_length). 0 on success,
 * else the status the client should get: 400 malformed (also a repeated
 * or invalid Content-Length, a Transfer-Encoding; a missing Host is left
 * to the caller), 431 a head over HTTP_HEAD_LIMIT or with too many fields,
 * 505 an HTTP version other than 1.0 and 1.1. */
int http_request_parse(struct http_request *req, const char *head, size_t len);

/* The value of the first field named name (case-insensitive), or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);

/* The reason phrase of a status code ("Not Found"). */
const char *http_status_text(int code);

/* Read a request head from a blocking or non-blocking socket within the
 * deadline (a now_usec()/1000 time): its length in buf, 0 at EOF or an
 * error, -1 past the deadline, -2 when size bytes hold no complete head.
 * Bytes after the head may have been read into buf too. */
long http_read_head(int fd, char *buf, size_t size, long long deadline_ms, size_t *got);

#endif
