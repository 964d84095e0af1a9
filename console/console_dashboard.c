/* console_dashboard.c: the dashboard page: mail flow per minute, hour and
 * day as graphs drawn from the metrics collector's history, and the
 * collector's current figures (rejections by reason, queue by state,
 * deliveries, TLS share); what the queue, the log and /proc tell is added
 * by console_stats.c. The collector keeps counters as running totals: a
 * graph shows the difference between points, a series that did not exist
 * yet counting as zero. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "console.h"
#include "console_stats.h"
#include "http_form.h"
#include "metrics_query.h"

#define FLOW_SERIES_MAX 64        /* series added up into one graph */
#define POINTS_MAX (31 * 24 + 2)

struct flow {
    const char *title;
    enum metric_id id;
    const char *status;           /* qmgr deliveries: this status only */
};

static const struct flow flows[] = {
    { "Messages received", M_SMTPD_ACCEPTED, NULL },
    { "Recipients delivered", M_QMGR_DELIVERIES, "sent" },
    { "Recipients deferred", M_QMGR_DELIVERIES, "deferred" },
    { "Recipients bounced", M_QMGR_DELIVERIES, "bounced" },
    { "Commands rejected", M_SMTPD_REJECTS, NULL },
};

static const struct {
    const char *name;
    long step, points, group;     /* points of step seconds, added up group at a time */
} spans[] = {
    { "per minute, last hour", 60, 60, 1 },
    { "per hour, last 48 hours", 3600, 48, 1 },
    { "per day, last 30 days", 3600, 30 * 24, 24 },
};

static bool flow_matches(const struct flow *f, const struct metric_sample *s)
{
    return s->id == f->id && (!f->status || strcmp(s->labels[0], f->status) == 0);
}

/* The events per interval of one flow over one span into out (n values). */
static void flow_values(const struct flow *f, size_t span, const struct metric_sample *samples, size_t ns,
                        long long *out, size_t n, time_t *first)
{
    long step = spans[span].step;
    size_t points = (size_t)spans[span].points;
    time_t now = time(NULL);
    time_t to = now - now % (step * spans[span].group) + step * spans[span].group - 1;
    time_t from = to - (time_t)points * step + 1 - step;   /* one point before, for the first difference */
    long long *sum = calloc(points + 1, sizeof(*sum)), *pts = malloc((points + 1) * sizeof(*pts));
    memset(out, 0, n * sizeof(*out));
    *first = from + step;
    size_t used = 0;
    for (size_t i = 0; sum && pts && i < ns && used < FLOW_SERIES_MAX; i++) {
        if (!flow_matches(f, &samples[i]))
            continue;
        used++;
        time_t got_first;
        ssize_t got = metrics_query_series(&samples[i], step, from, to, &got_first, pts, points + 1);
        if (got < 2)
            continue;
        long long prev = 0;
        for (ssize_t k = 0; k < got && (size_t)k <= points; k++) {
            long long v = pts[k] < 0 ? prev : pts[k];
            if (k > 0)
                sum[k - 1] += v > prev ? v - prev : 0;
            prev = v;
        }
        *first = got_first + step;
    }
    for (size_t k = 0; k < points; k++)
        out[k / (size_t)spans[span].group] += sum[k];
    free(sum);
    free(pts);
}

static void flow_graphs(struct strbuf *b, const struct metric_sample *samples, size_t ns)
{
    long long *values = malloc(POINTS_MAX * sizeof(*values));
    for (size_t s = 0; s < sizeof(spans) / sizeof(spans[0]); s++) {
        sb_appendf(b, "<h2>Mail flow %s</h2>\n<div class=\"grid\">\n", spans[s].name);
        for (size_t f = 0; f < sizeof(flows) / sizeof(flows[0]); f++) {
            size_t n = (size_t)(spans[s].points / spans[s].group);
            time_t first;
            flow_values(&flows[f], s, samples, ns, values, n, &first);
            sb_appendf(b, "<section id=\"flow-%zu-%zu\">", s, f);
            console_svg_bars(b, flows[f].title, values, n, first, spans[s].step * spans[s].group);
            sb_appends(b, "</section>\n");
        }
        sb_appends(b, "</div>\n");
    }
    free(values);
}

