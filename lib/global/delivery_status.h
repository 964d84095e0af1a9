/* delivery_status.h: what became of one recipient at a delivery agent:
 * the status class, the enhanced status code and one line of text, as
 * every agent (local, virtual, pipe, and a hand-over to another agent)
 * records it, logs it and reports it to qmgr. */
#ifndef TERN_DELIVERY_STATUS_H
#define TERN_DELIVERY_STATUS_H

#define DELIVERY_REASON_MAX 1024    /* one result text */

struct delivery_status {
    int status;                     /* 2 sent, 4 deferred, 5 bounced */
    char dsn[16];                   /* X.Y.Z */
    char reason[DELIVERY_REASON_MAX];
    long long aux;                  /* a number for the agent's own use (local: the owner of
                                     * a file a child read); -1 when none */
};

/* Record an outcome: soft_bounce applied (a 5 becomes a 4 when it is on),
 * the text cut to DELIVERY_REASON_MAX and cleaned of bytes that must not
 * reach a log line or a notice, aux -1. */
void delivery_status_set(struct delivery_status *st, int status, const char *dsn,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
