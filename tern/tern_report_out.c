/* tern_report_out.c: the two renderings of `tern report` (tern_report.h):
 * aligned plain text, one titled section after another, and the same
 * sections as a self-contained HTML page (no script, no external resource)
 * whose bar graphs are inline SVG drawn here. The page is well-formed XML
 * as well, so that any parser reads it. Every text from the log (addresses,
 * reasons) is escaped for HTML and cut to REPORT_KEY_MAX bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strbuf.h"
#include "tern_report.h"
#include "util.h"

#define LABEL_WIDTH 24
#define HOUR_BAR_WIDTH 30
#define SVG_WIDTH 640
#define SVG_BAR_HEIGHT 18

void tern_report_time(time_t t, char *buf, size_t size)
{
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M", &tm);
}

static unsigned long long percent(unsigned long long part, unsigned long long whole)
{
    return whole ? (part * 100 + whole / 2) / whole : 0;
}

/* A delay as the log writes it ("0.12", "1.5", "300"), or "-". */
static void delay_text(long long usec, char *buf, size_t size)
{
    if (usec < 0)
        str_copy(buf, size, "-");
    else
        format_delay(buf, size, usec);
}

/* One figure of a section: label, value, and the lines every section
 * shares, in both renderings. */
struct figure {
    const char *label;
    unsigned long long value;
};

static const char *const state_names[QS_COUNT] = { "incoming", "active", "deferred", "hold" };

static size_t summary_figures(const struct report *r, struct figure *f)
{
    size_t n = 0;
#define FIG(l, v) (f[n++] = (struct figure){ (l), (v) })
    FIG("received", r->received);
    FIG("received bytes", r->received_bytes);
    FIG("received by SMTP", r->received_smtp);
    FIG("received locally", r->received_local);
    FIG("delivered", r->delivered);
    FIG("delivered here", r->delivered_here);
    FIG("relayed", r->relayed);
    FIG("forwarded", r->forwarded);
    FIG("deferred messages", r->deferred_messages);
    FIG("deferrals", r->deferrals);
    FIG("bounced", r->bounced);
    FIG("expired", r->expired);
    FIG("rejected", r->rejected);
    FIG("discarded", r->discarded);
    FIG("held", r->held);
    FIG("bounce notices", r->notifications);
    FIG("senders", r->senders.used + (r->senders.other_count ? 1 : 0));
    FIG("sending domains", r->sender_domains.used);
    FIG("recipients", r->recipients.used + (r->recipients.other_count ? 1 : 0));
    FIG("recipient domains", r->recipient_domains.used);
#undef FIG
    return n;
}

/* ---- text ---- */

static void text_title(struct strbuf *out, const char *title)
{
    size_t n = strlen(title);
    sb_appendf(out, "\n%s\n", title);
    for (size_t i = 0; i < n; i++)
        sb_appendc(out, '-');
    sb_appendc(out, '\n');
}

static void text_figure(struct strbuf *out, const char *label, unsigned long long v)
{
    sb_appendf(out, "  %-*s %12llu\n", LABEL_WIDTH, label, v);
}

static void text_table(struct strbuf *out, const struct report *r, const char *title,
                       const struct report_table *t, bool bytes, const char *what)
{
    size_t n;
    const struct report_count **top = tern_report_table_top(t, r->top, false, &n);
    text_title(out, title);
    if (n == 0) {
        sb_appends(out, "  none\n");
    } else {
        if (bytes)
            sb_appendf(out, "  %8s %14s  %s\n", "count", "bytes", what);
        else
            sb_appendf(out, "  %8s  %s\n", "count", what);
        for (size_t i = 0; i < n; i++) {
            if (bytes)
                sb_appendf(out, "  %8llu %14llu  %s\n", top[i]->count, top[i]->bytes, top[i]->key);
            else
                sb_appendf(out, "  %8llu  %s\n", top[i]->count, top[i]->key);
        }
        if (t->other_count && bytes)
            sb_appendf(out, "  %8llu %14llu  (others, not counted one by one)\n", t->other_count,
                       t->other_bytes);
        else if (t->other_count)
            sb_appendf(out, "  %8llu  (others, not counted one by one)\n", t->other_count);
    }
    free(top);
}

