/* test_local_copy.c: unit tests of the local agent's message copies
 * (">From " quoting across every chunk boundary, the envelope lines, the
 * exact mbox copy of a real queue file and its size bound), of the
 * Delivered-To: scan used for loop detection, of the mailbox locks, and
 * of the Maildir and mbox writers of lib/global/mailbox.c that local and
 * virtual share. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

#include "check.h"
#include "local.h"
#include "mailbox.h"
#include "queue.h"
#include "util.h"

static char *quote_all(const char *in, size_t len, size_t split1, size_t split2)
{
    struct mailbox_from_quote q;
    struct strbuf out = STRBUF_INIT(0);
    mailbox_from_quote_init(&q);
    mailbox_from_quote_feed(&q, in, split1, &out);
    mailbox_from_quote_feed(&q, in + split1, split2 - split1, &out);
    mailbox_from_quote_feed(&q, in + split2, len - split2, &out);
    mailbox_from_quote_finish(&q, &out);
    char *s = xstrdup(sb_str(&out));
    sb_free(&out);
    return s;
}

static void test_from_quote(void)
{
    const char *in = "From a\nxFrom b\nFrom\nFro\n>From c\nFromage\nFrom ";
    const char *want = ">From a\nxFrom b\nFrom\nFro\n>From c\nFromage\n>From ";
    size_t len = strlen(in);
    int bad = 0;
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            char *got = quote_all(in, len, i, j);
            bad += strcmp(got, want) != 0;
            free(got);
        }
    }
    CHECK(bad == 0);
    char *partial = quote_all("Fro", 3, 1, 2);
    CHECK_STR(partial, "Fro");
    free(partial);
    char *none = quote_all("", 0, 0, 0);
    CHECK_STR(none, "");
    free(none);
}

static void test_prefix(void)
{
    struct strbuf out = STRBUF_INIT(0);
    mailbox_copy_prefix(&out, COPY_FROM_LINE, "", NULL, "u@x", 0);
    CHECK(strncmp(sb_str(&out), "From MAILER-DAEMON  ", 20) == 0);
    CHECK(strstr(sb_str(&out), "\nReturn-Path: <>\nDelivered-To: u@x\n") != NULL);
    sb_reset(&out);
    mailbox_copy_prefix(&out, 0, "a b\n@x", "", "u\r@x", 0);
    CHECK_STR(sb_str(&out), "Return-Path: <a b?@x>\nDelivered-To: u?@x\n");
    sb_reset(&out);
    mailbox_copy_prefix(&out, COPY_FROM_LINE, "a b@x", NULL, "u@x", 0);
    CHECK(strncmp(sb_str(&out), "From a_b@x  ", 12) == 0);
    /* the original recipient as received, between them, as in Postfix */
    sb_reset(&out);
    mailbox_copy_prefix(&out, 0, "s@x", "Alice.Smith@X\n", "u@x", 0);
    CHECK_STR(sb_str(&out), "Return-Path: <s@x>\nX-Original-To: Alice.Smith@X?\nDelivered-To: u@x\n");
    sb_free(&out);
}

static void test_delivered_scan(void)
{
    const char *msg = "Received: x\nDelivered-To: A@Example.ORG\ndelivered-to:   b@x  \n"
                      "Subject: Delivered-To: no@x\n\nDelivered-To: body@x\n";
    size_t len = strlen(msg);
    for (size_t cut = 0; cut <= len; cut += 7) {
        struct mailbox_delivered_scan s;
        mailbox_delivered_scan_init(&s);
        mailbox_delivered_scan_feed(&s, msg, cut);
        mailbox_delivered_scan_feed(&s, msg + cut, len - cut);
        mailbox_delivered_scan_finish(&s);
        CHECK(s.nvalues == 2);
        if (s.nvalues == 2) {
            CHECK_STR(s.values[0], "a@example.org");
            CHECK_STR(s.values[1], "b@x");
        }
        mailbox_delivered_scan_free(&s);
    }
}

/* A real queue file with the given content, in a fresh directory. */
static int make_queue_file(const char *dir, const char *content, struct qmessage *m, char *path,
                           size_t pathsz)
{
    struct qfile_writer w;
    char sub[512];
    snprintf(sub, sizeof(sub), "%s/incoming", dir);
    mkdir(sub, 0700);
    if (qfile_create(&w, dir) < 0)
        return -1;
    qfile_put_str(&w, QREC_VERSION, "1");
    qfile_put_str(&w, QREC_TIME, "1700000000.000000");
    qfile_put_str(&w, QREC_SENDER, "sender@example.org");
    struct strbuf r = STRBUF_INIT(0);
    qrec_rcpt_encode(&r, "u@x", "", "");
    qfile_put(&w, QREC_RCPT, r.data, r.len);
    sb_free(&r);
    qfile_put(&w, QREC_CONTENT, content, strlen(content));
    qfile_put(&w, QREC_CONTENT_END, "", 0);
    char size[32];
    snprintf(size, sizeof(size), "%zu", strlen(content));
    qfile_put_str(&w, QREC_SIZE, size);
    if (qfile_commit(&w) < 0)
        return -1;
    str_copy(path, pathsz, w.final_path);
    qfile_writer_free(&w);
    struct strbuf err = STRBUF_INIT(1024);
    int rc = qmessage_load(path, m, &err);
    sb_free(&err);
    return rc;
}

