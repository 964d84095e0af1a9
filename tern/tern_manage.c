/* tern_manage.c: changing the queue: `tern flush`, `delete`, `hold`,
 * `release` and `requeue`, by queue ID, ALL, or the filters of `tern
 * queue`. Safe while Tern runs (lib/global/QUEUE.md, "Administration"): a
 * message outside active/ is moved or removed with one rename or unlink,
 * which fails if qmgr took it meanwhile, and then it is looked up again; a
 * message in active/ is qmgr's, so qmgr is asked to do it when no delivery
 * of it runs. With Tern stopped, files in active/ are handled directly. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "progress.h"
#include "queue_admin.h"
#include "queue_flush.h"
#include "strbuf.h"
#include "tern.h"
#include "tern_queue.h"
#include "util.h"

#define LOOKUPS_MAX 5        /* a message that keeps moving is looked up this often */

/* What is said about one message leaves the progress bar's line first. */
#define say(...) (progress_interrupt(), printf(__VA_ARGS__))
#define say_err(...) (progress_interrupt(), fprintf(stderr, __VA_ARGS__))

enum op { OP_FLUSH, OP_DELETE, OP_HOLD, OP_RELEASE, OP_REQUEUE };

static const struct {
    const char *name, *done_word, *summary;
} ops[] = {
    [OP_FLUSH] = { "flush", "Flushed", "deliver deferred messages now (all, by ID, or --domain DOMAIN)" },
    [OP_DELETE] = { "delete", "Deleted", "remove messages from the queue (no notice to the sender)" },
    [OP_HOLD] = { "hold", "Held", "keep messages from delivery until they are released" },
    [OP_RELEASE] = { "release", "Released", "let held messages be delivered again" },
    [OP_REQUEUE] = { "requeue", "Requeued", "take messages through the queue manager again (new routing)" },
};

struct run {
    enum op op;
    bool running;                 /* master runs: ask qmgr about active/ */
    size_t changed, later, failed;
    bool wake_incoming, wake_deferred;
};

static void path_of(char *buf, size_t size, enum queue_state s, const char *id)
{
    snprintf(buf, size, "%s/%s", queue_state_dir(s), id);
}

/* A message outside active/ opened to set its times (lib/global/queue_flush.h).
 * -1 with errno ENOENT when it has gone (look again); other failures are
 * printed, with errno 0. */
static int open_due(const char *path, const char *id, enum op op)
{
    struct strbuf err = STRBUF_INIT(1024);
    int fd = queue_due_open(path, &err);
    if (fd < 0 && errno != ENOENT) {
        say_err("tern %s: %s: %s; not a queue file of Tern's, left alone\n",
                ops[op].name, id, sb_str(&err));
        errno = 0;
    }
    sb_free(&err);
    return fd;
}

/* Move a file now due: into deferred/ with mtime now. */
static int move_due(const char *from, const char *to, const char *id, enum op op)
{
    struct strbuf err = STRBUF_INIT(1024);
    int rc = queue_admin_move_due(from, to, &err);
    if (rc < 0 && errno != ENOENT && err.len) {
        say_err("tern %s: %s: %s; not a queue file of Tern's, left alone\n",
                ops[op].name, id, sb_str(&err));
        errno = 0;
    }
    sb_free(&err);
    return rc;
}

/* Move a message outside qmgr's hands into another queue directory (into
 * deferred/ due now) and log what was done; qmgr is to look at incoming/
 * or deferred/ when it landed there. 1 done, -1 it moved (look again), -2
 * error (printed). */
static int move_to(struct run *r, const char *from, enum queue_state dest, const char *id,
                   const char *what)
{
    char to[128];
    path_of(to, sizeof(to), dest, id);
    if ((dest == QS_DEFERRED ? move_due(from, to, id, r->op) : rename(from, to)) < 0)
        return errno == ENOENT ? -1 : -2;
    tern_queue_log("%s: %s", id, what);
    if (dest == QS_INCOMING)
        r->wake_incoming = true;
    if (dest == QS_DEFERRED)
        r->wake_deferred = true;
    return 1;
}

