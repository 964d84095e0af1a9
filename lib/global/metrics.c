/* metrics.c: the table of metrics, the encoding of samples in attribute
 * frames, and the Prometheus text exposition (see metrics.h). The decoder
 * reads frames from any process of the mail_owner uid, so it takes
 * nothing on trust: every name is looked up in the table, every label is
 * checked, and every figure is bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attr.h"
#include "metrics.h"
#include "strbuf.h"

/* Bucket bounds: delays in milliseconds (shown in seconds), sizes in bytes. */
static const long long delay_bounds[] = { 100, 500, 1000, 5000, 10000, 30000, 60000, 300000,
                                          900000, 3600000, 14400000, 86400000 };
static const long long size_bounds[] = { 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                                         10485760, 52428800 };

struct metric_row {
    const char *name;
    enum metric_kind kind;
    enum metric_buckets buckets;
    const char *labels;
    const char *help;
};

static const struct metric_row rows[METRIC_COUNT] = {
#define METRIC(id, name, kind, buckets, labels, help) [id] = { name, kind, buckets, labels, help },
#include "metrics.def"
#undef METRIC
};

static struct metric_def defs[METRIC_COUNT];
static bool defs_ready;

/* The definitions, made from the rows once: label lists split, bounds set. */
static void defs_init(void)
{
    static char label_store[METRIC_COUNT][3 * 32];
    for (int i = 0; i < METRIC_COUNT; i++) {
        struct metric_def *d = &defs[i];
        d->name = rows[i].name;
        d->kind = rows[i].kind;
        d->help = rows[i].help;
        d->scale = rows[i].buckets == MB_DELAY ? 1000 : 1;
        if (rows[i].buckets == MB_DELAY) {
            d->bounds = delay_bounds;
            d->nbounds = (int)(sizeof(delay_bounds) / sizeof(delay_bounds[0]));
        } else if (rows[i].buckets == MB_SIZE) {
            d->bounds = size_bounds;
            d->nbounds = (int)(sizeof(size_bounds) / sizeof(size_bounds[0]));
        }
        snprintf(label_store[i], sizeof(label_store[i]), "%s", rows[i].labels);
        char *save = NULL;
        for (char *l = strtok_r(label_store[i], ",", &save); l && d->nlabels < METRIC_LABELS_MAX;
             l = strtok_r(NULL, ",", &save))
            d->labels[d->nlabels++] = l;
    }
    defs_ready = true;
}

const struct metric_def *metric_def(enum metric_id id)
{
    if (!defs_ready)
        defs_init();
    return (unsigned)id < METRIC_COUNT ? &defs[id] : NULL;
}

int metric_lookup(const char *name)
{
    for (int i = 0; i < METRIC_COUNT; i++)
        if (strcmp(rows[i].name, name) == 0)
            return i;
    return -1;
}

/* A label value as it may appear in a series (see metrics.h). */
static void label_clean(char *dst, const char *src)
{
    size_t n = 0;
    for (; src && src[n] && n < METRIC_LABEL_MAX; n++) {
        unsigned char c = (unsigned char)src[n];
        dst[n] = (c < 0x21 || c > 0x7e || c == '"' || c == '\\' || c == ',') ? '_' : (char)c;
    }
    dst[n] = 0;
    if (n == 0)
        strcpy(dst, "none");
}

void metric_sample_init(struct metric_sample *s, enum metric_id id, const char *const *labels)
{
    const struct metric_def *d = metric_def(id);
    memset(s, 0, sizeof(*s));
    s->id = id;
    for (int i = 0; i < d->nlabels; i++)
        label_clean(s->labels[i], labels ? labels[i] : NULL);
}

void metric_sample_observe(struct metric_sample *s, long long v)
{
    const struct metric_def *d = metric_def(s->id);
    if (v < 0)
        v = 0;
    int b = 0;
    while (b < d->nbounds && v > d->bounds[b])
        b++;
    s->buckets[b]++;
    s->value++;
    s->sum += v;
}

unsigned long metric_sample_hash(const struct metric_sample *s)
{
    unsigned long h = 2166136261u ^ (unsigned long)s->id;      /* FNV-1a */
    for (int i = 0; i < METRIC_LABELS_MAX; i++)
        for (const unsigned char *p = (const unsigned char *)s->labels[i]; *p; p++)
            h = (h ^ *p) * 16777619u;
    return h;
}

