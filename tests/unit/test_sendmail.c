/* test_sendmail.c: unit tests of local submission: sendmail's address-list
 * splitting and recipient checks, its reading of the message (line ends,
 * the lone dot, -i, mbox From_ lines, -bs dot stuffing, the size limit),
 * -t with Bcc: removal and Resent- fields, and the maildrop file rules
 * (lib/global/maildrop.c) on files written with the queue file writer. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "maildrop.h"
#include "sendmail/sendmail.h"
#include "util.h"

/* ---- address lists ---- */

static int collect(const char *addr, size_t len, void *ctx)
{
    struct strbuf *out = ctx;
    if (out->len)
        sb_appendc(out, '|');
    sb_append(out, addr, len);
    return 0;
}

static const char *split(const char *text, struct strbuf *out)
{
    sb_reset(out);
    return sendmail_address_list(text, strlen(text), collect, out) < 0 ? "ERROR" : sb_str(out);
}

static void test_address_list(void)
{
    struct strbuf out = STRBUF_INIT(0);
    CHECK_STR(split("a@b", &out), "a@b");
    CHECK_STR(split("Name <a@b>, c@d (a comment, with a comma)", &out), "a@b|c@d");
    CHECK_STR(split("\"Last, First\" <x@y>,\r\n\tz@w", &out), "x@y|z@w");
    CHECK_STR(split("Friends: x@y, \"q u\"@z;, after@w", &out), "x@y|\"q u\"@z|after@w");
    CHECK_STR(split("undisclosed-recipients:;", &out), "");
    CHECK_STR(split("<@r1,@r2:u@d>", &out), "u@d");
    CHECK_STR(split("user@[192.0.2.1] (nested (comment) here)", &out), "user@[192.0.2.1]");
    CHECK_STR(split("<>", &out), "");
    CHECK_STR(split("a@b, , ,c@d", &out), "a@b|c@d");
    CHECK_STR(split("\"unclosed@x", &out), "ERROR");
    CHECK_STR(split("<a@b", &out), "ERROR");
    CHECK_STR(split("a@b>", &out), "ERROR");
    CHECK_STR(split("(open comment a@b", &out), "ERROR");
    CHECK_STR(split("<<a@b>>", &out), "ERROR");
    char *big = xmalloc(3000);
    memset(big, 'a', 2999);
    big[2999] = 0;
    CHECK_STR(split(big, &out), "ERROR");
    free(big);
    sb_free(&out);
}

static void test_recipients(void)
{
    struct sm_rcpts r = { NULL, NULL, 0, 0 };
    const char *why = NULL;
    char bad[201];
    CHECK(sendmail_rcpts_add_list(&r, "Joe <joe@example.org>, root, joe@example.org", "", &why,
                            bad) == 0);
    CHECK(r.n == 2);
    CHECK_STR(r.addr[0], "joe@example.org");
    CHECK_STR(r.addr[1], "root");
    CHECK(sendmail_rcpts_add_list(&r, "x@@y", "SUCCESS", &why, bad) < 0);
    CHECK_STR(bad, "x@@y");
    CHECK(sendmail_rcpts_add_list(&r, "ok@example.org", "SUCCESS", &why, bad) == 0);
    CHECK(r.n == 3);
    CHECK_STR(r.notify[2], "SUCCESS");
    sendmail_rcpts_free(&r);
    CHECK(r.n == 0 && r.addr == NULL);
}

/* ---- reading the message ---- */

/* All of the message as sendmail would submit it; "TOO BIG" over the limit. */
static const char *read_all(const char *input, bool ignore_dots, bool smtp,
                            unsigned long long limit, struct strbuf *out, bool *dot)
{
    FILE *fp = fmemopen((void *)input, strlen(input), "r");
    struct sm_input in;
    int rc;
    sendmail_input_init(&in, fp, ignore_dots, smtp, limit);
    sb_reset(out);
    while ((rc = sendmail_input_read(&in, out)) > 0)
        ;
    if (dot)
        *dot = in.dot_seen;
    fclose(fp);
    return rc < 0 ? "TOO BIG" : sb_str(out);
}