/* One attempt on a message outside qmgr's hands: 1 done, 0 nothing to
 * do (printed), -1 it moved (look again), -2 error (printed). */
static int act_on_file(struct run *r, const char *id, enum queue_state s)
{
    char from[128];
    path_of(from, sizeof(from), s, id);
    switch (r->op) {
    case OP_DELETE:
        if (unlink(from) < 0)
            return errno == ENOENT ? -1 : -2;
        queue_admin_remove_logs(id);
        tern_queue_log("%s: removed (deleted by the administrator)", id);
        return 1;
    case OP_HOLD:
        if (s == QS_HOLD) {
            say("%s: already on hold\n", id);
            return 0;
        }
        return move_to(r, from, QS_HOLD, id, "placed on hold by the administrator");
    case OP_RELEASE:
        if (s != QS_HOLD) {
            say("%s: not on hold\n", id);
            return 0;
        }
        return move_to(r, from, QS_DEFERRED, id, "released from hold");
    case OP_REQUEUE:
        if (s == QS_INCOMING) {
            r->wake_incoming = true;
            return 1;
        }
        return move_to(r, from, QS_INCOMING, id, "requeued by the administrator");
    case OP_FLUSH:
        if (s == QS_HOLD) {
            say("%s: on hold; `tern release %s` first\n", id, id);
            return 0;
        }
        if (s != QS_DEFERRED)
            return 1;                 /* incoming and active are on their way already */
        int fd = open_due(from, id, r->op);
        if (fd < 0 || queue_due_set(fd) < 0)
            return errno == ENOENT ? -1 : -2;
        r->wake_deferred = true;
        return 1;
    }
    return -2;
}

/* A message in active/ while Tern runs: qmgr's. */
static int act_via_qmgr(struct run *r, const char *id)
{
    if (r->op == OP_FLUSH || r->op == OP_RELEASE)
        return r->op == OP_FLUSH ? 1 : (say("%s: not on hold\n", id), 0);
    int status = queue_admin_ask_qmgr(ops[r->op].name, id);
    switch (status) {
    case QMGR_ADMIN_DONE:
        return 1;
    case QMGR_ADMIN_LATER:
        say("%s: being delivered; %s when the delivery under way ends\n", id,
               r->op == OP_DELETE ? "removed" : r->op == OP_HOLD ? "held" : "requeued");
        r->later++;
        return 1;
    case QMGR_ADMIN_ABSENT:
        return -1;
    case QMGR_ADMIN_DENIED:
        say_err("tern %s: %s: refused by qmgr: only root and mail_owner may change the queue\n",
                ops[r->op].name, id);
        return -2;
    default:
        say_err("tern %s: %s: the queue manager cannot be reached\n", ops[r->op].name, id);
        return -2;
    }
}

static void act(struct run *r, const char *id)
{
    struct strbuf err = STRBUF_INIT(1024);
    for (int i = 0; i < LOOKUPS_MAX; i++) {
        struct queued q;
        if (queue_find(id, &q, &err) < 0) {
            say_err("tern %s: %s: %s\n", ops[r->op].name, id, sb_str(&err));
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
                say_err("tern %s: %s: %s\n", ops[r->op].name, id, strerror(errno));
            r->failed++;
        }
        if (rc != -1)
            goto out;
        usleep(100000);           /* it is moving: qmgr is at work on it */
    }
    say_err("tern %s: %s: the message keeps moving; try again\n", ops[r->op].name, id);
    r->failed++;
out:
    sb_free(&err);
}

struct selection {
    struct queue_filter filter;
    bool all;
    char **ids;
    size_t n, cap;
};

static int select_one(struct queued *q, void *ctx)
{
    struct selection *sel = ctx;
    if (!sel->all && !queue_filter_match(&sel->filter, q))
        return 0;
    if (sel->n == sel->cap) {
        sel->cap = sel->cap ? 2 * sel->cap : 64;
        sel->ids = xrealloc(sel->ids, sel->cap * sizeof(*sel->ids));
    }
    sel->ids[sel->n++] = xstrdup(q->id);
    return 0;
}

