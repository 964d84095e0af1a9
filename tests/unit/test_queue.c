/* test_queue.c: unit tests of the queue file layer: a full round trip
 * (envelope, recipients before and after the content, 8-bit content in many
 * chunks), marking a recipient done in place, the commit leaving no
 * temporary file and never replacing one, strict reading of truncated and
 * garbled files, and queue ID validity, order and uniqueness. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "queue.h"
#include "safe_open.h"
#include "strbuf.h"

static char dir[] = "/tmp/tern-test-queue-XXXXXX";

struct collect { struct strbuf sb; };
static int collect_fn(const char *data, size_t len, void *ctx)
{
    return sb_append(&((struct collect *)ctx)->sb, data, len);
}

static int stop_fn(const char *data, size_t len, void *ctx)
{
    return 1;
}

static void path_in(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static int count_dir(const char *name)
{
    char p[256];
    path_in(p, sizeof(p), name);
    DIR *d = opendir(p);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        n += de->d_name[0] != '.' || (de->d_name[1] && de->d_name[1] != '.');
    if (d)
        closedir(d);
    return n;
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    (void)!write(fd, data, len);
    close(fd);
}

static char *read_whole(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return NULL;
    char *p = malloc((size_t)st.st_size + 1);
    *len = read(fd, p, (size_t)st.st_size) == st.st_size ? (size_t)st.st_size : 0;
    close(fd);
    return p;
}

static void put_rcpt(struct qfile_writer *w, const char *addr, const char *orcpt, const char *notify)
{
    struct strbuf rec = STRBUF_INIT(0);
    CHECK(qrec_rcpt_encode(&rec, addr, orcpt, notify) == 0);
    CHECK(qfile_put(w, QREC_RCPT, rec.data, rec.len) == 0);
    sb_free(&rec);
}

static void put_envelope(struct qfile_writer *w, const char *sender)
{
    CHECK(qfile_put_str(w, QREC_VERSION, "1") == 0);
    CHECK(qfile_put_str(w, QREC_TIME, "1700000000.123456") == 0);
    CHECK(qfile_put_str(w, QREC_SENDER, sender) == 0);
}

/* Write and commit a small message; its final path goes to path. */
static void make_small(char *path, size_t size)
{
    struct qfile_writer w;
    CHECK(qfile_create(&w, dir) == 0);
    put_envelope(&w, "");
    CHECK(qfile_put_attr(&w, "protocol", "ESMTP") == 0);
    put_rcpt(&w, "x@example.net", "", "");
    CHECK(qfile_put_str(&w, QREC_CONTENT, "Subject: hi\n\nbody\n") == 0);
    CHECK(qfile_put(&w, QREC_CONTENT_END, "", 0) == 0);
    CHECK(qfile_put_str(&w, QREC_SIZE, "18") == 0);
    put_rcpt(&w, "y@example.net", "rfc822;y@example.net", "NEVER");
    snprintf(path, size, "%s", w.final_path);
    CHECK(qfile_commit(&w) == 0);
    qfile_writer_free(&w);
}

