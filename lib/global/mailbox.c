/* mailbox.c: writing a delivered message into an mbox file or a Maildir,
 * with the locks mail readers expect, and reading the Delivered-To:
 * headers a message already has (mailbox.h), for the local and virtual
 * delivery agents (and the From line and header values for pipe). The
 * caller has already taken the identity the mailbox belongs to. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deliver_request.h"
#include "log.h"
#include "mailbox.h"
#include "queue.h"
#include "util.h"

#define COPY_FLUSH_AT 65536

/* ---- outcomes ---- */

/* A full disk or a broken disk may heal; a file that grew past its limit
 * will not, so that one returns the mail as Postfix does. */
const char *mailbox_dsn_for_errno(int err, int *status)
{
    switch (err) {
    case EFBIG:
    case EDQUOT:
        *status = 5;
        return "5.2.2";
    case ENOSPC:
    case EIO:
    case EROFS:
        *status = 4;
        return "4.3.0";
    default:
        *status = 4;
        return "4.2.0";
    }
}

/* ---- lock styles ---- */

int mailbox_lock_styles(const char *value, struct strbuf *why)
{
    unsigned bits = 0;
    const char *p = value;
    while (*p) {
        size_t skip = strspn(p, " \t\n,");
        p += skip;
        size_t n = strcspn(p, " \t\n,");
        if (n == 0)
            break;
        if (n == 5 && strncmp(p, "fcntl", 5) == 0)
            bits |= MAILBOX_LOCK_FCNTL;
        else if (n == 7 && strncmp(p, "dotlock", 7) == 0)
            bits |= MAILBOX_LOCK_DOT;
        else {
            sb_appendf(why, "%.*s", (int)n, p);
            return -1;
        }
        p += n;
    }
    return (int)bits;
}

/* ---- the envelope lines ---- */

/* Envelope values go into header lines: nothing there may end a line. */
void mailbox_append_clean(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        sb_appendc(out, c < 0x20 || c == 0x7f ? '?' : c);
    }
}

void mailbox_from_line(struct strbuf *out, const char *sender, long long now_sec)
{
    time_t t = (time_t)now_sec;
    struct tm tm;
    char date[64];
    localtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
    sb_appends(out, "From ");
    /* the separator line is split on white space by every reader */
    for (const char *p = *sender ? sender : "MAILER-DAEMON"; *p; p++) {
        unsigned char c = (unsigned char)*p;
        sb_appendc(out, c <= 0x20 || c == 0x7f ? '_' : c);
    }
    sb_appendf(out, "  %s", date);
}

void mailbox_copy_prefix(struct strbuf *out, int flags, const char *sender, const char *orig_to,
                         const char *delivered_to, long long now_sec)
{
    if (flags & COPY_FROM_LINE) {
        mailbox_from_line(out, sender, now_sec);
        sb_appendc(out, '\n');
    }
    sb_appends(out, "Return-Path: <");
    mailbox_append_clean(out, sender);
    sb_appends(out, ">\n");
    if (orig_to && *orig_to) {
        sb_appends(out, "X-Original-To: ");
        mailbox_append_clean(out, orig_to);
        sb_appendc(out, '\n');
    }
    sb_appends(out, "Delivered-To: ");
    mailbox_append_clean(out, delivered_to);
    sb_appendc(out, '\n');
}

/* ---- ">From " quoting ---- */

void mailbox_from_quote_init(struct mailbox_from_quote *q)
{
    q->at_line_start = true;
    q->held = 0;
}

/* Bytes of "From " are held back while they match at a line start; the
 * decision is made when the match completes or fails, so a chunk boundary
 * anywhere in "From " changes nothing. */
