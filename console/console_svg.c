/* console_svg.c: graphs drawn on the server as inline SVG, so that the
 * console needs no script and nothing from elsewhere (it works offline).
 * A graph carries its figures as data- attributes too: its total, and
 * each bar's value, for whoever reads the page without looking. */
#include <time.h>

#include "console.h"
#include "http_form.h"

#define WIDTH 420
#define HEIGHT 150
#define LEFT 48
#define BOTTOM 24
#define TOP 24

static void time_label(char *buf, size_t size, time_t t, long step)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, step >= 86400 ? "%m-%d" : step >= 3600 ? "%m-%d %H:00" : "%H:%M", &tm);
}

void console_svg_bars(struct strbuf *out, const char *title, const long long *values, size_t n,
                      time_t first, long step)
{
    long long max = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        if (values[i] > max)
            max = values[i];
        if (values[i] > 0)
            total += values[i];
    }
    sb_appendf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                    "viewBox=\"0 0 %d %d\" role=\"img\" class=\"graph\" data-total=\"%lld\" aria-label=\"",
               WIDTH, HEIGHT, WIDTH, HEIGHT, total);
    html_escape(out, title);
    sb_appends(out, "\">\n<text x=\"4\" y=\"16\" font-size=\"13\" font-family=\"sans-serif\">");
    html_escape(out, title);
    sb_appendf(out, " (total %lld)</text>\n", total);
    int plot_w = WIDTH - LEFT - 8, plot_h = HEIGHT - TOP - BOTTOM;
    sb_appendf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>\n", LEFT, HEIGHT - BOTTOM,
               WIDTH - 8, HEIGHT - BOTTOM);
    sb_appendf(out, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\" font-family=\"sans-serif\">%lld</text>\n",
               LEFT - 4, TOP + 10, max);
    sb_appendf(out, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\" font-family=\"sans-serif\">0</text>\n",
               LEFT - 4, HEIGHT - BOTTOM);
    double bw = n ? (double)plot_w / (double)n : plot_w;
    for (size_t i = 0; i < n; i++) {
        if (values[i] <= 0)
            continue;
        double h = max ? (double)plot_h * (double)values[i] / (double)max : 0;
        char when[32];
        time_label(when, sizeof(when), first + (time_t)i * step, step);
        sb_appendf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#3a7bd5\" "
                        "data-value=\"%lld\"><title>%s UTC: %lld</title></rect>\n",
                   LEFT + bw * (double)i, (double)(HEIGHT - BOTTOM) - h, bw > 2 ? bw - 1 : bw, h, values[i],
                   when, values[i]);
    }
    if (n) {
        char a[32], b[32];
        time_label(a, sizeof(a), first, step);
        time_label(b, sizeof(b), first + (time_t)(n - 1) * step, step);
        sb_appendf(out, "<text x=\"%d\" y=\"%d\" font-size=\"11\" font-family=\"sans-serif\">%s</text>\n"
                        "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\" font-family=\"sans-serif\">%s UTC</text>\n",
                   LEFT, HEIGHT - 6, a, WIDTH - 8, HEIGHT - 6, b);
    }
    sb_appends(out, "</svg>\n");
}
