/* cleanup_client.c: submit a complete message to cleanup and wait for its
 * verdict (see cleanup_client.h and doc/PROTOCOLS.md). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "cleanup_client.h"
#include "strbuf.h"
#include "util.h"

#define CLIENT_TIMEOUT 60
#define CHUNK 65536

static int send_frame(int fd, struct attr_writer *w, struct strbuf *buf)
{
    int rc = attr_end(w) == 0 && attr_write(fd, buf, CLIENT_TIMEOUT) == 0 ? 0 : -1;
    sb_reset(buf);
    return rc;
}

struct content_sender {
    int fd;
    struct strbuf *buf;
};

/* One content frame {data=BYTES}. */
static int send_content(const char *data, size_t len, void *arg)
{
    struct content_sender *cs = arg;
    struct attr_writer w;
    attr_begin(&w, cs->buf);
    attr_put_bytes(&w, "data", data, len);
    return send_frame(cs->fd, &w, cs->buf);
}

int cleanup_submit(const char *queue_dir, const char *service,
                   const struct cleanup_submission *sub, char queue_id[QUEUE_ID_SIZE],
                   struct strbuf *err)
{
    int status;
    return cleanup_submit_status(queue_dir, service, sub, queue_id, err, &status);
}

int cleanup_submit_status(const char *queue_dir, const char *service,
                          const struct cleanup_submission *sub, char queue_id[QUEUE_ID_SIZE],
                          struct strbuf *err, int *status_out)
{
    struct strbuf path = STRBUF_INIT(4096), buf = STRBUF_INIT(0);
    struct attr_writer w;
    int rc = -1;
    *status_out = -1;
    sb_appendf(&path, "%s/%s/%s", queue_dir, QDIR_PRIVATE, service);
    int fd = unix_connect(path.data, CLIENT_TIMEOUT);
    if (fd < 0 || attr_expect_protocol(fd, "cleanup", 1024, CLIENT_TIMEOUT) < 0) {
        sb_appendf(err, "cannot reach the cleanup service at %s: %s", path.data, strerror(errno));
        goto out;
    }
    attr_begin(&w, &buf);
    attr_put_int(&w, "flags", sub->flags);
    attr_put_str(&w, "sender", sub->sender);
    attr_put_int(&w, "nattr", (long long)sub->nattr);
    for (size_t i = 0; i < sub->nattr; i++) {
        attr_put_str(&w, "name", sub->attr_names[i]);
        attr_put_str(&w, "value", sub->attr_values[i]);
    }
    attr_put_int(&w, "nrcpt", (long long)sub->nrcpt);
    for (size_t i = 0; i < sub->nrcpt; i++) {
        attr_put_str(&w, "rcpt", sub->rcpts[i]);
        attr_put_str(&w, "orcpt", "");
        attr_put_str(&w, "notify", sub->notifies ? sub->notifies[i] : "");
    }
    if (send_frame(fd, &w, &buf) < 0)
        goto io_error;
    struct content_sender cs = { fd, &buf };
    if (sub->content_fn) {
        if (sub->content_fn(sub->content_ctx, send_content, &cs) < 0)
            goto io_error;
    } else if (sub->content_offset > 0) {
        /* content records are at most CHUNK bytes, as content frames */
        if (qfile_read_content(sub->content_fd, sub->content_offset, send_content, &cs) < 0)
            goto io_error;
    } else {
        for (size_t off = 0; off < sub->content_len; off += CHUNK) {
            size_t n = sub->content_len - off < CHUNK ? sub->content_len - off : CHUNK;
            if (send_content(sub->content + off, n, &cs) < 0)
                goto io_error;
        }
    }
    attr_begin(&w, &buf);
    attr_put_str(&w, "end", "ok");
    if (send_frame(fd, &w, &buf) < 0)
        goto io_error;

    struct attr_reader r;
    long long status;
    const char *qid, *reason;
    if (attr_read(fd, &buf, 65536, CLIENT_TIMEOUT) < 0 || attr_reader_init(&r, buf.data, buf.len) < 0
        || attr_get_int(&r, "status", 0, 999, &status) < 0 || attr_get_str(&r, "queue_id", &qid) < 0
        || attr_get_str(&r, "reason", &reason) < 0 || attr_reader_done(&r) < 0)
        goto io_error;
    if (status != 0 || !queue_id_valid(qid)) {
        sb_appendf(err, "cleanup refused the message: %lld %s", status, reason);
        *status_out = status >= 400 && status <= 599 ? (int)status : 451;
        goto out;
    }
    *status_out = 0;
    str_copy(queue_id, QUEUE_ID_SIZE, qid);
    rc = 0;
    goto out;
io_error:
    sb_appendf(err, "lost connection with the cleanup service: %s", strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    sb_free(&path);
    sb_free(&buf);
    return rc;
}
