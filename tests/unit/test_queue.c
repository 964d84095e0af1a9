/* test_queue.c: unit tests of the queue file layer: a full round trip
 * (envelope, recipients, 8-bit content in many chunks), marking a recipient
 * done in place, the commit leaving no temporary file, strict reading of
 * truncated and garbled files, and queue ID uniqueness and order. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "queue.h"
#include "strbuf.h"

static char dir[] = "/tmp/tern-test-queue-XXXXXX";

struct collect { struct strbuf sb; };
static int collect_fn(const char *data, size_t len, void *ctx)
{
    return sb_append(&((struct collect *)ctx)->sb, data, len);
}

static void sub(const char *name)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    mkdir(p, 0700);
}

static int count_dir(const char *name)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
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

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    sub("incoming");

    /* content: 200 KB with every byte value, so several chunks */
    struct strbuf content = STRBUF_INIT(0);
    for (int i = 0; i < 200 * 1024; i++)
        sb_appendc(&content, (i % 97 == 0) ? '\n' : (char)(i % 256 ? i % 256 : 'x'));

    struct qfile_writer w;
    CHECK(qfile_create(&w, dir) == 0);
    CHECK(queue_id_valid(w.id));
    CHECK(count_dir("incoming") == 1);                 /* the .ID temp file */
    struct strbuf rec = STRBUF_INIT(0);
    qfile_put_str(&w, QREC_VERSION, "1");
    qfile_put_str(&w, QREC_TIME, "1700000000.123456");
    qfile_put_str(&w, QREC_SENDER, "sender@example.org");
    qfile_put_attr(&w, "client_addr", "192.0.2.1");
    qfile_put_attr(&w, "helo_name", "client.example");
    const char *rcpts[] = { "a@example.com", "b@example.com", "c@example.com" };
    for (int i = 0; i < 3; i++) {
        CHECK(qrec_rcpt_encode(&rec, rcpts[i], i == 1 ? "rfc822;B@example.com" : "",
                               i == 2 ? "SUCCESS,DELAY" : "") == 0);
        qfile_put(&w, QREC_RCPT, rec.data, rec.len);
    }
    for (size_t off = 0; off < content.len; off += QREC_CONTENT_CHUNK) {
        size_t n = content.len - off < QREC_CONTENT_CHUNK ? content.len - off : QREC_CONTENT_CHUNK;
        CHECK(qfile_put(&w, QREC_CONTENT, content.data + off, n) == 0);
    }
    qfile_put(&w, QREC_CONTENT_END, "", 0);
    qfile_put_str(&w, QREC_SIZE, "204800");
    CHECK(w.content_size == content.len);
    char id[QUEUE_ID_SIZE];
    memcpy(id, w.id, sizeof(id));
    char final[512];
    snprintf(final, sizeof(final), "%s", w.final_path);
    CHECK(qfile_commit(&w) == 0);
    qfile_writer_free(&w);
    CHECK(count_dir("incoming") == 1);                 /* only incoming/ID */
    CHECK(access(final, F_OK) == 0);

    struct qmessage m;
    struct strbuf err = STRBUF_INIT(1024);
    CHECK(qmessage_load(final, &m, &err) == 0);
    CHECK(m.complete);
    CHECK_STR(m.id, id);
    CHECK_STR(m.sender, "sender@example.org");
    CHECK(m.arrival_usec == 1700000000123456LL);
    CHECK_STR(qmessage_attr(&m, "helo_name"), "client.example");
    CHECK(qmessage_attr(&m, "nothing") == NULL);
    CHECK(m.nrcpts == 3);
    CHECK_STR(m.rcpts[1].address, "b@example.com");
    CHECK_STR(m.rcpts[1].orcpt, "rfc822;B@example.com");
    CHECK_STR(m.rcpts[2].notify, "SUCCESS,DELAY");
    CHECK(!m.rcpts[0].done && m.content_size == content.len);

    int fd = open(final, O_RDWR);
    struct collect c = { STRBUF_INIT(0) };
    CHECK(qfile_read_content(fd, m.content_offset, collect_fn, &c) == 0);
    CHECK(c.sb.len == content.len && memcmp(c.sb.data, content.data, content.len) == 0);
    CHECK(qfile_mark_done(fd, m.rcpts[1].offset) == 0);
    CHECK(qfile_mark_done(fd, m.content_offset) == -1);  /* not a recipient record */
    close(fd);
    qmessage_free(&m);
    CHECK(qmessage_load(final, &m, &err) == 0);
    CHECK(!m.rcpts[0].done && m.rcpts[1].done && !m.rcpts[2].done);
    qmessage_free(&m);

    /* every truncation is incomplete or corrupt, never complete */
    int fdr = open(final, O_RDONLY);
    struct stat st;
    fstat(fdr, &st);
    char *whole = malloc((size_t)st.st_size);
    CHECK(read(fdr, whole, (size_t)st.st_size) == st.st_size);
    close(fdr);
    char cut_path[512];
    snprintf(cut_path, sizeof(cut_path), "%s/incoming/cut", dir);
    int never_complete = 1;
    for (off_t n = 0; n < st.st_size; n += (n < 400 ? 1 : 997)) {
        write_file(cut_path, whole, (size_t)n);
        sb_reset(&err);
        if (qmessage_load(cut_path, &m, &err) == 0 && m.complete)
            never_complete = 0;
        qmessage_free(&m);
    }
    CHECK(never_complete);
    /* garbage after END, unknown types, oversize lengths, wrong first record */
    char *junk = malloc((size_t)st.st_size + 1);
    memcpy(junk, whole, (size_t)st.st_size);
    junk[st.st_size] = 'E';
    write_file(cut_path, junk, (size_t)st.st_size + 1);
    sb_reset(&err);
    CHECK(qmessage_load(cut_path, &m, &err) == -1);
    qmessage_free(&m);
    memcpy(junk, whole, (size_t)st.st_size);
    junk[0] = 'Q';
    write_file(cut_path, junk, (size_t)st.st_size);
    CHECK(qmessage_load(cut_path, &m, &err) == -1);
    qmessage_free(&m);
    memcpy(junk, whole, (size_t)st.st_size);
    junk[1] = 0x7f;                                    /* version record claims 2 GB */
    write_file(cut_path, junk, (size_t)st.st_size);
    CHECK(qmessage_load(cut_path, &m, &err) == -1);
    qmessage_free(&m);
    const unsigned char two_senders[] = "V\0\0\0\0011S\0\0\0\1aS\0\0\0\1b";
    write_file(cut_path, two_senders, sizeof(two_senders) - 1);
    CHECK(qmessage_load(cut_path, &m, &err) == -1);
    qmessage_free(&m);
    const unsigned char bad_rcpt[] = "V\0\0\0\0011R\0\0\0\3abc";
    write_file(cut_path, bad_rcpt, sizeof(bad_rcpt) - 1);
    CHECK(qmessage_load(cut_path, &m, &err) == -1);
    qmessage_free(&m);
    CHECK(qmessage_load("/nonexistent/file", &m, &err) == -1);
    qmessage_free(&m);
    unlink(cut_path);
    free(junk);
    free(whole);

    /* an aborted writer leaves nothing behind */
    CHECK(qfile_create(&w, dir) == 0);
    qfile_put_str(&w, QREC_VERSION, "1");
    qfile_abort(&w);
    qfile_writer_free(&w);
    CHECK(count_dir("incoming") == 1);

    /* queue IDs: valid, unique and increasing within a process */
    char prev[QUEUE_ID_SIZE] = "", cur[QUEUE_ID_SIZE];
    int ordered = 1;
    for (int i = 0; i < 10000; i++) {
        queue_id_new(cur);
        if (!queue_id_valid(cur) || strcmp(cur, prev) <= 0)
            ordered = 0;
        memcpy(prev, cur, sizeof(cur));
    }
    CHECK(ordered);
    CHECK(!queue_id_valid("0123456789ABCDEF"));        /* 'A' and 'E' are not in the alphabet */
    CHECK(!queue_id_valid("../../etc/passwd"));
    CHECK(!queue_id_valid(""));
    CHECK(!queue_id_valid(NULL));

    unlink(final);
    char p[256];
    snprintf(p, sizeof(p), "%s/incoming", dir);
    rmdir(p);
    rmdir(dir);
    sb_free(&content);
    sb_free(&rec);
    sb_free(&err);
    sb_free(&c.sb);
    return check_summary();
}