static char *read_file(const char *path)
{
    struct strbuf s = STRBUF_INIT(0);
    char buf[4096];
    int fd = open(path, O_RDONLY);
    ssize_t n;
    while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
        sb_append(&s, buf, (size_t)n);
    if (fd >= 0)
        close(fd);
    char *out = xstrdup(sb_str(&s));
    sb_free(&s);
    return out;
}

static void test_copy_write(const char *dir)
{
    const char *content = "Subject: test\n\nFrom me\nbody without final newline";
    struct qmessage m;
    char qpath[1024], out[1024];
    CHECK(make_queue_file(dir, content, &m, qpath, sizeof(qpath)) == 0);
    struct local_message msg = { .fd = open(qpath, O_RDONLY), .mark_fd = -1, .sender = m.sender,
                                 .content_offset = m.content_offset, .content_size = m.content_size };
    struct local_delivery d = { .msg = &msg, .delivered_to = "u@x" };
    snprintf(out, sizeof(out), "%s/mbox", dir);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    unsigned long long written = 0;
    CHECK(local_copy_write(fd, &d, COPY_MBOX, 0, &written) == 0);
    close(fd);
    char *got = read_file(out);
    const char *nl = strchr(got, '\n');
    CHECK(strncmp(got, "From sender@example.org  ", 25) == 0);
    CHECK(nl && strcmp(nl + 1, "Return-Path: <sender@example.org>\nDelivered-To: u@x\n"
                       "Subject: test\n\n>From me\nbody without final newline\n\n") == 0);
    CHECK(written == strlen(got));
    free(got);

    /* Maildir-style copy: no From line, no quoting, no blank line */
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(local_copy_write(fd, &d, 0, 0, &written) == 0);
    close(fd);
    got = read_file(out);
    CHECK_STR(got, "Return-Path: <sender@example.org>\nDelivered-To: u@x\n"
                   "Subject: test\n\nFrom me\nbody without final newline\n");
    free(got);

    /* the size bound stops the copy and says EFBIG */
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    errno = 0;
    CHECK(local_copy_write(fd, &d, COPY_MBOX, 40, &written) < 0 && errno == EFBIG);
    CHECK(written <= 40);
    close(fd);
    close(msg.fd);
    qmessage_free(&m);
}

static void test_locks(const char *dir)
{
    char path[1024], lock[1100];
    snprintf(path, sizeof(path), "%s/box", dir);
    snprintf(lock, sizeof(lock), "%s.lock", path);
    CHECK(mailbox_dotlock_acquire(path, 1, 0, 500, getuid(), NULL) == 0);
    CHECK(access(lock, F_OK) == 0);
    errno = 0;
    CHECK(mailbox_dotlock_acquire(path, 2, 0, 500, getuid(), NULL) < 0 && errno == EAGAIN);
    mailbox_dotlock_release(path);
    CHECK(access(lock, F_OK) < 0);
    /* a lock older than stale_lock_time is taken to be left over */
    CHECK(mailbox_dotlock_acquire(path, 1, 0, 500, getuid(), NULL) == 0);
    struct utimbuf old = { 1000, 1000 };
    utime(lock, &old);
    CHECK(mailbox_dotlock_acquire(path, 2, 0, 500, getuid(), NULL) == 1);   /* 1: a stale lock was removed */
    mailbox_dotlock_release(path);
    /* a lock of another uid is reported at once, not waited for */
    if (getuid() == 0) {
        struct stat found;
        CHECK(mailbox_dotlock_acquire(path, 1, 0, 500, getuid(), NULL) == 0);
        CHECK(chown(lock, 4242, 4242) == 0);
        CHECK(mailbox_dotlock_acquire(path, 20, 1, 500, getuid(), &found) == -2);
        CHECK(found.st_uid == 4242);
        mailbox_dotlock_release(path);
    }

    int fd = open(path, O_RDWR | O_CREAT, 0600);
    int ready[2], release[2];
    CHECK(pipe(ready) == 0 && pipe(release) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        char c = 0;
        int held = mailbox_fcntl_lock(fd, 1, 0) == 0;
        (void)!write(ready[1], &held, sizeof(held));
        (void)!read(release[0], &c, 1);
        _exit(0);
    }
    int held = 0;
    CHECK(read(ready[0], &held, sizeof(held)) == sizeof(held) && held);
    errno = 0;
    CHECK(mailbox_fcntl_lock(fd, 2, 0) < 0 && errno == EAGAIN);
    (void)!write(release[1], "x", 1);
    waitpid(pid, NULL, 0);
    CHECK(mailbox_fcntl_lock(fd, 1, 0) == 0);
    close(fd);
}

