/* queue_file.c: writing, committing and strictly reading queue files in the
 * record format of queue.h; the states and the commit point are in QUEUE.md. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"
#include "strbuf.h"
#include "util.h"

#define QFILE_WRITE_BUFFER 65536

/* ---- recipients ---- */

int qrec_rcpt_encode(struct strbuf *out, const char *address, const char *orcpt, const char *notify)
{
    sb_reset(out);
    if (sb_appends(out, address) < 0 || sb_appendc(out, 0) < 0
        || sb_appends(out, orcpt ? orcpt : "") < 0 || sb_appendc(out, 0) < 0
        || sb_appends(out, notify ? notify : "") < 0)
        return -1;
    return 0;
}

int qrec_rcpt_decode(const char *data, size_t len, struct qrcpt *r)
{
    const char *end = data + len;
    const char *a = data;
    const char *z1 = memchr(a, 0, len);
    if (!z1)
        return -1;
    const char *o = z1 + 1;
    const char *z2 = memchr(o, 0, (size_t)(end - o));
    if (!z2)
        return -1;
    const char *n = z2 + 1;
    if (memchr(n, 0, (size_t)(end - n)) || *(end) != 0)   /* data is NUL-terminated by the reader */
        return -1;
    if (z1 == a)
        return -1;   /* an empty recipient address is never valid */
    r->address = a;
    r->orcpt = o;
    r->notify = n;
    return 0;
}

/* ---- writing ---- */

static unsigned char qfile_wbuf_space[QFILE_WRITE_BUFFER];
static size_t qfile_wbuf_len;
static struct qfile_writer *qfile_wbuf_owner;

static int qfile_flush(struct qfile_writer *w)
{
    if (qfile_wbuf_owner != w || qfile_wbuf_len == 0)
        return w->error ? -1 : 0;
    if (write_all(w->fd, qfile_wbuf_space, qfile_wbuf_len) < 0)
        w->error = errno ? errno : EIO;
    qfile_wbuf_len = 0;
    return w->error ? -1 : 0;
}

static int qfile_write(struct qfile_writer *w, const void *p, size_t n)
{
    if (w->error)
        return -1;
    if (qfile_wbuf_owner != w) {
        /* one writer per process at a time; flush a previous owner's bytes */
        if (qfile_wbuf_owner && qfile_wbuf_len)
            qfile_flush(qfile_wbuf_owner);
        qfile_wbuf_owner = w;
        qfile_wbuf_len = 0;
    }
    if (qfile_wbuf_len + n > sizeof(qfile_wbuf_space)) {
        if (qfile_flush(w) < 0)
            return -1;
        if (n > sizeof(qfile_wbuf_space)) {
            if (write_all(w->fd, p, n) < 0) {
                w->error = errno ? errno : EIO;
                return -1;
            }
            return 0;
        }
    }
    memcpy(qfile_wbuf_space + qfile_wbuf_len, p, n);
    qfile_wbuf_len += n;
    return 0;
}

int queue_path(struct strbuf *out, const char *queue_dir, const char *sub, const char *id)
{
    sb_reset(out);
    return sb_appendf(out, "%s/%s/%s", queue_dir, sub, id);
}

int qfile_create(struct qfile_writer *w, const char *queue_dir)
{
    memset(w, 0, sizeof(*w));
    w->fd = -1;
    struct strbuf tmp = STRBUF_INIT(4096), fin = STRBUF_INIT(4096);
    for (int attempt = 0; attempt < 20; attempt++) {
        queue_id_new(w->id);
        if (sb_appendf(&tmp, "%s/%s/.%s", queue_dir, QDIR_INCOMING, w->id) < 0) {
            errno = ENAMETOOLONG;
            break;
        }
        w->fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd >= 0 || errno != EEXIST)
            break;
        sb_reset(&tmp);
    }
    if (w->fd < 0) {
        int saved = errno;
        sb_free(&tmp);
        errno = saved;
        return -1;
    }
    queue_path(&fin, queue_dir, QDIR_INCOMING, w->id);
    w->queue_dir = xstrdup(queue_dir);
    w->temp_path = xstrdup(tmp.data);
    w->final_path = xstrdup(fin.data);
    sb_free(&tmp);
    sb_free(&fin);
    return 0;
}