static void text_hours(struct strbuf *out, const struct report *r)
{
    unsigned long long most = 0;
    for (int h = 0; h < 24; h++)
        if (r->hour_received[h] + r->hour_delivered[h] > most)
            most = r->hour_received[h] + r->hour_delivered[h];
    text_title(out, "Traffic per hour (local time)");
    sb_appendf(out, "  %-5s %9s %9s %9s %9s\n", "hour", "received", "delivered", "rejected",
               "deferred");
    for (int h = 0; h < 24; h++) {
        unsigned long long v = r->hour_received[h] + r->hour_delivered[h];
        size_t len = most ? (size_t)(v * HOUR_BAR_WIDTH / most) : 0;
        char bar[HOUR_BAR_WIDTH + 1];
        memset(bar, '#', len);
        bar[len] = 0;
        sb_appendf(out, "  %02d:00 %9llu %9llu %9llu %9llu%s%s\n", h, r->hour_received[h],
                   r->hour_delivered[h], r->hour_rejected[h], r->hour_deferred[h], len ? "  " : "",
                   bar);
    }
    /* the three busiest hours by messages received and delivered */
    int order[24];
    for (int h = 0; h < 24; h++)
        order[h] = h;
    for (int i = 0; i < 24; i++)
        for (int j = i + 1; j < 24; j++) {
            unsigned long long a = r->hour_received[order[i]] + r->hour_delivered[order[i]],
                               b = r->hour_received[order[j]] + r->hour_delivered[order[j]];
            if (b > a) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
    sb_appends(out, "  busiest:");
    int shown = 0;
    for (int i = 0; i < 3; i++) {
        unsigned long long v = r->hour_received[order[i]] + r->hour_delivered[order[i]];
        if (v == 0)
            break;
        sb_appendf(out, "%s %02d:00 (%llu)", shown++ ? "," : "", order[i], v);
    }
    sb_appends(out, shown ? "\n" : " none\n");
}

static void text_delays(struct strbuf *out, const struct report *r)
{
    static const struct { const char *label; double p; } ps[] = {
        { "p50", 50 }, { "p90", 90 }, { "p99", 99 },
    };
    char buf[32];
    text_title(out, "Delivery delays (seconds, delay= of the deliveries)");
    text_figure(out, "deliveries", r->delays.count);
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        delay_text(tern_report_delay_percentile(&r->delays, ps[i].p), buf, sizeof(buf));
        sb_appendf(out, "  %-*s %12s\n", LABEL_WIDTH, ps[i].label, buf);
    }
    delay_text(r->delays.count ? r->delays.max_usec : -1, buf, sizeof(buf));
    sb_appendf(out, "  %-*s %12s\n", LABEL_WIDTH, "max", buf);
}

static void text_tls(struct strbuf *out, const struct report *r)
{
    unsigned long long tls = r->tls_in > r->starttls ? r->tls_in : r->starttls;
    text_title(out, "TLS");
    text_figure(out, "connections", r->connections);
    sb_appendf(out, "  %-*s %12llu  (%llu%%)\n", LABEL_WIDTH, "with TLS", tls,
               percent(tls, r->connections));
    size_t n;
    const struct report_count **top = tern_report_table_top(&r->tls_in_versions, 10, false, &n);
    for (size_t i = 0; i < n; i++)
        sb_appendf(out, "    %-*s %12llu\n", LABEL_WIDTH - 2, top[i]->key, top[i]->count);
    free(top);
    text_figure(out, "outgoing TLS sessions", r->tls_out);
    top = tern_report_table_top(&r->tls_out_versions, 10, false, &n);
    for (size_t i = 0; i < n; i++)
        sb_appendf(out, "    %-*s %12llu\n", LABEL_WIDTH - 2, top[i]->key, top[i]->count);
    free(top);
}

static void text_queue(struct strbuf *out, const struct report *r)
{
    text_title(out, "Queue now");
    if (!r->queue_known) {
        sb_appendf(out, "  not known: %s\n", r->queue_error[0] ? r->queue_error : "not read");
        return;
    }
    unsigned long long n = 0, b = 0;
    sb_appendf(out, "  %-*s %12s %14s\n", LABEL_WIDTH, "state", "messages", "bytes");
    for (int s = 0; s < QS_COUNT; s++) {
        sb_appendf(out, "  %-*s %12llu %14llu\n", LABEL_WIDTH, state_names[s], r->queue_count[s],
                   r->queue_bytes[s]);
        n += r->queue_count[s];
        b += r->queue_bytes[s];
    }
    sb_appendf(out, "  %-*s %12llu %14llu\n", LABEL_WIDTH, "total", n, b);
}

