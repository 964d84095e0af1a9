/* quarantine.c: listing, showing, releasing and deleting quarantined
 * messages (quarantine.h): held messages with a hold_reason, for one
 * recipient or for the administrator. Every change is one rename, unlink,
 * in-place done mark or committed copy (lib/global/QUEUE.md), so it is
 * safe while Tern runs: qmgr never touches hold/. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

#include "log.h"
#include "quarantine.h"
#include "queue_admin.h"
#include "queue_flush.h"
#include "queue_scan.h"
#include "strbuf.h"
#include "util.h"

#define NOT_YOURS "no such message in the quarantine"

/* ---- reading a held message ---- */

struct header_reader {
    struct strbuf *h;
    bool done;
};

static int take_header(const char *data, size_t len, void *ctx)
{
    struct header_reader *hr = ctx;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n' && hr->h->len > 0 && hr->h->data[hr->h->len - 1] == '\n') {
            hr->done = true;
            return 1;
        }
        if (hr->h->len >= QUARANTINE_HEADER_SCAN || sb_appendc(hr->h, data[i]) < 0) {
            hr->done = true;
            return 1;
        }
    }
    return 0;
}

/* The header section of the held message open on fd (stops early on
 * purpose: a -1 from qfile_read_content after take_header said stop is
 * not an error). */
static void read_header(int fd, const struct qmessage *m, struct strbuf *h)
{
    struct header_reader hr = { h, false };
    (void)qfile_read_content(fd, m->content_offset, take_header, &hr);
}

/* The Subject: field's value in the header section h. */
static void find_subject(const struct strbuf *h, char *out)
{
    out[0] = 0;
    const char *s = h->data, *end = h->data + h->len;
    for (const char *line = s; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *eol = nl ? nl : end;
        if (eol - line >= 8 && strncasecmp(line, "Subject:", 8) == 0) {
            const char *v = line + 8, *stop = eol;
            while (stop < end && stop + 1 < end && (stop[1] == ' ' || stop[1] == '\t')) {
                const char *n2 = memchr(stop + 1, '\n', (size_t)(end - stop - 1));
                stop = n2 ? n2 : end;
            }
            quarantine_subject_decode(v, (size_t)(stop - v), out);
            return;
        }
        line = nl ? nl + 1 : end;
    }
}

static void path_of(char *buf, size_t size, const char *dir, const char *id)
{
    snprintf(buf, size, "%s/%s", dir, id);
}

/* Fill e from a loaded held message; rcpts (caller frees) holds its
 * pending recipients, or only recipient's when set. The subject is read
 * from the file (and its header appended to header when not NULL). */
static void entry_of(const struct qmessage *m, const char *recipient, struct quarantine_entry *e,
                     struct strbuf *header)
{
    memset(e, 0, sizeof(*e));
    str_copy(e->id, sizeof(e->id), m->id);
    e->sender = m->sender ? m->sender : "";
    e->reason = qmessage_attr(m, "hold_reason");
    e->size = m->content_size;
    e->arrival = m->arrival_usec / 1000000;
    e->rcpts = xmalloc((m->nrcpts + 1) * sizeof(*e->rcpts));
    for (size_t i = 0; i < m->nrcpts; i++) {
        if (m->rcpts[i].done)
            continue;
        e->nall++;
        if (!recipient || strcasecmp(m->rcpts[i].address, recipient) == 0)
            e->rcpts[e->nrcpts++] = m->rcpts[i].address;
    }
    char path[128];
    path_of(path, sizeof(path), QDIR_HOLD, m->id);
    struct qfile_reader r;
    if (qfile_open(&r, path, O_RDONLY) == 0) {
        struct strbuf h = STRBUF_INIT(QUARANTINE_HEADER_SCAN + 1);
        read_header(r.fd, m, &h);
        find_subject(&h, e->subject);
        if (header)
            quarantine_printable(header, h.data, h.len, QUARANTINE_HEADER_SCAN, true);
        sb_free(&h);
        qfile_close(&r);
    }
}

