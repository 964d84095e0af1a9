/* test_queue_flush.c: unit tests of lib/global/queue_flush.c, what `tern
 * flush --domain` and the flush service behind ETRN share: in a queue
 * directory of its own, a domain's deferred messages (any recipient still
 * pending in that domain, the domain matched whole and without regard to
 * case) are made due now and no other file is touched: not a message of
 * another domain, of a subdomain, whose recipient there is done, one on
 * hold, nor a file with a second link; a missing qmgr is reported. And
 * `tern flush` of one message: a message that left the queue after a look
 * at it (flush of ALL) is no failure. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "queue.h"
#include "queue_admin.h"
#include "queue_flush.h"
#include "strbuf.h"

static char dir[] = "/tmp/tern-test-queue-flush-XXXXXX";
#define LATER 3600      /* seconds: the next attempt of every test message */

/* A message in sub/ with these recipients (those starting with '-' are
 * done); its ID goes to id. Its next attempt is an hour away. */
static void make(const char *sub, char *id, const char *const *rcpts)
{
    struct qfile_writer w;
    CHECK(qfile_create_in(&w, dir, sub, 0600) == 0);
    CHECK(qfile_put_str(&w, QREC_VERSION, "1") == 0);
    CHECK(qfile_put_str(&w, QREC_TIME, "1700000000.123456") == 0);
    CHECK(qfile_put_str(&w, QREC_SENDER, "sender@example.org") == 0);
    for (const char *const *r = rcpts; *r; r++) {
        struct strbuf rec = STRBUF_INIT(0);
        CHECK(qrec_rcpt_encode(&rec, **r == '-' ? *r + 1 : *r, "", "") == 0);
        CHECK(qfile_put(&w, QREC_RCPT, rec.data, rec.len) == 0);
        sb_free(&rec);
    }
    CHECK(qfile_put_str(&w, QREC_CONTENT, "Subject: hi\n\nbody\n") == 0);
    CHECK(qfile_put(&w, QREC_CONTENT_END, "", 0) == 0);
    CHECK(qfile_put_str(&w, QREC_SIZE, "18") == 0);
    snprintf(id, QUEUE_ID_SIZE, "%s", w.id);
    CHECK(qfile_commit(&w) == 0);
    qfile_writer_free(&w);
    char path[256];
    snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, id);
    struct qmessage m;
    struct strbuf err = STRBUF_INIT(1024);
    CHECK(qmessage_load(path, &m, &err) == 0);
    int fd = open(path, O_RDWR);
    size_t i = 0;
    for (const char *const *r = rcpts; *r; r++, i++)
        if (**r == '-')
            CHECK(qfile_mark_done(fd, m.rcpts[i].offset) == 0);
    close(fd);
    qmessage_free(&m);
    sb_free(&err);
    struct timespec t[2] = { { time(NULL) + LATER, 0 }, { time(NULL) + LATER, 0 } };
    CHECK(utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW) == 0);
}

static int said;      /* lines queue_admin_act said about a message */

static void count_said(void *ctx, bool err, const char *text)
{
    (void)ctx, (void)err, (void)text;
    said++;
}

static void ignore_log(const char *text)
{
    (void)text;
}

