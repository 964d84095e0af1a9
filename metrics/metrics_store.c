/* metrics_store.c: the collector's series, their history and their state
 * file (see metrics_store.h). Series live in one array in arrival order,
 * found through an open-addressing index; a history is two rings of
 * points (minutes, hours), each point the series' value at the end of
 * that minute or hour. The state file is a row of attribute frames, one
 * per series, read back with the same strict reader as client frames:
 * data_directory belongs to mail_owner, so the file is checked like any
 * other input. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attr.h"
#include "log.h"
#include "metrics_store.h"
#include "strbuf.h"
#include "util.h"

#define STATE_PROTOCOL "metrics-state-1"
#define STATE_FRAME_LIMIT (64 * 1024 + 8 * (HISTORY_MINUTES + HISTORY_HOURS))

struct ring {
    long long first, last;      /* first and last point's index (minute or hour number); last 0: empty */
    long long *points;          /* size slots, point k at k % size */
    long size;
};

struct series {
    struct metric_sample s;
    struct ring *minutes, *hours;   /* NULL: no history (beyond the limit) */
};

struct metrics_store {
    struct metrics_store_limits lim;
    struct series *series;
    size_t n, cap;
    size_t *index;              /* slot -> series number + 1 (0 empty); 2 * lim.series slots */
    size_t index_slots;
    size_t with_history;
    /* the values of "domain" labels seen, per metric */
    char (*domains[METRIC_COUNT])[METRIC_LABEL_MAX + 1];
    size_t ndomains[METRIC_COUNT];
};

struct metrics_store *metrics_store_create(const struct metrics_store_limits *lim)
{
    struct metrics_store *st = xcalloc(1, sizeof(*st));
    st->lim = *lim;
    if (st->lim.series < 1)
        st->lim.series = 1;
    st->index_slots = 2 * st->lim.series;
    st->index = xcalloc(st->index_slots, sizeof(*st->index));
    return st;
}

static void ring_free(struct ring *r)
{
    if (r)
        free(r->points);
    free(r);
}

/* A series' history; the series itself is an element of the store's array. */
static void series_free(struct series *se)
{
    ring_free(se->minutes);
    ring_free(se->hours);
}

void metrics_store_free(struct metrics_store *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++)
        series_free(&st->series[i]);
    for (int m = 0; m < METRIC_COUNT; m++)
        free(st->domains[m]);
    FREE_ALL(st->series, st->index, st);
}

/* The index slot of s's series, or of the empty slot where it would go. */
static size_t *index_slot(struct metrics_store *st, const struct metric_sample *s)
{
    for (size_t i = metric_sample_hash(s) % st->index_slots;; i = (i + 1) % st->index_slots) {
        size_t *slot = &st->index[i];
        if (*slot == 0 || metric_sample_same_series(&st->series[*slot - 1].s, s))
            return slot;
    }
}

/* A "domain" label beyond the first lim.domains values of its metric
 * becomes "other", so that mail to many domains cannot grow the table. */
static void bound_domain(struct metrics_store *st, struct metric_sample *s)
{
    const struct metric_def *d = metric_def(s->id);
    for (int l = 0; l < d->nlabels; l++) {
        if (strcmp(d->labels[l], "domain") != 0 || strcmp(s->labels[l], "other") == 0)
            continue;
        for (size_t i = 0; i < st->ndomains[s->id]; i++)
            if (strcmp(st->domains[s->id][i], s->labels[l]) == 0)
                return;
        if (st->ndomains[s->id] >= st->lim.domains) {
            memset(s->labels[l], 0, sizeof(s->labels[l]));
            strcpy(s->labels[l], "other");
            return;
        }
        if (!st->domains[s->id])
            st->domains[s->id] = xcalloc(st->lim.domains, sizeof(*st->domains[s->id]));
        strcpy(st->domains[s->id][st->ndomains[s->id]++], s->labels[l]);
    }
}

static struct ring *ring_new(long size)
{
    struct ring *r = xcalloc(1, sizeof(*r));
    r->points = xcalloc((size_t)size, sizeof(*r->points));
    r->size = size;
    return r;
}

