/* http_request.c: reading and parsing an HTTP/1.x request head from the
 * network (see http_request.h). The parser works on a private copy of the
 * head, so nothing the caller holds is changed, and never trusts a length
 * or a count the client sends beyond the limits declared in the header. */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http_request.h"
#include "util.h"

size_t http_head_length(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static bool is_tchar(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
        || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The end of the line that starts at p (its LF, or end), and its content
 * length without a CR before the LF. */
static char *line_end(char *p, char *end, size_t *content)
{
    char *lf = memchr(p, '\n', (size_t)(end - p));
    if (!lf)
        lf = end;
    *content = (size_t)(lf - p);
    if (*content > 0 && p[*content - 1] == '\r')
        (*content)--;
    return lf;
}

/* A token (a method, a field name): one or more tchars from p to end. */
static bool is_token(const char *p, const char *end)
{
    if (p >= end)
        return false;
    while (p < end)
        if (!is_tchar(*p++))
            return false;
    return true;
}

static int parse_request_line(struct http_request *req, char *line, size_t n)
{
    char *sp1 = memchr(line, ' ', n);
    if (!sp1 || !is_token(line, sp1))
        return 400;
    char *t = sp1 + 1, *end = line + n;
    char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t)
        return 400;
    for (char *p = t; p < sp2; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return 400;
    char *v = sp2 + 1;
    size_t vlen = (size_t)(end - v);
    if (memchr(v, ' ', vlen))
        return 400;
    if (vlen < 5 || memcmp(v, "HTTP/", 5) != 0)
        return 400;
    if (vlen != 8 || v[5] != '1' || v[6] != '.' || v[7] < '0' || v[7] > '9')
        return 505;
    if (v[7] > '1')
        return 505;
    req->minor = v[7] - '0';
    *sp1 = 0;
    *sp2 = 0;
    req->method = line;
    if (t[0] != '/' && strcmp(t, "*") != 0)
        return 400;     /* origin form only: no proxy requests */
    char *q = strchr(t, '?');
    req->path = t;
    req->query = sp2;   /* "" inside the copy */
    if (q) {
        *q = 0;
        req->query = q + 1;
    }
    return 0;
}

static int parse_field(struct http_request *req, char *line, size_t n)
{
    char *colon = memchr(line, ':', n);
    if (!colon || !is_token(line, colon))
        return 400;     /* also a space before the colon (RFC 9112 5.1) */
    char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (char *p = v; p < end; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
            return 400;
    if (req->nheaders == HTTP_HEADERS_MAX)
        return 431;
    *colon = 0;
    *end = 0;
    req->headers[req->nheaders++] = (struct http_header){ line, v };
    return 0;
}

static int parse_length(struct http_request *req)
{
    bool seen = false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (strcasecmp(h->name, "Transfer-Encoding") == 0)
            return 400;     /* no chunked bodies: a request is small */
        if (strcasecmp(h->name, "Content-Length") != 0)
            continue;
        if (seen || !*h->value || strlen(h->value) > 15)
            return 400;
        long long n = 0;
        for (const char *p = h->value; *p; p++) {
            if (*p < '0' || *p > '9')
                return 400;
            n = n * 10 + (*p - '0');
        }
        req->content_length = n;
        seen = true;
    }
    return 0;
}

int http_request_parse(struct http_request *req, const char *head, size_t len)
{
    memset(req, 0, offsetof(struct http_request, headers));
    req->nheaders = 0;
    req->content_length = -1;
    if (len > HTTP_HEAD_LIMIT)
        return 431;
    if (memchr(head, 0, len))
        return 400;
    memcpy(req->head, head, len);
    req->head[len] = 0;
    char *p = req->head, *end = req->head + len;
    size_t n;
    char *lf = line_end(p, end, &n);
    int rc = parse_request_line(req, p, n);
    if (rc)
        return rc;
    for (p = lf + 1; p < end; p = lf + 1) {
        lf = line_end(p, end, &n);
        if (n == 0)
            break;              /* the blank line */
        if (*p == ' ' || *p == '\t')
            return 400;         /* obsolete line folding */
        if ((rc = parse_field(req, p, n)) != 0)
            return rc;
        if (lf >= end)
            break;
    }
    if ((rc = parse_length(req)) != 0)
        return rc;
    return 0;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *http_status_text(int code)
{
    switch (code) {
    case 200: return "OK";
    case 303: return "See Other";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 505: return "HTTP Version Not Supported";
    default: return "Service Unavailable";
    }
}

long http_read_head(int fd, char *buf, size_t size, long long deadline_ms, size_t *got)
{
    size_t len = 0;
    *got = 0;
    for (;;) {
        long long left = deadline_ms - now_usec() / 1000;
        if (left <= 0)
            return -1;
        struct pollfd p = { fd, POLLIN, 0 };
        int rc = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
        if (rc <= 0)
            continue;       /* EINTR or a timeout: the deadline is checked above */
        if (len == size)
            return -2;
        ssize_t n = read(fd, buf + len, size - len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return 0;
        size_t from = len >= 3 ? len - 3 : 0;
        len += (size_t)n;
        *got = len;
        size_t h = http_head_length(buf + from, len - from);
        if (h)
            return (long)(from + h);
    }
}