static void test_input(void)
{
    struct strbuf out = STRBUF_INIT(0);
    bool dot;
    CHECK_STR(read_all("Subject: x\r\n\r\nbody\r\n", false, false, 0, &out, NULL),
              "Subject: x\n\nbody\n");
    CHECK_STR(read_all("a\n.\nafter\n", false, false, 0, &out, &dot), "a\n");
    CHECK(dot);
    CHECK_STR(read_all("a\n.\r\nafter\n", false, false, 0, &out, NULL), "a\n");
    CHECK_STR(read_all("a\n.\nafter\n", true, false, 0, &out, &dot), "a\n.\nafter\n");
    CHECK(!dot);
    CHECK_STR(read_all("a\n..\n.x\n", false, false, 0, &out, NULL), "a\n..\n.x\n");
    CHECK_STR(read_all("no newline", false, false, 0, &out, NULL), "no newline\n");
    CHECK_STR(read_all("From joe Mon Jan 1\nSubject: x\n\nFrom here\n", false, false, 0, &out,
                       NULL), "Subject: x\n\nFrom here\n");
    CHECK_STR(read_all("From a x\n>From b y\nX: 1\n\n", false, false, 0, &out, NULL), "X: 1\n\n");
    CHECK_STR(read_all("X: 1\nFrom a x\n", false, false, 0, &out, NULL), "X: 1\nFrom a x\n");
    CHECK_STR(read_all("", false, false, 0, &out, NULL), "");
    CHECK_STR(read_all("bare\rCR\n", false, false, 0, &out, NULL), "bare\rCR\n");
    /* -bs DATA: dot stuffing, the end marker always counts */
    CHECK_STR(read_all("..x\r\n.\r\nQUIT\r\n", true, true, 0, &out, &dot), ".x\n");
    CHECK(dot);
    CHECK_STR(read_all("From x\r\n.\r\n", true, true, 0, &out, NULL), "From x\n");
    /* the limit counts content bytes */
    CHECK_STR(read_all("12345\n", false, false, 6, &out, NULL), "12345\n");
    CHECK_STR(read_all("123456\n", false, false, 6, &out, NULL), "TOO BIG");
    /* a line longer than a piece, with CR LF across the boundary */
    size_t n = SM_PIECE * 2 + 10;
    char *big = xmalloc(n + 3);
    memset(big, 'x', n);
    memcpy(big + SM_PIECE - 1, "\r\n", 2);
    memcpy(big + n, ".\n", 3);
    read_all(big, false, false, 0, &out, &dot);
    CHECK(out.len == n + 1 && out.data[SM_PIECE - 2] == 'x' && out.data[SM_PIECE - 1] == '\n'
          && out.data[SM_PIECE] == 'x' && out.data[n - 1] == '.' && out.data[n] == '\n');
    CHECK(!dot);                 /* that "." is not a line of its own */
    free(big);
    sb_free(&out);
}

/* ---- -t ---- */

static int extract(const char *input, struct sm_rcpts *r, struct strbuf *content)
{
    struct sm_options o;
    memset(&o, 0, sizeof(o));
    o.header_limit = 4096;
    FILE *fp = fmemopen((void *)input, strlen(input), "r");
    struct sm_input in;
    sendmail_input_init(&in, fp, false, false, 0);
    sb_reset(content);
    int rc = sendmail_extract_recipients(&in, &o, r, content);
    while (rc == 0 && sendmail_input_read(&in, content) > 0)
        ;
    fclose(fp);
    return rc;
}

static void test_extract(void)
{
    struct sm_rcpts r = { NULL, NULL, 0, 0 };
    struct strbuf content = STRBUF_INIT(0);
    CHECK(extract("To: A <a@x>, b@x\nSubject: s\nBcc: hidden@x\nCc: c@x,\n a@x\n\nbody\nTo: no@x\n",
                  &r, &content) == 0);
    CHECK(r.n == 4);
    CHECK(r.n == 4 && strcmp(r.addr[0], "a@x") == 0 && strcmp(r.addr[1], "b@x") == 0
          && strcmp(r.addr[2], "c@x") == 0 && strcmp(r.addr[3], "hidden@x") == 0);
    CHECK_STR(sb_str(&content), "To: A <a@x>, b@x\nSubject: s\nCc: c@x,\n a@x\n\nbody\nTo: no@x\n");
    sendmail_rcpts_free(&r);
    /* Resent- fields win when there are any */
    CHECK(extract("To: old@x\nResent-To: new@x\nResent-Bcc: secret@x\n\nb\n", &r, &content) == 0);
    CHECK(r.n == 2 && strcmp(r.addr[0], "new@x") == 0 && strcmp(r.addr[1], "secret@x") == 0);
    CHECK_STR(sb_str(&content), "To: old@x\nResent-To: new@x\n\nb\n");
    sendmail_rcpts_free(&r);
    /* no body, no blank line; the header is all there is */
    CHECK(extract("BCC: only@x", &r, &content) == 0);
    CHECK(r.n == 1);
    CHECK_STR(sb_str(&content), "");
    sendmail_rcpts_free(&r);
    CHECK(extract("To: bad@@x\n\n", &r, &content) != 0);
    sendmail_rcpts_free(&r);
    sb_free(&content);
}

/* ---- maildrop files ---- */

static void test_notify(void)
{
    char out[MAILDROP_NOTIFY_MAX];
    CHECK(maildrop_notify_canon("never", out, sizeof(out)) == 0);
    CHECK_STR(out, "NEVER");
    CHECK(maildrop_notify_canon("success,Delay,FAILURE", out, sizeof(out)) == 0);
    CHECK_STR(out, "SUCCESS,DELAY,FAILURE");
    CHECK(maildrop_notify_canon("never,success", out, sizeof(out)) < 0);
    CHECK(maildrop_notify_canon("success,success", out, sizeof(out)) < 0);
    CHECK(maildrop_notify_canon("success,", out, sizeof(out)) < 0);
    CHECK(maildrop_notify_canon(",success", out, sizeof(out)) < 0);
    CHECK(maildrop_notify_canon("", out, sizeof(out)) < 0);
    CHECK(maildrop_notify_canon("sometimes", out, sizeof(out)) < 0);
    CHECK(maildrop_notify_canon("success", out, 4) < 0);
}