int qfile_put(struct qfile_writer *w, int type, const void *data, size_t len)
{
    if (len > QREC_MAX_LEN) {
        w->error = EFBIG;
        return -1;
    }
    unsigned char hdr[5] = { (unsigned char)type, (unsigned char)(len >> 24),
                             (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                             (unsigned char)len };
    if (qfile_write(w, hdr, 5) < 0 || qfile_write(w, data, len) < 0)
        return -1;
    if (type == QREC_CONTENT)
        w->content_size += len;
    return 0;
}

int qfile_put_str(struct qfile_writer *w, int type, const char *s)
{
    return qfile_put(w, type, s, strlen(s));
}

int qfile_put_attr(struct qfile_writer *w, const char *name, const char *value)
{
    struct strbuf sb = STRBUF_INIT(QREC_MAX_LEN);
    int rc = sb_appendf(&sb, "%s=%s", name, value) < 0 ? -1 : qfile_put(w, QREC_ATTR, sb.data, sb.len);
    if (rc < 0 && !w->error)
        w->error = EFBIG;
    sb_free(&sb);
    return rc;
}

/* Publish temp_path as final_path without ever replacing an existing file. */
static int qfile_publish(const char *from, const char *to)
{
#ifdef SYS_renameat2
    if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1 /* RENAME_NOREPLACE */) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
#endif
    if (link(from, to) < 0)
        return -1;
    (void)unlink(from);
    return 0;
}

int qfile_commit(struct qfile_writer *w)
{
    struct strbuf dir = STRBUF_INIT(4096);
    int rc = -1;
    if (qfile_put(w, QREC_END, "", 0) == 0 && qfile_flush(w) == 0 && fsync(w->fd) == 0
        && qfile_publish(w->temp_path, w->final_path) == 0) {
        sb_appendf(&dir, "%s/%s", w->queue_dir, QDIR_INCOMING);
        if (fsync_dir(dir.data) == 0) {
            rc = 0;
        } else {
            /* Not durable: take it back so the client is not told a lie. */
            int saved = errno;
            unlink(w->final_path);
            errno = saved;
        }
    }
    if (rc < 0) {
        int saved = w->error ? w->error : errno;
        unlink(w->temp_path);
        errno = saved;
    }
    if (qfile_wbuf_owner == w) {
        qfile_wbuf_owner = NULL;
        qfile_wbuf_len = 0;
    }
    close(w->fd);
    w->fd = -1;
    sb_free(&dir);
    return rc;
}

void qfile_abort(struct qfile_writer *w)
{
    if (qfile_wbuf_owner == w) {
        qfile_wbuf_owner = NULL;
        qfile_wbuf_len = 0;
    }
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    if (w->temp_path)
        unlink(w->temp_path);
}

void qfile_writer_free(struct qfile_writer *w)
{
    free(w->queue_dir);
    free(w->temp_path);
    free(w->final_path);
    w->queue_dir = w->temp_path = w->final_path = NULL;
}

/* ---- reading ---- */

static bool qrec_type_known(int t)
{
    return strchr("VTZSARDCXWE", t) != NULL && t != 0;
}

void qfile_reader_init_fd(struct qfile_reader *r, int fd)
{
    memset(r, 0, sizeof(*r));
    r->fd = fd;
    struct stat st;
    r->file_size = fstat(fd, &st) == 0 ? st.st_size : 0;
    r->buf = xmalloc(sizeof(*r->buf));
    sb_init(r->buf, QREC_MAX_LEN + 1);
}

int qfile_open(struct qfile_reader *r, const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    qfile_reader_init_fd(r, fd);
    return 0;
}