static bool due(const char *sub, const char *id)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, id);
    CHECK(stat(path, &st) == 0);
    return st.st_mtime <= time(NULL) + 5;
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    static const char *const subs[] = { "incoming", "active", "deferred", "hold", "public" };
    char p[256];
    for (size_t i = 0; i < sizeof(subs) / sizeof(*subs); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, subs[i]);
        CHECK(mkdir(p, 0700) == 0);
    }
    char a[QUEUE_ID_SIZE], b[QUEUE_ID_SIZE], c[QUEUE_ID_SIZE], d[QUEUE_ID_SIZE],
        e[QUEUE_ID_SIZE], f[QUEUE_ID_SIZE], g[QUEUE_ID_SIZE];
    make("deferred", a, (const char *const[]){ "a@flush.example", NULL });
    make("deferred", b, (const char *const[]){ "x@other.example", "y@Flush.Example", NULL });
    make("deferred", c, (const char *const[]){ "-z@flush.example", "w@other.example", NULL });
    make("deferred", d, (const char *const[]){ "q@sub.flush.example", NULL });
    make("hold", e, (const char *const[]){ "h@flush.example", NULL });
    make("deferred", f, (const char *const[]){ "l@flush.example", NULL });
    make("deferred", g, (const char *const[]){ "u@other.example", NULL });
    /* f gets a second name (as if someone linked it in from elsewhere):
     * its times are not set through a name that is not its only one */
    char f1[256], f2[256];
    snprintf(f1, sizeof(f1), "%s/deferred/%s", dir, f);
    snprintf(f2, sizeof(f2), "%s/linked-%s", dir, f);
    CHECK(link(f1, f2) == 0);

    CHECK(chdir(dir) == 0);
    size_t flushed = 99, failed = 99;
    queue_flush_domain("flush.example", &flushed, &failed);
    CHECK(flushed == 2);
    CHECK(failed == 1);
    CHECK(due("deferred", a));
    CHECK(due("deferred", b));
    CHECK(!due("deferred", c));
    CHECK(!due("deferred", d));
    CHECK(!due("hold", e));
    CHECK(!due("deferred", f));
    CHECK(!due("deferred", g));

    /* a domain with nothing deferred, then the subdomain */
    queue_flush_domain("nothing.example", &flushed, &failed);
    CHECK(flushed == 0 && failed == 0);
    queue_flush_domain("SUB.flush.example", &flushed, &failed);
    CHECK(flushed == 1 && failed == 0);
    CHECK(due("deferred", d));

    /* a file that has gone: ENOENT, so that callers look again */
    struct strbuf err = STRBUF_INIT(1024);
    errno = 0;
    CHECK(queue_flush_file("deferred/00000000000000000000", &err) == -1);
    CHECK(errno == ENOENT);
    sb_free(&err);

    /* no qmgr listening on public/qmgr */
    CHECK(queue_wake_qmgr("deferred") == -1);

    /* `tern flush` of one message (queue_admin_act): g is made due; a
     * message that has gone is a failure when named, but not when it was
     * picked by a look at the queue (ALL) and delivered since */
    char gone[QUEUE_ID_SIZE];
    make("deferred", gone, (const char *const[]){ "g@gone.example", NULL });
    snprintf(p, sizeof(p), "deferred/%s", gone);
    CHECK(unlink(p) == 0);
    said = 0;
    struct queue_admin_run run = { .op = QA_FLUSH, .running = false, .say = count_said,
                                   .log = ignore_log };
    queue_admin_act(&run, g);
    CHECK(run.changed == 1 && run.failed == 0 && said == 0);
    CHECK(due("deferred", g));
    queue_admin_act(&run, gone);
    CHECK(run.changed == 1 && run.failed == 1 && said == 1);
    run.selected = true;
    queue_admin_act(&run, gone);
    CHECK(run.changed == 1 && run.failed == 1 && said == 1);
    /* a message that is there but damaged is never taken for one that
     * has gone: queue_find says EIO, and ALL still reports it */
    char damaged[QUEUE_ID_SIZE];
    make("deferred", damaged, (const char *const[]){ "d@damaged.example", NULL });
    snprintf(p, sizeof(p), "deferred/%s", damaged);
    FILE *fp = fopen(p, "w");
    CHECK(fp != NULL);
    fputs("not a queue file\n", fp);
    CHECK(fclose(fp) == 0);
    struct queued q;
    struct strbuf why = STRBUF_INIT(1024);
    errno = 0;
    CHECK(queue_find(damaged, &q, &why) == -1);
    CHECK(errno == EIO);
    sb_free(&why);
    queue_admin_act(&run, damaged);
    CHECK(run.changed == 1 && run.failed == 2 && said == 2);
    CHECK(unlink(p) == 0);

    CHECK(unlink(f2) == 0);
    const char *deferred[] = { a, b, c, d, f, g };
    for (size_t i = 0; i < sizeof(deferred) / sizeof(*deferred); i++) {
        snprintf(p, sizeof(p), "deferred/%s", deferred[i]);
        CHECK(unlink(p) == 0);
    }
    snprintf(p, sizeof(p), "hold/%s", e);
    CHECK(unlink(p) == 0);
    CHECK(chdir("/") == 0);
    for (size_t i = 0; i < sizeof(subs) / sizeof(*subs); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, subs[i]);
        CHECK(rmdir(p) == 0);
    }
    CHECK(rmdir(dir) == 0);
    return check_summary();
}
