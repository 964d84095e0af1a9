/* metrics_http_judge.c: the metrics endpoint's verdict on an HTTP request
 * head from the network (see metrics_http.h): the request line is parsed
 * strictly, headers are not looked at. */
#include <stdbool.h>
#include <string.h>

#include "metrics_http.h"

static bool is_tchar(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
        || strchr("!#$%&'*+-.^_`|~", c);
}

int metrics_http_judge(const char *head, size_t len)
{
    size_t eol = 0;
    while (eol < len && head[eol] != '\n')
        eol++;
    if (eol > 0 && head[eol - 1] == '\r')
        eol--;
    /* METHOD SP TARGET SP HTTP/1.x, nothing else on the line */
    size_t m = 0;
    while (m < eol && head[m] != ' ')
        if (!is_tchar(head[m++]))
            return 400;
    if (m == 0 || m >= eol)
        return 400;
    size_t t = m + 1, te = t;
    while (te < eol && head[te] != ' ')
        if ((unsigned char)head[te++] <= 0x20 || (unsigned char)head[te - 1] >= 0x7f)
            return 400;
    if (te == t || te >= eol)
        return 400;
    const char *version = head + te + 1;
    size_t vlen = eol - te - 1;
    if (memchr(version, ' ', vlen))
        return 400;
    if (vlen != 8 || memcmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' || version[7] > '9')
        return vlen >= 5 && memcmp(version, "HTTP/", 5) == 0 ? 505 : 400;
    if (version[7] > '1')
        return 505;
    size_t tlen = te - t;
    const char *target = head + t;
    size_t path = 0;
    while (path < tlen && target[path] != '?')
        path++;
    if (m != 3 || memcmp(head, "GET", 3) != 0)
        return 405;
    return path == 8 && memcmp(target, "/metrics", 8) == 0 ? 200 : 404;
}