static void test_round_trip(void)
{
    /* content: 200 KB with every byte value, so several chunks */
    struct strbuf content = STRBUF_INIT(0);
    for (int i = 0; i < 200 * 1024; i++)
        sb_appendc(&content, (i % 97 == 0) ? '\n' : (char)(i % 256 ? i % 256 : 'x'));

    struct qfile_writer w;
    CHECK(qfile_create(&w, dir) == 0);
    CHECK(queue_id_valid(w.id));
    CHECK(count_dir("incoming") == 1);                 /* the .ID temp file */
    struct stat st;
    CHECK(stat(w.temp_path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(strstr(w.temp_path, "/incoming/.") != NULL);
    put_envelope(&w, "sender@example.org");
    CHECK(qfile_put_attr(&w, "client_addr", "192.0.2.1") == 0);
    CHECK(qfile_put_attr(&w, "helo_name", "client.example") == 0);
    put_rcpt(&w, "a@example.com", "", "");
    put_rcpt(&w, "b@example.com", "rfc822;B@example.com", "");
    for (size_t off = 0; off < content.len; off += QREC_CONTENT_CHUNK) {
        size_t n = content.len - off < QREC_CONTENT_CHUNK ? content.len - off : QREC_CONTENT_CHUNK;
        CHECK(qfile_put(&w, QREC_CONTENT, content.data + off, n) == 0);
    }
    CHECK(qfile_put(&w, QREC_CONTENT_END, "", 0) == 0);
    CHECK(qfile_put_str(&w, QREC_SIZE, "204800") == 0);
    put_rcpt(&w, "c@example.com", "", "SUCCESS,DELAY");   /* after the content */
    CHECK(w.content_size == content.len);
    char id[QUEUE_ID_SIZE], final[512], temp[512];
    memcpy(id, w.id, sizeof(id));
    snprintf(final, sizeof(final), "%s", w.final_path);
    snprintf(temp, sizeof(temp), "%s", w.temp_path);
    CHECK(qfile_commit(&w) == 0);
    CHECK(qfile_put_str(&w, QREC_SENDER, "late") == -1);   /* it is qmgr's now */
    qfile_writer_free(&w);
    CHECK(count_dir("incoming") == 1);                 /* only incoming/ID */
    CHECK(access(final, F_OK) == 0 && access(temp, F_OK) == -1);

    struct qmessage m;
    struct strbuf err = STRBUF_INIT(1024);
    CHECK(qmessage_load(final, &m, &err) == 0);
    CHECK(m.complete);
    CHECK_STR(m.id, id);
    CHECK_STR(m.sender, "sender@example.org");
    CHECK(m.arrival_usec == 1700000000123456LL);
    CHECK_STR(qmessage_attr(&m, "helo_name"), "client.example");
    CHECK_STR(qmessage_attr(&m, "client_addr"), "192.0.2.1");
    CHECK(qmessage_attr(&m, "nothing") == NULL && m.nattrs == 2);
    CHECK(m.nrcpts == 3);
    CHECK_STR(m.rcpts[0].address, "a@example.com");
    CHECK_STR(m.rcpts[1].address, "b@example.com");
    CHECK_STR(m.rcpts[1].orcpt, "rfc822;B@example.com");
    CHECK_STR(m.rcpts[2].address, "c@example.com");
    CHECK_STR(m.rcpts[2].notify, "SUCCESS,DELAY");
    CHECK(m.rcpts[2].offset > m.content_offset);
    CHECK(!m.rcpts[0].done && m.content_size == content.len);

    int fd = open(final, O_RDWR);
    struct collect c = { STRBUF_INIT(0) };
    CHECK(qfile_read_content(fd, m.content_offset, collect_fn, &c) == 0);
    CHECK(c.sb.len == content.len && memcmp(c.sb.data, content.data, content.len) == 0);
    CHECK(qfile_read_content(fd, m.content_offset, stop_fn, NULL) == -1);
    CHECK(qfile_read_content(fd, 0, collect_fn, &c) == -1);
    CHECK(qfile_read_content(fd, m.rcpts[0].offset, collect_fn, &c) == -1);
    CHECK(qfile_mark_done(fd, m.rcpts[1].offset) == 0);
    CHECK(qfile_mark_done(fd, m.rcpts[2].offset) == 0);
    CHECK(qfile_mark_done(fd, m.rcpts[2].offset) == 0);   /* idempotent */
    CHECK(qfile_mark_done(fd, m.content_offset) == -1);   /* not a recipient record */
    CHECK(qfile_mark_done(fd, 0) == -1);
    close(fd);
    qmessage_free(&m);
    CHECK(qmessage_load(final, &m, &err) == 0 && m.complete);
    CHECK(!m.rcpts[0].done && m.rcpts[1].done && m.rcpts[2].done);
    qmessage_free(&m);
    unlink(final);
    sb_free(&content);
    sb_free(&err);
    sb_free(&c.sb);
}

/* Offsets where records start, found by walking the file with the reader. */
static size_t record_starts(const char *path, off_t *starts, size_t max)
{
    struct qfile_reader r;
    struct qrec rec;
    size_t n = 0;
    if (qfile_open(&r, path, O_RDONLY) < 0)
        return 0;
    while (n < max && qfile_next(&r, &rec) == 1)
        starts[n++] = rec.offset;
    if (n < max)
        starts[n++] = r.pos;                           /* the end of the file */
    qfile_close(&r);
    return n;
}

/* Cut a small file at every length: a cut at a record boundary is
 * incomplete, a cut inside a record is corrupt, and nothing is complete. */
static void test_truncation(void)
{
    char small[512], cut[512];
    make_small(small, sizeof(small));
    path_in(cut, sizeof(cut), "incoming/cut");
    size_t len;
    char *whole = read_whole(small, &len);
    off_t starts[64];
    size_t nstarts = record_starts(small, starts, 64);
    CHECK(nstarts > 8 && (size_t)starts[nstarts - 1] == len);
    struct qmessage m;
    struct strbuf err = STRBUF_INIT(1024);
    int never_complete = 1, boundary_ok = 1, inside_ok = 1;
    for (size_t n = 0; n < len; n++) {
        bool boundary = false;
        for (size_t i = 0; i < nstarts; i++)
            boundary |= (size_t)starts[i] == n;
        write_file(cut, whole, n);
        int rc = qmessage_load(cut, &m, &err);
        if (rc == 0 && m.complete)
            never_complete = 0;
        if (boundary && rc != 0)
            boundary_ok = 0;
        if (!boundary && rc != -1)
            inside_ok = 0;
        qmessage_free(&m);
    }
    CHECK(never_complete);
    CHECK(boundary_ok);
    CHECK(inside_ok);
    CHECK(qmessage_load(small, &m, &err) == 0 && m.complete && m.nrcpts == 2);
    CHECK_STR(m.sender, "");
    qmessage_free(&m);
    unlink(cut);
    unlink(small);
    free(whole);
    sb_free(&err);
}

/* Load hand-made bytes; returns qmessage_load's result. */
static int load_bytes(const void *data, size_t len, bool *complete)
{
    char p[512];
    path_in(p, sizeof(p), "incoming/raw");
    write_file(p, data, len);
    struct qmessage m;
    struct strbuf err = STRBUF_INIT(1024);
    int rc = qmessage_load(p, &m, &err);
    if (complete)
        *complete = rc == 0 && m.complete;
    if (rc < 0 && err.len == 0)
        rc = -2;                                       /* a refusal must say why */
    qmessage_free(&m);
    sb_free(&err);
    unlink(p);
    return rc;
}

#define RAW(s) (s), sizeof(s) - 1
#define HEAD "V\0\0\0\0011T\0\0\0\0211700000000.000001S\0\0\0\0"
#define BODY "C\0\0\0\2a\nX\0\0\0\0"

/* A file whose one content record holds n bytes. */
static int load_content_of(size_t n, bool *complete)
{
    size_t hl = sizeof(HEAD) - 1, len = hl + 5 + n + 10;
    unsigned char *p = calloc(1, len);
    memcpy(p, HEAD, hl);
    p[hl] = 'C';
    p[hl + 1] = (unsigned char)(n >> 24);
    p[hl + 2] = (unsigned char)(n >> 16);
    p[hl + 3] = (unsigned char)(n >> 8);
    p[hl + 4] = (unsigned char)n;
    memcpy(p + hl + 5 + n, "X\0\0\0\0E\0\0\0\0", 10);
    int rc = load_bytes(p, len, complete);
    free(p);
    return rc;
}

/* A record of exactly QREC_MAX_LEN bytes (an attribute) is read whole,
 * and the record after it is found. */
static void test_largest_record(void)
{
    size_t hl = sizeof(HEAD) - 1, bl = sizeof(BODY) - 1, n = QREC_MAX_LEN;
    size_t len = hl + 5 + n + bl + 5;
    unsigned char *p = malloc(len);
    memcpy(p, HEAD, hl);
    p[hl] = 'A';
    p[hl + 1] = (unsigned char)(n >> 24);
    p[hl + 2] = (unsigned char)(n >> 16);
    p[hl + 3] = (unsigned char)(n >> 8);
    p[hl + 4] = (unsigned char)n;
    memset(p + hl + 5, 'v', n);
    memcpy(p + hl + 5, "big=", 4);
    memcpy(p + hl + 5 + n, BODY "E\0\0\0\0", bl + 5);
    bool complete;
    CHECK(load_bytes(p, len, &complete) == 0 && complete);
    free(p);
}

static void test_garbled(void)
{
    bool complete;
    CHECK(load_bytes(RAW(HEAD BODY "E\0\0\0\0"), &complete) == 0 && complete);
    CHECK(load_bytes(RAW(HEAD BODY "Z\0\0\0\0012E\0\0\0\0"), &complete) == 0 && complete);
    CHECK(load_bytes(RAW(HEAD "X\0\0\0\0E\0\0\0\0"), &complete) == 0 && complete);  /* empty content */
    CHECK(load_bytes(RAW(HEAD BODY), &complete) == 0 && !complete);                /* no END yet */
    CHECK(load_bytes("", 0, &complete) == 0 && !complete);
    CHECK(load_bytes(RAW(HEAD BODY "E\0\0\0\0E"), NULL) == -1);          /* garbage after END */
    CHECK(load_bytes(RAW(HEAD BODY "E\0\0\0\0S\0\0\0\0"), NULL) == -1);  /* a record after END */
    CHECK(load_bytes(RAW(HEAD BODY "E\0\0\0\1x"), NULL) == -1);          /* END not empty */
    CHECK(load_bytes(RAW("S\0\0\0\0" BODY "E\0\0\0\0"), NULL) == -1);    /* no version first */
    CHECK(load_bytes(RAW("V\0\0\0\0012" BODY), NULL) == -1);             /* unknown version */
    CHECK(load_bytes(RAW(HEAD "V\0\0\0\0011" BODY "E\0\0\0\0"), NULL) == -1);  /* second V */
    CHECK(load_bytes(RAW(HEAD BODY "Q\0\0\0\0E\0\0\0\0"), NULL) == -1);  /* unknown type */
    CHECK(load_bytes(RAW(HEAD "\0\0\0\0\0"), NULL) == -1);
    CHECK(load_bytes(RAW(HEAD "C\0\020\0\1a"), NULL) == -1);             /* over QREC_MAX_LEN */
    CHECK(load_bytes(RAW(HEAD "C\377\377\377\377a"), NULL) == -1);
    CHECK(load_bytes(RAW(HEAD "S\0\0\0\1b" BODY "E\0\0\0\0"), NULL) == -1);    /* two senders */
    CHECK(load_bytes(RAW("V\0\0\0\0011T\0\0\0\0011S\0\0\0\0" BODY "E\0\0\0\0"), NULL) == -1);
    CHECK(load_bytes(RAW("V\0\0\0\0011S\0\0\0\0" BODY "E\0\0\0\0"), NULL) == -1);   /* no time */
#define NOSENDER "V\0\0\0\0011T\0\0\0\0211700000000.000001"
    CHECK(load_bytes(RAW(NOSENDER BODY "E\0\0\0\0"), NULL) == -1);              /* no sender */
    CHECK(load_bytes(RAW(HEAD "E\0\0\0\0"), NULL) == -1);                       /* no content */
    CHECK(load_bytes(RAW(HEAD "C\0\0\0\1aR\0\0\0\3a\0\0X\0\0\0\0E\0\0\0\0"), NULL) == -1);
    CHECK(load_bytes(RAW(HEAD BODY "C\0\0\0\1aE\0\0\0\0"), NULL) == -1);  /* content after X */
    CHECK(load_bytes(RAW(HEAD BODY "X\0\0\0\0E\0\0\0\0"), NULL) == -1);
    CHECK(load_bytes(RAW(HEAD "X\0\0\0\1xE\0\0\0\0"), NULL) == -1);       /* X not empty */
    CHECK(load_bytes(RAW(HEAD BODY "Z\0\0\0\0013E\0\0\0\0"), NULL) == -1);    /* wrong size */
    CHECK(load_bytes(RAW(HEAD "Z\0\0\0\0010" BODY "E\0\0\0\0"), NULL) == -1); /* Z before X */
    CHECK(load_bytes(RAW(HEAD BODY "Z\0\0\0\002+2E\0\0\0\0"), NULL) == -1);
    CHECK(load_bytes(RAW(HEAD "R\0\0\0\3abc"), NULL) == -1);             /* one field */
    CHECK(load_bytes(RAW(HEAD "R\0\0\0\2\0\0"), NULL) == -1);            /* empty address */
    CHECK(load_bytes(RAW(HEAD "R\0\0\0\4a\0\0\0"), NULL) == -1);         /* four fields */
    CHECK(load_bytes(RAW(HEAD "R\0\0\0\3a\0\0" BODY "E\0\0\0\0"), &complete) == 0 && complete);
    CHECK(load_bytes(RAW(HEAD "A\0\0\0\3x=y" BODY "E\0\0\0\0"), &complete) == 0 && complete);
    /* after X: cleanup's content_filter (lib/global/QUEUE.md); never inside the content */
    CHECK(load_bytes(RAW(HEAD BODY "A\0\0\0\3x=yE\0\0\0\0"), &complete) == 0 && complete);
    CHECK(load_bytes(RAW(HEAD "C\0\0\0\1aA\0\0\0\3x=yX\0\0\0\0E\0\0\0\0"), NULL) == -1);
    CHECK(load_content_of(QREC_CONTENT_CHUNK, &complete) == 0 && complete);
    CHECK(load_content_of(QREC_CONTENT_CHUNK + 1, &complete) == -1);   /* content over 64 KiB */
    CHECK(load_bytes(RAW(HEAD "A\0\0\0\1x"), NULL) == -1);               /* no '=' */
    CHECK(load_bytes(RAW(HEAD "A\0\0\0\2=x"), NULL) == -1);              /* no name */
    CHECK(load_bytes(RAW(HEAD "A\0\0\0\3X=x"), NULL) == -1);             /* bad name */
    CHECK(load_bytes(RAW(HEAD "A\0\0\0\3x=\0"), NULL) == -1);            /* NUL in value */
    CHECK(load_bytes(RAW(HEAD "S\0\0\0\0"), NULL) == -1);                /* sender twice */
    CHECK(load_bytes(RAW(HEAD "W\0\0\0\1x"), NULL) == -1);
    CHECK(load_bytes(RAW(HEAD "W\0\0\0\0015" BODY "E\0\0\0\0"), &complete) == 0 && complete);
    const char *bad_times[] = { "1.5", "x.000001", "1.0000001", ".000001", "1000000", "-1.000001",
                                "1.00000a", "99999999999999.000000" };
    for (size_t i = 0; i < sizeof(bad_times) / sizeof(bad_times[0]); i++) {
        char buf[128];
        size_t tl = strlen(bad_times[i]);
        memcpy(buf, "V\0\0\0\0011T\0\0\0", 10);
        buf[10] = (char)tl;
        memcpy(buf + 11, bad_times[i], tl);
        memcpy(buf + 11 + tl, RAW("S\0\0\0\0" BODY "E\0\0\0\0"));
        CHECK(load_bytes(buf, 11 + tl + sizeof("S\0\0\0\0" BODY "E\0\0\0\0") - 1, NULL) == -1);
    }
    struct qmessage m;
    struct strbuf err = STRBUF_INIT(1024);
    CHECK(qmessage_load("/nonexistent/file", &m, &err) == -1 && errno == ENOENT && err.len > 0);
    qmessage_free(&m);
    char p[512], fifo[512];
    path_in(fifo, sizeof(fifo), "incoming/fifo");
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(qmessage_load(fifo, &m, &err) == -1);        /* refused, not blocked on */
    qmessage_free(&m);
    path_in(p, sizeof(p), "incoming/link");
    CHECK(symlink("/etc/passwd", p) == 0);
    CHECK(qmessage_load(p, &m, &err) == -1);           /* not a queue file */
    qmessage_free(&m);
    unlink(p);
    CHECK(qmessage_load("/dev/null", &m, &err) == -1); /* not a regular file */
    qmessage_free(&m);
    /* a link to a good queue file is not followed: the queue directories
     * are mail_owner's, and a link there may point anywhere */
    path_in(p, sizeof(p), "incoming/viafd");
    write_file(p, RAW(HEAD BODY "E\0\0\0\0"));
    char link[512];
    path_in(link, sizeof(link), "incoming/tolink");
    CHECK(symlink(p, link) == 0);
    CHECK(qmessage_load(link, &m, &err) == -1 && errno == ELOOP
          && strstr(sb_str(&err), "symbolic link") != NULL);
    qmessage_free(&m);
    unlink(link);
    /* an open descriptor (as privileged readers and the fuzz target use) */
    int fd = open(p, O_RDONLY);
    CHECK(qmessage_load_fd(fd, "viafd", &m, &err) == 0 && m.complete);
    qmessage_free(&m);
    close(fd);
    unlink(p);
    unlink(fifo);
    sb_free(&err);
}

/* Random byte changes to a committed file: loading and streaming the
 * content never crash or read out of bounds (ASan checks), whatever the
 * verdict. */
static void test_mutations(void)
{
    char small[512];
    make_small(small, sizeof(small));
    size_t len;
    char *whole = read_whole(small, &len);
    unlink(small);
    unsigned seed = 4242;
    int rounds = 0, complete = 0;
    for (int round = 0; round < 3000; round++) {
        char *copy = malloc(len);
        memcpy(copy, whole, len);
        for (int k = 0; k < 1 + round % 3; k++) {
            seed = seed * 1103515245u + 12345u;
            copy[(seed >> 8) % len] = (char)(seed >> 20);
        }
        char p[512];
        path_in(p, sizeof(p), "incoming/mutant");
        write_file(p, copy, len);
        struct qmessage m;
        struct strbuf err = STRBUF_INIT(1024);
        if (qmessage_load(p, &m, &err) == 0 && m.complete) {
            complete++;
            struct collect c = { STRBUF_INIT(0) };
            int fd = open(p, O_RDONLY);
            (void)qfile_read_content(fd, m.content_offset, collect_fn, &c);
            close(fd);
            sb_free(&c.sb);
        }
        qmessage_free(&m);
        sb_free(&err);
        unlink(p);
        free(copy);
        rounds++;
    }
    CHECK(rounds == 3000);
    CHECK(complete < rounds);
    free(whole);
}

static void test_writer_errors(void)
{
    struct qfile_writer w;
    CHECK(qfile_create(&w, "/nonexistent/queue") == -1 && errno == ENOENT);
    qfile_writer_free(&w);

    /* END only through commit; unknown types, bad names and oversize refused */
    CHECK(qfile_create(&w, dir) == 0);
    CHECK(qfile_put(&w, QREC_END, "", 0) == -1 && errno == EINVAL);
    qfile_writer_free(&w);                             /* uncommitted: removed */
    CHECK(count_dir("incoming") == 0);
    CHECK(qfile_create(&w, dir) == 0);
    CHECK(qfile_put(&w, 'Q', "", 0) == -1);
    qfile_abort(&w);
    qfile_writer_free(&w);
    CHECK(qfile_create(&w, dir) == 0);
    CHECK(qfile_put_attr(&w, "Bad=Name", "v") == -1);
    CHECK(qfile_put_str(&w, QREC_VERSION, "1") == -1);   /* the first error sticks */
    CHECK(qfile_commit(&w) == -1 && errno == EINVAL);
    CHECK(count_dir("incoming") == 0);
    qfile_writer_free(&w);
    CHECK(qfile_create(&w, dir) == 0);
    char *big = calloc(1, QREC_MAX_LEN + 1);
    CHECK(qfile_put(&w, QREC_CONTENT, big, QREC_MAX_LEN + 1) == -1 && errno == EFBIG);
    qfile_abort(&w);
    qfile_writer_free(&w);
    CHECK(qfile_create(&w, dir) == 0);
    CHECK(qfile_put(&w, QREC_CONTENT, big, QREC_CONTENT_CHUNK + 1) == -1 && errno == EFBIG);
    free(big);
    qfile_abort(&w);
    qfile_writer_free(&w);
    CHECK(count_dir("incoming") == 0);

    /* a full disk: the commit fails and leaves nothing behind */
    CHECK(qfile_create(&w, dir) == 0);
    put_envelope(&w, "a@b");
    int full = open("/dev/full", O_WRONLY);
    if (full >= 0) {
        dup2(full, w.fd);
        close(full);
        CHECK(qfile_commit(&w) == -1 && errno == ENOSPC);
    } else {
        qfile_abort(&w);
    }
    qfile_writer_free(&w);
    CHECK(count_dir("incoming") == 0);

    /* commit never replaces an existing file of the same name */
    CHECK(qfile_create(&w, dir) == 0);
    put_envelope(&w, "a@b");
    write_file(w.final_path, "precious", 8);
    CHECK(qfile_commit(&w) == -1 && errno == EEXIST);
    size_t len = 0;
    char *kept = read_whole(w.final_path, &len);
    CHECK(len == 8 && memcmp(kept, "precious", 8) == 0);
    free(kept);
    CHECK(access(w.temp_path, F_OK) == -1);
    unlink(w.final_path);
    qfile_writer_free(&w);

    /* freeing a writer that was never created touches no descriptor */
    struct qfile_writer zero = { 0 };
    int probe = dup(0);
    qfile_abort(&zero);
    qfile_writer_free(&zero);
    CHECK(probe < 0 || fcntl(0, F_GETFD) >= 0);
    if (probe >= 0)
        close(probe);
    CHECK(count_dir("incoming") == 0);
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* IDs from this process and two children: all valid, none shared. */
static void test_queue_ids(void)
{
    enum { PER_PROCESS = 3000, NPROC = 3 };
    char (*ids)[QUEUE_ID_SIZE] = calloc(PER_PROCESS * NPROC, QUEUE_ID_SIZE);
    int pipes[2][2];
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        CHECK(pipe(pipes[c]) == 0);
        pids[c] = fork();
        if (pids[c] == 0) {
            close(pipes[c][0]);
            char id[QUEUE_ID_SIZE];
            for (int i = 0; i < PER_PROCESS; i++) {
                queue_id_new(id);
                if (write(pipes[c][1], id, QUEUE_ID_SIZE) != QUEUE_ID_SIZE)
                    _exit(1);
            }
            _exit(0);
        }
        close(pipes[c][1]);
    }
    int ordered = 1, valid = 1;
    for (int i = 0; i < PER_PROCESS; i++) {
        queue_id_new(ids[i]);
        valid &= queue_id_valid(ids[i]);
        if (i > 0 && strcmp(ids[i], ids[i - 1]) <= 0)
            ordered = 0;
    }
    for (int c = 0; c < 2; c++) {
        char *p = (char *)ids[PER_PROCESS * (c + 1)];
        size_t want = (size_t)PER_PROCESS * QUEUE_ID_SIZE, got = 0;
        ssize_t n;
        while (got < want && (n = read(pipes[c][0], p + got, want - got)) > 0)
            got += (size_t)n;
        CHECK(got == want);
        close(pipes[c][0]);
        int status;
        CHECK(waitpid(pids[c], &status, 0) == pids[c] && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    for (int i = PER_PROCESS; i < PER_PROCESS * NPROC; i++)
        valid &= queue_id_valid(ids[i]);
    CHECK(ordered);
    CHECK(valid);
    /* the pid part tells processes apart */
    CHECK(strcmp(ids[0] + 11, ids[PER_PROCESS] + 11) != 0);
    qsort(ids, PER_PROCESS * NPROC, QUEUE_ID_SIZE, compare_ids);
    int unique = 1;
    for (int i = 1; i < PER_PROCESS * NPROC; i++)
        if (strcmp(ids[i], ids[i - 1]) == 0)
            unique = 0;
    CHECK(unique);
    free(ids);

    /* 10000 in a row: strictly increasing even within one microsecond */
    char prev[QUEUE_ID_SIZE] = "", cur[QUEUE_ID_SIZE];
    ordered = 1;
    for (int i = 0; i < 10000; i++) {
        queue_id_new(cur);
        if (!queue_id_valid(cur) || strcmp(cur, prev) <= 0)
            ordered = 0;
        memcpy(prev, cur, sizeof(cur));
    }
    CHECK(ordered);
    CHECK(!queue_id_valid("0123456789ABCDEF"));        /* 'A' and 'E' are not in the alphabet */
    CHECK(!queue_id_valid("0123456789BCDFG"));         /* 15 */
    CHECK(!queue_id_valid("0123456789BCDFGHJ"));       /* 17 */
    CHECK(queue_id_valid("0123456789BCDFGH"));
    CHECK(!queue_id_valid("../../etc/passwd"));
    CHECK(!queue_id_valid(""));
    CHECK(!queue_id_valid(NULL));
}

static void test_helpers(void)
{
    struct strbuf p = STRBUF_INIT(0);
    CHECK(queue_path(&p, "/q", QDIR_DEFERRED, "0123456789BCDFGH") == 0);
    CHECK_STR(sb_str(&p), "/q/deferred/0123456789BCDFGH");
    CHECK(queue_path(&p, "/q", QDIR_ACTIVE, "../x") == -1);
    sb_free(&p);
    struct strbuf rec = STRBUF_INIT(0);
    struct qrcpt r;
    CHECK(qrec_rcpt_encode(&rec, "", "", "") == -1);
    CHECK(qrec_rcpt_encode(&rec, "u@example", NULL, NULL) == 0 && rec.len == 11);
    CHECK(qrec_rcpt_decode(rec.data, rec.len, &r) == 0);
    CHECK_STR(r.address, "u@example");
    CHECK_STR(r.orcpt, "");
    CHECK_STR(r.notify, "");
    sb_free(&rec);
    CHECK(queue_dirs_count == 12);
}

/* The ID a submitter chose is taken when it is valid and free, else a new one. */
static void test_preset_id(void)
{
    struct qfile_writer w;
    char id[QUEUE_ID_SIZE], p[256];
    queue_id_new(id);
    CHECK(qfile_create_preset(&w, dir, id) == 0);
    CHECK(strcmp(w.id, id) == 0);
    qfile_writer_free(&w);
    path_in(p, sizeof(p), "incoming/");
    char taken[300];
    snprintf(taken, sizeof(taken), "%s%s", p, id);
    write_file(taken, "x", 1);                   /* a message of that name exists */
    CHECK(qfile_create_preset(&w, dir, id) == 0);
    CHECK(strcmp(w.id, id) != 0 && queue_id_valid(w.id));
    qfile_writer_free(&w);
    unlink(taken);
    CHECK(qfile_create_preset(&w, dir, "../../etc/passwd") == 0);
    CHECK(queue_id_valid(w.id));
    qfile_writer_free(&w);
    CHECK(count_dir("incoming") == 0);
}

/* safe_open: what a privileged process opens in a directory an
 * unprivileged uid can write is a plain file of the expected owner with
 * one link, reached without following a link; anything else is refused
 * without being truncated, written or waited on. */
static void test_safe_open(void)
{
    char file[512], slink[512], hard[512], fifo[512], created[512];
    path_in(file, sizeof(file), "incoming/plain");
    path_in(slink, sizeof(slink), "incoming/symlink");
    path_in(hard, sizeof(hard), "incoming/hardlink");
    path_in(fifo, sizeof(fifo), "incoming/fifo2");
    path_in(created, sizeof(created), "incoming/created");
    write_file(file, "keep", 4);
    struct strbuf err = STRBUF_INIT(1024);
    struct stat st;
    int fd = safe_open(file, O_RDWR, 0, geteuid(), &st, &err);
    CHECK(fd >= 0 && st.st_size == 4 && (fcntl(fd, F_GETFL) & O_NONBLOCK) == 0
          && (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    close(fd);
    CHECK(safe_open(file, O_RDWR | O_TRUNC, 0, geteuid(), NULL, &err) == -1 && errno == EINVAL);
    CHECK(safe_open(file, O_RDONLY, 0, geteuid() + 1, NULL, &err) == -1 && errno == EPERM);
    fd = safe_open(file, O_RDONLY, 0, SAFE_ANY_OWNER, NULL, NULL);
    CHECK(fd >= 0);
    close(fd);
    CHECK(symlink(file, slink) == 0);
    sb_reset(&err);
    CHECK(safe_open(slink, O_RDWR | O_CREAT, 0644, SAFE_ANY_OWNER, NULL, &err) == -1
          && errno == ELOOP && strstr(sb_str(&err), "symbolic link") != NULL);
    CHECK(link(file, hard) == 0);
    CHECK(safe_open(hard, O_RDWR, 0, SAFE_ANY_OWNER, NULL, &err) == -1 && errno == EMLINK);
    unlink(hard);
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(safe_open(fifo, O_RDONLY, 0, SAFE_ANY_OWNER, NULL, &err) == -1 && errno == EINVAL);
    fd = safe_open(created, O_RDWR | O_CREAT | O_EXCL, 0600, geteuid(), NULL, &err);
    CHECK(fd >= 0);
    close(fd);
    struct stat after;
    CHECK(stat(file, &after) == 0 && after.st_size == 4);   /* never truncated */
    unlink(created);
    unlink(fifo);
    unlink(slink);
    unlink(file);
    sb_free(&err);
}

/* Spare files: a finished message's file is emptied into spare/ and the
 * next message reuses its inode; what a process of mail_owner's could
 * plant in spare/ (a link to another file, a symbolic link, a directory)
 * is never emptied, followed or written. */
static void test_spares(void)
{
    char spare[256], active[256], victim[256], path[512], slot[600];
    path_in(spare, sizeof(spare), QDIR_SPARE);
    path_in(active, sizeof(active), QDIR_ACTIVE);
    CHECK(mkdir(spare, 0700) == 0 && mkdir(active, 0700) == 0);
    qfile_use_spares(true);

    /* retire: emptied, kept under a slot number, the inode reused */
    make_small(path, sizeof(path));
    struct stat old, st;
    CHECK(stat(path, &old) == 0 && old.st_size > 0);
    qfile_use_spares(true);   /* this process's first slot */
    CHECK(qfile_retire(dir, path) == 0);
    CHECK(access(path, F_OK) < 0 && count_dir(QDIR_SPARE) == 1);
    DIR *d = opendir(spare);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.')
            snprintf(slot, sizeof(slot), "%s/%s", spare, de->d_name);
    closedir(d);
    CHECK(stat(slot, &st) == 0 && st.st_size == 0 && st.st_ino == old.st_ino);
    struct timespec long_ago[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    CHECK(utimensat(AT_FDCWD, slot, long_ago, 0) == 0);
    CHECK(strtol(strrchr(slot, '/') + 1, NULL, 10) < 256);
    struct qfile_writer w;
    qfile_use_spares(true);   /* the first slot again, where retire put it */
    CHECK(qfile_create(&w, dir) == 0);
    CHECK(fstat(w.fd, &st) == 0 && st.st_ino == old.st_ino && st.st_size == 0);
    CHECK(st.st_mtime >= time(NULL) - 5);     /* not the retired file's old time */
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(count_dir(QDIR_SPARE) == 0);
    qfile_abort(&w);
    qfile_writer_free(&w);

    /* a hard link to another file in a slot: not emptied, not used */
    path_in(victim, sizeof(victim), "victim");
    write_file(victim, "precious", 8);
    for (int i = 0; i < 256; i++) {
        snprintf(slot, sizeof(slot), "%s/%d", spare, i);
        CHECK(link(victim, slot) == 0);
    }
    CHECK(qfile_create(&w, dir) == 0);
    CHECK(fstat(w.fd, &st) == 0 && st.st_nlink == 1);
    qfile_abort(&w);
    qfile_writer_free(&w);
    CHECK(stat(victim, &st) == 0 && st.st_size == 8);
    /* the links it met were moved away and removed; with every slot taken,
     * retiring removes the file instead */
    CHECK(count_dir(QDIR_SPARE) < 256);
    make_small(path, sizeof(path));
    for (int i = 0; i < 256; i++) {
        snprintf(slot, sizeof(slot), "%s/%d", spare, i);
        unlink(slot);
        CHECK(mkdir(slot, 0700) == 0);
    }
    CHECK(qfile_retire(dir, path) == 0 && access(path, F_OK) < 0);
    CHECK(count_dir(QDIR_SPARE) == 256);
    /* and a directory in a slot does not keep cleanup from writing */
    make_small(path, sizeof(path));
    CHECK(unlink(path) == 0);
    for (int i = 0; i < 256; i++) {
        snprintf(slot, sizeof(slot), "%s/%d", spare, i);
        rmdir(slot);
    }

    /* a symbolic link in a slot is removed, never followed */
    for (int i = 0; i < 256; i++) {
        snprintf(slot, sizeof(slot), "%s/%d", spare, i);
        CHECK(symlink(victim, slot) == 0);
    }
    CHECK(qfile_create(&w, dir) == 0);
    qfile_abort(&w);
    qfile_writer_free(&w);
    CHECK(stat(victim, &st) == 0 && st.st_size == 8);
    for (int i = 0; i < 256; i++) {
        snprintf(slot, sizeof(slot), "%s/%d", spare, i);
        unlink(slot);
    }
    /* retire does not empty a file with two names */
    make_small(path, sizeof(path));
    char second[600];
    snprintf(second, sizeof(second), "%s.second", path);
    CHECK(link(path, second) == 0);
    CHECK(qfile_retire(dir, path) == 0 && access(path, F_OK) < 0);
    CHECK(stat(second, &st) == 0 && st.st_size > 0 && count_dir(QDIR_SPARE) == 0);
    unlink(second);
    unlink(victim);
    qfile_use_spares(false);
    CHECK(rmdir(spare) == 0 && rmdir(active) == 0);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    char p[256];
    path_in(p, sizeof(p), "incoming");
    mkdir(p, 0700);
    test_round_trip();
    test_truncation();
    test_garbled();
    test_largest_record();
    test_mutations();
    test_writer_errors();
    test_preset_id();
    test_queue_ids();
    test_helpers();
    test_safe_open();
    test_spares();
    CHECK(count_dir("incoming") == 0);
    rmdir(p);
    CHECK(rmdir(dir) == 0);
    return check_summary();
}
