/* queue_file.c: writing, committing and strictly reading queue files in the
 * record format of queue.h. The states, the commit point and what a crash
 * leaves at each step are written down in QUEUE.md. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"
#include "strbuf.h"
#include "util.h"

#define QFILE_WRITE_BUFFER 65536
#define QREC_HEADER_LEN 5           /* type byte + uint32 length */
#define QFILE_CREATE_ATTEMPTS 32    /* new IDs tried when a name is taken */
#define QFILE_PATH_MAX 4096
#define QATTR_NAME_MAX 64

/* ---- recipients ---- */

int qrec_rcpt_encode(struct strbuf *out, const char *address, const char *orcpt, const char *notify)
{
    sb_reset(out);
    if (!address || !*address)
        return -1;
    if (sb_appends(out, address) < 0 || sb_appendc(out, 0) < 0
        || sb_appends(out, orcpt ? orcpt : "") < 0 || sb_appendc(out, 0) < 0
        || sb_appends(out, notify ? notify : "") < 0 || out->len > QREC_MAX_LEN) {
        sb_reset(out);
        return -1;
    }
    return 0;
}

/* data[len] must be 0 (qfile_next guarantees it): the last field is used in
 * place as a C string. Exactly two NULs separate the three fields. */
int qrec_rcpt_decode(const char *data, size_t len, struct qrcpt *r)
{
    const char *end = data + len;
    const char *z1 = memchr(data, 0, len);
    if (!z1 || z1 == data)
        return -1;   /* no separator, or an empty address */
    const char *orcpt = z1 + 1;
    const char *z2 = memchr(orcpt, 0, (size_t)(end - orcpt));
    if (!z2)
        return -1;
    const char *notify = z2 + 1;
    if (memchr(notify, 0, (size_t)(end - notify)) || *end != 0)
        return -1;
    r->address = data;
    r->orcpt = orcpt;
    r->notify = notify;
    return 0;
}

/* ---- writing ---- */

static bool qrec_type_known(int t)
{
    switch (t) {
    case QREC_VERSION: case QREC_TIME: case QREC_SIZE: case QREC_SENDER: case QREC_ATTR:
    case QREC_RCPT: case QREC_DONE: case QREC_CONTENT: case QREC_CONTENT_END:
    case QREC_WARN: case QREC_END:
        return true;
    default:
        return false;
    }
}

/* Remember the first error; every later call fails with it. */
static int qfile_fail(struct qfile_writer *w, int err)
{
    if (!w->error)
        w->error = err ? err : EIO;
    errno = w->error;
    return -1;
}

static int qfile_flush(struct qfile_writer *w)
{
    if (w->error)
        return qfile_fail(w, w->error);
    if (w->wbuf_len && write_all(w->fd, w->wbuf, w->wbuf_len) < 0)
        return qfile_fail(w, errno);
    w->wbuf_len = 0;
    return 0;
}

/* The buffered bytes and then p[0..n) in as few writev calls as the
 * kernel allows: one for a content record and the header before it. */
static int flush_with(struct qfile_writer *w, const void *p, size_t n)
{
    struct iovec iov[2] = { { w->wbuf, w->wbuf_len }, { (void *)p, n } };
    struct iovec *v = iov;
    int nv = 2;
    while (nv > 0) {
        ssize_t k = writev(w->fd, v, nv);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return qfile_fail(w, k < 0 ? errno : EIO);
        while (nv > 0 && (size_t)k >= v->iov_len) {
            k -= (ssize_t)v->iov_len;
            v++;
            nv--;
        }
        if (nv > 0) {
            v->iov_base = (char *)v->iov_base + k;
            v->iov_len -= (size_t)k;
        }
    }
    w->wbuf_len = 0;
    return 0;
}

static int qfile_write(struct qfile_writer *w, const void *p, size_t n)
{
    if (w->error)
        return qfile_fail(w, w->error);
    if (n == 0)
        return 0;
    if (w->wbuf_len + n > QFILE_WRITE_BUFFER) {
        if (n >= QFILE_WRITE_BUFFER)   /* large chunks go straight out, after what is buffered */
            return flush_with(w, p, n);
        if (qfile_flush(w) < 0)
            return -1;
    }
    memcpy(w->wbuf + w->wbuf_len, p, n);
    w->wbuf_len += n;
    return 0;
}