struct list_ctx {
    const char *recipient;
    int (*fn)(const struct quarantine_entry *e, void *ctx);
    void *ctx;
    size_t n;
};

static int list_one(struct queued *q, void *arg)
{
    struct list_ctx *lc = arg;
    if (!qmessage_attr(&q->m, "hold_reason"))
        return 0;
    struct quarantine_entry e;
    entry_of(&q->m, lc->recipient, &e, NULL);
    int rc = 0;
    if (e.nrcpts > 0) {
        lc->n++;
        rc = lc->fn(&e, lc->ctx);
    }
    free(e.rcpts);
    return rc;
}

size_t quarantine_list(const char *recipient,
                       int (*fn)(const struct quarantine_entry *e, void *ctx), void *ctx)
{
    struct list_ctx lc = { recipient, fn, ctx, 0 };
    queue_walk_state(QS_HOLD, list_one, &lc);
    return lc.n;
}

/* Load hold/ID when it is quarantined and (with recipient) theirs. */
static int load_held(const char *id, const char *recipient, struct qmessage *m, struct strbuf *err)
{
    memset(m, 0, sizeof(*m));
    if (!queue_id_valid(id)) {
        sb_set(err, "not a queue ID");
        return -1;
    }
    char path[128];
    path_of(path, sizeof(path), QDIR_HOLD, id);
    struct strbuf why = STRBUF_INIT(1024);
    int rc = qmessage_load(path, m, &why);
    if (rc < 0 && errno != ENOENT && !recipient)
        sb_appendf(err, "%s: %s", path, sb_str(&why));
    sb_free(&why);
    if (rc < 0) {
        qmessage_free(m);
        if (!err->len)
            sb_set(err, NOT_YOURS);
        return -1;
    }
    bool yours = !recipient;
    for (size_t i = 0; i < m->nrcpts && !yours; i++)
        yours = !m->rcpts[i].done && strcasecmp(m->rcpts[i].address, recipient) == 0;
    if (!qmessage_attr(m, "hold_reason") || !yours) {
        /* the same answer for "not held", "not quarantined" and "not
         * yours": a user learns nothing about other people's mail */
        qmessage_free(m);
        sb_set(err, NOT_YOURS);
        return -1;
    }
    return 0;
}

int quarantine_show(const char *id, const char *recipient,
                    int (*fn)(const struct quarantine_entry *e, void *ctx), void *ctx,
                    struct strbuf *header, struct strbuf *err)
{
    struct qmessage m;
    if (load_held(id, recipient, &m, err) < 0)
        return -1;
    struct quarantine_entry e;
    entry_of(&m, recipient, &e, header);
    if (fn)
        fn(&e, ctx);
    free(e.rcpts);
    qmessage_free(&m);
    return 0;
}

/* ---- acting on one ---- */

/* Open hold/ID of m for reading (or writing the done marks). */
static int open_held(const struct qmessage *m, int flags, struct qfile_reader *r, char *path,
                     size_t size, struct strbuf *err)
{
    path_of(path, size, QDIR_HOLD, m->id);
    if (qfile_open(r, path, flags) == 0)
        return 0;
    sb_appendf(err, "cannot open %s: %s", path, strerror(errno));
    return -1;
}

/* Two recipients acting at once (after the same digest) must not each see
 * the other still pending and leave the file for nobody: the marks are
 * read again, and written, under an exclusive lock of the open file. */
static int lock_and_reload(struct qfile_reader *r, const char *id, struct qmessage *now,
                           struct strbuf *err)
{
    memset(now, 0, sizeof(*now));
    while (flock(r->fd, LOCK_EX) < 0 && errno == EINTR)
        ;
    if (qmessage_load_fd(r->fd, id, now, err) == 0)
        return 0;
    qfile_close(r);
    return -1;
}

/* Mark recipient's pending records of hold/ID done; removes the file when
 * none is left. 0, or -1 with err. */
