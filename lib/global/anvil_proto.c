/* anvil_proto.c: encoding and strict decoding of the anvil service's request
 * and reply frames (see anvil_proto.h and doc/PROTOCOLS.md). */
#include <limits.h>
#include <string.h>

#include "anvil_proto.h"
#include "attr.h"
#include "strbuf.h"

static const char *const request_names[ANVIL_REQ_COUNT] = {
#define ANVIL_REQUEST_NAME(id, name) [id] = name,
    ANVIL_REQUESTS(ANVIL_REQUEST_NAME)
#undef ANVIL_REQUEST_NAME
};

const char *anvil_request_name(enum anvil_request_type type)
{
    return (unsigned)type < ANVIL_REQ_COUNT ? request_names[type] : "?";
}

/* Service names and addresses end up in hash keys and log lines: printable
 * ASCII without spaces, bounded. */
static int token_ok(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 127)
            return 0;
    return 1;
}

int anvil_encode_request(struct strbuf *out, const struct anvil_request *req)
{
    if ((unsigned)req->type >= ANVIL_REQ_COUNT || !req->service || !req->addr
        || !token_ok(req->service, ANVIL_SERVICE_MAX) || !token_ok(req->addr, ANVIL_ADDR_MAX))
        return -1;
    struct attr_writer w;
    attr_begin(&w, out);
    attr_put_str(&w, "request", request_names[req->type]);
    attr_put_str(&w, "service", req->service);
    attr_put_str(&w, "addr", req->addr);
    return attr_end(&w);
}

int anvil_encode_reply(struct strbuf *out, const struct anvil_reply *rep)
{
    struct attr_writer w;
    attr_begin(&w, out);
    attr_put_int(&w, "status", rep->status);
    attr_put_int(&w, "count", rep->count);
    attr_put_int(&w, "rate", rep->rate);
    return attr_end(&w);
}

int anvil_decode_request(const void *frame, size_t len, struct anvil_request *req,
                         const char **why)
{
    struct attr_reader r;
    const char *name;
    if (attr_reader_init(&r, frame, len) < 0 || attr_get_str(&r, "request", &name) < 0
        || attr_get_str(&r, "service", &req->service) < 0
        || attr_get_str(&r, "addr", &req->addr) < 0 || attr_reader_done(&r) < 0)
        return attr_refuse(why, r.error ? r.error : "malformed frame");
    int type = -1;
    for (int i = 0; i < ANVIL_REQ_COUNT; i++)
        if (strcmp(name, request_names[i]) == 0)
            type = i;
    if (type < 0)
        return attr_refuse(why, "unknown request");
    if (!token_ok(req->service, ANVIL_SERVICE_MAX))
        return attr_refuse(why, "bad service name");
    if (!token_ok(req->addr, ANVIL_ADDR_MAX))
        return attr_refuse(why, "bad client address");
    req->type = (enum anvil_request_type)type;
    return 0;
}

int anvil_decode_reply(const void *frame, size_t len, struct anvil_reply *rep)
{
    struct attr_reader r;
    long long status, count, rate;
    if (attr_reader_init(&r, frame, len) < 0
        || attr_get_int(&r, "status", 0, 1, &status) < 0
        || attr_get_int(&r, "count", 0, INT_MAX, &count) < 0
        || attr_get_int(&r, "rate", 0, INT_MAX, &rate) < 0 || attr_reader_done(&r) < 0)
        return -1;
    rep->status = (int)status;
    rep->count = (long)count;
    rep->rate = (long)rate;
    return 0;
}
