/* metrics.h: what the daemons, the metrics collector and its readers
 * agree on: the table of metrics (metrics.def), one sample of a series,
 * its encoding in attribute frames (the private/metrics protocol, see
 * doc/PROTOCOLS.md) and the Prometheus text exposition of a set of samples.
 *
 * A series is a metric and one value per label of the metric. Values are
 * integers: counters and gauges as they are, histograms as a count, a sum
 * and per-bucket counts in the metric's raw unit (bytes, milliseconds). */
#ifndef TERN_METRICS_H
#define TERN_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct attr_writer;
struct attr_reader;
struct strbuf;

#define METRICS_PROTOCOL "metrics"
#define METRICS_SOCKET "private/metrics"   /* relative to queue_directory */
#define METRIC_LABELS_MAX 3
#define METRIC_LABEL_MAX 64                 /* bytes of one label value */
#define METRIC_BUCKETS_MAX 12               /* bounds, +Inf not included */
#define METRICS_FRAME_LIMIT (1024 * 1024)
#define METRICS_SAMPLES_PER_FRAME 4096
/* The largest figure anywhere (a count, a sum, a gauge's magnitude): far
 * beyond any real count, and small enough that adding two never overflows. */
#define METRIC_FIGURE_MAX (1LL << 52)

enum metric_kind { MK_COUNTER, MK_GAUGE, MK_HISTOGRAM };
enum metric_buckets { MB_NONE, MB_DELAY, MB_SIZE };

enum metric_id {
#define METRIC(id, name, kind, buckets, labels, help) id,
#include "metrics.def"
#undef METRIC
    METRIC_COUNT
};

struct metric_def {
    const char *name;           /* without the tern_ prefix */
    enum metric_kind kind;
    const char *help;
    int nlabels;
    const char *labels[METRIC_LABELS_MAX];
    const long long *bounds;    /* histogram bucket upper bounds, raw unit */
    int nbounds;
    int scale;                  /* raw units per shown unit (1000: ms shown as s) */
};

/* The metric's definition (id < METRIC_COUNT). */
const struct metric_def *metric_def(enum metric_id id);
/* The metric of a name (without tern_), or -1. */
int metric_lookup(const char *name);

/* One series: its identity and its value, or a change of it. buckets[i]
 * counts observations <= bounds[i] and > bounds[i-1]; buckets[nbounds]
 * those above every bound. */
struct metric_sample {
    enum metric_id id;
    char labels[METRIC_LABELS_MAX][METRIC_LABEL_MAX + 1];
    long long value;            /* counter, gauge; histogram: count */
    long long sum;              /* histogram only */
    long long buckets[METRIC_BUCKETS_MAX + 1];
};

/* Set s to an empty sample of metric id with the given label values (as
 * many as the metric has; NULL for none), each made safe for a label:
 * cut to METRIC_LABEL_MAX bytes, bytes outside printable ASCII and the
 * characters " \ , replaced by '_', empty as "none". */
void metric_sample_init(struct metric_sample *s, enum metric_id id, const char *const *labels);
/* Label values given in place: METRICS_LABELS("relay", restriction). */
#define METRICS_LABELS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Add one observation v to a histogram sample. */
void metric_sample_observe(struct metric_sample *s, long long v);
/* Same metric and labels; and a hash of them, for tables of series. */
bool metric_sample_same_series(const struct metric_sample *a, const struct metric_sample *b);
unsigned long metric_sample_hash(const struct metric_sample *s);

/* Append one sample to a frame being written: metric, labels, value and,
 * for histograms, sum and buckets. */
void metrics_put_sample(struct attr_writer *w, const struct metric_sample *s);
/* Read the next sample when the next attribute is "metric": 1 read, 0 none
 * there, -1 malformed (unknown metric, wrong number of labels, a label
 * value that metric_sample_init would change, a negative counter or
 * histogram figure, buckets that do not add up to the count); *why says
 * what. */
int metrics_get_sample(struct attr_reader *r, struct metric_sample *s, const char **why);

/* The Prometheus text exposition (format 0.0.4) of samples (n of them,
 * grouped by metric in any order): HELP and TYPE lines for every metric
 * of the table, then its series, names with the tern_ prefix,
 * histograms as cumulative _bucket{le=...}, _sum and _count. -1 when out
 * hits its limit. */
int metrics_format_exposition(struct strbuf *out, const struct metric_sample *samples, size_t n);

#endif