static int mark_done(const struct qmessage *m, const char *recipient, bool *removed,
                     struct strbuf *err)
{
    char path[128];
    struct qfile_reader r;
    struct qmessage now;
    if (open_held(m, O_RDWR, &r, path, sizeof(path), err) < 0
        || lock_and_reload(&r, m->id, &now, err) < 0)
        return -1;
    size_t left = 0;
    int rc = 0;
    for (size_t i = 0; i < now.nrcpts; i++) {
        if (now.rcpts[i].done)
            continue;
        if (strcasecmp(now.rcpts[i].address, recipient) != 0) {
            left++;
        } else if (qfile_mark_done(r.fd, now.rcpts[i].offset) < 0) {
            sb_appendf(err, "cannot update %s: %s", path, strerror(errno));
            rc = -1;
        }
    }
    qmessage_free(&now);
    if (rc == 0 && fsync(r.fd) < 0) {
        sb_appendf(err, "cannot update %s: %s", path, strerror(errno));
        rc = -1;
    }
    *removed = false;
    if (rc == 0 && left == 0 && unlink(path) == 0) {     /* still under the lock */
        queue_admin_remove_logs(m->id);
        *removed = true;
    }
    qfile_close(&r);
    return rc;
}

/* Write a copy of hold/ID for recipient's records alone into incoming/,
 * without the hold reason: a new message qmgr delivers. 0 (newid set), or
 * -1 with err (nothing written). */
static int copy_for(const struct qmessage *m, const char *recipient, char newid[QUEUE_ID_SIZE],
                    struct strbuf *err)
{
    char path[128];
    struct qfile_reader r;
    if (open_held(m, O_RDONLY, &r, path, sizeof(path), err) < 0)
        return -1;
    struct qfile_writer w;
    if (qfile_create(&w, ".") < 0) {
        sb_appendf(err, "cannot create a queue file in incoming/: %s", strerror(errno));
        qfile_close(&r);
        return -1;
    }
    struct qrec rec;
    int rc;
    while ((rc = qfile_next(&r, &rec)) == 1 && rec.type != QREC_END) {
        if (rec.type == QREC_RCPT || rec.type == QREC_DONE) {
            struct qrcpt rc2;
            if (rec.type == QREC_DONE || qrec_rcpt_decode(rec.data, rec.len, &rc2) < 0
                || strcasecmp(rc2.address, recipient) != 0)
                continue;
        }
        if (rec.type == QREC_ATTR && strncmp(rec.data, "hold_reason=", 12) == 0)
            continue;
        if (qfile_put(&w, rec.type, rec.data, rec.len) < 0)
            break;
    }
    bool ok = rc == 1 && rec.type == QREC_END && !w.error;
    qfile_close(&r);
    if (!ok) {
        sb_appendf(err, "cannot copy %s: %s", path, r.error ? r.error : strerror(w.error ? w.error : EIO));
        qfile_abort(&w);
        qfile_writer_free(&w);
        return -1;
    }
    if (qfile_commit(&w) < 0) {
        sb_appendf(err, "cannot commit the copy of %s: %s", m->id, strerror(errno));
        qfile_writer_free(&w);
        return -1;
    }
    str_copy(newid, QUEUE_ID_SIZE, w.id);
    qfile_writer_free(&w);
    return 0;
}

static size_t pending_of(const struct qmessage *m, const char *recipient)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nrcpts; i++)
        if (!m->rcpts[i].done && (!recipient || strcasecmp(m->rcpts[i].address, recipient) == 0))
            n++;
    return n;
}

