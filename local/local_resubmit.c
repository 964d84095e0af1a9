/* local_resubmit.c: addresses an alias or .forward names outside our own
 * domains are not delivered here: the message goes back through cleanup as
 * a new queue file for them, with the original sender and a Delivered-To:
 * header, so that a message that comes back is recognized as a loop. */
#include <errno.h>
#include <string.h>

#include "cleanup_client.h"
#include "local.h"
#include "log.h"
#include "mail_owner.h"
#include "queue.h"
#include "safe_open.h"
#include "util.h"

#define DELIVERED_TO_MAX 4096

/* The new message's content, streamed to cleanup: our Delivered-To:
 * header, then the queue file's content record by record, so that a
 * forwarded message is never held in memory whatever its size. */
struct resubmit_content {
    const struct local_message *msg;
    const struct strbuf *header;
};

struct content_sender {
    int (*send)(const char *data, size_t len, void *arg);
    void *arg;
};

static int forward_chunk(const char *data, size_t len, void *ctx)
{
    const struct content_sender *cs = ctx;
    return cs->send(data, len, cs->arg);
}

static int send_resubmit_content(void *ctx, int (*send)(const char *data, size_t len, void *arg), void *arg)
{
    const struct resubmit_content *rc = ctx;
    struct content_sender cs = { send, arg };
    if (send(rc->header->data, rc->header->len, arg) < 0)
        return -1;
    return qfile_read_content(rc->msg->fd, (off_t)rc->msg->content_offset, forward_chunk, &cs);
}

int local_resubmit(const struct local_message *msg, const char *delivered_to,
                   const char *const *rcpts, size_t nrcpt, char queue_id[24], struct strbuf *err)
{
    if (msg->content_size > (unsigned long long)QREC_MAX_LEN * 1024) {
        sb_appends(err, "message too large to forward");
        return -1;
    }
    struct strbuf content = STRBUF_INIT(DELIVERED_TO_MAX);
    sb_appends(&content, "Delivered-To: ");
    for (const char *p = delivered_to; *p; p++)
        sb_appendc(&content, (unsigned char)*p < 0x20 ? '?' : *p);
    sb_appendc(&content, '\n');
    if (msg->content_offset <= 0) {
        sb_appends(err, "cannot read the message from the queue file");
        sb_free(&content);
        return -1;
    }
    struct resubmit_content source = { msg, &content };
    /* RFC 8689 section 4.1: every copy of an aliased or forwarded message
     * is tagged as the message was */
    static const char *const rtls_name[1] = { "requiretls" }, *const rtls_value[1] = { "yes" };
    struct cleanup_submission sub = {
        .attr_names = rtls_name, .attr_values = rtls_value, .nattr = msg->requiretls ? 1 : 0,
        .flags = 0,
        .sender = msg->sender,
        .rcpts = rcpts,
        .nrcpt = nrcpt,
        .content_fn = send_resubmit_content,
        .content_ctx = &source,
    };
    /* private/ is mail_owner's: the socket is reached with mail_owner's
     * effective ids, so a link put in its place leads nowhere that
     * mail_owner could not go itself (never to a root-only socket) */
    char id[QUEUE_ID_SIZE];
    uid_t owner;
    gid_t group;
    mail_owner_ids(&owner, &group);
    if (ids_assume(owner, group) < 0) {
        sb_appendf(err, "cannot take the identity of mail_owner: %s", strerror(errno));
        sb_free(&content);
        return -1;
    }
    int rc = cleanup_submit(".", local_cfg.cleanup_service, &sub, id, err);
    if (ids_restore() < 0)
        msg_fatal("cannot return to root after submitting as mail_owner: %m");
    if (rc == 0)
        str_copy(queue_id, 24, id);
    sb_free(&content);
    return rc;
}