/* The series of s, made (zero) when new; NULL beyond the limit. */
static struct series *series_of(struct metrics_store *st, const struct metric_sample *s)
{
    size_t *slot = index_slot(st, s);
    if (*slot)
        return &st->series[*slot - 1];
    if (st->n >= st->lim.series)
        return NULL;
    if (st->n == st->cap) {
        st->cap = st->cap ? 2 * st->cap : 64;
        if (st->cap > st->lim.series)
            st->cap = st->lim.series;
        st->series = xrealloc(st->series, st->cap * sizeof(*st->series));
    }
    struct series *se = &st->series[st->n++];
    memset(se, 0, sizeof(*se));
    metric_sample_init(&se->s, s->id, NULL);
    memcpy(se->s.labels, s->labels, sizeof(se->s.labels));
    if (st->with_history < st->lim.history) {
        se->minutes = ring_new(HISTORY_MINUTES);
        se->hours = ring_new(HISTORY_HOURS);
        st->with_history++;
    }
    *slot = st->n;
    return se;
}

/* s's figures into its series: added, or for a gauge, in place. false
 * (nothing changed) when a total would pass METRIC_FIGURE_MAX: a series is
 * never left with figures that its own state file could not hold. */
static bool add_values(struct series *se, const struct metric_sample *s)
{
    const struct metric_def *d = metric_def(s->id);
    if (d->kind == MK_GAUGE) {
        se->s.value = s->value;
        return true;
    }
    if (s->value > METRIC_FIGURE_MAX - se->s.value || s->sum > METRIC_FIGURE_MAX - se->s.sum)
        return false;       /* the buckets add up to the count, so they fit too */
    se->s.value += s->value;
    se->s.sum += s->sum;
    for (int b = 0; d->kind == MK_HISTOGRAM && b <= d->nbounds; b++)
        se->s.buckets[b] += s->buckets[b];
    return true;
}

bool metrics_store_apply(struct metrics_store *st, const struct metric_sample *in)
{
    struct metric_sample s = *in;
    bound_domain(st, &s);
    struct series *se = series_of(st, &s);
    return se && add_values(se, &s);
}

/* Point k of r is v; points skipped since the last one keep the last value. */
static void ring_note(struct ring *r, long long k, long long v)
{
    if (r->last && k < r->last)
        return;                         /* the clock went back: keep what is there */
    if (!r->last) {
        r->first = k;
    } else {
        long long carry = r->points[r->last % r->size];
        long long from = r->last + 1;
        if (k - from >= r->size)
            from = k - r->size + 1;
        for (long long i = from; i < k; i++)
            r->points[i % r->size] = carry;
    }
    r->points[k % r->size] = v;
    r->last = k;
    if (r->last - r->first >= r->size)
        r->first = r->last - r->size + 1;
}

void metrics_store_note(struct metrics_store *st, time_t now)
{
    for (size_t i = 0; i < st->n; i++) {
        struct series *se = &st->series[i];
        if (se->minutes) {
            ring_note(se->minutes, now / 60, se->s.value);
            ring_note(se->hours, now / 3600, se->s.value);
        }
    }
}

const struct metric_sample *metrics_store_sample(const struct metrics_store *st, size_t i)
{
    return i < st->n ? &st->series[i].s : NULL;
}

size_t metrics_store_count(const struct metrics_store *st) { return st->n; }

int metrics_store_history(struct metrics_store *st, const struct metric_sample *s, long step,
                          time_t from, time_t to, time_t *first, struct strbuf *out)
{
    size_t *slot = index_slot(st, s);
    if (!*slot || !st->series[*slot - 1].minutes || (step != 60 && step != 3600) || to < from)
        return -1;
    struct ring *r = step == 60 ? st->series[*slot - 1].minutes : st->series[*slot - 1].hours;
    long long a = from / step, b = to / step;
    if (b - a >= r->size)
        a = b - r->size + 1;
    *first = (time_t)(a * step);
    for (long long k = a; k <= b; k++) {
        bool known = r->last && k >= r->first && k <= r->last;
        if (k > a)
            sb_appendc(out, ' ');
        if (known)
            sb_appendf(out, "%lld", r->points[k % r->size]);
        else
            sb_appendc(out, '-');
    }
    return 0;
}

/* ---- the state file ---- */

static void put_ring(struct attr_writer *w, const char *name, const struct ring *r)
{
    struct strbuf first = STRBUF_INIT(64);
    long long n = r->last ? r->last - r->first + 1 : 0;
    unsigned char *bytes = xmalloc(8 * (size_t)n + 1);
    for (long long k = 0; k < n; k++) {
        uint64_t v = (uint64_t)r->points[(r->first + k) % r->size];
        for (int j = 0; j < 8; j++)
            bytes[8 * k + j] = (unsigned char)(v >> (56 - 8 * j));
    }
    sb_appendf(&first, "%s_last", name);
    attr_put_int(w, sb_str(&first), r->last);
    attr_put_bytes(w, name, bytes, 8 * (size_t)n);
    free(bytes);
    sb_free(&first);
}

