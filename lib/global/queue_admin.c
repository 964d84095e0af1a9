/* queue_admin.c: changing one message in the queue, for `tern flush`,
 * `delete`, `hold`, `release` and `requeue` and for the web console, so
 * that both do it the same way (lib/global/QUEUE.md, "Administration"): a
 * message outside active/ is moved or removed with one rename or unlink,
 * which fails if qmgr took it meanwhile, and then it is looked up again; a
 * message in active/ is qmgr's while Tern runs, so qmgr is asked over
 * public/qmgr to do it when no delivery of it runs. The caller's working
 * directory is queue_directory and it runs as mail_owner. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attr.h"
#include "queue_admin.h"
#include "queue_flush.h"
#include "strbuf.h"
#include "util.h"

#define LOOKUPS_MAX 5        /* a message that keeps moving is looked up this often */
#define QMGR_REPLY_LIMIT 1024
#define QMGR_TIMEOUT 10

static const char *const op_names[] = {
    [QA_FLUSH] = "flush", [QA_DELETE] = "delete", [QA_HOLD] = "hold",
    [QA_RELEASE] = "release", [QA_REQUEUE] = "requeue",
};

const char *queue_admin_op_name(enum queue_admin_op op)
{
    return op_names[op];
}

int queue_admin_op_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
        if (strcmp(name, op_names[i]) == 0)
            return (int)i;
    return -1;
}

/* What is said about a message (TELL_SAY, TELL_ERR) or logged (TELL_LOG),
 * handed to the caller's function of that kind. */
enum tell_kind { TELL_SAY, TELL_ERR, TELL_LOG };

static void __attribute__((format(printf, 3, 4))) tell(struct queue_admin_run *r, enum tell_kind kind,
                                                        const char *fmt, ...)
{
    struct strbuf text = STRBUF_INIT(4096);
    va_list ap;
    va_start(ap, fmt);
    sb_vappendf(&text, fmt, ap);
    va_end(ap);
    if (kind == TELL_LOG && r->log)
        r->log(sb_str(&text));
    else if (kind != TELL_LOG && r->say)
        r->say(r->ctx, kind == TELL_ERR, sb_str(&text));
    sb_free(&text);
}
#define say(r, ...) tell((r), TELL_SAY, __VA_ARGS__)
#define say_err(r, ...) tell((r), TELL_ERR, __VA_ARGS__)
#define admin_log(r, ...) tell((r), TELL_LOG, __VA_ARGS__)

static int qmgr_connect(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/qmgr", QDIR_PUBLIC);
    return unix_connect(path, QMGR_TIMEOUT);
}

int queue_admin_ask_qmgr(const char *op, const char *id)
{
    int fd = -1;
    /* qmgr may be restarting: a few tries, a second apart */
    for (int i = 0; i < 5 && fd < 0; i++) {
        fd = qmgr_connect();
        if (fd < 0)
            sleep(1);
    }
    if (fd < 0)
        return -1;
    struct strbuf out = STRBUF_INIT(QMGR_REPLY_LIMIT), in = STRBUF_INIT(QMGR_REPLY_LIMIT);
    struct attr_writer w;
    struct attr_reader r;
    long long status = -1;
    attr_begin(&w, &out);
    attr_put_str(&w, "admin", op);
    attr_put_str(&w, "id", id);
    if (attr_end(&w) < 0 || attr_expect_protocol(fd, "qmgr", QMGR_REPLY_LIMIT, QMGR_TIMEOUT) < 0
        || attr_write(fd, &out, QMGR_TIMEOUT) < 0
        || attr_read(fd, &in, QMGR_REPLY_LIMIT, QMGR_TIMEOUT) < 0
        || attr_reader_init(&r, in.data, in.len) < 0
        || attr_get_int(&r, "status", 0, 100, &status) < 0)
        status = -1;
    close(fd);
    sb_free(&out);
    sb_free(&in);
    return (int)status;
}

static void path_of(char *buf, size_t size, enum queue_state s, const char *id)
{
    snprintf(buf, size, "%s/%s", queue_state_dir(s), id);
}

void queue_admin_remove_logs(const char *id)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", QDIR_DEFER_LOG, id);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%s", QDIR_BOUNCE_LOG, id);
    unlink(path);
}

/* A message outside active/ opened to set its times (lib/global/queue_flush.h).
 * -1 with errno ENOENT when it has gone (look again); other failures are
 * printed, with errno 0. */
static int open_due(struct queue_admin_run *r, const char *path, const char *id)
{
    struct strbuf err = STRBUF_INIT(1024);
    int fd = queue_due_open(path, &err);
    if (fd < 0 && errno != ENOENT) {
        say_err(r, "%s: %s; not a queue file of Tern's, left alone", id, sb_str(&err));
        errno = 0;
    }
    sb_free(&err);
    return fd;
}