static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return d ? n : -1;
}

/* lib/global/mailbox.c's Maildir writer with the virtual agent's flags,
 * and both writers' size bounds. */
static void test_maildir(const char *dir)
{
    struct qmessage q;
    char qpath[1024], box[1100], sub[1200], link[1100];
    CHECK(make_queue_file(dir, "Subject: md\n\nFrom here\n", &q, qpath, sizeof(qpath)) == 0);
    struct mailbox_message m = { .fd = open(qpath, O_RDONLY), .content_offset = q.content_offset,
                                 .content_size = q.content_size, .sender = q.sender, .seq = 1 };
    struct delivery_status st;
    snprintf(box, sizeof(box), "%s/deep/er/box/", dir);
    struct mailbox_maildir md = { .dir = box, .hostname = "h/o:st", .flags = 0,
                                  .limit = { 0, "virtual_mailbox_limit" } };
    /* without MAILDIR_MAKE_PARENTS a missing parent is an error */
    mailbox_maildir_write(&m, "u@x", &md, &st);
    CHECK(st.status == 4 && strstr(st.reason, "create maildir directory") != NULL);
    md.flags = MAILDIR_MAKE_PARENTS | MAILDIR_NO_SYMLINK;
    mailbox_maildir_write(&m, "u@x", &md, &st);
    CHECK(st.status == 2);
    CHECK_STR(st.reason, "delivered to maildir");
    snprintf(sub, sizeof(sub), "%snew", box);
    CHECK(count_entries(sub) == 1);
    struct stat sb;
    snprintf(sub, sizeof(sub), "%s/deep", dir);
    CHECK(stat(sub, &sb) == 0 && (sb.st_mode & 0777) == 0700);
    /* a symbolic link in place of the Maildir, or of new/, is refused */
    snprintf(link, sizeof(link), "%s/linked/", dir);
    snprintf(sub, sizeof(sub), "%s/linked", dir);
    CHECK(symlink(box, sub) == 0);
    md.dir = link;
    mailbox_maildir_write(&m, "u@x", &md, &st);
    CHECK(st.status == 4 && strstr(st.reason, "is a symbolic link") != NULL);
    md.flags = MAILDIR_MAKE_PARENTS;            /* local's: followed */
    mailbox_maildir_write(&m, "u@x", &md, &st);
    CHECK(st.status == 2);
    /* beyond the limit: 5.2.2, naming the parameter, and nothing left in tmp/ */
    md.dir = box;
    md.limit.size = 10;
    mailbox_maildir_write(&m, "u@x", &md, &st);
    CHECK(st.status == 5 && strcmp(st.dsn, "5.2.2") == 0);
    CHECK(strstr(st.reason, "virtual_mailbox_limit (10 bytes)") != NULL);
    snprintf(sub, sizeof(sub), "%stmp", box);
    CHECK(count_entries(sub) == 0);
    /* mbox: the bound counts what the file already holds */
    snprintf(sub, sizeof(sub), "%s/mbox", dir);
    int fd = open(sub, O_RDWR | O_CREAT | O_TRUNC, 0600);
    struct mailbox_limit limit = { 0, "mailbox_size_limit" };
    mailbox_mbox_append(&m, "u@x", fd, "mailbox M", COPY_MBOX, &limit, &st);
    CHECK(st.status == 2);
    off_t size = lseek(fd, 0, SEEK_END);
    limit.size = (long long)size + (long long)q.content_size;
    mailbox_mbox_append(&m, "u@x", fd, "mailbox M", COPY_MBOX, &limit, &st);
    CHECK(st.status == 5 && strstr(st.reason, "cannot update mailbox M: the message would exceed "
                                             "mailbox_size_limit") != NULL);
    CHECK(lseek(fd, 0, SEEK_END) == size);
    close(fd);
    close(m.fd);
    qmessage_free(&q);
}

static void test_lock_styles(void)
{
    struct strbuf why = STRBUF_INIT(64);
    CHECK(mailbox_lock_styles("fcntl, dotlock", &why) == (MAILBOX_LOCK_FCNTL | MAILBOX_LOCK_DOT));
    CHECK(mailbox_lock_styles("fcntl", &why) == MAILBOX_LOCK_FCNTL);
    CHECK(mailbox_lock_styles("", &why) == 0);
    CHECK(mailbox_lock_styles("fcntl flock", &why) < 0);
    CHECK_STR(sb_str(&why), "flock");
    sb_free(&why);
}

int main(void)
{
    char dir[] = "/tmp/test_local_copy.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    test_from_quote();
    test_prefix();
    test_delivered_scan();
    test_copy_write(dir);
    test_locks(dir);
    test_maildir(dir);
    test_lock_styles();
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void)!system(cmd);
    return check_summary();
}