/* The whole message: into deferred/ due now, or removed. */
static int act_whole(const char *id, const char *recipient, bool release, struct strbuf *err)
{
    char from[128], to[128];
    path_of(from, sizeof(from), QDIR_HOLD, id);
    path_of(to, sizeof(to), QDIR_DEFERRED, id);
    const char *by = recipient ? " by " : "", *who = recipient ? recipient : "";
    int rc = release ? queue_admin_move_due(from, to, err) : unlink(from);
    if (rc < 0) {
        if (!err->len)
            sb_appendf(err, "cannot %s it: %s", release ? "release" : "delete",
                       errno == ENOENT ? "it has just been moved" : strerror(errno));
        return -1;
    }
    if (release) {
        msg_info("%s: released from quarantine%s%s", id, by, who);
        (void)queue_wake_qmgr("deferred");
    } else {
        queue_admin_remove_logs(id);
        msg_info("%s: removed (deleted from the quarantine%s%s)", id, by, who);
    }
    sb_set(err, release ? "released" : "deleted");
    return 0;
}

/* One recipient's part of a message that waits for others too. */
static int act_part(const struct qmessage *m, const char *recipient, bool release,
                    struct strbuf *err)
{
    char newid[QUEUE_ID_SIZE];
    bool removed;
    if (release) {
        if (copy_for(m, recipient, newid, err) < 0)
            return -1;
        /* the copy is safe on disk first: a failure below can only
         * deliver this recipient's copy twice, never lose it */
        msg_info("%s: released from quarantine for <%s> as %s", m->id, recipient, newid);
        (void)queue_wake_qmgr("incoming");
    }
    if (mark_done(m, recipient, &removed, err) < 0)
        return -1;
    if (!release)
        msg_info("%s: <%s> deleted from the quarantine", m->id, recipient);
    if (removed)
        msg_info("%s: removed", m->id);
    sb_reset(err);
    if (release)
        sb_appendf(err, "released as %s", newid);
    else
        sb_set(err, "deleted");
    return 0;
}

static int act(const char *id, const char *recipient, bool release, struct strbuf *err)
{
    struct qmessage m;
    if (load_held(id, recipient, &m, err) < 0)
        return -1;
    sb_reset(err);
    int rc = !recipient || pending_of(&m, recipient) == pending_of(&m, NULL)
                 ? act_whole(id, recipient, release, err)
                 : act_part(&m, recipient, release, err);
    qmessage_free(&m);
    return rc;
}

int quarantine_release(const char *id, const char *recipient, struct strbuf *err)
{
    return act(id, recipient, true, err);
}

int quarantine_delete(const char *id, const char *recipient, struct strbuf *err)
{
    return act(id, recipient, false, err);
}

/* ---- expiry ---- */

struct expiry {
    long long cutoff;
    char (*ids)[QUEUE_ID_SIZE];
    size_t n, cap;
};

static int collect_old(const struct quarantine_entry *e, void *ctx)
{
    struct expiry *x = ctx;
    if (e->arrival >= x->cutoff)
        return 0;
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 64;
        x->ids = xrealloc(x->ids, x->cap * sizeof(*x->ids));
    }
    str_copy(x->ids[x->n++], QUEUE_ID_SIZE, e->id);
    return 0;
}

size_t quarantine_expire(long long cutoff, size_t *failed)
{
    struct expiry x = { .cutoff = cutoff };
    quarantine_list(NULL, collect_old, &x);
    size_t done = 0;
    *failed = 0;
    struct strbuf err = STRBUF_INIT(1024);
    for (size_t i = 0; i < x.n; i++) {
        struct qmessage m;
        sb_reset(&err);
        char path[128];
        path_of(path, sizeof(path), QDIR_HOLD, x.ids[i]);
        if (load_held(x.ids[i], NULL, &m, &err) < 0)
            continue;                 /* released or deleted meanwhile */
        qmessage_free(&m);
        if (unlink(path) == 0) {
            queue_admin_remove_logs(x.ids[i]);
            msg_info("%s: removed (expired from the quarantine)", x.ids[i]);
            done++;
        } else if (errno != ENOENT) {
            msg_warn("%s: cannot remove it from the quarantine: %s", path, strerror(errno));
            (*failed)++;
        }
    }
    sb_free(&err);
    free(x.ids);
    return done;
}
