/* tern_manage.c: changing the queue: `tern flush`, `delete`, `hold`,
 * `release` and `requeue`, by queue ID, ALL, or the filters of `tern
 * queue`, with a progress bar on a terminal. What is done to each message
 * is lib/global/queue_admin.c, shared with the web console. */
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


static const struct {
    const char *name, *done_word, *summary;
} ops[] = {
    [QA_FLUSH] = { "flush", "Flushed", "deliver deferred messages now (all, by ID, or --domain DOMAIN)" },
    [QA_DELETE] = { "delete", "Deleted", "remove messages from the queue (no notice to the sender)" },
    [QA_HOLD] = { "hold", "Held", "keep messages from delivery until they are released" },
    [QA_RELEASE] = { "release", "Released", "let held messages be delivered again" },
    [QA_REQUEUE] = { "requeue", "Requeued", "take messages through the queue manager again (new routing)" },
};

/* What is said about one message leaves the progress bar's line first. */
static void say_line(void *ctx, bool err, const char *text)
{
    enum queue_admin_op op = *(const enum queue_admin_op *)ctx;
    progress_interrupt();
    if (err)
        fprintf(stderr, "tern %s: %s\n", ops[op].name, text);
    else
        printf("%s\n", text);
}

static void log_line(const char *text)
{
    tern_queue_log("%s", text);
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

static void usage(enum queue_admin_op op)
{
    const char *targets = op == QA_FLUSH ? "[ID... | --domain DOMAIN]" : "ID... | ALL | FILTERS";
    printf("usage: tern [-c CONFDIR] %s %s\n  %s.\n", ops[op].name, targets, ops[op].summary);
    if (op != QA_FLUSH)
        printf("  FILTERS, as for tern queue: --sender ADDR, --recipient ADDR, --domain DOMAIN,\n"
               "  --state incoming|active|deferred|hold (together: messages matching all).\n");
    else
        printf("  Without arguments every deferred message is tried again now, and\n"
               "  destinations suspended after failures are tried again too.\n");
    if (op == QA_DELETE || op == QA_HOLD || op == QA_REQUEUE)
        printf("  Safe while Tern runs: a message being delivered is %s when that delivery ends.\n",
               op == QA_DELETE ? "removed" : op == QA_HOLD ? "held" : "requeued");
    else
        printf("  Safe while Tern runs: a message being delivered finishes that attempt first.\n");
}

static int run_op(enum queue_admin_op op, int argc, char **argv)
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
    if (op == QA_FLUSH && (sel.filter.sender || sel.filter.recipient || sel.filter.state >= 0)) {
        fprintf(stderr, "tern flush: only --domain selects messages to flush\n");
        return 2;
    }
    if (op != QA_FLUSH && !by_filter && first >= argc) {
        fprintf(stderr, "tern %s: which messages? Give queue IDs, ALL or filters (see tern %s --help)\n",
                ops[op].name, ops[op].name);
        return 2;
    }
    if (by_filter && first < argc) {
        fprintf(stderr, "tern %s: give queue IDs or filters, not both\n", ops[op].name);
        return 2;
    }
    tern_queue_enter();
    struct queue_admin_run r = { .op = op, .running = tern_queue_tern_running(),
                                 .say = say_line, .log = log_line, .ctx = &op };
    if (op == QA_FLUSH && first >= argc && !by_filter)
        all = true;
    struct progress bar;
    char what[32];
    snprintf(what, sizeof(what), "tern %s", ops[op].name);
    if (all || by_filter) {
        sel.all = all;
        r.selected = true;
        queue_walk(select_one, &sel);
        progress_begin(&bar, what, sel.n, false);
        for (size_t i = 0; i < sel.n; i++) {
            queue_admin_act(&r, sel.ids[i]);
            free(sel.ids[i]);
            progress_update(&bar, i + 1);
        }
        free(sel.ids);
    } else {
        progress_begin(&bar, what, (unsigned long long)(argc - first), false);
        for (int i = first; i < argc; i++) {
            queue_admin_act(&r, argv[i]);
            progress_update(&bar, (unsigned long long)(i - first + 1));
        }
    }
    progress_end(&bar);
    if (r.wake_incoming)
        tern_queue_wake_qmgr("incoming");
    if (op == QA_FLUSH || r.wake_deferred)
        tern_queue_wake_qmgr("deferred");     /* a flush also lifts destination suspensions */
    if (op != QA_FLUSH || !all)
        printf("tern %s: %s: %zu message%s%s\n", ops[op].name, ops[op].done_word, r.changed,
               r.changed == 1 ? "" : "s", r.later ? " (some when their delivery ends)" : "");
    if (op == QA_FLUSH && !r.running)
        printf("tern flush: Tern is not running; the messages are tried when it starts\n");
    return r.failed ? 1 : 0;
}

int tern_cmd_flush(int argc, char **argv) { return run_op(QA_FLUSH, argc, argv); }
int tern_cmd_delete(int argc, char **argv) { return run_op(QA_DELETE, argc, argv); }
int tern_cmd_hold(int argc, char **argv) { return run_op(QA_HOLD, argc, argv); }
int tern_cmd_release(int argc, char **argv) { return run_op(QA_RELEASE, argc, argv); }
int tern_cmd_requeue(int argc, char **argv) { return run_op(QA_REQUEUE, argc, argv); }
