/* progress.c: the progress bar of long commands (progress.h). Written with
 * write(2) on descriptor 2, so that it never mixes with what stdio buffers
 * for standard output, and only when descriptor 2 is a terminal. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "progress.h"
#include "util.h"

#define WIDTH_DEFAULT 80
#define WIDTH_MIN 20
#define WIDTH_MAX 300
#define BAR_MIN 10                  /* cells of the bar itself, at the least */

static struct progress *active;     /* the bar on the screen */

static unsigned terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col < WIDTH_MIN ? WIDTH_MIN : ws.ws_col > WIDTH_MAX ? WIDTH_MAX : ws.ws_col;
    return WIDTH_DEFAULT;
}

/* "1.2 MB", "980 kB", "12 B"; items as a plain number. */
static void format_amount(char *buf, size_t size, unsigned long long n, bool bytes)
{
    static const char *const units[] = { "B", "kB", "MB", "GB", "TB" };
    if (!bytes) {
        snprintf(buf, size, "%llu", n);
        return;
    }
    double v = (double)n;
    size_t u = 0;
    while (v >= 1000 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000;
        u++;
    }
    snprintf(buf, size, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
}

size_t progress_format(char *buf, size_t size, const char *what, unsigned long long done,
                       unsigned long long total, bool bytes, unsigned width)
{
    char a[32], b[32], tail[80];
    if (size == 0)
        return 0;
    if (total && done > total)
        done = total;
    format_amount(a, sizeof(a), done, bytes);
    if (total == 0) {
        snprintf(buf, size, "%.*s  %s%s", PROGRESS_WHAT_MAX, what, a, bytes ? "" : " done");
        return strlen(buf);
    }
    format_amount(b, sizeof(b), total, bytes);
    unsigned pct = (unsigned)(done * 100.0 / (double)total);
    snprintf(tail, sizeof(tail), " %3u%%  %s/%s", pct, a, b);
    /* the label, " [", the bar, "]", the tail, and a last column left free
     * so that the cursor never wraps to the next line */
    size_t label = strnlen(what, PROGRESS_WHAT_MAX);
    long cells = (long)width - 1 - (long)label - 3 - (long)strlen(tail);
    if (cells < BAR_MIN)
        cells = BAR_MIN;
    if ((size_t)cells > size / 2)
        cells = (long)(size / 2);
    if (cells > WIDTH_MAX)
        cells = WIDTH_MAX;
    size_t filled = (size_t)((double)cells * (double)done / (double)total);
    char bar[WIDTH_MAX + 1];
    for (long i = 0; i < cells; i++)
        bar[i] = (size_t)i < filled ? '#' : '.';
    bar[cells] = 0;
    snprintf(buf, size, "%.*s [%s]%s", (int)label, what, bar, tail);
    return strlen(buf);
}

static void draw(struct progress *p)
{
    char line[WIDTH_MAX + 64];
    unsigned width = terminal_width();
    size_t n = progress_format(line + 1, sizeof(line) - 2, p->what, p->done, p->total, p->bytes,
                               width);
    if (n >= width)
        n = width - 1;
    /* blanks to the end: a shorter line covers all of the one before */
    while (n < width - 1 && n + 2 < sizeof(line))
        line[1 + n++] = ' ';
    line[0] = '\r';
    (void)!write(STDERR_FILENO, line, n + 1);
    p->drawn = true;
}

void progress_begin(struct progress *p, const char *what, unsigned long long total, bool bytes)
{
    memset(p, 0, sizeof(*p));
    p->on = isatty(STDERR_FILENO) == 1;
    p->bytes = bytes;
    p->total = total;
    str_copy(p->what, sizeof(p->what), what);
    str_sanitize(p->what);                   /* a file name may hold anything */
    if (p->on) {
        p->last_usec = now_usec();
        active = p;
        log_before_stderr(progress_interrupt);
        draw(p);
    }
}

void progress_update(struct progress *p, unsigned long long done)
{
    p->done = done;
    if (!p->on)
        return;
    long long now = now_usec();
    if (now - p->last_usec < PROGRESS_INTERVAL_USEC && now >= p->last_usec)
        return;
    p->last_usec = now;
    draw(p);
}

void progress_clear(struct progress *p)
{
    if (!p->on || !p->drawn)
        return;
    int saved_errno = errno;      /* callers print strerror(errno) next */
    char blank[WIDTH_MAX + 2];
    unsigned width = terminal_width();
    blank[0] = '\r';
    memset(blank + 1, ' ', width - 1);
    blank[width] = '\r';
    (void)!write(STDERR_FILENO, blank, width + 1);
    p->drawn = false;
    errno = saved_errno;
}

void progress_interrupt(void)
{
    if (active)
        progress_clear(active);
}

void progress_end(struct progress *p)
{
    progress_clear(p);
    p->on = false;
    if (active == p) {
        active = NULL;
        log_before_stderr(NULL);
    }
}
