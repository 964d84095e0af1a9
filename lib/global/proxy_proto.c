/* proxy_proto.c: encoding and strict decoding of the proxymap service's
 * request and reply frames (see proxy_proto.h and doc/PROTOCOLS.md). */
#include <string.h>

#include "attr.h"
#include "proxy_proto.h"
#include "strbuf.h"
#include "util.h"

static const char *const status_names[PROXY_STAT_COUNT] = {
    [PROXY_STAT_OK] = "found",
    [PROXY_STAT_NOKEY] = "not found",
    [PROXY_STAT_RETRY] = "temporary error",
    [PROXY_STAT_DENY] = "not allowed",
    [PROXY_STAT_BAD] = "bad request",
};

const char *proxy_status_name(int status)
{
    return status >= 0 && status < PROXY_STAT_COUNT ? status_names[status] : "?";
}

/* TYPE:NAME as main.cf writes it: bounded, a type before the first ':', a
 * name after it, no control characters (it ends up in log lines). */
bool proxy_table_ok(const char *s)
{
    size_t n = strnlen(s, PROXY_TABLE_MAX + 1);
    if (n == 0 || n > PROXY_TABLE_MAX)
        return false;
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || !colon[1])
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < ' ' || (unsigned char)s[i] == 127)
            return false;
    return true;
}

static bool bounded(const char *s, size_t max)
{
    return s && strnlen(s, max + 1) <= max;
}

int proxy_encode_request(struct strbuf *out, const struct proxy_request *req)
{
    if (!req->table || !proxy_table_ok(req->table) || !bounded(req->key, PROXY_KEY_MAX))
        return -1;
    size_t before = out->len;
    struct attr_writer w;
    attr_begin(&w, out);
    attr_put_str(&w, "request", "lookup");
    attr_put_str(&w, "table", req->table);
    attr_put_str(&w, "key", req->key);
    if (attr_end(&w) < 0) {
        sb_truncate(out, before);
        return -1;
    }
    return 0;
}

int proxy_encode_reply(struct strbuf *out, const struct proxy_reply *rep)
{
    const char *value = rep->value ? rep->value : "";
    if (rep->status < 0 || rep->status >= PROXY_STAT_COUNT || !bounded(value, PROXY_VALUE_MAX)
        || (rep->status != PROXY_STAT_OK && *value))
        return -1;
    size_t before = out->len;
    struct attr_writer w;
    attr_begin(&w, out);
    attr_put_int(&w, "status", rep->status);
    attr_put_str(&w, "value", value);
    if (attr_end(&w) < 0) {
        sb_truncate(out, before);
        return -1;
    }
    return 0;
}

int proxy_decode_request(const void *frame, size_t len, struct proxy_request *req,
                         const char **why)
{
    struct attr_reader r;
    const char *name;
    if (len > PROXY_FRAME_LIMIT + 4)
        return attr_refuse(why, "oversized frame");
    if (attr_reader_init(&r, frame, len) < 0 || attr_get_str(&r, "request", &name) < 0
        || attr_get_str(&r, "table", &req->table) < 0 || attr_get_str(&r, "key", &req->key) < 0
        || attr_reader_done(&r) < 0)
        return attr_refuse(why, r.error ? r.error : "malformed frame");
    if (strcmp(name, "lookup") != 0)
        return attr_refuse(why, "unknown request");
    if (!proxy_table_ok(req->table))
        return attr_refuse(why, "bad table name");
    if (!bounded(req->key, PROXY_KEY_MAX))
        return attr_refuse(why, "key too long");
    return 0;
}

int proxy_decode_reply(const void *frame, size_t len, struct proxy_reply *rep)
{
    struct attr_reader r;
    long long status;
    if (len > PROXY_FRAME_LIMIT + 4 || attr_reader_init(&r, frame, len) < 0
        || attr_get_int(&r, "status", 0, PROXY_STAT_COUNT - 1, &status) < 0
        || attr_get_str(&r, "value", &rep->value) < 0 || attr_reader_done(&r) < 0
        || !bounded(rep->value, PROXY_VALUE_MAX)
        || (status != PROXY_STAT_OK && *rep->value))
        return -1;
    rep->status = (int)status;
    return 0;
}
