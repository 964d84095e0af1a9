/* metrics_query.h: the readers' side of the metrics collector's protocol
 * (private/metrics, doc/PROTOCOLS.md): the current value of every series,
 * and the history of one series. Used by the Prometheus endpoint and the
 * web console; blocking, each call within METRICS_QUERY_TIMEOUT. */
#ifndef TERN_METRICS_QUERY_H
#define TERN_METRICS_QUERY_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "metrics.h"

#define METRICS_QUERY_TIMEOUT 5                 /* seconds, to connect and to answer */
#define METRICS_CURRENT_LIMIT (4 * 1024 * 1024) /* the collector's answer */

/* The collector's current samples: their count (*samples malloc'd, the
 * caller frees), or -1 (the collector cannot be reached, or answered
 * something malformed: logged). */
ssize_t metrics_query_current(struct metric_sample **samples);

/* The history of the series of s from `from` to `to` at one point per
 * step seconds (60 or 3600): up to max values into points (-1 where
 * nothing is known), *first the time of the first. Its count, or -1 (no
 * such series or history, or no collector). */
ssize_t metrics_query_series(const struct metric_sample *s, long step, time_t from, time_t to,
                             time_t *first, long long *points, size_t max);

#endif
