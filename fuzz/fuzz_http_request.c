/* fuzz_http_request.c: libFuzzer target for the HTTP request parser that
 * the metrics endpoint and the web console share: any byte string is
 * offered as a buffer read from a client; when it holds a complete head,
 * the parse must either refuse it with a 4xx/5xx status or give strings
 * that lie inside the parsed copy, free of control characters, with a
 * method made of token characters and a path that starts with '/' or is
 * "*". The console's form decoder gets the bytes after the head.
 * sources: lib/util/http_request.c lib/util/http_form.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_form.h"
#include "http_request.h"
#include "strbuf.h"

static void inside(const struct http_request *req, const char *s)
{
    if (!s || s < req->head || s > req->head + sizeof(req->head) - 1)
        abort();
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\t')
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t head = http_head_length(buf, size);
    if (head == 0 || head > size)
        return head > size ? (abort(), 0) : 0;
    static struct http_request req;
    int rc = http_request_parse(&req, buf, head);
    if (rc != 0) {
        if (rc != 400 && rc != 431 && rc != 505)
            abort();
    } else {
        inside(&req, req.method);
        inside(&req, req.path);
        inside(&req, req.query);
        if (req.path[0] != '/' && strcmp(req.path, "*") != 0)
            abort();
        if (req.nheaders > HTTP_HEADERS_MAX || req.content_length < -1)
            abort();
        for (size_t i = 0; i < req.nheaders; i++) {
            inside(&req, req.headers[i].name);
            inside(&req, req.headers[i].value);
        }
    }
    struct strbuf v = STRBUF_INIT(4096);
    http_form_value(buf + head, size - head, "csrf", &v);
    if (v.len > 4096 || strlen(sb_str(&v)) > v.len)
        abort();
    sb_free(&v);
    return 0;
}
