/* console_stats.c: the dashboard's figures from the queue, the mail log
 * and /proc (see console_stats.h). Each is bounded: at most
 * QUEUE_SCAN_MAX messages, LOG_READ_MAX bytes of the end of the log, and
 * this instance's master and its children. The queue is read with
 * lib/global/queue_scan.h and the log with lib/global/maillog.h, as
 * `tern queue` and `tern report` read them. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "console.h"
#include "console_stats.h"
#include "http_form.h"
#include "maillog.h"
#include "queue_scan.h"
#include "util.h"

#define QUEUE_SCAN_MAX 10000
#define LOG_READ_MAX (64LL * 1024 * 1024)
#define LOG_SPAN (24 * 3600)
#define PROGRAMS_MAX 64

/* ---- the tally ---- */

void console_tally_init(struct console_tally *t, size_t max)
{
    *t = (struct console_tally){ .max = max };
    t->keys = xcalloc(max, sizeof(*t->keys));
    t->counts = xcalloc(max, sizeof(*t->counts));
}

void console_tally_add(struct console_tally *t, const char *key, long long n)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->keys[i], key) == 0) {
            t->counts[i] += n;
            return;
        }
    if (t->n == t->max) {
        t->other += n;
        return;
    }
    t->keys[t->n] = xstrdup(key);
    t->counts[t->n++] = n;
}

void console_tally_table(struct strbuf *out, struct console_tally *t, const char *what, size_t top)
{
    /* a selection sort of the top rows: top is small */
    size_t shown = t->n < top ? t->n : top;
    for (size_t i = 0; i < shown; i++) {
        size_t best = i;
        for (size_t j = i + 1; j < t->n; j++)
            if (t->counts[j] > t->counts[best] || (t->counts[j] == t->counts[best]
                                                   && strcmp(t->keys[j], t->keys[best]) < 0))
                best = j;
        char *k = t->keys[i];
        long long c = t->counts[i];
        t->keys[i] = t->keys[best];
        t->counts[i] = t->counts[best];
        t->keys[best] = k;
        t->counts[best] = c;
    }
    for (size_t i = shown; i < t->n; i++)
        t->other += t->counts[i];
    const char *labels[top + 1];
    long long counts[top + 1];
    for (size_t i = 0; i < shown; i++) {
        labels[i] = t->keys[i];
        counts[i] = t->counts[i];
    }
    if (t->other) {
        labels[shown] = "(others)";
        counts[shown++] = t->other;
    }
    console_count_table(out, what, labels, counts, shown);
}

void console_tally_free(struct console_tally *t)
{
    str_array_free(t->keys, t->n);
    free(t->counts);
}

/* ---- the queue ---- */

struct queue_figures {
    struct console_tally domains, reasons;
    size_t seen;
};

static void defer_reason(const struct queue_log_entry *e, void *ctx)
{
    struct queue_figures *f = ctx;
    char reason[160];
    str_copy(reason, sizeof(reason), e->reason ? e->reason : "?");
    console_tally_add(&f->reasons, reason, 1);
}

static int queue_one(struct queued *q, void *ctx)
{
    struct queue_figures *f = ctx;
    if (++f->seen > QUEUE_SCAN_MAX)
        return 1;
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        if (q->m.rcpts[i].done)
            continue;
        const char *at = strrchr(q->m.rcpts[i].address, '@');
        console_tally_add(&f->domains, at ? at + 1 : "(local)", 1);
    }
    if (q->state == QS_DEFERRED)
        queue_read_log(QDIR_DEFER_LOG, q->id, defer_reason, f);
    return 0;
}

void console_stats_queue(struct strbuf *out)
{
    struct queue_figures f = { .seen = 0 };
    console_tally_init(&f.domains, 1000);
    console_tally_init(&f.reasons, 200);
    queue_walk(queue_one, &f);
    sb_appends(out, "<section id=\"queue-destinations\"><h2>Queue by destination</h2>\n");
    if (f.seen > QUEUE_SCAN_MAX)
        sb_appendf(out, "<p class=\"note\">the first %d messages</p>\n", QUEUE_SCAN_MAX);
    console_tally_table(out, &f.domains, "recipient domain", 10);
    sb_appends(out, "</section>\n<section id=\"deferrals\"><h2>Deferral reasons</h2>\n");
    console_tally_table(out, &f.reasons, "reason", 10);
    sb_appends(out, "</section>\n");
    console_tally_free(&f.domains);
    console_tally_free(&f.reasons);
}

/* ---- the log ---- */

const char *console_log_file(void)
{
    const char *configured = cfg_str(P_maillog_file);
    return *configured ? configured : "/var/log/mail.log";
}

