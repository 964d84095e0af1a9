/* tern_queue.h: what the queue commands of `tern` share (tern_queue.c):
 * walking the queue directories, finding one message, filters given on
 * the command line, JSON output, and asking qmgr to act on a message it
 * is delivering. The commands: tern_mailq.c (queue / mailq),
 * tern_show.c (show, why) and tern_manage.c (flush, delete, hold,
 * release, requeue). */
#ifndef TERN_TERN_QUEUE_H
#define TERN_TERN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "queue.h"

struct strbuf;

enum queue_state { QS_INCOMING, QS_ACTIVE, QS_DEFERRED, QS_HOLD, QS_COUNT };

/* The directory of a state, and the mark mailq shows after the ID. */
const char *queue_state_dir(enum queue_state s);
char queue_state_mark(enum queue_state s);
/* "incoming", "active", ...; -1 for an unknown name. */
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
/* --sender ADDR, --recipient ADDR, --domain DOMAIN, --state NAME (and
 * --json when json is not NULL) from argv; the rest is left in argv from
 * *first on. 0 ok, -1 with a message printed (usage error). */
int queue_options(int argc, char **argv, struct queue_filter *f, bool *json, int *first);
bool queue_filter_active(const struct queue_filter *f);
bool queue_filter_match(const struct queue_filter *f, const struct queued *q);

/* Load the configuration and enter queue_directory; exit 1 with the reason
 * (not root, no queue) on failure. */
void queue_enter(void);
/* Call fn for every readable message, in ID (arrival) order. fn returns 0
 * to go on. Messages that vanish while being read are skipped. */
void queue_walk(int (*fn)(struct queued *q, void *ctx), void *ctx);
/* Find and load one message. 0 found, -1 not found (or unreadable: err). */
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

/* ---- qmgr ---- */
/* Whether master (and so qmgr) runs. */
bool queue_tern_running(void);
/* {admin=op, id=id} to qmgr: a QMGR_ADMIN_* status (queue.h), or -1 when
 * qmgr cannot be reached. */
int queue_ask_qmgr(const char *op, const char *id);
/* {wakeup=queue} to qmgr, best effort. */
void queue_wake_qmgr(const char *queue);
/* A line in the mail log (not on the terminal), as the daemons write them. */
void queue_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- JSON ---- */
/* s as a JSON string (quoted); bytes that are not UTF-8 become U+FFFD. */
void json_string(struct strbuf *out, const char *s, size_t len);
void json_str(struct strbuf *out, const char *s);
/* Print out as one line on stdout and free it. */
void json_print(struct strbuf *out);

#endif
