/* queue_scan.h: reading the queue without changing it (queue_scan.c):
 * the directories that hold messages, loading one by ID, walking them in
 * arrival order, mailq's filters, and the delivery logs defer/ID and
 * bounce/ID. The caller's working directory is queue_directory. */
#ifndef TERN_QUEUE_SCAN_H
#define TERN_QUEUE_SCAN_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "queue.h"

struct strbuf;

enum queue_state { QS_INCOMING, QS_ACTIVE, QS_DEFERRED, QS_HOLD, QS_COUNT };

/* The directory of a state, and the mark mailq shows after the ID. */
const char *queue_state_dir(enum queue_state s);
char queue_state_mark(enum queue_state s);
/* "incoming", "active", ... and back; -1 for an unknown name. */
const char *queue_state_name(enum queue_state s);
int queue_state_parse(const char *name);

struct queued {
    char id[QUEUE_ID_SIZE];
    enum queue_state state;
    time_t mtime;                 /* deferred: when the next attempt is due */
    struct qmessage m;            /* envelope and recipients */
};

struct queue_filter {
    const char *sender, *recipient, *domain;
    int state;                    /* enum queue_state, or -1 for any */
};
bool queue_filter_active(const struct queue_filter *f);
/* The filters on the command line, the same for `tern queue` and for
 * tern-mailq: --sender (s), --recipient (r), --domain (d), --state (q),
 * --json (j); ends with the all-zero entry getopt_long wants. */
extern const struct option queue_filter_options[];
bool queue_filter_match(const struct queue_filter *f, const struct queued *q);

/* Call fn for every readable message, in ID (arrival) order. fn returns 0
 * to go on. Messages that vanish while being read are skipped. */
void queue_walk(int (*fn)(struct queued *q, void *ctx), void *ctx);
/* The same for the messages of one state only. */
void queue_walk_state(enum queue_state s, int (*fn)(struct queued *q, void *ctx), void *ctx);
/* Find and load one message. 0 found, -1 not found (errno ENOENT) or
 * unreadable or not a queue ID (err says which). */
int queue_find(const char *id, struct queued *q, struct strbuf *err);
void queued_free(struct queued *q);

/* The last reason each recipient was deferred or bounced for, from
 * defer/ID or bounce/ID: calls fn for every line of the log. */
struct queue_log_entry {
    long long time;
    const char *recipient, *status, *relay, *reason;
};
void queue_read_log(const char *dir, const char *id,
                    void (*fn)(const struct queue_log_entry *e, void *ctx), void *ctx);

#endif
