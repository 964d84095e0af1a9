/* tern_queue.h: what the queue commands of `tern` share (tern_queue.c):
 * filters given on the command line, entering the queue, printing JSON,
 * and asking qmgr to act on a message it is delivering. Reading the queue
 * itself is lib/global/queue_scan.h. The commands: tern_mailq.c (queue / mailq),
 * tern_show.c (show, why) and tern_manage.c (flush, delete, hold,
 * release, requeue). */
#ifndef TERN_TERN_QUEUE_H
#define TERN_TERN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "json.h"
#include "queue.h"
#include "queue_scan.h"

struct strbuf;

/* --sender ADDR, --recipient ADDR, --domain DOMAIN, --state NAME (and
 * --json when json is not NULL) from argv; the rest is left in argv from
 * *first on. 0 ok, -1 with a message printed (usage error). */
int tern_queue_options(int argc, char **argv, struct queue_filter *f, bool *json, int *first);
/* Load the configuration and enter queue_directory; exit 1 with the reason
 * (not root, no queue) on failure. */
void tern_queue_enter(void);

/* ---- qmgr ---- */
/* Whether master (and so qmgr) runs. */
bool tern_queue_tern_running(void);
/* {wakeup=queue} to qmgr, best effort. */
void tern_queue_wake_qmgr(const char *queue);
/* A line in the mail log (not on the terminal), as the daemons write them. */
void tern_queue_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- JSON (json.h) ---- */
/* Print out as one line on stdout and free it. */
void tern_json_print(struct strbuf *out);

#endif