bool metric_sample_same_series(const struct metric_sample *a, const struct metric_sample *b)
{
    if (a->id != b->id)
        return false;
    for (int i = 0; i < metric_def(a->id)->nlabels; i++)
        if (strcmp(a->labels[i], b->labels[i]) != 0)
            return false;
    return true;
}

void metrics_put_sample(struct attr_writer *w, const struct metric_sample *s)
{
    const struct metric_def *d = metric_def(s->id);
    struct strbuf t = STRBUF_INIT(4 * METRIC_LABEL_MAX + 32 * (METRIC_BUCKETS_MAX + 1));
    for (int i = 0; i < d->nlabels; i++)
        sb_appendf(&t, "%s%s", i ? "," : "", s->labels[i]);
    attr_put_str(w, "metric", d->name);
    attr_put_str(w, "labels", sb_str(&t));
    attr_put_int(w, "value", s->value);
    if (d->kind == MK_HISTOGRAM) {
        sb_reset(&t);
        for (int b = 0; b <= d->nbounds; b++)
            sb_appendf(&t, "%s%lld", b ? " " : "", s->buckets[b]);
        attr_put_int(w, "sum", s->sum);
        attr_put_str(w, "buckets", sb_str(&t));
    }
    sb_free(&t);
}

#define FIGURE_MAX METRIC_FIGURE_MAX

static int get_labels(const struct metric_def *d, const char *text, struct metric_sample *s,
                      const char **why)
{
    const char *p = text;
    for (int i = 0; i < d->nlabels; i++) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n > METRIC_LABEL_MAX)
            return attr_refuse(why, "empty or oversized label value");
        char raw[METRIC_LABEL_MAX + 1];
        memcpy(raw, p, n);
        raw[n] = 0;
        label_clean(s->labels[i], raw);
        if (strcmp(s->labels[i], raw) != 0)
            return attr_refuse(why, "label value with a forbidden character");
        p += n;
        if (i + 1 < d->nlabels) {
            if (*p != ',')
                return attr_refuse(why, "too few label values");
            p++;
        }
    }
    return *p ? attr_refuse(why, "too many label values") : 0;
}

static int get_buckets(const struct metric_def *d, const char *text, struct metric_sample *s,
                       const char **why)
{
    const char *p = text;
    long long total = 0;
    for (int b = 0; b <= d->nbounds; b++) {
        char *end;
        if (b > 0 && *p++ != ' ')
            return attr_refuse(why, "malformed bucket list");
        if (*p < '0' || *p > '9')
            return attr_refuse(why, "malformed bucket count");
        long long v = strtoll(p, &end, 10);
        if (v < 0 || v > FIGURE_MAX)
            return attr_refuse(why, "bucket count out of range");
        s->buckets[b] = v;
        total += v;
        p = end;
    }
    if (*p)
        return attr_refuse(why, "too many bucket counts");
    return total == s->value ? 0 : attr_refuse(why, "bucket counts do not add up to the count");
}

int metrics_get_sample(struct attr_reader *r, struct metric_sample *s, const char **why)
{
    char name[ATTR_NAME_MAX + 1];
    const char *next = attr_peek_name(r, name, sizeof(name));
    if (!next || strcmp(next, "metric") != 0)
        return 0;
    const char *metric, *labels;
    if (attr_get_str(r, "metric", &metric) < 0)
        return attr_refuse(why, "malformed metric name");
    int id = metric_lookup(metric);
    if (id < 0)
        return attr_refuse(why, "unknown metric");
    const struct metric_def *d = metric_def(id);
    memset(s, 0, sizeof(*s));
    s->id = id;
    if (attr_get_str(r, "labels", &labels) < 0 || get_labels(d, labels, s, why) < 0)
        return why && *why ? -1 : attr_refuse(why, "missing labels");
    long long min = d->kind == MK_GAUGE ? -FIGURE_MAX : 0;
    if (attr_get_int(r, "value", min, FIGURE_MAX, &s->value) < 0)
        return attr_refuse(why, "missing or out-of-range value");
    if (d->kind == MK_HISTOGRAM) {
        const char *buckets;
        if (attr_get_int(r, "sum", 0, FIGURE_MAX, &s->sum) < 0
            || attr_get_str(r, "buckets", &buckets) < 0)
            return attr_refuse(why, "histogram without sum or buckets");
        if (get_buckets(d, buckets, s, why) < 0)
            return -1;
    }
    return 1;
}

