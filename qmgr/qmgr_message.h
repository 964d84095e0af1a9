/* qmgr_message.h: messages in active/, as the rest of qmgr sees them:
 * taken in, split per (transport, next hop) into jobs that qmgr_dest.c
 * hands to delivery agents within each destination's concurrency limit,
 * and finished: removed, deferred with back-off, or bounced to their
 * sender. */
#ifndef TERN_QMGR_MESSAGE_H
#define TERN_QMGR_MESSAGE_H

#include <stdbool.h>

struct event_base;
struct qmessage;

void qmgr_message_init(struct event_base *base);
/* A message was just moved to active/ID (qmgr's cwd is queue_directory).
 * loaded, when not NULL, is its envelope as already read from the file; it
 * is taken over (and zeroed) instead of reading the file again. */
void qmgr_message_add(const char *id, struct qmessage *loaded);
/* Messages currently held in memory. */
long qmgr_message_in_memory(void);
/* Whether another message may be taken in: qmgr_message_recipient_limit
 * bounds the recipients in memory (one message is always allowed). */
bool qmgr_message_may_take(void);

/* Administration of a message in memory (`tern delete|hold|requeue`): op
 * is "delete", "hold" or "requeue". Its waiting jobs are dropped; the
 * operation is carried out when no delivery of it runs any more. Returns
 * a QMGR_ADMIN_* status (queue.h). */
int qmgr_message_admin(const char *op, const char *id);
/* Lift destination suspensions (a flush). */
void qmgr_message_resume_all(void);

#endif
