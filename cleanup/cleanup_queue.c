/* cleanup_queue.c: the queue file of one submission: created under its
 * temporary name with the envelope records, filled with content records,
 * then committed (lib/global/QUEUE.md: fsync, rename, directory fsync) into
 * incoming/ (or hold/) or removed; after a commit, qmgr is told there is
 * new mail. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "cleanup.h"
#include "log.h"
#include "metrics_client.h"
#include "util.h"

#define QMGR_WAKEUP_TIMEOUT 2       /* seconds; qmgr also scans on a timer */
#define QMGR_WAKEUP_FRAME_LIMIT 1024

static void put_rcpt(struct qfile_writer *qf, struct strbuf *rec, const char *rcpt,
                     const char *orcpt, const char *notify)
{
    if (!qf->error && (qrec_rcpt_encode(rec, rcpt, orcpt, notify) < 0
                       || qfile_put(qf, QREC_RCPT, rec->data, rec->len) < 0))
        qf->error = qf->error ? qf->error : EFBIG;
}

/* The envelope's recipients, BCC recipients of the checks; or, after a
 * REDIRECT, only its address (with the first recipient's ORCPT and
 * NOTIFY): the message is delivered once, there, as in Postfix. */
static void write_rcpts(struct cleanup_state *st)
{
    struct strbuf rec = STRBUF_INIT(QREC_MAX_LEN);
    const struct cleanup_envelope *env = &st->env;
    if (st->redirect) {
        put_rcpt(&st->qf, &rec, st->redirect, env->orcpts[0], env->notifies[0]);
    } else {
        for (size_t i = 0; i < env->nrcpt; i++)
            put_rcpt(&st->qf, &rec, env->rcpts[i], env->orcpts[i], env->notifies[i]);
        for (size_t i = 0; i < st->nbcc; i++)
            put_rcpt(&st->qf, &rec, st->bcc[i], "", "");
    }
    sb_free(&rec);
}

/* The records before the content: V, T, S, W, A..., R... */
static void write_envelope(struct cleanup_state *st)
{
    struct qfile_writer *qf = &st->qf;
    char when[64];
    snprintf(when, sizeof(when), "%lld.%06lld", st->arrival_usec / 1000000,
             st->arrival_usec % 1000000);
    qfile_put_str(qf, QREC_VERSION, "1");
    qfile_put_str(qf, QREC_TIME, when);
    qfile_put_str(qf, QREC_SENDER, st->env.sender);
    char unwarned[QREC_WARN_WIDTH + 1];     /* qmgr overwrites it when it warns */
    snprintf(unwarned, sizeof(unwarned), "%0*d", QREC_WARN_WIDTH, 0);
    qfile_put_str(qf, QREC_WARN, unwarned);
    for (size_t i = 0; i < st->env.nattr; i++)
        qfile_put_attr(qf, st->env.attr_names[i], st->env.attr_values[i]);
    /* The checks may still redirect the message or add recipients: then
     * the recipients follow the content (lib/global/QUEUE.md). */
    if (!st->rcpts_after_content)
        write_rcpts(st);
}

int cleanup_queue_open(struct cleanup_state *st)
{
    if ((st->env.preset_id[0] ? qfile_create_preset(&st->qf, cleanup_cfg.queue_dir, st->env.preset_id)
         : qfile_create(&st->qf, cleanup_cfg.queue_dir)) < 0) {
        msg_warn("cannot create a queue file in %s/%s: %m", cleanup_cfg.queue_dir_name, QDIR_INCOMING);
        cleanup_reject(st, 451, CLEANUP_WRITE_ERROR);
        return -1;
    }
    st->qf_open = true;
    cleanup_checks_begin(st);
    cleanup_rewrite_envelope(st);
    st->rcpts_after_content = st->inspect;
    write_envelope(st);
    if (st->qf.error) {
        msg_warn("%s: queue file write error: %s", st->qf.id, strerror(st->qf.error));
        cleanup_reject(st, 451, CLEANUP_WRITE_ERROR);
        return -1;
    }
    return 0;
}