static void usage(enum op op)
{
    const char *targets = op == OP_FLUSH ? "[ID... | --domain DOMAIN]" : "ID... | ALL | FILTERS";
    printf("usage: tern [-c CONFDIR] %s %s\n  %s.\n", ops[op].name, targets, ops[op].summary);
    if (op != OP_FLUSH)
        printf("  FILTERS, as for tern queue: --sender ADDR, --recipient ADDR, --domain DOMAIN,\n"
               "  --state incoming|active|deferred|hold (together: messages matching all).\n");
    else
        printf("  Without arguments every deferred message is tried again now, and\n"
               "  destinations suspended after failures are tried again too.\n");
    if (op == OP_DELETE || op == OP_HOLD || op == OP_REQUEUE)
        printf("  Safe while Tern runs: a message being delivered is %s when that delivery ends.\n",
               op == OP_DELETE ? "removed" : op == OP_HOLD ? "held" : "requeued");
    else
        printf("  Safe while Tern runs: a message being delivered finishes that attempt first.\n");
}

static int run_op(enum op op, int argc, char **argv)
{
    if (tern_wants_help(argc, argv)) {
        usage(op);
        return 0;
    }
    struct selection sel = { .all = false };
    int first;
    if (tern_queue_options(argc, argv, &sel.filter, NULL, &first) < 0)
        return 2;
    bool by_filter = queue_filter_active(&sel.filter);
    bool all = first < argc && strcmp(argv[first], "ALL") == 0 && first + 1 == argc;
    if (op == OP_FLUSH && (sel.filter.sender || sel.filter.recipient || sel.filter.state >= 0)) {
        fprintf(stderr, "tern flush: only --domain selects messages to flush\n");
        return 2;
    }
    if (op != OP_FLUSH && !by_filter && first >= argc) {
        fprintf(stderr, "tern %s: which messages? Give queue IDs, ALL or filters (see tern %s --help)\n",
                ops[op].name, ops[op].name);
        return 2;
    }
    if (by_filter && first < argc) {
        fprintf(stderr, "tern %s: give queue IDs or filters, not both\n", ops[op].name);
        return 2;
    }
    tern_queue_enter();
    struct run r = { .op = op, .running = tern_queue_tern_running() };
    if (op == OP_FLUSH && first >= argc && !by_filter)
        all = true;
    struct progress bar;
    char what[32];
    snprintf(what, sizeof(what), "tern %s", ops[op].name);
    if (all || by_filter) {
        sel.all = all;
        queue_walk(select_one, &sel);
        progress_begin(&bar, what, sel.n, false);
        for (size_t i = 0; i < sel.n; i++) {
            act(&r, sel.ids[i]);
            free(sel.ids[i]);
            progress_update(&bar, i + 1);
        }
        free(sel.ids);
    } else {
        progress_begin(&bar, what, (unsigned long long)(argc - first), false);
        for (int i = first; i < argc; i++) {
            act(&r, argv[i]);
            progress_update(&bar, (unsigned long long)(i - first + 1));
        }
    }
    progress_end(&bar);
    if (r.wake_incoming)
        tern_queue_wake_qmgr("incoming");
    if (op == OP_FLUSH || r.wake_deferred)
        tern_queue_wake_qmgr("deferred");     /* a flush also lifts destination suspensions */
    if (op != OP_FLUSH || !all)
        printf("tern %s: %s: %zu message%s%s\n", ops[op].name, ops[op].done_word, r.changed,
               r.changed == 1 ? "" : "s", r.later ? " (some when their delivery ends)" : "");
    if (op == OP_FLUSH && !r.running)
        printf("tern flush: Tern is not running; the messages are tried when it starts\n");
    return r.failed ? 1 : 0;
}

int tern_cmd_flush(int argc, char **argv) { return run_op(OP_FLUSH, argc, argv); }
int tern_cmd_delete(int argc, char **argv) { return run_op(OP_DELETE, argc, argv); }
int tern_cmd_hold(int argc, char **argv) { return run_op(OP_HOLD, argc, argv); }
int tern_cmd_release(int argc, char **argv) { return run_op(OP_RELEASE, argc, argv); }
int tern_cmd_requeue(int argc, char **argv) { return run_op(OP_REQUEUE, argc, argv); }
