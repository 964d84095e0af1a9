/* deliver_pass.c: a delivery agent's hand-over of one recipient to the
 * agent of another transport (deliver_pass.h): connect to that transport's
 * socket in private/ (as mail_owner, even from root's local), send a
 * delivery request for one recipient with DELIVER_FLAG_PASSED, and read its
 * one result and the closing frame, with the same strict reader qmgr uses. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "deliver_pass.h"
#include "deliver_request.h"
#include "delivery_status.h"
#include "log.h"
#include "mail_owner.h"
#include "strbuf.h"
#include "util.h"

#define PASS_TRANSPORT_MAX 64        /* a master.cf service name */

static int send_request(int fd, const char *transport, const char *nexthop, const char *queue_id,
                        const char *queue_path, const char *sender, const char *rcpt,
                        const char *orcpt, const char *notify, off_t offset, int timeout)
{
    struct strbuf out = STRBUF_INIT(0);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_strs(&w, "queue_id", queue_id, "queue_path", queue_path, "transport", transport,
                  "nexthop", nexthop, "sender", sender, (char *)NULL);
    attr_put_int(&w, "flags", DELIVER_FLAG_PASSED);
    attr_put_int(&w, "nrcpt", 1);
    attr_put_strs(&w, "rcpt", rcpt, "orcpt", orcpt, "notify", notify, (char *)NULL);
    attr_put_int(&w, "offset", (long long)offset);
    int rc = attr_end(&w) == 0 && attr_write(fd, &out, timeout) == 0 ? 0 : -1;
    sb_free(&out);
    return rc;
}

/* {index=0, status, dsn, relay, reason, delay_connect, delay_transfer[, action]}. */
static int read_result(int fd, int timeout, size_t limit, struct delivery_status *res)
{
    struct strbuf frame = STRBUF_INIT(0);
    struct attr_reader r;
    long long index, status, dc, dt;
    const char *dsn, *relay, *reason, *action;
    char name[ATTR_NAME_MAX + 1];
    int rc = -1;
    if (attr_read(fd, &frame, limit, timeout) == 0 && attr_reader_init(&r, frame.data, frame.len) == 0
        && attr_get_int(&r, "index", 0, 0, &index) == 0
        && attr_get_int(&r, "status", 2, 5, &status) == 0 && status != 3
        && attr_get_str(&r, "dsn", &dsn) == 0 && attr_get_str(&r, "relay", &relay) == 0
        && attr_get_str(&r, "reason", &reason) == 0
        && attr_get_int(&r, "delay_connect", 0, 1LL << 40, &dc) == 0
        && attr_get_int(&r, "delay_transfer", 0, 1LL << 40, &dt) == 0
        && !(attr_peek_name(&r, name, sizeof(name)) && strcmp(name, "action") == 0
             && attr_get_str(&r, "action", &action) < 0)
        && attr_reader_done(&r) == 0) {
        delivery_status_set(res, (int)status, dsn, "%s", reason);
        rc = 0;
    }
    long long done, failed;
    if (rc == 0
        && (attr_read(fd, &frame, limit, timeout) < 0 || attr_reader_init(&r, frame.data, frame.len) < 0
            || attr_get_int(&r, "done", 1, 1, &done) < 0
            || ((attr_peek_name(&r, name, sizeof(name)) && strcmp(name, "site_failed") == 0
                 && attr_get_int(&r, "site_failed", 0, 1, &failed) < 0))
            || attr_reader_done(&r) < 0))
        rc = -1;
    sb_free(&frame);
    return rc;
}

void deliver_pass(const char *transport, const char *nexthop, const char *queue_id,
                  const char *queue_path, const char *sender, const char *rcpt,
                  const char *orcpt, const char *notify, off_t offset, int timeout,
                  struct delivery_status *res)
{
    char name[PASS_TRANSPORT_MAX], path[PASS_TRANSPORT_MAX + 16];
    const char *colon = strchr(transport, ':');
    size_t n = colon ? (size_t)(colon - transport) : strlen(transport);
    if (colon && colon[1])
        nexthop = colon + 1;
    if (n == 0 || n >= sizeof(name) || memchr(transport, '/', n)) {
        msg_warn("%s: malformed transport \"%s\"", queue_id, transport);
        delivery_status_set(res, 4, "4.3.5", "mail transport configuration error");
        return;
    }
    memcpy(name, transport, n);
    name[n] = 0;
    snprintf(path, sizeof(path), "private/%s", name);
    size_t limit = (size_t)cfg_size(P_ipc_frame_limit);
    int fd = mail_owner_connect(path, timeout);
    if (fd < 0) {
        msg_warn("%s: cannot connect to the %s delivery agent at %s: %m", queue_id, name, path);
        delivery_status_set(res, 4, "4.3.0", "mail transport unavailable");
        return;
    }
    if (attr_expect_protocol(fd, "delivery", limit, timeout) < 0
        || send_request(fd, name, nexthop, queue_id, queue_path, sender, rcpt, orcpt, notify, offset,
                        timeout) < 0
        || read_result(fd, timeout, limit, res) < 0) {
        msg_warn("%s: delivery agent %s: protocol error or timeout", queue_id, name);
        delivery_status_set(res, 4, "4.3.0", "mail transport unavailable");
    }
    close(fd);
}