static int get_ring(struct attr_reader *r, const char *name, struct ring *ring, const char **why)
{
    char last_name[ATTR_NAME_MAX + 1];
    long long last;
    const void *bytes;
    size_t len;
    snprintf(last_name, sizeof(last_name), "%s_last", name);
    if (attr_get_int(r, last_name, 0, 1LL << 40, &last) < 0
        || attr_get_bytes(r, name, &bytes, &len) < 0 || len % 8 || len / 8 > (size_t)ring->size
        || (last == 0) != (len == 0) || (long long)(len / 8) > last + 1)
        return attr_refuse(why, "malformed history");
    ring->last = last;
    ring->first = last - (long long)(len / 8) + 1;
    const unsigned char *p = bytes;
    for (size_t k = 0; k < len / 8; k++) {
        uint64_t v = 0;
        for (int j = 0; j < 8; j++)
            v = v << 8 | p[8 * k + j];
        ring->points[(ring->first + (long long)k) % ring->size] = (long long)v;
    }
    return 0;
}

int metrics_store_save(const struct metrics_store *st, int dir_fd, const char *name, const char **why)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return attr_refuse(why, "cannot create the temporary file");
    struct strbuf out = STRBUF_INIT(0);
    struct attr_writer w;
    int rc = attr_frame_str(&out, "protocol", STATE_PROTOCOL);
    for (size_t i = 0; rc == 0 && i < st->n; i++) {
        const struct series *se = &st->series[i];
        attr_begin(&w, &out);
        metrics_put_sample(&w, &se->s);
        if (se->minutes) {
            put_ring(&w, "minutes", se->minutes);
            put_ring(&w, "hours", se->hours);
        }
        rc = attr_end(&w);
        if (rc == 0 && out.len >= 65536) {
            rc = attr_write(fd, &out, 0);
            sb_reset(&out);
        }
    }
    if (rc == 0 && out.len)
        rc = attr_write(fd, &out, 0);
    sb_free(&out);
    if (rc == 0 && fsync(fd) < 0)
        rc = -1;
    if (close(fd) < 0)
        rc = -1;
    if (rc == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
        rc = -1;
    if (rc < 0) {
        unlinkat(dir_fd, tmp, 0);
        return attr_refuse(why, "cannot write the state file");
    }
    return 0;
}

/* One series frame of the state file into the store. */
static int load_series(struct metrics_store *st, const struct strbuf *frame, const char **why)
{
    struct attr_reader r;
    struct metric_sample s;
    if (attr_reader_init(&r, frame->data, frame->len) < 0 || metrics_get_sample(&r, &s, why) != 1)
        return why && *why ? -1 : attr_refuse(why, "malformed series");
    bound_domain(st, &s);
    struct series *se = series_of(st, &s);
    if (!se)
        return attr_refuse(why, "more series than metrics_series_limit");
    if (!add_values(se, &s))
        return attr_refuse(why, "a figure out of range");
    char next[ATTR_NAME_MAX + 1];
    if (!se->minutes || !attr_peek_name(&r, next, sizeof(next)))
        return 0;       /* a history the limits no longer keep is left out */
    if (get_ring(&r, "minutes", se->minutes, why) < 0 || get_ring(&r, "hours", se->hours, why) < 0)
        return -1;
    return attr_reader_done(&r) == 0 ? 0 : attr_refuse(why, "extra data in a series");
}

int metrics_store_load(struct metrics_store *st, int dir_fd, const char *name, const char **why)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : attr_refuse(why, "cannot open the state file");
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return attr_refuse(why, "the state file is not a regular file");
    }
    struct strbuf frame = STRBUF_INIT(STATE_FRAME_LIMIT);
    int rc = attr_read(fd, &frame, STATE_FRAME_LIMIT, 0);
    struct attr_reader r;
    const char *proto;
    if (rc < 0 || attr_reader_init(&r, frame.data, frame.len) < 0
        || attr_get_str(&r, "protocol", &proto) < 0 || strcmp(proto, STATE_PROTOCOL) != 0)
        rc = attr_refuse(why, "not a metrics state file");
    while (rc == 0) {
        if (attr_read(fd, &frame, STATE_FRAME_LIMIT, 0) < 0) {
            if (errno != EPIPE)
                rc = attr_refuse(why, "truncated or oversized frame");
            break;
        }
        rc = load_series(st, &frame, why);
    }
    sb_free(&frame);
    close(fd);
    return rc;
}