int mailbox_from_quote_feed(struct mailbox_from_quote *q, const char *data, size_t len,
                            struct strbuf *out)
{
    static const char pat[] = "From ";
    for (size_t i = 0; i < len; i++) {
        if (q->at_line_start || q->held > 0) {
            q->at_line_start = false;
            if (data[i] == pat[q->held]) {
                if (++q->held == 5) {
                    q->held = 0;
                    if (sb_appends(out, ">From ") < 0)
                        return -1;
                }
                continue;
            }
            if (q->held > 0 && sb_append(out, pat, q->held) < 0)
                return -1;
            q->held = 0;
        }
        /* copy the rest of the line in one piece */
        const char *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) + 1 : len;
        if (sb_append(out, data + i, end - i) < 0)
            return -1;
        i = end - 1;
        q->at_line_start = nl != NULL;
    }
    return 0;
}

int mailbox_from_quote_finish(struct mailbox_from_quote *q, struct strbuf *out)
{
    int rc = q->held > 0 ? sb_append(out, "From ", q->held) : 0;
    q->held = 0;
    return rc;
}

/* ---- writing a copy ---- */

struct copy_sink {
    int fd;
    int flags;
    struct strbuf buf;
    struct mailbox_from_quote quote;
    unsigned long long written, limit;
    char last;                    /* last content byte, for the final newline */
    int err;
};

static int sink_flush(struct copy_sink *s)
{
    if (s->buf.len == 0)
        return 0;
    if (s->limit && s->written + s->buf.len > s->limit) {
        s->err = EFBIG;
        return -1;
    }
    if (write_all(s->fd, s->buf.data, s->buf.len) < 0) {
        s->err = errno ? errno : EIO;
        return -1;
    }
    s->written += s->buf.len;
    sb_reset(&s->buf);
    return 0;
}

static int sink_content(const char *data, size_t len, void *ctx)
{
    struct copy_sink *s = ctx;
    int rc = (s->flags & COPY_QUOTE_FROM) ? mailbox_from_quote_feed(&s->quote, data, len, &s->buf)
                                          : sb_append(&s->buf, data, len);
    if (rc < 0) {
        s->err = ENOMEM;
        return -1;
    }
    if (len)
        s->last = data[len - 1];
    return s->buf.len >= COPY_FLUSH_AT ? sink_flush(s) : 0;
}

int mailbox_copy_write(int fd, const struct mailbox_message *m, const char *delivered_to, int flags,
                       unsigned long long limit, unsigned long long *written)
{
    struct copy_sink s = { .fd = fd, .flags = flags, .limit = limit, .last = '\n' };
    sb_init(&s.buf, 4 * COPY_FLUSH_AT);
    mailbox_from_quote_init(&s.quote);
    mailbox_copy_prefix(&s.buf, flags, m->sender, m->orig_to, delivered_to, now_usec() / 1000000);
    int rc = qfile_read_content(m->fd, (off_t)m->content_offset, sink_content, &s);
    if (rc < 0 && s.err == 0)
        s.err = EIO;           /* the queue file itself is unreadable */
    if (rc == 0 && (flags & COPY_QUOTE_FROM))
        mailbox_from_quote_finish(&s.quote, &s.buf);
    if (rc == 0 && s.last != '\n')
        sb_appendc(&s.buf, '\n');
    if (rc == 0 && (flags & COPY_BLANK_LINE))
        sb_appendc(&s.buf, '\n');
    if (rc == 0)
        rc = sink_flush(&s);
    *written = s.written;
    sb_free(&s.buf);
    if (rc < 0) {
        errno = s.err ? s.err : EIO;
        return -1;
    }
    return 0;
}

/* ---- locks: a dot-lock file (MAILBOX.lock, created exclusively; for
 * readers that only know that one) and a kernel fcntl() lock on the open
 * mailbox, each tried a bounded number of times. A lock file that is not
 * the owner's (or root's) was planted by someone else: it is reported at
 * once instead of being waited for. ---- */

static void lock_name(struct strbuf *out, const char *path)
{
    sb_init(out, 8192);
    sb_appendf(out, "%s.lock", path);
}