struct rec {
    int type;
    const char *data;
    size_t len;          /* 0: strlen(data) */
};

static char checked_full_name[300];

/* A maildrop file of these records, read back and checked (the full name
 * found is kept in checked_full_name). */
static int check_file(const char *dir, const struct rec *recs, size_t n, struct maildrop_info *info,
                      const char **why)
{
    struct qfile_writer w;
    struct qmessage m;
    struct strbuf err = STRBUF_INIT(1024), path = STRBUF_INIT(0);
    if (qfile_create_in(&w, dir, QDIR_MAILDROP, 0640) < 0)
        return -2;
    for (size_t i = 0; i < n; i++)
        qfile_put(&w, recs[i].type, recs[i].data, recs[i].len ? recs[i].len : strlen(recs[i].data));
    if (qfile_commit(&w) < 0)
        return -2;
    sb_appendf(&path, "%s/%s/%s", dir, QDIR_MAILDROP, w.id);
    struct stat st;
    CHECK(stat(path.data, &st) == 0 && (st.st_mode & 0777) == 0640);
    int rc = qmessage_load(path.data, &m, &err) < 0 ? -3 : maildrop_check(&m, info, why);
    if (rc != -3) {
        str_copy(checked_full_name, sizeof(checked_full_name),
                 rc == 0 && info->full_name ? info->full_name : "");
        qmessage_free(&m);
    }
    unlink(path.data);
    qfile_writer_free(&w);
    sb_free(&err);
    sb_free(&path);
    return rc;
}

#define R(t, s) { t, s, 0 }
#define RCPT(a, n) { QREC_RCPT, a "\0\0" n, sizeof(a "\0\0" n) - 1 }

static void test_maildrop_check(void)
{
    char dir[] = "/tmp/tern-test-maildrop-XXXXXX";
    struct strbuf sub = STRBUF_INIT(0);
    struct maildrop_info info;
    const char *why = "";
    CHECK(mkdtemp(dir) != NULL);
    sb_appendf(&sub, "%s/%s", dir, QDIR_MAILDROP);
    CHECK(mkdir(sub.data, 0700) == 0);
    umask(022);
    const struct rec good[] = {
        R(QREC_VERSION, "1"), R(QREC_TIME, "1700000000.000001"), R(QREC_SENDER, "joe"),
        R(QREC_ATTR, "uid=1000"), R(QREC_ATTR, "full_name=Joe User"), R(QREC_ATTR, "ret=HDRS"),
        R(QREC_ATTR, "envid=abc"), RCPT("a@x", "SUCCESS,DELAY"), RCPT("b", ""),
        R(QREC_CONTENT, "Subject: hi\n\nbody\n"), { QREC_CONTENT_END, "", 0 },
    };
    CHECK(check_file(dir, good, 11, &info, &why) == 0);
    CHECK(info.uid == 1000);
    CHECK_STR(checked_full_name, "Joe User");
    /* each broken in one way */
    struct { size_t at; struct rec r; const char *what; } bad[] = {
        { 3, R(QREC_ATTR, "uid=-1"), "negative uid" },
        { 3, R(QREC_ATTR, "uid=4294967295"), "uid -1" },
        { 3, R(QREC_ATTR, "uid=01000"), "leading zero" },
        { 3, R(QREC_ATTR, "size=1000"), "no uid, unknown attribute" },
        { 4, R(QREC_ATTR, "uid=0"), "second uid" },
        { 4, R(QREC_ATTR, "full_name=a\tb"), "control character" },
        { 5, R(QREC_ATTR, "ret=ALL"), "bad ret" },
        { 6, R(QREC_ATTR, "envid="), "empty envid" },
        { 7, RCPT("a@x", "success"), "notify not canonical" },
        { 7, { QREC_RCPT, "a@x\0orcpt\0", 10 }, "orcpt" },
        { 7, { QREC_DONE, "a@x\0\0", 5 }, "done recipient" },
        { 2, R(QREC_SENDER, "jo\x7f"), "DEL in the sender" },
        { 2, R(QREC_WARN, "000000000000000"), "warning record instead of the sender" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rec recs[11];
        memcpy(recs, good, sizeof(recs));
        recs[bad[i].at] = bad[i].r;
        int rc = check_file(dir, recs, 11, &info, &why);
        if (rc != -1 && rc != -3)
            fprintf(stderr, "accepted: %s\n", bad[i].what);
        CHECK(rc == -1 || rc == -3);
    }
    /* no recipients at all */
    struct rec norcpt[9];
    memcpy(norcpt, good, 7 * sizeof(struct rec));
    memcpy(norcpt + 7, good + 9, 2 * sizeof(struct rec));
    CHECK(check_file(dir, norcpt, 9, &info, &why) == -1);
    rmdir(sub.data);
    rmdir(dir);
    sb_free(&sub);
}

int main(void)
{
    test_address_list();
    test_recipients();
    test_input();
    test_extract();
    test_notify();
    test_maildrop_check();
    return check_summary();
}