static int qfile_pread_all(int fd, void *buf, size_t n, off_t off)
{
    char *p = buf;
    while (n) {
        ssize_t got = pread(fd, p, n, off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
        off += got;
    }
    return 0;
}

int qfile_next(struct qfile_reader *r, struct qrec *rec)
{
    r->truncated = false;
    if (r->pos >= r->file_size) {
        r->truncated = !r->seen_end;
        return r->seen_end ? 0 : -1;
    }
    if (r->seen_end)
        return -1;                         /* data after the end record */
    unsigned char hdr[5];
    off_t left = r->file_size - r->pos;
    size_t have = left < 5 ? (size_t)left : 5;
    if (qfile_pread_all(r->fd, hdr, have, r->pos) < 0)
        return -1;
    if (!qrec_type_known(hdr[0]) || (r->pos == 0 && hdr[0] != QREC_VERSION))
        return -1;
    if (have < 5) {
        r->truncated = true;
        return -1;
    }
    size_t len = (size_t)hdr[1] << 24 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 8 | hdr[4];
    if (len > QREC_MAX_LEN)
        return -1;
    if ((off_t)len > left - 5) {
        r->truncated = true;
        return -1;
    }
    sb_reset(r->buf);
    char tmp[8192];
    size_t todo = len;
    off_t off = r->pos + 5;
    while (todo) {
        size_t n = todo < sizeof(tmp) ? todo : sizeof(tmp);
        if (qfile_pread_all(r->fd, tmp, n, off) < 0 || sb_append(r->buf, tmp, n) < 0)
            return -1;
        todo -= n;
        off += (off_t)n;
    }
    rec->type = hdr[0];
    rec->data = sb_str(r->buf);
    rec->len = len;
    rec->offset = r->pos;
    r->pos += 5 + (off_t)len;
    if (rec->type == QREC_END)
        r->seen_end = true;
    return 1;
}

void qfile_close(struct qfile_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    if (r->buf) {
        sb_free(r->buf);
        free(r->buf);
        r->buf = NULL;
    }
}

int qfile_mark_done(int fd, off_t offset)
{
    unsigned char t;
    if (qfile_pread_all(fd, &t, 1, offset) < 0 || (t != QREC_RCPT && t != QREC_DONE)) {
        errno = EINVAL;
        return -1;
    }
    t = QREC_DONE;
    if (pwrite(fd, &t, 1, offset) != 1)
        return -1;
    return fsync(fd);
}

/* ---- the parsed view ---- */

static int qmessage_add_rcpt(struct qmessage *m, const struct qrec *rec)
{
    struct qrcpt r;
    if (qrec_rcpt_decode(rec->data, rec->len, &r) < 0)
        return -1;
    if (m->nrcpts % 16 == 0)
        m->rcpts = xrealloc(m->rcpts, (m->nrcpts + 16) * sizeof(*m->rcpts));
    struct qrcpt *dst = &m->rcpts[m->nrcpts++];
    dst->address = xstrdup(r.address);
    dst->orcpt = xstrdup(r.orcpt);
    dst->notify = xstrdup(r.notify);
    dst->offset = rec->offset;
    dst->done = rec->type == QREC_DONE;
    return 0;
}

static int qmessage_add_attr(struct qmessage *m, const struct qrec *rec)
{
    const char *eq = memchr(rec->data, '=', rec->len);
    if (!eq || eq == rec->data || memchr(rec->data, 0, rec->len))
        return -1;
    if (m->nattrs % 16 == 0) {
        m->attr_names = xrealloc(m->attr_names, (m->nattrs + 16) * sizeof(char *));
        m->attr_values = xrealloc(m->attr_values, (m->nattrs + 16) * sizeof(char *));
    }
    m->attr_names[m->nattrs] = xstrndup(rec->data, (size_t)(eq - rec->data));
    m->attr_values[m->nattrs] = xstrdup(eq + 1);
    m->nattrs++;
    return 0;
}

static int qmessage_record(struct qmessage *m, const struct qrec *rec, int *state, struct strbuf *err)
{
    /* state: 0 envelope, 1 inside content, 2 after content */
    switch (rec->type) {
    case QREC_VERSION:
        if (rec->offset != 0 || strcmp(rec->data, "1") != 0)
            return sb_appendf(err, "unsupported version record"), -1;
        return 0;
    case QREC_TIME: {
        long long sec = 0, usec = 0;
        char extra;
        if (sscanf(rec->data, "%lld.%lld%c", &sec, &usec, &extra) != 2 || sec < 0
            || usec < 0 || usec > 999999)
            return sb_appendf(err, "bad arrival time record"), -1;
        m->arrival_usec = sec * 1000000 + usec;
        return 0;
    }
    case QREC_SENDER:
        if (m->sender || memchr(rec->data, 0, rec->len))
            return sb_appendf(err, "duplicate or bad sender record"), -1;
        m->sender = xstrdup(rec->data);
        return 0;
    case QREC_ATTR:
        return qmessage_add_attr(m, rec) < 0 ? (sb_appendf(err, "bad attribute record"), -1) : 0;
    case QREC_RCPT:
    case QREC_DONE:
        return qmessage_add_rcpt(m, rec) < 0 ? (sb_appendf(err, "bad recipient record"), -1) : 0;
    case QREC_CONTENT:
        if (*state == 2)
            return sb_appendf(err, "content after end of content"), -1;
        if (*state == 0)
            m->content_offset = rec->offset;
        *state = 1;
        m->content_size += rec->len;
        return 0;
    case QREC_CONTENT_END:
        if (*state == 2)
            return sb_appendf(err, "duplicate end of content"), -1;
        if (*state == 0)
            m->content_offset = rec->offset;
        *state = 2;
        return 0;
    case QREC_END:
        if (*state != 2 || !m->sender)
            return sb_appendf(err, "end record without content or sender"), -1;
        m->complete = true;
        return 0;
    default:
        return 0;   /* QREC_SIZE, QREC_WARN: informational here */
    }
}

int qmessage_load(const char *path, struct qmessage *m, struct strbuf *err)
{
    memset(m, 0, sizeof(*m));
    const char *base = strrchr(path, '/');
    str_copy(m->id, sizeof(m->id), base ? base + 1 : path);
    struct qfile_reader r;
    if (qfile_open(&r, path, O_RDONLY) < 0) {
        sb_appendf(err, "open %s: %s", path, strerror(errno));
        return -1;
    }
    struct qrec rec;
    int rc, state = 0;
    while ((rc = qfile_next(&r, &rec)) == 1)
        if (qmessage_record(m, &rec, &state, err) < 0) {
            rc = -1;
            break;
        }
    /* A file cut short (no END yet) is incomplete, not corrupt; anything
     * else the reader refused is corrupt. */
    if (rc < 0 && err->len == 0) {
        if (r.truncated)
            rc = 0;
        else
            sb_appendf(err, "%s: corrupt record at offset %lld", path, (long long)r.pos);
    }
    qfile_close(&r);
    if (rc < 0)
        return -1;
    if (!m->sender)
        m->sender = xstrdup("");
    return 0;
}

const char *qmessage_attr(const struct qmessage *m, const char *name)
{
    for (size_t i = 0; i < m->nattrs; i++)
        if (strcmp(m->attr_names[i], name) == 0)
            return m->attr_values[i];
    return NULL;
}

void qmessage_free(struct qmessage *m)
{
    free(m->sender);
    for (size_t i = 0; i < m->nattrs; i++) {
        free(m->attr_names[i]);
        free(m->attr_values[i]);
    }
    free(m->attr_names);
    free(m->attr_values);
    for (size_t i = 0; i < m->nrcpts; i++) {
        free((char *)m->rcpts[i].address);
        free((char *)m->rcpts[i].orcpt);
        free((char *)m->rcpts[i].notify);
    }
    free(m->rcpts);
    memset(m, 0, sizeof(*m));
}

int qfile_read_content(int fd, off_t content_offset,
                       int (*fn)(const char *data, size_t len, void *ctx), void *ctx)
{
    struct qfile_reader r;
    qfile_reader_init_fd(&r, fd);
    r.pos = content_offset;
    struct qrec rec;
    int rc = -1, n;
    while ((n = qfile_next(&r, &rec)) == 1) {
        if (rec.type == QREC_CONTENT) {
            if (fn(rec.data, rec.len, ctx) != 0)
                break;
        } else if (rec.type == QREC_CONTENT_END) {
            rc = 0;
            break;
        } else {
            break;    /* content records are contiguous */
        }
    }
    r.fd = -1;        /* the caller owns fd */
    qfile_close(&r);
    return rc;
}