/* Write pending content as records of at most QREC_CONTENT_CHUNK bytes;
 * a short tail is kept for later unless all is set. */
void cleanup_queue_flush(struct cleanup_state *st, bool all)
{
    size_t off = 0;
    while (st->out.len - off >= QREC_CONTENT_CHUNK || (all && off < st->out.len)) {
        size_t n = st->out.len - off;
        if (n > QREC_CONTENT_CHUNK)
            n = QREC_CONTENT_CHUNK;
        if (st->qf_open && !st->status)
            qfile_put(&st->qf, QREC_CONTENT, st->out.data + off, n);
        off += n;
    }
    sb_consume(&st->out, off);
    if (st->qf_open && st->qf.error && !st->status) {
        msg_warn("%s: queue file write error: %s", st->qf.id, strerror(st->qf.error));
        cleanup_reject(st, 451, CLEANUP_WRITE_ERROR);
    }
}

/* After X: what the header and body checks decided (lib/global/QUEUE.md): the
 * content filter, and the recipients when they were kept back. */
static void write_extracted(struct cleanup_state *st)
{
    if (st->filter)
        qfile_put_attr(&st->qf, "content_filter", st->filter);
    if (st->rcpts_after_content)
        write_rcpts(st);
    if (st->hold && st->hold_reason)
        qfile_put_attr(&st->qf, "hold_reason", st->hold_reason);
    if (st->hold)
        qfile_set_destination(&st->qf, QDIR_HOLD);
}

/* The end of the content: X and Z records, then the commit point. */
int cleanup_queue_commit(struct cleanup_state *st)
{
    char size[32];
    cleanup_queue_flush(st, true);
    if (st->status)
        return -1;
    snprintf(size, sizeof(size), "%llu", st->qf.content_size);
    qfile_put(&st->qf, QREC_CONTENT_END, "", 0);
    write_extracted(st);
    qfile_put_str(&st->qf, QREC_SIZE, size);
    int err = st->qf.error;
    if (err == 0 && qfile_commit(&st->qf) < 0)
        err = errno ? errno : EIO;
    if (err) {
        msg_warn("%s: queue file write error: %s", st->qf.id, strerror(err));
        cleanup_reject(st, 451, CLEANUP_WRITE_ERROR);
        cleanup_queue_abort(st);
        return -1;
    }
    st->qf_open = false;       /* committed: the file is qmgr's now */
    metrics_add(M_CLEANUP_MESSAGES, 1, NULL);
    metrics_observe(M_CLEANUP_SIZE, (long long)st->qf.content_size, NULL);
    return 0;
}

/* Nothing half-written stays: the temporary file goes. */
void cleanup_queue_abort(struct cleanup_state *st)
{
    if (st->qf_open)
        qfile_abort(&st->qf);
    st->qf_open = false;
}

/* Tell qmgr (public/qmgr) there is new mail in incoming/. A failure costs
 * at most queue_run_delay: qmgr scans on a timer as well. */
void cleanup_wake_qmgr(const char *queue_id)
{
    struct strbuf path = STRBUF_INIT(4096), frame = STRBUF_INIT(QMGR_WAKEUP_FRAME_LIMIT);
    struct attr_writer w;
    sb_appendf(&path, "%s/qmgr", QDIR_PUBLIC);
    attr_begin(&w, &frame);
    attr_put_str(&w, "wakeup", "incoming");
    /* Fire and forget: qmgr's greeting is not awaited, so a qmgr that is busy
     * (for instance submitting a bounce through this very cleanup) never
     * stalls a submission; the frame waits in the socket buffer. */
    int fd = attr_end(&w) == 0 ? unix_connect(sb_str(&path), QMGR_WAKEUP_TIMEOUT) : -1;
    if (fd < 0 || attr_write(fd, &frame, QMGR_WAKEUP_TIMEOUT) < 0)
        msg_warn("%s: cannot wake qmgr at %s/%s: %m; it will find the message on its next scan",
                 queue_id, cleanup_cfg.queue_dir_name, sb_str(&path));
    if (fd >= 0)
        close(fd);
    sb_free(&path);
    sb_free(&frame);
}