int queue_path(struct strbuf *out, const char *queue_dir, const char *sub, const char *id)
{
    sb_reset(out);
    if (strchr(id, '/')) {
        errno = EINVAL;
        return -1;
    }
    if (sb_appendf(out, "%s/%s/%s", queue_dir, sub, id) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Publish from as to without ever replacing an existing file. */
static int qfile_publish(const char *from, const char *to)
{
#ifdef SYS_renameat2
    if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1 /* RENAME_NOREPLACE */) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
#endif
    /* Kernels or file systems without RENAME_NOREPLACE: link() fails with
     * EEXIST instead of replacing. A leftover .ID link is removed by qmgr. */
    if (link(from, to) < 0)
        return -1;
    (void)unlink(from);
    return 0;
}

/* ---- spare files ----
 * Every message used to cost a new inode and a freed one. On ext4 the
 * allocation of an inode scans the group's bitmap past the inodes freed
 * moments ago (it will not reuse them at once), and with a queue that
 * creates and removes thousands of files a second that scan was the
 * largest single cost of cleanup. So a finished message's file is emptied
 * and kept in spare/ under a slot number (at most QFILE_SPARES of them),
 * and cleanup renames a spare into place instead of creating a file. The
 * slots bound the pool without counting: a retired file takes a free slot
 * or is removed; a writer tries a few slots and creates a file when they
 * are empty. Everything here is mail_owner's, in directories only
 * mail_owner may enter; a file found in a slot is still checked (a plain
 * file of this uid with one link) before it is emptied and written. */
#define QFILE_SPARES 256
#define QFILE_SPARE_TRIES 8

static bool spares_on;
static unsigned spare_cursor;

void qfile_use_spares(bool on)
{
    spares_on = on;
    spare_cursor = (unsigned)getpid() * 37u;   /* processes start at different slots */
}

static int spare_path(struct strbuf *out, const char *queue_dir, unsigned slot)
{
    sb_reset(out);
    return sb_appendf(out, "%s/%s/%u", queue_dir, QDIR_SPARE, slot % QFILE_SPARES) < 0 ? -1 : 0;
}

/* An open file that may be emptied and reused: plain, ours, one name. */
static bool spare_usable(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1
        && st.st_uid == geteuid();
}

/* Move a spare to path (which must not exist) and open it empty with mode;
 * the descriptor, or -1 when no slot tried held a usable spare. Anything
 * else found in a slot is put out of the way (removed where it can be) and
 * sets *odd, after which the caller stops using spares for this file. */
static int spare_take(const char *queue_dir, const char *path, mode_t mode, bool *odd)
{
    struct strbuf from = STRBUF_INIT(QFILE_PATH_MAX);
    int fd = -1;
    for (int i = 0; i < QFILE_SPARE_TRIES && fd < 0 && !*odd; i++) {
        if (spare_path(&from, queue_dir, spare_cursor++) < 0 || qfile_publish(from.data, path) < 0)
            continue;                /* an empty slot, mostly */
        fd = open(path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        /* now as its time: qmgr's sweep takes an old .ID for a leftover */
        if (fd >= 0 && spare_usable(fd) && ftruncate(fd, 0) == 0 && fchmod(fd, mode) == 0
            && futimens(fd, NULL) == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
        *odd = true;
        msg_warn("%s: not an empty queue file of this account; removed", from.data);
        if (unlink(path) < 0 && errno == EISDIR)
            (void)rmdir(path);
    }
    sb_free(&from);
    return fd;
}

int qfile_retire(const char *queue_dir, const char *path)
{
    int fd = spares_on ? open(path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) : -1;
    if (fd >= 0 && spare_usable(fd) && ftruncate(fd, 0) == 0) {
        struct strbuf to = STRBUF_INIT(QFILE_PATH_MAX);
        int rc = -1;
        for (int i = 0; i < QFILE_SPARE_TRIES && rc < 0; i++)
            if (spare_path(&to, queue_dir, spare_cursor++) == 0)
                rc = qfile_publish(path, to.data);
        sb_free(&to);
        close(fd);
        if (rc == 0)
            return 0;
    } else if (fd >= 0) {
        close(fd);
    }
    return unlink(path);
}

/* Open SUB/.ID exclusively (a spare moved there, or a new file), trying
 * new IDs while names are taken. */
static int qfile_open_temp(struct qfile_writer *w, const char *queue_dir, mode_t mode,
                           struct strbuf *tmp)
{
    char dotted[QUEUE_ID_SIZE + 1];
    bool odd = !spares_on || strcmp(w->sub, QDIR_MAILDROP) == 0;
    for (int attempt = 0; attempt < QFILE_CREATE_ATTEMPTS; attempt++) {
        if (attempt > 0 || !w->id[0])
            queue_id_new(w->id);
        snprintf(dotted, sizeof(dotted), ".%s", w->id);
        if (queue_path(tmp, queue_dir, w->sub, dotted) < 0)
            return -1;
        if (!odd && (w->fd = spare_take(queue_dir, tmp->data, mode, &odd)) >= 0)
            return w->fd;
        w->fd = open(tmp->data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (w->fd >= 0 || errno != EEXIST)
            return w->fd;
    }
    return -1;
}

int qfile_create(struct qfile_writer *w, const char *queue_dir)
{
    return qfile_create_in(w, queue_dir, QDIR_INCOMING, 0600);
}

/* Does ID name a message in any queue directory? */
static bool qfile_id_taken(const char *queue_dir, const char *id)
{
    static const char *subs[] = { QDIR_INCOMING, QDIR_ACTIVE, QDIR_DEFERRED, QDIR_HOLD };
    struct strbuf path = STRBUF_INIT(QFILE_PATH_MAX);
    bool taken = false;
    for (size_t i = 0; i < sizeof(subs) / sizeof(*subs) && !taken; i++) {
        struct stat st;
        taken = queue_path(&path, queue_dir, subs[i], id) < 0 || lstat(path.data, &st) == 0;
    }
    sb_free(&path);
    return taken;
}

static int qfile_create_id(struct qfile_writer *w, const char *queue_dir, const char *sub,
                           mode_t mode, const char *preset);

int qfile_create_preset(struct qfile_writer *w, const char *queue_dir, const char *id)
{
    bool usable = queue_id_valid(id) && !qfile_id_taken(queue_dir, id);
    return qfile_create_id(w, queue_dir, QDIR_INCOMING, 0600, usable ? id : NULL);
}

int qfile_create_in(struct qfile_writer *w, const char *queue_dir, const char *sub, mode_t mode)
{
    return qfile_create_id(w, queue_dir, sub, mode, NULL);
}

static int qfile_create_id(struct qfile_writer *w, const char *queue_dir, const char *sub,
                           mode_t mode, const char *preset)
{
    memset(w, 0, sizeof(*w));
    w->fd = -1;
    w->sub = sub;
    if (preset)
        memcpy(w->id, preset, QUEUE_ID_SIZE);
    struct strbuf tmp = STRBUF_INIT(QFILE_PATH_MAX), fin = STRBUF_INIT(QFILE_PATH_MAX);
    if (qfile_open_temp(w, queue_dir, mode, &tmp) < 0 || queue_path(&fin, queue_dir, sub, w->id) < 0) {
        int saved = errno;
        if (w->fd >= 0) {
            close(w->fd);
            unlink(tmp.data);
            w->fd = -1;
        }
        sb_free(&tmp);
        sb_free(&fin);
        errno = saved;
        return -1;
    }
    w->queue_dir = xstrdup(queue_dir);
    w->temp_path = xstrdup(tmp.data);
    w->final_path = xstrdup(fin.data);
    w->wbuf = xmalloc(QFILE_WRITE_BUFFER);
    sb_free(&tmp);
    sb_free(&fin);
    return 0;
}

/* A writer is live from a successful qfile_create until commit or abort.
 * A zeroed struct is not live (its fd 0 is not ours). */
static bool qfile_live(const struct qfile_writer *w)
{
    return w->temp_path && w->fd >= 0 && !w->committed;
}

int qfile_put(struct qfile_writer *w, int type, const void *data, size_t len)
{
    if (!qfile_live(w))
        return qfile_fail(w, EBADF);
    /* END is written by qfile_commit only, so a file can never claim to be
     * complete before it is. */
    if (!qrec_type_known(type) || type == QREC_END)
        return qfile_fail(w, EINVAL);
    if (len > QREC_MAX_LEN || (type == QREC_CONTENT && len > QREC_CONTENT_CHUNK))
        return qfile_fail(w, EFBIG);
    unsigned char hdr[QREC_HEADER_LEN] = {
        (unsigned char)type, (unsigned char)(len >> 24), (unsigned char)(len >> 16),
        (unsigned char)(len >> 8), (unsigned char)len
    };
    if (qfile_write(w, hdr, sizeof(hdr)) < 0 || qfile_write(w, data, len) < 0)
        return -1;
    if (type == QREC_CONTENT)
        w->content_size += len;
    return 0;
}

int qfile_put_str(struct qfile_writer *w, int type, const char *s)
{
    return qfile_put(w, type, s, strlen(s));
}

/* Attribute names follow the IPC attribute rules: [a-z0-9_], 1..64 bytes. */
static bool qattr_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > QATTR_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

int qfile_put_attr(struct qfile_writer *w, const char *name, const char *value)
{
    if (!qattr_name_ok(name, strnlen(name, QATTR_NAME_MAX + 1)))
        return qfile_fail(w, EINVAL);
    struct strbuf sb = STRBUF_INIT(QREC_MAX_LEN);
    int rc = sb_appendf(&sb, "%s=%s", name, value ? value : "") < 0
        ? qfile_fail(w, EFBIG) : qfile_put(w, QREC_ATTR, sb.data, sb.len);
    sb_free(&sb);
    return rc;
}

/* Make the rename durable: without this a power loss may undo it. A
 * writer that may create files in the directory but not read it (tern-drop
 * in maildrop/, mode 0730) cannot open it to fsync it; syncfs of the file
 * system commits the new name instead. */
static int qfile_sync_dir(const struct qfile_writer *w)
{
    struct strbuf dir = STRBUF_INIT(QFILE_PATH_MAX);
    int rc = sb_appendf(&dir, "%s/%s", w->queue_dir, w->sub) < 0 ? -1 : fsync_dir(dir.data);
    if (rc < 0 && errno == EACCES)
        rc = syncfs(w->fd);
    int saved = errno;
    sb_free(&dir);
    errno = saved;
    return rc;
}

static void qfile_release(struct qfile_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    free(w->wbuf);
    w->wbuf = NULL;
    w->wbuf_len = 0;
}

int qfile_commit(struct qfile_writer *w)
{
    static const unsigned char end_record[QREC_HEADER_LEN] = { QREC_END, 0, 0, 0, 0 };
    if (!qfile_live(w))
        return qfile_fail(w, EBADF);
    int rc = -1;
    if (qfile_write(w, end_record, sizeof(end_record)) == 0 && qfile_flush(w) == 0) {
        if (fsync(w->fd) < 0 || qfile_publish(w->temp_path, w->final_path) < 0) {
            qfile_fail(w, errno);
        } else if (qfile_sync_dir(w) < 0) {
            /* Not durable: take it back so nobody is told it is safe. */
            qfile_fail(w, errno);
            unlink(w->final_path);
        } else {
            rc = 0;
        }
    }
    qfile_release(w);
    if (rc < 0) {
        unlink(w->temp_path);
        errno = w->error;
        return -1;
    }
    w->committed = true;
    return 0;
}

int qfile_set_destination(struct qfile_writer *w, const char *sub)
{
    struct strbuf fin = STRBUF_INIT(QFILE_PATH_MAX);
    if (!qfile_live(w) || queue_path(&fin, w->queue_dir, sub, w->id) < 0) {
        sb_free(&fin);
        return qfile_fail(w, EINVAL);
    }
    free(w->final_path);
    w->final_path = xstrdup(fin.data);
    w->sub = sub;
    sb_free(&fin);
    return 0;
}

void qfile_abort(struct qfile_writer *w)
{
    if (!qfile_live(w))
        return;
    int saved = errno;
    qfile_release(w);
    unlink(w->temp_path);
    errno = saved;
}

void qfile_writer_free(struct qfile_writer *w)
{
    qfile_abort(w);   /* a file nobody will finish is garbage */
    free(w->queue_dir);
    free(w->temp_path);
    free(w->final_path);
    w->queue_dir = w->temp_path = w->final_path = NULL;
}

/* ---- reading ---- */

void qfile_reader_init_fd(struct qfile_reader *r, int fd)
{
    memset(r, 0, sizeof(*r));
    r->fd = fd;
    struct stat st;
    r->file_size = fstat(fd, &st) == 0 ? st.st_size : -1;
    r->buf = xmalloc(sizeof(*r->buf));
    sb_init(r->buf, QREC_MAX_LEN);
}

int qfile_open(struct qfile_reader *r, const char *path, int flags)
{
    /* A queue file is a plain file in a directory mail_owner can write:
     * never follow a link or block on a FIFO or device put in its place. */
    int fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    int bad = fstat(fd, &st) < 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : 0;
    if (bad) {
        close(fd);
        errno = bad;
        return -1;
    }
    set_nonblock(fd, false);
    qfile_reader_init_fd(r, fd);
    return 0;
}

#define QFILE_AHEAD 16384

/* n bytes at off, through the read-ahead window when they fit in it. */
static int reader_read(struct qfile_reader *r, void *buf, size_t n, off_t off)
{
    if (n > QFILE_AHEAD)
        return pread_all(r->fd, buf, n, off);
    if (!(r->ahead && off >= r->ahead_off && off + (off_t)n <= r->ahead_off + (off_t)r->ahead_len)) {
        if (!r->ahead)
            r->ahead = xmalloc(QFILE_AHEAD);
        off_t left = r->file_size - off;
        size_t want = left < (off_t)QFILE_AHEAD ? (size_t)(left > 0 ? left : 0) : QFILE_AHEAD;
        if (want < n)
            want = n;
        r->ahead_len = 0;
        if (pread_all(r->fd, r->ahead, want, off) < 0)
            return -1;
        r->ahead_off = off;
        r->ahead_len = want;
    }
    memcpy(buf, r->ahead + (off - r->ahead_off), n);
    return 0;
}

static int qfile_corrupt(struct qfile_reader *r, const char *why, bool truncated)
{
    r->error = why;
    r->truncated = truncated;
    return -1;
}

/* Read the len data bytes after the header at r->pos into r->buf. A
 * record larger than the window (content: 64 KiB) is read straight into
 * r->buf with the next record's header in the same pread, which then
 * becomes the window: one system call and one copy per content record. */
static int qfile_read_data(struct qfile_reader *r, size_t len)
{
    off_t off = r->pos + QREC_HEADER_LEN;
    sb_reset(r->buf);
    if (len <= QFILE_AHEAD) {
        char *room = sb_room(r->buf, len);
        if (!room || reader_read(r, room, len, off) < 0)
            return -1;
        sb_added(r->buf, len);
        return 0;
    }
    off_t after = r->file_size - (off + (off_t)len);
    size_t extra = after < QREC_HEADER_LEN ? (size_t)(after > 0 ? after : 0) : QREC_HEADER_LEN;
    if (len + extra > QREC_MAX_LEN)
        extra = 0;              /* a record of the largest size: r->buf holds no more */
    char *room = sb_room(r->buf, len + extra);
    if (!room || pread_all(r->fd, room, len + extra, off) < 0)
        return -1;
    if (extra) {
        if (!r->ahead)
            r->ahead = xmalloc(QFILE_AHEAD);
        memcpy(r->ahead, room + len, extra);
        r->ahead_off = off + (off_t)len;
        r->ahead_len = extra;
    }
    sb_added(r->buf, len);
    return 0;
}

int qfile_next(struct qfile_reader *r, struct qrec *rec)
{
    r->truncated = false;
    r->error = NULL;
    if (r->fd < 0 || r->file_size < 0)
        return qfile_corrupt(r, "cannot stat the file", false);
    if (r->pos >= r->file_size)
        return r->seen_end ? 0 : qfile_corrupt(r, "no end record", true);
    if (r->seen_end)
        return qfile_corrupt(r, "data after the end record", false);
    unsigned char hdr[QREC_HEADER_LEN];
    off_t left = r->file_size - r->pos;
    size_t have = left < QREC_HEADER_LEN ? (size_t)left : QREC_HEADER_LEN;
    /* Past skipped content the window would be filled with content bytes
     * only to read the next 5-byte header: read just the header there. */
    if ((r->skipped ? pread_all(r->fd, hdr, have, r->pos) : reader_read(r, hdr, have, r->pos)) < 0)
        return qfile_corrupt(r, "read error", false);
    if (!qrec_type_known(hdr[0]))
        return qfile_corrupt(r, "unknown record type", false);
    if ((r->pos == 0) != (hdr[0] == QREC_VERSION))
        return qfile_corrupt(r, "version record missing or misplaced", false);
    if (have < QREC_HEADER_LEN)
        return qfile_corrupt(r, "truncated record header", true);
    uint32_t len = (uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 8 | hdr[4];
    if (len > QREC_MAX_LEN)
        return qfile_corrupt(r, "record too long", false);
    if ((off_t)len > left - QREC_HEADER_LEN)
        return qfile_corrupt(r, "truncated record", true);
    if (hdr[0] == QREC_END && len != 0)
        return qfile_corrupt(r, "end record is not empty", false);
    r->skipped = hdr[0] == QREC_CONTENT && r->skip_content;
    if (r->skipped)
        sb_reset(r->buf);
    else if (qfile_read_data(r, len) < 0)
        return qfile_corrupt(r, "read error", false);
    rec->type = hdr[0];
    rec->data = sb_str(r->buf);
    rec->len = len;
    rec->offset = r->pos;
    r->pos += QREC_HEADER_LEN + (off_t)len;
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
    free(r->ahead);
    r->ahead = NULL;
}

int qfile_mark_done(int fd, off_t offset)
{
    unsigned char t;
    if (offset <= 0 || pread_all(fd, &t, 1, offset) < 0 || (t != QREC_RCPT && t != QREC_DONE)) {
        errno = EINVAL;
        return -1;
    }
    t = QREC_DONE;
    ssize_t n;
    while ((n = pwrite(fd, &t, 1, offset)) < 0 && errno == EINTR)
        ;
    if (n != 1) {
        if (n == 0)
            errno = EIO;
        return -1;
    }
    /* No fsync, as in Postfix: the mark is in the page cache at once, so a
     * crashed or killed process never causes a second delivery; only a
     * power loss in the moment after a delivery can repeat that delivery
     * (the documented at-least-once window, lib/global/QUEUE.md). One fsync per
     * recipient would cost more than the delivery itself. */
    return 0;
}

int qfile_set_warned(int fd, off_t offset, long long when)
{
    unsigned char head[5];
    char digits[QREC_WARN_WIDTH + 1];
    if (offset <= 0 || when < 0 || when > 999999999999999LL || pread_all(fd, head, sizeof(head), offset) < 0
        || head[0] != QREC_WARN || head[1] || head[2] || head[3] || head[4] != QREC_WARN_WIDTH) {
        errno = EINVAL;
        return -1;
    }
    snprintf(digits, sizeof(digits), "%0*lld", QREC_WARN_WIDTH, when);
    ssize_t n;
    while ((n = pwrite(fd, digits, QREC_WARN_WIDTH, offset + 5)) < 0 && errno == EINTR)
        ;
    if (n != QREC_WARN_WIDTH) {
        if (n >= 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

/* ---- the parsed view ---- */

/* State of one qmessage_load pass: which records were seen, and where in
 * the file we are relative to the contiguous run of content records. */
struct qload {
    struct qmessage *m;
    enum { QL_ENVELOPE, QL_CONTENT, QL_AFTER_CONTENT } phase;
    bool seen_time, seen_size, seen_warn;
    const char *error;
};

static int qload_error(struct qload *q, const char *why)
{
    q->error = why;
    return -1;
}

/* Strict unsigned decimal, at most 19 digits: no sign, space or overflow. */
static int parse_udec(const char *s, size_t len, unsigned long long *out)
{
    unsigned long long v = 0;
    if (len == 0 || len > 19)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* "SECONDS.MICROSECONDS" with exactly six digits after the dot. */
static int qload_time(struct qload *q, const struct qrec *rec)
{
    const char *dot = memchr(rec->data, '.', rec->len);
    unsigned long long sec, usec;
    if (q->seen_time || !dot || parse_udec(rec->data, (size_t)(dot - rec->data), &sec) < 0
        || rec->data + rec->len - (dot + 1) != 6 || parse_udec(dot + 1, 6, &usec) < 0
        || sec > (1ULL << 40))
        return qload_error(q, "bad or repeated arrival time record");
    q->seen_time = true;
    q->m->arrival_usec = (long long)(sec * 1000000 + usec);
    return 0;
}

/* Room for one more element in an array grown by doubling from 16. */
static void *grow_for_one(void *array, size_t count, size_t elem)
{
    if (count != 0 && (count < 16 || (count & (count - 1)) != 0))
        return array;
    size_t cap = count < 16 ? 16 : count * 2;
    return xrealloc(array, cap * elem);
}

static int qload_attr(struct qload *q, const struct qrec *rec)
{
    struct qmessage *m = q->m;
    const char *eq = memchr(rec->data, '=', rec->len);
    if (!eq || !qattr_name_ok(rec->data, (size_t)(eq - rec->data)) || memchr(rec->data, 0, rec->len))
        return qload_error(q, "bad attribute record");
    m->attr_names = grow_for_one(m->attr_names, m->nattrs, sizeof(char *));
    m->attr_values = grow_for_one(m->attr_values, m->nattrs, sizeof(char *));
    m->attr_names[m->nattrs] = xstrndup(rec->data, (size_t)(eq - rec->data));
    m->attr_values[m->nattrs] = xstrdup(eq + 1);
    m->nattrs++;
    return 0;
}

static int qload_rcpt(struct qload *q, const struct qrec *rec)
{
    struct qmessage *m = q->m;
    struct qrcpt r;
    if (qrec_rcpt_decode(rec->data, rec->len, &r) < 0)
        return qload_error(q, "bad recipient record");
    m->rcpts = grow_for_one(m->rcpts, m->nrcpts, sizeof(*m->rcpts));
    struct qrcpt *dst = &m->rcpts[m->nrcpts++];
    dst->address = xstrdup(r.address);
    dst->orcpt = xstrdup(r.orcpt);
    dst->notify = xstrdup(r.notify);
    dst->offset = rec->offset;
    dst->done = rec->type == QREC_DONE;
    return 0;
}

/* C and X: one contiguous run C* X, so a reader can stream it from
 * content_offset without meeting anything else. */
static int qload_content(struct qload *q, const struct qrec *rec)
{
    if (q->phase == QL_AFTER_CONTENT)
        return qload_error(q, "content after the end of content");
    if (q->phase == QL_ENVELOPE)
        q->m->content_offset = rec->offset;
    if (rec->type == QREC_CONTENT_END) {
        if (rec->len != 0)
            return qload_error(q, "end of content record is not empty");
        q->phase = QL_AFTER_CONTENT;
    } else {
        if (rec->len > QREC_CONTENT_CHUNK)
            return qload_error(q, "content record too long");
        q->phase = QL_CONTENT;
        q->m->content_size += rec->len;
    }
    return 0;
}

static int qload_size(struct qload *q, const struct qrec *rec)
{
    unsigned long long size;
    if (q->seen_size || q->phase != QL_AFTER_CONTENT || parse_udec(rec->data, rec->len, &size) < 0
        || size != q->m->content_size)
        return qload_error(q, "size record misplaced, repeated or wrong");
    q->seen_size = true;
    return 0;
}

static int qload_record(struct qload *q, const struct qrec *rec)
{
    struct qmessage *m = q->m;
    unsigned long long number;
    if (q->phase == QL_CONTENT && rec->type != QREC_CONTENT && rec->type != QREC_CONTENT_END)
        return qload_error(q, "record inside the content");
    switch (rec->type) {
    case QREC_VERSION:
        return rec->len == 1 && rec->data[0] == '1' ? 0 : qload_error(q, "unsupported version");
    case QREC_TIME:
        return qload_time(q, rec);
    case QREC_SENDER:
        if (m->sender || memchr(rec->data, 0, rec->len))
            return qload_error(q, "repeated or bad sender record");
        m->sender = xstrdup(rec->data);
        return 0;
    case QREC_ATTR:
        /* before the content, or after it: what cleanup decided from the
         * content (content_filter); never inside (caught above) */
        return qload_attr(q, rec);
    case QREC_RCPT:
    case QREC_DONE:
        return qload_rcpt(q, rec);
    case QREC_CONTENT:
    case QREC_CONTENT_END:
        return qload_content(q, rec);
    case QREC_SIZE:
        return qload_size(q, rec);
    case QREC_WARN:
        if (q->seen_warn || parse_udec(rec->data, rec->len, &number) < 0)
            return qload_error(q, "bad or repeated warning time record");
        q->seen_warn = true;
        if (rec->len == QREC_WARN_WIDTH) {      /* only these can be updated in place */
            m->warn_offset = rec->offset;
            m->warn_sent = (long long)number;
        }
        return 0;
    case QREC_END:
        if (q->phase != QL_AFTER_CONTENT || !m->sender || !q->seen_time)
            return qload_error(q, "end record before content, sender or arrival time");
        m->complete = true;
        return 0;
    default:
        return qload_error(q, "unknown record type");
    }
}

/* Read every record; 0 complete or cut at a record boundary, -1 corrupt. */
static int qload_records(struct qload *q, struct qfile_reader *r, off_t *bad_offset)
{
    struct qrec rec;
    int rc;
    while ((rc = qfile_next(r, &rec)) == 1) {
        if (qload_record(q, &rec) < 0) {
            *bad_offset = rec.offset;
            return -1;
        }
    }
    *bad_offset = r->pos;
    if (rc == 0)
        return 0;
    /* Ending exactly after a whole record is "incomplete": the caller
     * decides. A record cut in half, or anything garbled, is corrupt. */
    if (r->truncated && r->pos == r->file_size)
        return 0;
    q->error = r->error ? r->error : "unreadable record";
    return -1;
}

int qmessage_load(const char *path, struct qmessage *m, struct strbuf *err)
{
    memset(m, 0, sizeof(*m));
    sb_reset(err);
    struct qfile_reader r;
    if (qfile_open(&r, path, O_RDONLY) < 0) {
        int saved = errno;
        sb_appendf(err, "cannot open %s: %s", path,
                   saved == ELOOP ? "a symbolic link, not a queue file" : strerror(saved));
        errno = saved;
        return -1;
    }
    const char *base = strrchr(path, '/');
    int rc = qmessage_load_fd(r.fd, base ? base + 1 : path, m, err);
    qfile_close(&r);
    return rc;
}

int qmessage_load_fd(int fd, const char *id, struct qmessage *m, struct strbuf *err)
{
    memset(m, 0, sizeof(*m));
    sb_reset(err);
    str_copy(m->id, sizeof(m->id), id);
    struct qfile_reader r;
    qfile_reader_init_fd(&r, fd);
    r.skip_content = true;          /* only located: agents stream it themselves */
    struct qload q = { .m = m, .phase = QL_ENVELOPE };
    off_t bad_offset = 0;
    int rc = qload_records(&q, &r, &bad_offset);
    r.fd = -1;                      /* the caller owns fd */
    qfile_close(&r);
    if (rc < 0) {
        sb_appendf(err, "corrupt queue file: %s at offset %lld", q.error, (long long)bad_offset);
        qmessage_free(m);
        errno = EINVAL;
        return -1;
    }
    if (!m->sender)
        m->sender = xstrdup("");   /* only possible when incomplete */
    return 0;
}

const char *qmessage_attr(const struct qmessage *m, const char *name)
{
    return strv_value(m->attr_names, m->attr_values, m->nattrs, name);
}

void qmessage_free(struct qmessage *m)
{
    free(m->sender);
    str_array_free(m->attr_names, m->nattrs);
    str_array_free(m->attr_values, m->nattrs);
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
    if (content_offset <= 0)
        return -1;
    struct qfile_reader r;
    qfile_reader_init_fd(&r, fd);
    r.pos = content_offset;
    struct qrec rec;
    int rc = -1;
    while (qfile_next(&r, &rec) == 1) {
        if (rec.type == QREC_CONTENT_END) {
            rc = 0;
            break;
        }
        if (rec.type != QREC_CONTENT || fn(rec.data, rec.len, ctx) != 0)
            break;   /* content records are contiguous; fn may stop us */
    }
    r.fd = -1;        /* the caller owns fd */
    qfile_close(&r);
    return rc;
}
