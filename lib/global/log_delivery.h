/* log_delivery.h: the one place that writes a delivery's log line, in
 * Postfix's shape, for qmgr and every delivery agent:
 *
 *   ID: to=<RCPT>, orig_to=<ORCPT>, relay=RELAY, conn_use=N, delay=T,
 *       delays=a/b/c/d, dsn=X.Y.Z, status=sent (REASON)
 *
 * (one line; orig_to only when given, conn_use only when N >= 2). pflogsumm,
 * fail2ban and admins' greps read these lines: their bytes are frozen. */
#ifndef TERN_LOG_DELIVERY_H
#define TERN_LOG_DELIVERY_H

/* The four parts of delay=, in microseconds: a before the agent got the
 * request (in the queue), b in qmgr, c connecting, d transmitting; delay=
 * is their sum. */
struct delivery_delays {
    long long queued, qmgr, connect, transfer;
};

/* "sent", "deferred" or "bounced" for 2, 4 or 5; "?" otherwise. */
const char *delivery_status_name(int status);

/* The time a message waited before a request that started at start_usec:
 * 0 when arrival is unknown (0) or not earlier. */
long long delivery_queue_delay(long long arrival_usec, long long start_usec);

/* The orig_to= an ORCPT of "rfc822;ADDR" asks for: ADDR unless it is the
 * recipient itself (case aside); NULL for none. Points into orcpt. */
const char *delivery_orig_to(const char *orcpt, const char *to);

/* Log one recipient's outcome. orig_to NULL: no orig_to=; conn_use < 2:
 * no conn_use=; status is the word after status= ("sent", "deferred",
 * "bounced", "expired", ...). */
void log_delivery(const char *id, const char *to, const char *orig_to, const char *relay,
                  unsigned conn_use, const struct delivery_delays *delays, const char *dsn,
                  const char *status, const char *reason);

#endif