int queue_admin_move_due(const char *from, const char *to, struct strbuf *err)
{
    sb_reset(err);
    int fd = queue_due_open(from, err);
    if (fd < 0)
        return -1;
    if (rename(from, to) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return queue_due_set(fd);
}

/* Move a file now due: into deferred/ with mtime now; a file that is not
 * a queue file of Tern's is reported and left alone (errno 0). */
static int move_due(struct queue_admin_run *r, const char *from, const char *to, const char *id)
{
    struct strbuf err = STRBUF_INIT(1024);
    int rc = queue_admin_move_due(from, to, &err);
    if (rc < 0 && errno != ENOENT && err.len) {
        say_err(r, "%s: %s; not a queue file of Tern's, left alone", id, sb_str(&err));
        errno = 0;
    }
    sb_free(&err);
    return rc;
}

/* Move a message outside qmgr's hands into another queue directory (into
 * deferred/ due now) and log what was done; qmgr is to look at incoming/
 * or deferred/ when it landed there. 1 done, -1 it moved (look again), -2
 * error (printed). */
static int move_to(struct queue_admin_run *r, const char *from, enum queue_state dest, const char *id,
                   const char *what)
{
    char to[128];
    path_of(to, sizeof(to), dest, id);
    if ((dest == QS_DEFERRED ? move_due(r, from, to, id) : rename(from, to)) < 0)
        return errno == ENOENT ? -1 : -2;
    admin_log(r, "%s: %s", id, what);
    if (dest == QS_INCOMING)
        r->wake_incoming = true;
    if (dest == QS_DEFERRED)
        r->wake_deferred = true;
    return 1;
}

/* One attempt on a message outside qmgr's hands: 1 done, 0 nothing to
 * do (printed), -1 it moved (look again), -2 error (printed). */
static int act_on_file(struct queue_admin_run *r, const char *id, enum queue_state s)
{
    char from[128];
    path_of(from, sizeof(from), s, id);
    switch (r->op) {
    case QA_DELETE:
        if (unlink(from) < 0)
            return errno == ENOENT ? -1 : -2;
        queue_admin_remove_logs(id);
        admin_log(r, "%s: removed (deleted by the administrator)", id);
        return 1;
    case QA_HOLD:
        if (s == QS_HOLD) {
            say(r, "%s: already on hold", id);
            return 0;
        }
        return move_to(r, from, QS_HOLD, id, "placed on hold by the administrator");
    case QA_RELEASE:
        if (s != QS_HOLD) {
            say(r, "%s: not on hold", id);
            return 0;
        }
        return move_to(r, from, QS_DEFERRED, id, "released from hold");
    case QA_REQUEUE:
        if (s == QS_INCOMING) {
            r->wake_incoming = true;
            return 1;
        }
        return move_to(r, from, QS_INCOMING, id, "requeued by the administrator");
    case QA_FLUSH:
        if (s == QS_HOLD) {
            say(r, "%s: on hold; `tern release %s` first", id, id);
            return 0;
        }
        if (s != QS_DEFERRED)
            return 1;                 /* incoming and active are on their way already */
        int fd = open_due(r, from, id);
        if (fd < 0 || queue_due_set(fd) < 0)
            return errno == ENOENT ? -1 : -2;
        r->wake_deferred = true;
        return 1;
    }
    return -2;
}

/* A message in active/ while Tern runs: qmgr's. */
static int act_via_qmgr(struct queue_admin_run *r, const char *id)
{
    if (r->op == QA_FLUSH || r->op == QA_RELEASE)
        return r->op == QA_FLUSH ? 1 : (say(r, "%s: not on hold", id), 0);
    int status = queue_admin_ask_qmgr(queue_admin_op_name(r->op), id);
    switch (status) {
    case QMGR_ADMIN_DONE:
        return 1;
    case QMGR_ADMIN_LATER:
        say(r, "%s: being delivered; %s when the delivery under way ends", id,
               r->op == QA_DELETE ? "removed" : r->op == QA_HOLD ? "held" : "requeued");
        r->later++;
        return 1;
    case QMGR_ADMIN_ABSENT:
        return -1;
    case QMGR_ADMIN_DENIED:
        say_err(r, "%s: refused by qmgr: only root and mail_owner may change the queue", id);
        return -2;
    default:
        say_err(r, "%s: the queue manager cannot be reached", id);
        return -2;
    }
}

void queue_admin_act(struct queue_admin_run *r, const char *id)
{
    struct strbuf err = STRBUF_INIT(1024);
    for (int i = 0; i < LOOKUPS_MAX; i++) {
        struct queued q;
        if (queue_find(id, &q, &err) < 0) {
            if (errno == ENOENT && r->selected)
                goto out;
            say_err(r, "%s: %s", id, sb_str(&err));
            r->failed++;
            goto out;
        }
        enum queue_state s = q.state;
        queued_free(&q);
        int rc = s == QS_ACTIVE && r->running ? act_via_qmgr(r, id) : act_on_file(r, id, s);
        if (rc == 1)
            r->changed++;
        if (rc == -2) {
            if (errno && s != QS_ACTIVE)
                say_err(r, "%s: %s", id, strerror(errno));
            r->failed++;
        }
        if (rc != -1)
            goto out;
        usleep(100000);           /* it is moving: qmgr is at work on it */
    }
    say_err(r, "%s: the message keeps moving; try again", id);
    r->failed++;
out:
    sb_free(&err);
}
