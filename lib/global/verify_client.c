/* verify_client.c: the client side of the verify service's protocol
 * (verify_proto.h): the frames, and the blocking one-request clients that
 * `tern verify` and qmgr use. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "strbuf.h"
#include "util.h"
#include "verify_proto.h"

const char *verify_status_name(int status)
{
    switch (status) {
    case VERIFY_STAT_OK:
        return "deliverable";
    case VERIFY_STAT_DEFER:
        return "deferred";
    case VERIFY_STAT_BOUNCE:
        return "undeliverable";
    default:
        return "unknown";
    }
}

int verify_status_of_delivery(int status)
{
    return status == 2 ? VERIFY_STAT_OK : status == 5 ? VERIFY_STAT_BOUNCE : VERIFY_STAT_DEFER;
}

int verify_encode_query(struct strbuf *out, const char *address, int probe)
{
    struct attr_writer w;
    attr_begin(&w, out);
    attr_put_str(&w, "request", VERIFY_REQ_QUERY);
    attr_put_str(&w, "address", address);
    attr_put_int(&w, "probe", probe ? 1 : 0);
    return attr_end(&w);
}

int verify_decode_answer(const void *frame, size_t len, struct verify_answer *ans)
{
    struct attr_reader r;
    long long status, updated, probed;
    const char *reason;
    if (attr_reader_init(&r, frame, len) < 0
        || attr_get_int(&r, "status", 0, VERIFY_STAT_TODO, &status) < 0
        || attr_get_str(&r, "reason", &reason) < 0
        || attr_get_int(&r, "updated", 0, (long long)1 << 40, &updated) < 0
        || attr_get_int(&r, "probed", 0, (long long)1 << 40, &probed) < 0
        || attr_reader_done(&r) < 0)
        return -1;
    ans->status = (int)status;
    str_copy(ans->reason, sizeof(ans->reason), reason);
    ans->updated = updated;
    ans->probed = probed;
    return 0;
}

/* One request, one answer frame into in. */
static int exchange(const struct strbuf *req, struct strbuf *in, int timeout, struct strbuf *why)
{
    int fd = unix_connect(VERIFY_SOCKET, timeout);
    if (fd < 0) {
        sb_appendf(why, "cannot connect to %s: %s", VERIFY_SOCKET, strerror(errno));
        return -1;
    }
    int rc = -1;
    if (attr_expect_protocol(fd, VERIFY_PROTOCOL, VERIFY_FRAME_LIMIT, timeout) < 0)
        sb_appendf(why, "%s: unexpected greeting", VERIFY_SOCKET);
    else if (attr_write(fd, req, timeout) < 0 || attr_read(fd, in, VERIFY_FRAME_LIMIT, timeout) < 0)
        sb_appendf(why, "%s: no answer", VERIFY_SOCKET);
    else
        rc = 0;
    close(fd);
    return rc;
}

int verify_client_query(const char *address, int probe, struct verify_answer *ans, int timeout,
                        struct strbuf *why)
{
    struct strbuf req = STRBUF_INIT(VERIFY_FRAME_LIMIT), in = STRBUF_INIT(VERIFY_FRAME_LIMIT);
    int rc = verify_encode_query(&req, address, probe);
    if (rc < 0)
        sb_appendf(why, "address too long");
    else if ((rc = exchange(&req, &in, timeout, why)) == 0
             && (rc = verify_decode_answer(in.data, in.len, ans)) < 0)
        sb_appendf(why, "%s: malformed answer", VERIFY_SOCKET);
    sb_free(&req);
    sb_free(&in);
    return rc;
}

int verify_client_update(const char *address, int status, const char *reason, int timeout,
                         struct strbuf *why)
{
    struct strbuf req = STRBUF_INIT(VERIFY_FRAME_LIMIT), in = STRBUF_INIT(VERIFY_FRAME_LIMIT);
    struct attr_writer w;
    char text[VERIFY_REASON_MAX];
    str_copy(text, sizeof(text), reason ? reason : "");
    attr_begin(&w, &req);
    attr_put_str(&w, "request", VERIFY_REQ_UPDATE);
    attr_put_str(&w, "address", address);
    attr_put_int(&w, "status", status);
    attr_put_str(&w, "reason", text);
    int rc = attr_end(&w);
    if (rc < 0)
        sb_appendf(why, "address too long");
    else
        rc = exchange(&req, &in, timeout, why);
    sb_free(&req);
    sb_free(&in);
    return rc;
}