/* The current value of every series of a metric as a table, labels
 * joined by " / ", largest first. */
static void metric_table(struct strbuf *b, const char *id, const char *title, const char *what,
                         enum metric_id metric, const struct metric_sample *samples, size_t ns)
{
    struct console_tally t;
    console_tally_init(&t, 1000);
    int nl = metric_def(metric)->nlabels;
    struct strbuf key = STRBUF_INIT(1024);
    for (size_t i = 0; i < ns; i++) {
        if (samples[i].id != metric || samples[i].value == 0)
            continue;
        sb_reset(&key);
        for (int l = 0; l < nl; l++)
            sb_appendf(&key, "%s%s", l ? " / " : "", samples[i].labels[l]);
        console_tally_add(&t, nl ? sb_str(&key) : "all", samples[i].value);
    }
    sb_free(&key);
    sb_appendf(b, "<section id=\"%s\"><h2>%s</h2>\n", id, title);
    console_tally_table(b, &t, what, 20);
    sb_appends(b, "</section>\n");
    console_tally_free(&t);
}

static long long metric_total(enum metric_id metric, const struct metric_sample *samples, size_t ns)
{
    long long n = 0;
    for (size_t i = 0; i < ns; i++)
        if (samples[i].id == metric)
            n += samples[i].value;
    return n;
}

static void tls_share(struct strbuf *b, const struct metric_sample *samples, size_t ns)
{
    long long conns = metric_total(M_SMTPD_CONNECTIONS, samples, ns);
    long long tls = metric_total(M_SMTPD_TLS, samples, ns);
    sb_appendf(b, "<section id=\"tls\"><h2>TLS share of SMTP connections</h2>\n<p><span id=\"tls-share\">%lld%%</span>"
                  " (%lld TLS sessions of %lld connections)</p>\n",
               conns ? (tls * 100 + conns / 2) / conns : 0, tls, conns);
    sb_appends(b, "</section>\n");
    metric_table(b, "tls-versions", "TLS versions", "version", M_SMTPD_TLS, samples, ns);
}

void console_dashboard(const struct console_request *req, struct console_reply *rep)
{
    struct strbuf *b = &rep->body;
    rep->refresh_seconds = 60;      /* a live view without a script */
    console_page_begin(rep, req, "Dashboard");
    struct metric_sample *samples = NULL;
    ssize_t ns = metrics_query_current(&samples);
    if (ns < 0) {
        sb_appends(b, "<p class=\"error\">The metrics collector cannot be reached (is the metrics "
                      "service in master.cf?): no graphs.</p>\n");
        ns = 0;
    }
    flow_graphs(b, samples, (size_t)ns);
    sb_appends(b, "<div class=\"grid\">\n");
    metric_table(b, "queue-state", "Queue by state", "state", M_QUEUE_MESSAGES, samples, (size_t)ns);
    console_stats_queue(b);
    console_quarantine_summary(b, req, false);
    metric_table(b, "rejections", "Rejections by reason", "stage / restriction", M_SMTPD_REJECTS, samples,
                 (size_t)ns);
    metric_table(b, "deliveries", "Deliveries", "status / transport / domain", M_QMGR_DELIVERIES, samples,
                 (size_t)ns);
    tls_share(b, samples, (size_t)ns);
    metric_table(b, "auth", "AUTH outcomes", "outcome", M_SMTPD_AUTH, samples, (size_t)ns);
    metric_table(b, "milter", "Milter actions", "action", M_MILTER_ACTIONS, samples, (size_t)ns);
    console_stats_log(b);
    console_stats_processes(b);
    sb_appends(b, "</div>\n");
    free(samples);
    console_page_end(rep);
}
