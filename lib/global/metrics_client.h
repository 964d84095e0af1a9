/* metrics_client.h: how a daemon reports to the metrics collector. Counts
 * are added up in this process's memory (no system call per event) and
 * sent as one frame at most once per METRICS_FLUSH_MS, over a
 * non-blocking connection to private/metrics. When the collector is
 * missing, slow or gone, what could not be sent is dropped: a report
 * never waits, and mail never waits for a report.
 *
 * The server skeleton starts the client (metrics_client_start) and calls
 * metrics_flush_due / metrics_flush; a daemon only reports:
 *     METRICS_ADD(M_SMTPD_REJECTS, 1, "recipient", "reject_unlisted_recipient");
 *     metrics_add(M_SMTPD_ACCEPTED, 1, NULL);
 * Before the start (commands, tests), and in daemons that keep root (the
 * skeleton does not start the client there), reports are ignored. */
#ifndef TERN_METRICS_CLIENT_H
#define TERN_METRICS_CLIENT_H

#include "metrics.h"

struct event_base;

#define METRICS_FLUSH_MS 1000
#define METRICS_CLIENT_SERIES 512      /* distinct series held between flushes */
#define METRICS_RETRY_SECONDS 10       /* wait after the collector could not be reached */

/* Begin reporting; base: the daemon's event loop (a timer flushes), or
 * NULL for a daemon that calls metrics_flush_due itself. path: the
 * collector's socket (NULL: METRICS_SOCKET, relative to the working
 * directory, which is queue_directory). */
void metrics_client_start(struct event_base *base, const char *path);

/* Add delta to a counter, set a gauge, observe a histogram value; labels:
 * the metric's label values in order (NULL when it has none). */
void metrics_add(enum metric_id id, long long delta, const char *const *labels);
void metrics_set(enum metric_id id, long long value, const char *const *labels);
void metrics_observe(enum metric_id id, long long value, const char *const *labels);
#define METRICS_ADD(id, delta, ...) metrics_add((id), (delta), METRICS_LABELS(__VA_ARGS__))

/* When the held reports are next due to be sent (now_usec time; 0: nothing
 * held), for a daemon's poll timeout; and send them when that is past. */
long long metrics_flush_deadline(void);
void metrics_flush_due(void);
/* Send what is held now (without waiting: at exit). */
void metrics_flush(void);

/* For tests: frames sent so far, and the series held now. */
unsigned long metrics_client_frames_sent(void);
size_t metrics_client_held(void);

#endif
