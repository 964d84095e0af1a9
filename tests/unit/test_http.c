/* test_http.c: unit tests of the HTTP request parser (lib/util/http_request.c)
 * and of form decoding and HTML escaping (lib/util/http_form.c), with the
 * hostile inputs a client may send. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "http_form.h"
#include "http_request.h"
#include "strbuf.h"

static struct http_request req;

static int parse(const char *head)
{
    return http_request_parse(&req, head, strlen(head));
}

static void test_head_length(void)
{
    CHECK(http_head_length("GET / HTTP/1.1\r\n\r\nbody", 22) == 18);
    CHECK(http_head_length("GET / HTTP/1.1\n\nbody", 20) == 16);
    CHECK(http_head_length("GET / HTTP/1.1\r\nHost: x\r\n", 25) == 0);
    CHECK(http_head_length("", 0) == 0);
}

static void test_parse(void)
{
    CHECK(parse("POST /queue/action?x=1&y=2 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n"
                "Cookie: a=b; tern_console=T\r\n\r\n") == 0);
    CHECK_STR(req.method, "POST");
    CHECK_STR(req.path, "/queue/action");
    CHECK_STR(req.query, "x=1&y=2");
    CHECK(req.minor == 1);
    CHECK(req.content_length == 12);
    CHECK_STR(http_request_header(&req, "cookie"), "a=b; tern_console=T");
    CHECK(http_request_header(&req, "X-None") == NULL);
    CHECK(parse("GET / HTTP/1.0\n\n") == 0 && req.minor == 0 && req.content_length == -1);
    CHECK_STR(req.query, "");
    CHECK(parse("GET / HTTP/1.1\r\nX:   spaced value \t\r\n\r\n") == 0);
    CHECK_STR(http_request_header(&req, "x"), "spaced value");
}

static void test_refused(void)
{
    CHECK(parse("GET / HTTP/2.0\r\n\r\n") == 505);
    CHECK(parse("GET / HTTP/1.2\r\n\r\n") == 505);
    CHECK(parse("GET / FTP/1.1\r\n\r\n") == 400);
    CHECK(parse("GET http://evil/ HTTP/1.1\r\n\r\n") == 400);
    CHECK(parse("GET  / HTTP/1.1\r\n\r\n") == 400);
    CHECK(parse("G(T / HTTP/1.1\r\n\r\n") == 400);
    CHECK(parse("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n") == 400);
    CHECK(parse("GET / HTTP/1.1\r\nName : x\r\n\r\n") == 400);
    CHECK(parse("GET / HTTP/1.1\r\n folded\r\n\r\n") == 400);
    CHECK(parse("GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n") == 400);
    CHECK(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n") == 400);
    CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n") == 400);
    CHECK(parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n") == 400);
    CHECK(parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n") == 400);
    CHECK(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
    CHECK(http_request_parse(&req, "GET / HTTP/1.1\r\n\0\r\n\r\n", 20) == 400);
    struct strbuf many = STRBUF_INIT(0);
    sb_appends(&many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= HTTP_HEADERS_MAX; i++)
        sb_appendf(&many, "X%d: y\r\n", i);
    sb_appends(&many, "\r\n");
    CHECK(parse(sb_str(&many)) == 431);
    char *big = malloc(HTTP_HEAD_LIMIT + 100);
    memset(big, 'a', HTTP_HEAD_LIMIT + 99);
    big[HTTP_HEAD_LIMIT + 99] = 0;
    memcpy(big, "GET /", 5);
    CHECK(parse(big) == 431);
    free(big);
    sb_free(&many);
}

static void test_form(void)
{
    struct strbuf v = STRBUF_INIT(64);
    const char *body = "user=a%40b.test&password=p+w%21&csrf=&flag&x=%zz%4";
    CHECK(http_form_value(body, strlen(body), "user", &v) == 1);
    CHECK_STR(sb_str(&v), "a@b.test");
    CHECK(http_form_value(body, strlen(body), "password", &v) == 1);
    CHECK_STR(sb_str(&v), "p w!");
    CHECK(http_form_value(body, strlen(body), "csrf", &v) == 1 && v.len == 0);
    CHECK(http_form_value(body, strlen(body), "flag", &v) == 1 && v.len == 0);
    CHECK(http_form_value(body, strlen(body), "x", &v) == 1);
    CHECK_STR(sb_str(&v), "%zz%4");
    CHECK(http_form_value(body, strlen(body), "pass", &v) == 0);
    CHECK(http_form_value("a=x%00y", 7, "a", &v) == 1);
    CHECK_STR(sb_str(&v), "x");
    struct strbuf small = STRBUF_INIT(4);
    CHECK(http_form_value("a=123456789", 11, "a", &small) == 1 && small.len <= 4);
    sb_free(&small);
    sb_reset(&v);
    html_escape(&v, "<script>\"'&</script>");
    CHECK_STR(sb_str(&v), "&lt;script&gt;&quot;&#39;&amp;&lt;/script&gt;");
    sb_reset(&v);
    url_escape(&v, "a b@c/d");
    CHECK_STR(sb_str(&v), "a%20b%40c%2Fd");
    sb_free(&v);
}

int main(void)
{
    test_head_length();
    test_parse();
    test_refused();
    test_form();
    return check_summary();
}
