/* queue_admin.h: changing one message in the queue (queue_admin.c): the
 * one implementation behind `tern flush`, `delete`, `hold`, `release`,
 * `requeue` and the web console's queue page, and the pieces of it the
 * quarantine (quarantine.h) uses for one recipient's release. */
#ifndef TERN_QUEUE_ADMIN_H
#define TERN_QUEUE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "queue_scan.h"

struct strbuf;

enum queue_admin_op { QA_FLUSH, QA_DELETE, QA_HOLD, QA_RELEASE, QA_REQUEUE };

/* "hold" for QA_HOLD, and back (-1 for an unknown name). */
const char *queue_admin_op_name(enum queue_admin_op op);
int queue_admin_op_parse(const char *name);

struct queue_admin_run {
    enum queue_admin_op op;
    bool running;                 /* master runs: ask qmgr about active/ */
    /* what is said about a message ("ID: already on hold"; err: a failure),
     * and the mail log line of what was done ("ID: released from hold") */
    void (*say)(void *ctx, bool err, const char *text);
    void (*log)(const char *text);
    void *ctx;
    /* the IDs come from a look at the queue (ALL, filters), so one that
     * has left it since (delivered, bounced, deleted) is no failure */
    bool selected;
    size_t changed, later, failed;          /* results, added up */
    bool wake_incoming, wake_deferred;      /* qmgr should look there */
};

/* Apply r->op to the message id (any state). */
void queue_admin_act(struct queue_admin_run *r, const char *id);

/* {admin=op, id=id} to qmgr over public/qmgr: a QMGR_ADMIN_* status
 * (queue.h), or -1 when qmgr cannot be reached. */
int queue_admin_ask_qmgr(const char *op, const char *id);

/* Move the queue file from (outside active/) to to, due now (into
 * deferred/, whose mtime is the next attempt). 0, or -1 with errno
 * (ENOENT: it has gone, look again); err says why when the file itself
 * was refused (not a queue file of Tern's). */
int queue_admin_move_due(const char *from, const char *to, struct strbuf *err);
/* Remove defer/ID and bounce/ID (after the message itself). */
void queue_admin_remove_logs(const char *id);

#endif
