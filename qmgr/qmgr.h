/* qmgr.h: the parts of the queue manager: the wake-up listener and scan
 * scheduling (qmgr.c) and the queue directories it takes mail from
 * (qmgr_incoming.c). */
#ifndef TERN_QMGR_H
#define TERN_QMGR_H

#include <stdbool.h>
#include <stddef.h>

#define QMGR_TEMP_FILE_MAX_AGE 3600   /* no cleanup writes one file this long */
#define QMGR_SCAN_BATCH 1000          /* messages taken in per pass; then the
                                       * event loop runs before the next pass */
#define QMGR_DEFERRED_SLICE 100       /* deferred messages brought back per slice */

struct qmgr_queue {
    long active_count;     /* messages in active/ */
    long active_limit;     /* qmgr_message_active_limit */
    long long new_mail_usec;   /* when incoming/ last gave a message (now_usec) */
};

/* What the slice of a deferred/ pass left to do. */
enum qmgr_pass {
    QMGR_PASS_OVER,        /* no pass under way */
    QMGR_PASS_MORE,        /* more to do now */
    QMGR_PASS_FULL,        /* stopped at the active queue's limits until a message leaves */
};
extern struct qmgr_queue qmgr_queue;

/* Ask for an incoming/ scan soon (after the events now pending). */
void qmgr_request_scan(void);
/* At start: move every active/ID back to incoming/ (a crash left them
 * there; they are resumed), then count what could not be moved. */
void qmgr_recover_active(void);
/* Remove incoming/.ID files older than QMGR_TEMP_FILE_MAX_AGE. */
void qmgr_remove_stale_temp(void);
/* One pass over incoming/: up to QMGR_SCAN_BATCH messages are checked and
 * moved to active/ (or corrupt/). Returns true when more may be waiting. */
bool qmgr_scan_incoming(void);
/* Start a pass over deferred/ (or, when one is under way, one more after it). */
void qmgr_deferred_pass(void);
/* The next slice of the pass under way: up to QMGR_DEFERRED_SLICE messages
 * due again are moved to active/ and taken in. */
enum qmgr_pass qmgr_scan_deferred(void);

#endif