static void pause_seconds(int seconds)
{
    struct timespec ts = { seconds, 0 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int mailbox_dotlock_acquire(const char *path, int attempts, int delay, long stale_after,
                          uid_t owner, struct stat *found)
{
    struct strbuf lock;
    lock_name(&lock, path);
    int rc = -1, err = EAGAIN;
    bool removed_stale = false;
    for (int i = 0; i < attempts; i++) {
        int fd = open(sb_str(&lock), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
            rc = removed_stale ? 1 : 0;
            break;
        }
        if (errno != EEXIST) {
            err = errno;
            break;
        }
        struct stat st;
        if (lstat(sb_str(&lock), &st) < 0)
            continue;           /* removed meanwhile: try again at once */
        /* A lock left by a crashed writer would block the mailbox forever. */
        if (stale_after > 0 && time(NULL) - st.st_mtime > stale_after
            && unlink(sb_str(&lock)) == 0) {
            if (found)
                *found = st;
            removed_stale = true;
            continue;
        }
        /* Only the recipient's mail readers and root lock this mailbox:
         * anything else is a planted file, and waiting for it is useless. */
        if (!S_ISREG(st.st_mode) || (st.st_uid != owner && st.st_uid != 0)) {
            if (found)
                *found = st;
            rc = -2;
            break;
        }
        if (i + 1 < attempts)
            pause_seconds(delay);
    }
    sb_free(&lock);
    if (rc == -1)
        errno = err;
    return rc;
}

void mailbox_dotlock_release(const char *path)
{
    struct strbuf lock;
    lock_name(&lock, path);
    (void)unlink(sb_str(&lock));
    sb_free(&lock);
}

int mailbox_fcntl_lock(int fd, int attempts, int delay)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    for (int i = 0; i < attempts; i++) {
        if (fcntl(fd, F_SETLK, &fl) == 0)
            return 0;
        if (errno != EAGAIN && errno != EACCES && errno != EINTR)
            return -1;
        if (i + 1 < attempts)
            pause_seconds(delay);
    }
    errno = EAGAIN;
    return -1;
}

/* ---- mbox ---- */

void mailbox_mbox_append(const struct mailbox_message *m, const char *delivered_to, int fd,
                         const char *what, int flags, const struct mailbox_limit *limit,
                         struct delivery_status *st)
{
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        delivery_status_set(st, 4, "4.2.0", "cannot update %s: %s", what, strerror(errno));
        return;
    }
    off_t before = sb.st_size;
    unsigned long long bound = 0;
    if (limit->size > 0) {
        long long room = limit->size - (long long)before;
        if (room <= 0 || m->content_size >= (unsigned long long)room) {
            delivery_status_set(st, 5, "5.2.2", "cannot update %s: the message would exceed "
                                "%s (%lld bytes)", what, limit->param, limit->size);
            return;
        }
        bound = (unsigned long long)room;
    }
    unsigned long long written = 0;
    if (lseek(fd, 0, SEEK_END) < 0 || mailbox_copy_write(fd, m, delivered_to, flags, bound, &written) < 0
        || fsync(fd) < 0) {
        int err = errno, status;
        const char *dsn = mailbox_dsn_for_errno(err, &status);
        /* never leave half a message behind */
        if (ftruncate(fd, before) < 0 || fsync(fd) < 0)
            delivery_status_set(st, 4, "4.3.0", "cannot update %s: %s; and cannot truncate it back "
                                "to %lld bytes: %s", what, strerror(err), (long long)before,
                                strerror(errno));
        else if (err == EFBIG)
            delivery_status_set(st, 5, dsn, "cannot update %s: the message would exceed "
                                "%s (%lld bytes)", what, limit->param, limit->size);
        else
            delivery_status_set(st, status, dsn, "cannot update %s: error writing message: %s",
                                what, strerror(err));
        return;
    }
    delivery_status_set(st, 2, "2.0.0", "delivered");
}

/* ---- Maildir ---- */

/* A directory this delivery may use: with MAILDIR_NO_SYMLINK not a
 * symbolic link (someone else's directory must not receive the mail). */