/* ---- exposition ---- */

/* The first append that hit the limit of out sets this. */
static bool expo_failed;
#define OUT(call) (expo_failed |= (call) < 0)

static const char *type_name(enum metric_kind k)
{
    return k == MK_COUNTER ? "counter" : k == MK_GAUGE ? "gauge" : "histogram";
}

/* v raw units shown in units of scale raw units: exact decimal, no exponent. */
static void put_scaled(struct strbuf *out, long long v, int scale)
{
    if (scale == 1) {
        OUT(sb_appendf(out, "%lld", v));
        return;
    }
    lldiv_t q = lldiv(v < 0 ? -v : v, scale);
    OUT(sb_appendf(out, "%s%lld", v < 0 ? "-" : "", q.quot));
    if (q.rem) {
        char frac[24];
        snprintf(frac, sizeof(frac), "%0*lld", scale == 1000 ? 3 : 6, q.rem);
        for (size_t n = strlen(frac); n > 0 && frac[n - 1] == '0'; n--)
            frac[n - 1] = 0;
        OUT(sb_appendf(out, ".%s", frac));
    }
}

/* name{l1="v1",...[,le="x"]} with the given suffix; le NULL: none. */
static void put_series_name(struct strbuf *out, const struct metric_def *d, const char *suffix,
                            const struct metric_sample *s, const char *le)
{
    OUT(sb_appendf(out, "tern_%s%s", d->name, suffix));
    if (d->nlabels == 0 && !le)
        return;
    OUT(sb_appendc(out, '{'));
    for (int i = 0; i < d->nlabels; i++)
        OUT(sb_appendf(out, "%s%s=\"%s\"", i ? "," : "", d->labels[i], s->labels[i]));
    if (le)
        OUT(sb_appendf(out, "%sle=\"%s\"", d->nlabels ? "," : "", le));
    OUT(sb_appendc(out, '}'));
}

static void put_histogram(struct strbuf *out, const struct metric_def *d,
                          const struct metric_sample *s)
{
    long long cumulative = 0;
    for (int b = 0; b <= d->nbounds; b++) {
        struct strbuf le = STRBUF_INIT(32);
        if (b < d->nbounds)
            put_scaled(&le, d->bounds[b], d->scale);
        else
            sb_appends(&le, "+Inf");
        cumulative += s->buckets[b];
        put_series_name(out, d, "_bucket", s, sb_str(&le));
        OUT(sb_appendf(out, " %lld\n", cumulative));
        sb_free(&le);
    }
    put_series_name(out, d, "_sum", s, NULL);
    OUT(sb_appendc(out, ' '));
    put_scaled(out, s->sum, d->scale);
    OUT(sb_appendc(out, '\n'));
    put_series_name(out, d, "_count", s, NULL);
    OUT(sb_appendf(out, " %lld\n", s->value));
}

static void put_sample(struct strbuf *out, const struct metric_def *d, const struct metric_sample *s)
{
    if (d->kind == MK_HISTOGRAM) {
        put_histogram(out, d, s);
        return;
    }
    put_series_name(out, d, "", s, NULL);
    OUT(sb_appendf(out, " %lld\n", s->value));
}

int metrics_format_exposition(struct strbuf *out, const struct metric_sample *samples, size_t n)
{
    expo_failed = false;
    for (int id = 0; id < METRIC_COUNT; id++) {
        const struct metric_def *d = metric_def(id);
        OUT(sb_appendf(out, "# HELP tern_%s %s\n# TYPE tern_%s %s\n", d->name, d->help, d->name,
                   type_name(d->kind)));
        bool any = false;
        for (size_t i = 0; i < n; i++)
            if (samples[i].id == (enum metric_id)id) {
                put_sample(out, d, &samples[i]);
                any = true;
            }
        if (!any && d->nlabels == 0) {      /* a metric without labels is always there */
            struct metric_sample zero;
            metric_sample_init(&zero, id, NULL);
            put_sample(out, d, &zero);
        }
    }
    return expo_failed ? -1 : 0;
}