void tern_report_text(const struct report *r, struct strbuf *out)
{
    char from[32], to[32];
    tern_report_time(r->from, from, sizeof(from));
    tern_report_time(r->to, to, sizeof(to));
    sb_appendf(out, "Mail report for %s\n", r->host);
    sb_appendf(out, "Period: %s to %s (local time)\n", from, to);
    sb_appendf(out, "Log: %s (%zu file%s, %zu lines, %zu not understood)\n", r->log_names, r->files,
               r->files == 1 ? "" : "s", r->lines, r->not_understood);
    struct figure f[32];
    size_t n = summary_figures(r, f);
    text_title(out, "Summary");
    for (size_t i = 0; i < n; i++)
        text_figure(out, f[i].label, f[i].value);
    text_table(out, r, "Rejections by reason", &r->reject_reasons, false, "reason");
    text_table(out, r, "Rejections by restriction", &r->reject_details, false, "stage: reply");
    text_table(out, r, "Top senders", &r->senders, true, "sender");
    text_table(out, r, "Top recipients", &r->recipients, true, "recipient");
    text_table(out, r, "Top sender domains", &r->sender_domains, true, "domain");
    text_table(out, r, "Top recipient domains", &r->recipient_domains, true, "domain");
    text_delays(out, r);
    text_hours(out, r);
    text_table(out, r, "Deferral reasons", &r->defer_reasons, false, "reason");
    text_table(out, r, "Bounce reasons", &r->bounce_reasons, false, "reason");
    text_tls(out, r);
    text_queue(out, r);
}

/* ---- HTML ---- */

/* Text for HTML (and XML): markup characters as entities, control bytes
 * and bytes that are not UTF-8 (a key cut in the middle of a character,
 * or whatever a log line held) as '?'. */
static void html_escape(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s >= 0x80) {
            size_t n = tern_report_utf8_length((const unsigned char *)s);
            if (n == 0) {
                sb_appendc(out, '?');
            } else {
                sb_append(out, s, n);
                s += n - 1;
            }
            continue;
        }
        static const char markup[] = "&<>\"'";
        static const char *const entities[] = { "&amp;", "&lt;", "&gt;", "&quot;", "&#39;" };
        const char *m = strchr(markup, *s);
        if (m)
            sb_appends(out, entities[m - markup]);
        else
            sb_appendc(out, (unsigned char)*s < 32 || *s == 127 ? '?' : *s);
    }
}

/* Horizontal bars, one per item, drawn to scale of the largest. */
static void svg_bars(struct strbuf *out, const char *title, const char *const *labels,
                     const unsigned long long *values, size_t n)
{
    unsigned long long most = 0;
    for (size_t i = 0; i < n; i++)
        if (values[i] > most)
            most = values[i];
    if (n == 0 || most == 0)
        return;
    const int label_w = 260, bar_w = SVG_WIDTH - label_w - 80;
    sb_appendf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%zu\" "
               "role=\"img\" aria-label=\"", SVG_WIDTH, n * SVG_BAR_HEIGHT + 4);
    html_escape(out, title);
    sb_appends(out, "\">");
    for (size_t i = 0; i < n; i++) {
        size_t y = i * SVG_BAR_HEIGHT + 2;
        unsigned long long w = values[i] * (unsigned long long)bar_w / most;
        char label[40];
        str_copy(label, sizeof(label), labels[i]);
        if (strlen(labels[i]) >= sizeof(label))
            memcpy(label + sizeof(label) - 4, "...", 4);
        sb_appendf(out, "<text x=\"%d\" y=\"%zu\" text-anchor=\"end\" font-size=\"12\">",
                   label_w - 6, y + 13);
        html_escape(out, label);
        sb_appendf(out, "</text><rect x=\"%d\" y=\"%zu\" width=\"%llu\" height=\"%d\" "
                   "fill=\"#4a7ab5\"/><text x=\"%llu\" y=\"%zu\" font-size=\"12\">%llu</text>",
                   label_w, y, w || !values[i] ? w : 1, SVG_BAR_HEIGHT - 4, label_w + w + 4, y + 13,
                   values[i]);
    }
    sb_appends(out, "</svg>\n");
}

