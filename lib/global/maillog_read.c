/* maillog_read.c: the files of Tern's log (maillog.h): the log and its
 * rotated copies in the order they were written, and reading them line by
 * line, gzip-compressed or not (zlib reads both), with every line bounded.
 * Taking a line apart is maillog.c. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "maillog.h"
#include "strbuf.h"
#include "util.h"

#define READ_CHUNK 65536

/* ---- the files ---- */

struct rotated {
    char *path;
    int kind;                     /* 0 FILE.N, 1 FILE-DATE */
    unsigned long long order;     /* N, or the date as a number */
};

static int rotated_cmp(const void *a, const void *b)
{
    const struct rotated *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    /* FILE.N: the highest N is the oldest; FILE-DATE: the lowest date */
    if (x->order == y->order)
        return 0;
    if (x->kind == 0)
        return x->order > y->order ? -1 : 1;
    return x->order < y->order ? -1 : 1;
}

/* name is base + ".N" or base + "-DIGITS", either with ".gz": 1 and *r. */
static int rotated_of(const char *name, const char *base, struct rotated *r)
{
    size_t blen = strlen(base), n = strlen(name);
    if (n <= blen + 1 || strncmp(name, base, blen) != 0 || (name[blen] != '.' && name[blen] != '-'))
        return 0;
    const char *p = name + blen + 1, *end = name + n;
    if (end - p > 3 && strcmp(end - 3, ".gz") == 0)
        end -= 3;
    if (p == end || end - p > 14)
        return 0;
    unsigned long long v = 0;
    for (const char *q = p; q < end; q++) {
        if (!isdigit((unsigned char)*q))
            return 0;
        v = v * 10 + (unsigned long long)(*q - '0');
    }
    r->kind = name[blen] == '.' ? 0 : 1;
    if (r->kind == 1 && end - p < 8)
        return 0;                 /* dateext: at least YYYYMMDD */
    r->order = v;
    return 1;
}

size_t maillog_files(const char *file, char **files, size_t max)
{
    if (max == 0)
        return 0;
    const char *slash = strrchr(file, '/');
    char *dir = slash ? xstrndup(file, (size_t)(slash - file) + (slash == file)) : xstrdup(".");
    const char *base = slash ? slash + 1 : file;
    struct rotated *found = NULL;
    size_t n = 0, cap = 0;
    DIR *d = *base ? opendir(dir) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        struct rotated r;
        if (!rotated_of(de->d_name, base, &r))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            found = xrealloc(found, cap * sizeof(*found));
        }
        struct strbuf path = STRBUF_INIT(0);
        sb_appendf(&path, "%s%s%s", slash ? dir : "", slash && slash != file ? "/" : "", de->d_name);
        r.path = xstrdup(sb_str(&path));
        sb_free(&path);
        found[n++] = r;
    }
    if (d)
        closedir(d);
    if (n)
        qsort(found, n, sizeof(*found), rotated_cmp);
    size_t out = 0, keep = max - 1;   /* the newest copies, and FILE itself */
    for (size_t i = 0; i < n; i++) {
        if (n - i <= keep)
            files[out++] = found[i].path;
        else
            free(found[i].path);
    }
    if (access(file, F_OK) == 0)
        files[out++] = xstrdup(file);
    free(found);
    free(dir);
    return out;
}

void maillog_files_free(char **files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(files[i]);
}

/* ---- reading ---- */

struct maillog_reader {
    gzFile gz;
    unsigned long long base;      /* where reading began in the file */
    char *buf;                    /* READ_CHUNK bytes read ahead */
    size_t start, end;
    bool eof;
    char line[MAILLOG_LINE_MAX + 1];
};

/* A plain (not gzip) regular file longer than tail: fd moved to its last
 * tail bytes; the offset, or 0 when it reads from the start. */
static off_t seek_tail(int fd, unsigned long long tail)
{
    struct stat st;
    unsigned char magic[2];
    if (!tail || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (unsigned long long)st.st_size <= tail
        || pread(fd, magic, 2, 0) != 2 || (magic[0] == 0x1f && magic[1] == 0x8b))
        return 0;
    off_t at = st.st_size - (off_t)tail;
    return lseek(fd, at, SEEK_SET) == at ? at : 0;
}

static struct maillog_reader *open_reader(const char *path, unsigned long long tail, struct strbuf *err)
{
    int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        sb_appendf(err, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);   /* opened without waiting on a FIFO */
    off_t base = seek_tail(fd, tail);
    if (base == 0)
        (void)lseek(fd, 0, SEEK_SET);
    gzFile gz = gzdopen(fd, "rb");       /* reads from the descriptor's offset */
    if (!gz) {
        sb_appendf(err, "cannot read %s: out of memory", path);
        close(fd);
        return NULL;
    }
    gzbuffer(gz, READ_CHUNK);
    struct maillog_reader *r = xcalloc(1, sizeof(*r));
    r->gz = gz;
    r->base = (unsigned long long)base;
    r->buf = xmalloc(READ_CHUNK);
    if (base > 0) {
        char *line;
        size_t len;
        (void)maillog_next(r, &line, &len, err);    /* the cut first line */
    }
    return r;
}

struct maillog_reader *maillog_open(const char *path, struct strbuf *err)
{
    return open_reader(path, 0, err);
}

struct maillog_reader *maillog_open_tail(const char *path, unsigned long long tail, struct strbuf *err)
{
    return open_reader(path, tail, err);
}

/* More bytes into buf (what is left moved to its start): 1, 0 at the end, -1. */
static int fill(struct maillog_reader *r, struct strbuf *err)
{
    if (r->eof)
        return 0;
    memmove(r->buf, r->buf + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
    int n = gzread(r->gz, r->buf + r->end, (unsigned)(READ_CHUNK - r->end));
    if (n < 0) {
        int code;
        const char *msg = gzerror(r->gz, &code);
        sb_appendf(err, "read error: %s", code == Z_ERRNO ? strerror(errno) : msg);
        return -1;
    }
    if (n == 0) {
        /* a gzip file cut short is read as far as it goes */
        r->eof = true;
        return 0;
    }
    r->end += (size_t)n;
    return 1;
}

int maillog_next(struct maillog_reader *r, char **line, size_t *len, struct strbuf *err)
{
    size_t out = 0;
    bool any = false;
    for (;;) {
        if (r->start == r->end) {
            int rc = fill(r, err);
            if (rc < 0)
                return -1;
            if (rc == 0) {
                if (!any)
                    return 0;
                break;                /* a last line without its line end */
            }
        }
        any = true;
        char *p = r->buf + r->start;
        size_t avail = r->end - r->start;
        char *nl = memchr(p, '\n', avail);
        size_t take = nl ? (size_t)(nl - p) : avail;
        size_t room = MAILLOG_LINE_MAX - out;
        memcpy(r->line + out, p, take < room ? take : room);
        out += take < room ? take : room;
        r->start += take + (nl ? 1 : 0);
        if (nl)
            break;
    }
    if (out && r->line[out - 1] == '\r')
        out--;
    r->line[out] = 0;
    for (size_t i = 0; i < out; i++)
        if (r->line[i] == 0)
            r->line[i] = '?';
    *line = r->line;
    *len = out;
    return 1;
}

unsigned long long maillog_offset(const struct maillog_reader *r)
{
    z_off_t off = gzoffset(r->gz);
    return off > 0 && (unsigned long long)off > r->base ? (unsigned long long)off - r->base : 0;
}

void maillog_close(struct maillog_reader *r)
{
    if (!r)
        return;
    gzclose(r->gz);
    free(r->buf);
    free(r);
}
