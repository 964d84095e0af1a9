/* console_stats.h: figures of the dashboard that do not come from the
 * metrics collector (console_stats.c): the queue by destination and the
 * deferral reasons (the queue files and their defer logs), the busiest
 * senders and recipient domains of the last day (the mail log), and the
 * CPU and memory of the daemons (/proc); and the counting table they use. */
#ifndef TERN_CONSOLE_STATS_H
#define TERN_CONSOLE_STATS_H

#include <stddef.h>

struct strbuf;

/* Counts per key (keys[i] has counts[i]), for at most max distinct keys;
 * what the others bring is added to other. */
struct console_tally {
    size_t n, max;
    char **keys;
    long long *counts, other;
};
void console_tally_init(struct console_tally *t, size_t max);
void console_tally_add(struct console_tally *t, const char *key, long long n);
void console_tally_free(struct console_tally *t);
/* The top rows (largest first) as an HTML table, what: the key's heading. */
void console_tally_table(struct strbuf *out, struct console_tally *t, const char *what, size_t top);

void console_stats_queue(struct strbuf *out);
void console_stats_log(struct strbuf *out);
void console_stats_processes(struct strbuf *out);

/* The mail log the console reads: maillog_file, or syslog's mail log. */
const char *console_log_file(void);

#endif