/* The 24 hours as vertical bars: received and delivered side by side. */
static void svg_hours(struct strbuf *out, const struct report *r)
{
    unsigned long long most = 0;
    for (int h = 0; h < 24; h++) {
        if (r->hour_received[h] > most)
            most = r->hour_received[h];
        if (r->hour_delivered[h] > most)
            most = r->hour_delivered[h];
    }
    if (most == 0)
        return;
    const int height = 160, base = 170, step = 25;
    sb_appendf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "role=\"img\" aria-label=\"messages per hour\">", 24 * step + 20, base + 36);
    for (int h = 0; h < 24; h++) {
        unsigned long long a = r->hour_received[h] * height / most,
                           b = r->hour_delivered[h] * height / most;
        int x = 10 + h * step;
        sb_appendf(out, "<rect x=\"%d\" y=\"%llu\" width=\"10\" height=\"%llu\" fill=\"#4a7ab5\">"
                   "<title>%02d:00 received %llu</title></rect>", x, base - a, a, h,
                   r->hour_received[h]);
        sb_appendf(out, "<rect x=\"%d\" y=\"%llu\" width=\"10\" height=\"%llu\" fill=\"#6ab04c\">"
                   "<title>%02d:00 delivered %llu</title></rect>", x + 10, base - b, b, h,
                   r->hour_delivered[h]);
        if (h % 3 == 0)
            sb_appendf(out, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%02d</text>", x, base + 14, h);
    }
    sb_appendf(out, "<rect x=\"10\" y=\"%d\" width=\"10\" height=\"10\" fill=\"#4a7ab5\"/>"
               "<text x=\"24\" y=\"%d\" font-size=\"11\">received</text>"
               "<rect x=\"100\" y=\"%d\" width=\"10\" height=\"10\" fill=\"#6ab04c\"/>"
               "<text x=\"114\" y=\"%d\" font-size=\"11\">delivered</text></svg>\n",
               base + 22, base + 31, base + 22, base + 31);
}

static void html_title(struct strbuf *out, const char *title)
{
    sb_appends(out, "<h2>");
    html_escape(out, title);
    sb_appends(out, "</h2>\n");
}

static void html_figures(struct strbuf *out, const char *id, const struct figure *f, size_t n)
{
    sb_appendf(out, "<table id=\"%s\">\n", id);
    for (size_t i = 0; i < n; i++) {
        sb_appends(out, "<tr><th>");
        html_escape(out, f[i].label);
        sb_appendf(out, "</th><td>%llu</td></tr>\n", f[i].value);
    }
    sb_appends(out, "</table>\n");
}

static void html_table(struct strbuf *out, const struct report *r, const char *id,
                       const char *title, const struct report_table *t, bool bytes,
                       const char *what)
{
    size_t n;
    const struct report_count **top = tern_report_table_top(t, r->top, false, &n);
    html_title(out, title);
    const char *labels[REPORT_TOP_MAX];
    unsigned long long values[REPORT_TOP_MAX];
    for (size_t i = 0; i < n; i++) {
        labels[i] = top[i]->key;
        values[i] = top[i]->count;
    }
    svg_bars(out, title, labels, values, n);
    if (n == 0) {
        sb_appendf(out, "<p id=\"%s\">none</p>\n", id);
        free(top);
        return;
    }
    sb_appendf(out, "<table id=\"%s\">\n<tr><th>count</th>%s<th>", id, bytes ? "<th>bytes</th>" : "");
    html_escape(out, what);
    sb_appends(out, "</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        sb_appendf(out, "<tr><td>%llu</td>", top[i]->count);
        if (bytes)
            sb_appendf(out, "<td>%llu</td>", top[i]->bytes);
        sb_appends(out, "<td>");
        html_escape(out, top[i]->key);
        sb_appends(out, "</td></tr>\n");
    }
    if (t->other_count)
        sb_appendf(out, "<tr><td>%llu</td>%s<td>(others, not counted one by one)</td></tr>\n",
                   t->other_count, bytes ? "<td></td>" : "");
    sb_appends(out, "</table>\n");
    free(top);
}

static void html_delays(struct strbuf *out, const struct report *r)
{
    static const struct { const char *label; double p; } ps[] = {
        { "p50", 50 }, { "p90", 90 }, { "p99", 99 }, { "max", 100 },
    };
    char buf[32];
    html_title(out, "Delivery delays (seconds)");
    sb_appendf(out, "<table id=\"delays\">\n<tr><th>deliveries</th><td>%llu</td></tr>\n",
               r->delays.count);
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        long long v = ps[i].p >= 100 ? (r->delays.count ? r->delays.max_usec : -1)
                                     : tern_report_delay_percentile(&r->delays, ps[i].p);
        delay_text(v, buf, sizeof(buf));
        sb_appendf(out, "<tr><th>%s</th><td>%s</td></tr>\n", ps[i].label, buf);
    }
    sb_appends(out, "</table>\n");
}