void console_stats_log(struct strbuf *out)
{
    struct console_tally senders, domains;
    console_tally_init(&senders, 2000);
    console_tally_init(&domains, 2000);
    struct strbuf err = STRBUF_INIT(1024);
    const char *file = console_log_file();
    struct maillog_reader *r = maillog_open_tail(file, (unsigned long long)LOG_READ_MAX, &err);
    if (r) {
        struct maillog_clock clock;
        time_t now = time(NULL);
        maillog_clock_init(&clock, now);
        const char *syslog_name = cfg_str(P_syslog_name);
        char *line;
        size_t len;
        while (maillog_offset(r) < (unsigned long long)LOG_READ_MAX && maillog_next(r, &line, &len, &err) == 1) {
            struct maillog_line l;
            struct maillog_event ev;
            if (maillog_split(line, syslog_name, &clock, &l) != 1 || l.time < now - LOG_SPAN)
                continue;
            maillog_parse((char *)l.text, &ev);
            if (ev.kind == MAILLOG_FROM && ev.addr)
                console_tally_add(&senders, *ev.addr ? ev.addr : "<>", 1);
            if (ev.kind == MAILLOG_DELIVERY && ev.addr && ev.status && strcmp(ev.status, "sent") == 0) {
                const char *at = strrchr(ev.addr, '@');
                console_tally_add(&domains, at ? at + 1 : "(local)", 1);
            }
        }
        maillog_close(r);
    }
    sb_appends(out, "<section id=\"top-senders\"><h2>Top senders, last 24 hours</h2>\n");
    if (!r) {
        sb_appends(out, "<p class=\"note\">");
        html_escape(out, sb_str(&err));
        sb_appends(out, "</p>\n");
    }
    console_tally_table(out, &senders, "sender", 10);
    sb_appends(out, "</section>\n<section id=\"top-domains\"><h2>Top recipient domains, last 24 hours</h2>\n");
    console_tally_table(out, &domains, "domain (delivered)", 10);
    sb_appends(out, "</section>\n");
    console_tally_free(&senders);
    console_tally_free(&domains);
    sb_free(&err);
}

/* ---- processes ---- */

struct program {
    long ppid;
    char name[32];
    int count;
    double cpu_seconds;
    long long rss_kb;
};

/* One /proc/PID/stat of a process of ours: its name, CPU and memory. */
static bool read_stat(long pid, struct program *p)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
    if (!open_paren || !close_paren || close_paren < open_paren)
        return false;
    size_t nl = (size_t)(close_paren - open_paren - 1);
    if (nl >= sizeof(p->name))
        nl = sizeof(p->name) - 1;
    memcpy(p->name, open_paren + 1, nl);
    p->name[nl] = 0;
    /* after ") ": state(3) ... utime(14) stime(15) ... rss(24) */
    unsigned long long utime = 0, stime = 0;
    long long rss = 0;
    char *f = close_paren + 2;
    for (int field = 3; field <= 24 && f && *f; field++) {
        if (field == 4)
            p->ppid = strtol(f, NULL, 10);
        else if (field == 14)
            utime = strtoull(f, NULL, 10);
        else if (field == 15)
            stime = strtoull(f, NULL, 10);
        else if (field == 24)
            rss = strtoll(f, NULL, 10);
        f = strchr(f, ' ');
        if (f)
            f++;
    }
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    p->cpu_seconds = tick > 0 ? (double)(utime + stime) / (double)tick : 0;
    p->rss_kb = rss * (page > 0 ? page : 4096) / 1024;
    return true;
}

void console_stats_processes(struct strbuf *out)
{
    struct program progs[PROGRAMS_MAX];
    size_t n = 0;
    long master = (long)getppid();      /* this instance's master */
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        long pid = strtol(e->d_name, NULL, 10);
        struct program p = { .count = 1 };
        if (!read_stat(pid, &p) || (p.ppid != master && pid != master))
            continue;
        size_t i = 0;
        while (i < n && strcmp(progs[i].name, p.name) != 0)
            i++;
        if (i == n) {
            if (n == PROGRAMS_MAX)
                continue;
            progs[n++] = p;
        } else {
            progs[i].count++;
            progs[i].cpu_seconds += p.cpu_seconds;
            progs[i].rss_kb += p.rss_kb;
        }
    }
    if (d)
        closedir(d);
    sb_appends(out, "<section id=\"processes\"><h2>Daemons: CPU and memory</h2>\n"
                    "<table><tr><th>program</th><th>processes</th><th>CPU seconds</th><th>memory (RSS)</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        sb_appends(out, "<tr><td>");
        html_escape(out, progs[i].name);
        sb_appendf(out, "</td><td class=\"n\">%d</td><td class=\"n\">%.2f</td><td class=\"n\">%.1f MB</td></tr>\n",
                   progs[i].count, progs[i].cpu_seconds, (double)progs[i].rss_kb / 1024.0);
    }
    sb_appends(out, "</table><p class=\"note\">master and its daemons</p>"
                    "</section>\n");
}