static int maildir_dir_ok(const char *path, int flags)
{
    struct stat sb;
    if (!(flags & MAILDIR_NO_SYMLINK))
        return 0;
    /* "dir/" would make lstat follow a link at dir */
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    char *name = xstrndup(path, n);
    int rc = lstat(name, &sb);
    free(name);
    if (rc < 0)
        return -1;
    if (S_ISLNK(sb.st_mode)) {
        errno = ELOOP;
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Every missing parent of path (as mkdir -p, mode 0700). */
static int make_parents(const char *path)
{
    char *copy = xstrdup(path);
    int rc = 0;
    for (char *p = copy + 1; *p && rc == 0; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(copy, 0700) < 0 && errno != EEXIST)
            rc = -1;
        *p = '/';
    }
    free(copy);
    return rc;
}

/* dir, dir/tmp, dir/new and dir/cur, created when missing. */
static int maildir_make(const struct mailbox_maildir *md, struct strbuf *path)
{
    static const char *const subs[] = { "", "tmp", "new", "cur" };
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        sb_reset(path);
        if (sb_appendf(path, "%s%s", md->dir, subs[i]) < 0) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int rc = mkdir(sb_str(path), 0700);
        if (rc < 0 && errno == ENOENT && i == 0 && (md->flags & MAILDIR_MAKE_PARENTS)
            && make_parents(sb_str(path)) == 0)
            rc = mkdir(sb_str(path), 0700);
        if (rc < 0 && errno != EEXIST)
            return -1;
        if (maildir_dir_ok(sb_str(path), md->flags) < 0)
            return -1;
    }
    return 0;
}

/* time.MusecPpid_seq.host: unique across processes (pid), within one
 * process (seq) and across a pid being reused (time to the microsecond).
 * '/' and ':' in the host name are written as octal escapes, as Maildir
 * readers expect. */
static void maildir_name(struct strbuf *out, const struct mailbox_message *m, const char *hostname)
{
    long long now = now_usec();
    sb_appendf(out, "%lld.M%06lldP%ld_%lu.", now / 1000000, now % 1000000, (long)getpid(), m->seq);
    for (const char *h = hostname; *h; h++) {
        if (*h == '/')
            sb_appends(out, "\\057");
        else if (*h == ':')
            sb_appends(out, "\\072");
        else
            sb_appendc(out, (unsigned char)*h < 0x21 ? '_' : *h);
    }
}

static void maildir_fail(struct delivery_status *st, const struct mailbox_maildir *md,
                         const char *what, const char *path, int err)
{
    int status;
    const char *dsn = mailbox_dsn_for_errno(err, &status);
    if (err == EFBIG)
        delivery_status_set(st, 5, dsn, "maildir delivery failed: the message would exceed "
                            "%s (%lld bytes)", md->limit.param, md->limit.size);
    else if (err == ELOOP && (md->flags & MAILDIR_NO_SYMLINK))
        delivery_status_set(st, status, dsn, "maildir delivery failed: %s %s: is a symbolic link, "
                            "which is not followed; remove it", what, path);
    else
        delivery_status_set(st, status, dsn, "maildir delivery failed: %s %s: %s", what, path,
                            strerror(err));
}

