/* metrics_store.h: the collector's memory: the current value of every
 * series (bounded in number), the history of each (one point per minute
 * for two days and per hour for 90 days, for a bounded number of series),
 * and their state file in data_directory, so that a restart keeps both. */
#ifndef TERN_METRICS_STORE_H
#define TERN_METRICS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "metrics.h"

struct strbuf;

#define HISTORY_MINUTES (48 * 60)
#define HISTORY_HOURS (90 * 24)

struct metrics_store_limits {
    size_t series;          /* series kept at all (metrics_series_limit) */
    size_t history;         /* series with a history (metrics_history_series_limit) */
    size_t domains;         /* distinct values of a "domain" label per metric; the rest are "other" */
};

struct metrics_store;

struct metrics_store *metrics_store_create(const struct metrics_store_limits *lim);
void metrics_store_free(struct metrics_store *st);

/* Take a client's sample: a counter or histogram is added to its series,
 * a gauge replaces it. false when refused (a new series beyond the limit,
 * or a total beyond METRIC_FIGURE_MAX). */
bool metrics_store_apply(struct metrics_store *st, const struct metric_sample *s);

/* Note every series' value in its history as of now. */
void metrics_store_note(struct metrics_store *st, time_t now);

/* The current samples, n of them (valid until the next change). */
const struct metric_sample *metrics_store_sample(const struct metrics_store *st, size_t i);
size_t metrics_store_count(const struct metrics_store *st);

/* The history of the series of s (metric and labels) from `from` to `to`
 * at one point per step seconds (60 or 3600): *first is the time of the
 * first point, values are appended to out as decimal numbers separated by
 * spaces ("-" where nothing is known). -1: no such series or no history. */
int metrics_store_history(struct metrics_store *st, const struct metric_sample *s, long step,
                          time_t from, time_t to, time_t *first, struct strbuf *out);

/* Write the state to dir_fd/name atomically (a temporary file, fsync,
 * rename); read it back. 0 ok, -1 with *why (read: the file is then
 * ignored, as much as was read before the fault is kept). */
int metrics_store_save(const struct metrics_store *st, int dir_fd, const char *name, const char **why);
int metrics_store_load(struct metrics_store *st, int dir_fd, const char *name, const char **why);

#endif
