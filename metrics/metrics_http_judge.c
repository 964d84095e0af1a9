/* metrics_http_judge.c: the metrics endpoint's verdict on an HTTP request
 * head from the network (see metrics_http.h): the head is parsed by the
 * shared parser (lib/util/http_request.h), then only GET /metrics passes. */
#include <stdlib.h>
#include <string.h>

#include "http_request.h"
#include "metrics_http.h"

int metrics_http_judge(const char *head, size_t len)
{
    /* the parsed request holds a copy of the head: too big for the stack
     * of a fuzzer or a small thread */
    struct http_request *req = malloc(sizeof(*req));
    if (!req)
        return 503;
    int code = http_request_parse(req, head, len);
    if (code == 0)
        code = strcmp(req->method, "GET") != 0 ? 405 : strcmp(req->path, "/metrics") == 0 ? 200 : 404;
    free(req);
    return code;
}
