/* qmgr_deliver.h: the delivery scheduler: messages in active/ are split per
 * (transport, next hop), handed to delivery agents within each
 * destination's concurrency limit, and finished: removed, deferred with
 * back-off, or bounced to their sender. */
#ifndef TERN_QMGR_DELIVER_H
#define TERN_QMGR_DELIVER_H

struct event_base;

void qmgr_deliver_init(struct event_base *base);
/* A message was just moved to active/ID (qmgr's cwd is queue_directory). */
void qmgr_deliver_add(const char *id);
/* Move deferred messages whose retry time has come back to active/. */
void qmgr_deliver_scan_deferred(void);
/* Messages currently held in memory. */
long qmgr_deliver_in_memory(void);

#endif
