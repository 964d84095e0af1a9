/* tern_report.h: `tern report`, the summary of what the mail system did in
 * a period, read from its log (lib/global/maillog.h) and its queue: the
 * figures gathered (tern_report.c) and their two renderings, aligned text
 * and a self-contained HTML page with SVG bar graphs (tern_report_out.c). */
#ifndef TERN_TERN_REPORT_H
#define TERN_TERN_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "queue_scan.h"

struct strbuf;

#define REPORT_KEY_MAX 256           /* bytes of an address or reason kept */
#define REPORT_KEYS_MAX 20000        /* distinct keys a table counts one by one */
#define REPORT_TOP_DEFAULT 10
#define REPORT_TOP_MAX 100

/* Counts and bytes per key (sender, domain, reason ...), bounded: past
 * REPORT_KEYS_MAX distinct keys, what new keys bring is added to "other". */
struct report_count {
    char *key;
    unsigned long long count, bytes;
};
struct report_table {
    struct report_count *slots;   /* open addressing; key NULL: free */
    size_t cap, used;
    unsigned long long other_count, other_bytes;
    unsigned long long total_count, total_bytes;
};
void tern_report_table_add(struct report_table *t, const char *key, unsigned long long count,
                      unsigned long long bytes);
/* The n biggest entries (by count, or bytes), ties by key; a malloc'd
 * array of pointers into the table, *got of them. */
const struct report_count **tern_report_table_top(const struct report_table *t, size_t n,
                                             bool by_bytes, size_t *got);
void tern_report_table_free(struct report_table *t);

/* delay= values of the deliveries at the log's own resolution (0.01 s
 * below 10 s, 0.1 s below 100 s, then seconds): exact percentiles from
 * a histogram of bounded size. */
struct report_delays {
    unsigned *buckets;
    size_t nbuckets;
    unsigned long long count;
    long long max_usec;
};
/* The nearest-rank percentile p (0 < p <= 100) in microseconds; -1 when
 * there was no delivery. */
long long tern_report_delay_percentile(const struct report_delays *d, double p);

struct report {
    /* the period and where the figures come from */
    time_t from, to;
    char host[256];
    char *log_names;              /* the logs as given, for the header */
    size_t files, lines, not_understood;
    /* messages and recipients */
    unsigned long long received, received_bytes, received_smtp, received_local;
    unsigned long long delivered, delivered_here, relayed, forwarded;
    unsigned long long deferrals, deferred_messages, bounced, expired;
    unsigned long long rejected, discarded, held, notifications;
    unsigned long long connections, tls_in, starttls, tls_out;
    struct report_table senders, recipients, sender_domains, recipient_domains;
    struct report_table reject_reasons, reject_details, defer_reasons, bounce_reasons;
    struct report_table tls_in_versions, tls_out_versions;
    unsigned long long hour_received[24], hour_delivered[24], hour_rejected[24],
        hour_deferred[24];
    struct report_delays delays;
    /* the queue when the report was made */
    bool queue_known;
    char queue_error[256];
    unsigned long long queue_count[QS_COUNT], queue_bytes[QS_COUNT];
    size_t top;
};

/* The length of the valid UTF-8 sequence at s (2 to 4 bytes), or 0 (also
 * for ASCII): what the reports let through of 8-bit text. */
size_t tern_report_utf8_length(const unsigned char *s);

/* The renderings, appended to out. */
void tern_report_text(const struct report *r, struct strbuf *out);
void tern_report_html(const struct report *r, struct strbuf *out);
/* "2026-12-06 11:46" in local time, for both. */
void tern_report_time(time_t t, char *buf, size_t size);

#endif