void mailbox_maildir_write(const struct mailbox_message *m, const char *delivered_to,
                           const struct mailbox_maildir *md, struct delivery_status *st)
{
    struct strbuf path = STRBUF_INIT(8192), name = STRBUF_INIT(1024);
    struct strbuf tmp = STRBUF_INIT(8192), fin = STRBUF_INIT(8192);
    if (maildir_make(md, &path) < 0) {
        maildir_fail(st, md, "create maildir directory", sb_str(&path), errno);
        goto out;
    }
    maildir_name(&name, m, md->hostname);
    sb_appendf(&tmp, "%stmp/%s", md->dir, sb_str(&name));
    sb_appendf(&fin, "%snew/%s", md->dir, sb_str(&name));
    int fd = open(sb_str(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        maildir_fail(st, md, "create maildir file", sb_str(&tmp), errno);
        goto out;
    }
    unsigned long long limit = md->limit.size > 0 ? (unsigned long long)md->limit.size : 0;
    unsigned long long written;
    int rc = mailbox_copy_write(fd, m, delivered_to, 0, limit, &written);
    if (rc == 0)
        rc = fsync(fd);
    int err = errno;
    if (close(fd) < 0 && rc == 0) {
        rc = -1;
        err = errno;
    }
    if (rc == 0 && rename(sb_str(&tmp), sb_str(&fin)) < 0) {
        rc = -1;
        err = errno;
    }
    if (rc < 0) {
        unlink(sb_str(&tmp));
        maildir_fail(st, md, "write maildir file", sb_str(&tmp), err);
        goto out;
    }
    sb_reset(&path);
    sb_appendf(&path, "%snew", md->dir);
    /* The rename is done and a reader may already have the message: a
     * deferral now would only deliver it twice. */
    if (fsync_dir(sb_str(&path)) < 0)
        msg_warn("maildir %s: fsync: %m", sb_str(&path));
    delivery_status_set(st, 2, "2.0.0", "delivered to maildir");
out:
    sb_free(&path);
    sb_free(&name);
    sb_free(&tmp);
    sb_free(&fin);
}

/* ---- Delivered-To: headers for loop detection ---- */

void mailbox_delivered_scan_init(struct mailbox_delivered_scan *s)
{
    memset(s, 0, sizeof(*s));
    sb_init(&s->line, 8192);
}

static void scan_line(struct mailbox_delivered_scan *s)
{
    const char *l = sb_str(&s->line);
    if (s->line.len == 0) {
        s->done = true;            /* the empty line that ends the header */
        return;
    }
    if (strncasecmp(l, "Delivered-To:", 13) != 0 || s->nvalues >= MAILBOX_DELIVERED_MAX)
        return;
    const char *v = l + 13;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
        n--;
    s->values = xrealloc(s->values, (s->nvalues + 1) * sizeof(*s->values));
    s->values[s->nvalues++] = str_lower(xstrndup(v, n));
}

void mailbox_delivered_scan_feed(struct mailbox_delivered_scan *s, const char *data, size_t len)
{
    for (size_t i = 0; i < len && !s->done; i++) {
        if (++s->seen > MAILBOX_HEADER_SCAN_MAX) {
            s->done = true;
            break;
        }
        if (data[i] == '\n') {
            scan_line(s);
            sb_reset(&s->line);
        } else if (sb_appendc(&s->line, data[i]) < 0) {
            /* an overlong line cannot be one of ours: keep its start only */
        }
    }
}

void mailbox_delivered_scan_finish(struct mailbox_delivered_scan *s)
{
    if (!s->done && s->line.len)
        scan_line(s);
    s->done = true;
    sb_free(&s->line);
}

static int scan_chunk(const char *data, size_t len, void *ctx)
{
    struct mailbox_delivered_scan *s = ctx;
    mailbox_delivered_scan_feed(s, data, len);
    return s->done ? 1 : 0;      /* stop reading after the header */
}

void mailbox_delivered_scan_request(struct mailbox_delivered_scan *s,
                                    const struct deliver_request *rq)
{
    mailbox_delivered_scan_init(s);
    deliver_request_scan(rq, scan_chunk, s);
    mailbox_delivered_scan_finish(s);
}

bool mailbox_delivered_seen(char *const *values, size_t n, const char *delivered_to)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(values[i], delivered_to) == 0)
            return true;
    return false;
}

void mailbox_delivered_scan_free(struct mailbox_delivered_scan *s)
{
    for (size_t i = 0; i < s->nvalues; i++)
        free(s->values[i]);
    free(s->values);
    sb_free(&s->line);
    memset(s, 0, sizeof(*s));
}