static void html_hours(struct strbuf *out, const struct report *r)
{
    html_title(out, "Traffic per hour (local time)");
    svg_hours(out, r);
    sb_appends(out, "<table id=\"hours\">\n<tr><th>hour</th><th>received</th><th>delivered</th>"
               "<th>rejected</th><th>deferred</th></tr>\n");
    for (int h = 0; h < 24; h++)
        sb_appendf(out, "<tr><th>%02d:00</th><td>%llu</td><td>%llu</td><td>%llu</td><td>%llu</td></tr>\n",
                   h, r->hour_received[h], r->hour_delivered[h], r->hour_rejected[h],
                   r->hour_deferred[h]);
    sb_appends(out, "</table>\n");
}

static void html_tls(struct strbuf *out, const struct report *r)
{
    unsigned long long tls = r->tls_in > r->starttls ? r->tls_in : r->starttls;
    html_title(out, "TLS");
    sb_appendf(out, "<table id=\"tls\">\n<tr><th>connections</th><td>%llu</td></tr>\n"
               "<tr><th>with TLS</th><td>%llu</td><td>%llu%%</td></tr>\n", r->connections, tls,
               percent(tls, r->connections));
    sb_appendf(out, "<tr><th>outgoing TLS sessions</th><td>%llu</td></tr>\n</table>\n", r->tls_out);
}

static void html_queue(struct strbuf *out, const struct report *r)
{
    html_title(out, "Queue now");
    if (!r->queue_known) {
        sb_appends(out, "<p id=\"queue\">not known: ");
        html_escape(out, r->queue_error[0] ? r->queue_error : "not read");
        sb_appends(out, "</p>\n");
        return;
    }
    const char *labels[QS_COUNT];
    unsigned long long values[QS_COUNT], n = 0, b = 0;
    for (int s = 0; s < QS_COUNT; s++) {
        labels[s] = state_names[s];
        values[s] = r->queue_count[s];
    }
    svg_bars(out, "queue by state", labels, values, QS_COUNT);
    sb_appends(out, "<table id=\"queue\">\n<tr><th>state</th><th>messages</th><th>bytes</th></tr>\n");
    for (int s = 0; s < QS_COUNT; s++) {
        sb_appendf(out, "<tr><th>%s</th><td>%llu</td><td>%llu</td></tr>\n", state_names[s],
                   r->queue_count[s], r->queue_bytes[s]);
        n += r->queue_count[s];
        b += r->queue_bytes[s];
    }
    sb_appendf(out, "<tr><th>total</th><td>%llu</td><td>%llu</td></tr>\n</table>\n", n, b);
}

static const char html_style[] =
    "body{font-family:sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin-bottom:1em}"
    "th,td{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}"
    "td{text-align:right;font-variant-numeric:tabular-nums}"
    "td:last-child{text-align:left}"
    "h2{margin-top:1.5em;font-size:1.2em}";

void tern_report_html(const struct report *r, struct strbuf *out)
{
    char from[32], to[32];
    tern_report_time(r->from, from, sizeof(from));
    tern_report_time(r->to, to, sizeof(to));
    sb_appends(out, "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n"
               "<head>\n<meta charset=\"utf-8\"/>\n<title>Mail report for ");
    html_escape(out, r->host);
    sb_appendf(out, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>Mail report for ", html_style);
    html_escape(out, r->host);
    sb_appendf(out, "</h1>\n<p id=\"period\">%s to %s (local time)</p>\n<p id=\"log\">Log: ",
               from, to);
    html_escape(out, r->log_names);
    sb_appendf(out, " (<span id=\"files\">%zu</span> files, <span id=\"lines\">%zu</span> lines, "
               "<span id=\"not-understood\">%zu</span> not understood)</p>\n", r->files, r->lines,
               r->not_understood);
    struct figure f[32];
    size_t n = summary_figures(r, f);
    html_title(out, "Summary");
    html_figures(out, "summary", f, n);
    html_table(out, r, "reject-reasons", "Rejections by reason", &r->reject_reasons, false, "reason");
    html_table(out, r, "reject-details", "Rejections by restriction", &r->reject_details, false,
               "stage: reply");
    html_table(out, r, "senders", "Top senders", &r->senders, true, "sender");
    html_table(out, r, "recipients", "Top recipients", &r->recipients, true, "recipient");
    html_table(out, r, "sender-domains", "Top sender domains", &r->sender_domains, true, "domain");
    html_table(out, r, "recipient-domains", "Top recipient domains", &r->recipient_domains, true,
               "domain");
    html_delays(out, r);
    html_hours(out, r);
    html_table(out, r, "defer-reasons", "Deferral reasons", &r->defer_reasons, false, "reason");
    html_table(out, r, "bounce-reasons", "Bounce reasons", &r->bounce_reasons, false, "reason");
    html_tls(out, r);
    html_queue(out, r);
    sb_appends(out, "</body>\n</html>\n");
}
