/* tern_report.c: `tern report`, what the mail system did in a period: the
 * log of the instance (maillog_file and its rotated copies, plain or gzip,
 * or the files given) read line by line through lib/global/maillog.c and
 * added up, the queue counted as `tern queue` reads it, and the summary
 * printed as text or HTML (tern_report_out.c) or mailed to an address as a
 * multipart/alternative message through sendmail, as any local program
 * submits mail. Every table is bounded: a log full of random addresses
 * costs at most REPORT_KEYS_MAX entries per table and MESSAGES_MAX
 * messages in flight. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "config.h"
#include "log.h"
#include "maillog.h"
#include "progress.h"
#include "strbuf.h"
#include "tern.h"
#include "tern_queue.h"
#include "tern_report.h"
#include "util.h"

#define MESSAGES_MAX 500000           /* messages followed from one line to the next */
#define MESSAGE_BUCKETS 65536
#define DELAY_CAP_SECONDS (30 * 86400) /* longer delays share the last bucket */
#define LOGS_MAX 32                   /* --log FILE arguments */
#define RECIPIENTS_MAX 32             /* of --mail */
#define ADDRESS_MAX 320

/* ---- counting tables ---- */

/* The length of the valid UTF-8 sequence at s (2 to 4), or 0. */
size_t tern_report_utf8_length(const unsigned char *s)
{
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : 0;
    if (n == 0 || (n == 3 && s[0] > 0xef))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0)      /* overlong, surrogate */
        || (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))  /* overlong, > U+10FFFF */
        return 0;
    return n;
}

/* Bytes that are not UTF-8 (what a log line held, or a character cut by
 * the key's bound) become '?', so that text and HTML reports are UTF-8. */
static void utf8_fix(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p; p++) {
        if (*p < 0x80)
            continue;
        size_t n = tern_report_utf8_length(p);
        if (n == 0)
            *p = '?';
        else
            p += n - 1;
    }
}


static size_t key_hash(const char *s)
{
    size_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void table_grow(struct report_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    struct report_count *slots = xcalloc(cap, sizeof(*slots));
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].key)
            continue;
        size_t j = key_hash(t->slots[i].key) & (cap - 1);
        while (slots[j].key)
            j = (j + 1) & (cap - 1);
        slots[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
}

void tern_report_table_add(struct report_table *t, const char *key, unsigned long long count,
                      unsigned long long bytes)
{
    char shown[REPORT_KEY_MAX + 1];
    str_copy(shown, sizeof(shown), key);
    str_sanitize(shown);
    utf8_fix(shown);
    t->total_count += count;
    t->total_bytes += bytes;
    if (t->used * 2 >= t->cap && t->used < REPORT_KEYS_MAX)
        table_grow(t);
    size_t j = key_hash(shown) & (t->cap - 1);
    while (t->slots[j].key && strcmp(t->slots[j].key, shown) != 0)
        j = (j + 1) & (t->cap - 1);
    if (!t->slots[j].key) {
        if (t->used >= REPORT_KEYS_MAX) {
            t->other_count += count;
            t->other_bytes += bytes;
            return;
        }
        t->slots[j].key = xstrdup(shown);
        t->used++;
    }
    t->slots[j].count += count;
    t->slots[j].bytes += bytes;
}

static bool top_by_bytes;

static int count_cmp(const void *a, const void *b)
{
    const struct report_count *x = *(const struct report_count *const *)a,
                              *y = *(const struct report_count *const *)b;
    unsigned long long vx = top_by_bytes ? x->bytes : x->count, vy = top_by_bytes ? y->bytes : y->count;
    if (vx != vy)
        return vx > vy ? -1 : 1;
    return strcmp(x->key, y->key);
}

const struct report_count **tern_report_table_top(const struct report_table *t, size_t n,
                                             bool by_bytes, size_t *got)
{
    const struct report_count **all = xcalloc(t->used + 1, sizeof(*all));
    size_t k = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].key)
            all[k++] = &t->slots[i];
    top_by_bytes = by_bytes;
    qsort(all, k, sizeof(*all), count_cmp);
    *got = k < n ? k : n;
    return all;
}

void tern_report_table_free(struct report_table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].key);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* ---- delays ---- */

/* 0.01 s steps below 10 s, 0.1 s below 100 s, seconds above: the
 * resolution of format_delay, so that a bucket is one logged value. */
static size_t delay_bucket(long long usec)
{
    long long cs = (usec + 5000) / 10000;
    if (cs < 1000)
        return (size_t)cs;
    if (cs < 10000)
        return 1000 + (size_t)((cs - 1000) / 10);
    long long s = cs / 100;
    if (s > DELAY_CAP_SECONDS)
        s = DELAY_CAP_SECONDS;
    return 1900 + (size_t)(s - 100);
}

static long long bucket_usec(size_t b)
{
    if (b < 1000)
        return (long long)b * 10000;
    if (b < 1900)
        return 10000000LL + (long long)(b - 1000) * 100000;
    return (100LL + (long long)(b - 1900)) * 1000000;
}

static void delay_add(struct report_delays *d, long long usec)
{
    if (!d->buckets) {
        d->nbuckets = 1900 + DELAY_CAP_SECONDS - 100 + 1;
        d->buckets = xcalloc(d->nbuckets, sizeof(*d->buckets));
    }
    size_t b = delay_bucket(usec);
    if (d->buckets[b] < ~0u)
        d->buckets[b]++;
    d->count++;
    if (usec > d->max_usec)
        d->max_usec = usec;
}

long long tern_report_delay_percentile(const struct report_delays *d, double p)
{
    if (d->count == 0)
        return -1;
    unsigned long long rank = (unsigned long long)(p / 100.0 * (double)d->count + 0.999999);
    if (rank < 1)
        rank = 1;
    unsigned long long seen = 0;
    for (size_t b = 0; b < d->nbuckets; b++) {
        seen += d->buckets[b];
        if (seen >= rank)
            return bucket_usec(b) < d->max_usec ? bucket_usec(b) : d->max_usec;
    }
    return d->max_usec;
}

/* ---- messages in flight ---- */

/* M_RECEIVED: smtpd's client= or pickup's uid= line was seen (M_LOCAL: pickup's);
 * M_FROM: qmgr's from= line, with the size; M_HELD: held on arrival (cleanup
 * or a milter), so qmgr logs no from= until it is released; M_COUNTED:
 * counted as received (M_SIZELESS: before its size was known). */
enum { M_RECEIVED = 1, M_FROM = 2, M_COUNTED = 4, M_DEFERRED = 8, M_HELD = 16, M_LOCAL = 32,
       M_SIZELESS = 64 };

struct message {
    struct message *next;
    char id[33];
    unsigned flags;
    int hour;                     /* of the client= or uid= line */
    unsigned long long size;
    char *sender;
};

struct messages {
    struct message **buckets;
    size_t n;
    unsigned long long untracked;     /* messages not followed: the table was full */
};

static struct message *message_get(struct messages *ms, const char *id, bool create)
{
    if (!ms->buckets)
        ms->buckets = xcalloc(MESSAGE_BUCKETS, sizeof(*ms->buckets));
    size_t h = key_hash(id) & (MESSAGE_BUCKETS - 1);
    for (struct message *m = ms->buckets[h]; m; m = m->next)
        if (strcmp(m->id, id) == 0)
            return m;
    if (!create)
        return NULL;
    if (ms->n >= MESSAGES_MAX) {
        ms->untracked++;
        return NULL;
    }
    struct message *m = xcalloc(1, sizeof(*m));
    str_copy(m->id, sizeof(m->id), id);
    m->next = ms->buckets[h];
    ms->buckets[h] = m;
    ms->n++;
    return m;
}

static void message_remove(struct messages *ms, const char *id)
{
    if (!ms->buckets)
        return;
    size_t h = key_hash(id) & (MESSAGE_BUCKETS - 1);
    for (struct message **p = &ms->buckets[h]; *p; p = &(*p)->next)
        if (strcmp((*p)->id, id) == 0) {
            struct message *m = *p;
            *p = m->next;
            free(m->sender);
            free(m);
            ms->n--;
            return;
        }
}

static void messages_free(struct messages *ms)
{
    if (!ms->buckets)
        return;
    for (size_t h = 0; h < MESSAGE_BUCKETS; h++)
        while (ms->buckets[h]) {
            struct message *m = ms->buckets[h];
            ms->buckets[h] = m->next;
            free(m->sender);
            free(m);
        }
    free(ms->buckets);
}

/* ---- adding up one line ---- */

struct reading {
    struct report *r;
    struct messages ms;
    const char *syslog_name;
    struct maillog_clock clock;
};

/* The domain of an address, lower case, or a word for those without one. */
static void domain_of(const char *addr, char *buf, size_t size)
{
    const char *at = strrchr(addr, '@');
    if (!*addr)
        str_copy(buf, size, "(null sender)");
    else if (!at || !at[1])
        str_copy(buf, size, "(no domain)");
    else
        str_lower((str_copy(buf, size, at + 1), buf));
}

static const char *shown_address(const char *addr)
{
    return *addr ? addr : "<>";
}

/* A message is received once it is in the queue: its origin (client= or
 * uid=) is known, and qmgr's from= line, or the line that held it on
 * arrival. Counted once, with its sender and size (a held message's size
 * is added when qmgr takes it after its release). Messages refused after
 * client= (content checks, milters) are rejected, not received. */
static void count_received(struct reading *rd, struct message *m)
{
    struct report *r = rd->r;
    char domain[REPORT_KEY_MAX];
    const char *sender = m->sender ? m->sender : "";
    if ((m->flags & M_COUNTED) && (m->flags & M_SIZELESS) && (m->flags & M_FROM)) {
        m->flags &= ~M_SIZELESS;
        r->received_bytes += m->size;
        tern_report_table_add(&r->senders, shown_address(sender), 0, m->size);
        domain_of(sender, domain, sizeof(domain));
        tern_report_table_add(&r->sender_domains, domain, 0, m->size);
        return;
    }
    if (!(m->flags & M_RECEIVED) || !(m->flags & (M_FROM | M_HELD)) || (m->flags & M_COUNTED))
        return;
    m->flags |= M_COUNTED | (m->flags & M_FROM ? 0 : M_SIZELESS);
    r->received++;
    r->hour_received[m->hour]++;
    if (m->flags & M_LOCAL)
        r->received_local++;
    else
        r->received_smtp++;
    r->received_bytes += m->size;
    tern_report_table_add(&r->senders, shown_address(sender), 1, m->size);
    domain_of(sender, domain, sizeof(domain));
    tern_report_table_add(&r->sender_domains, domain, 1, m->size);
}

static int hour_of(time_t t)
{
    struct tm tm;
    localtime_r(&t, &tm);
    return tm.tm_hour;
}

/* Reasons grouped as pflogsumm groups them: addresses and bracketed host
 * addresses in a text are replaced, so that one cause is one line. */
static void reason_key(const char *text, char *buf, size_t size)
{
    struct strbuf out = STRBUF_INIT(REPORT_KEY_MAX);
    for (const char *p = text; *p; p++) {
        const char *close = *p == '<' ? strchr(p, '>') : *p == '[' ? strchr(p, ']') : NULL;
        if (close) {
            if (sb_appends(&out, *p == '<' ? "<address>" : "[address]") < 0)
                break;
            p = close;
        } else if (sb_appendc(&out, *p) < 0) {
            break;
        }
    }
    str_copy(buf, size, sb_str(&out));
    sb_free(&out);
}

/* The restriction that refused: the words of Postfix's reply texts. */
static const char *reject_category(const struct maillog_event *ev)
{
    static const struct { const char *text, *category; } table[] = {
        { "Relay access denied", "relay denied" },
        { "User unknown", "unknown user" },
        { "blocked using", "RBL" },
        { "Client host rejected", "client rejected" },
        { "Helo command rejected", "HELO rejected" },
        { "Sender address rejected", "sender rejected" },
        { "Recipient address rejected", "recipient rejected" },
        { "message_size_limit", "message too large" },
        { "Message size exceeds", "message too large" },
        { "too many hops", "mail loop" },
        { "pipelining", "protocol" },
    };
    if (strncmp(ev->action, "milter", 6) == 0)
        return "milter";
    if (strcmp(ev->stage, "header") == 0 || strcmp(ev->stage, "body") == 0)
        return "content (header/body checks)";
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strstr(ev->reason, table[i].text))
            return table[i].category;
    return "other";
}

/* The reply's text without its code and DSN ("550 5.1.1 "). */
static const char *reply_text(const char *reply)
{
    const char *p = reply;
    if (strspn(p, "0123456789") == 3 && p[3] == ' ')
        p += 4;
    if (strchr("245", *p) && p[1] == '.') {
        const char *sp = strchr(p, ' ');
        if (sp && sp - p <= 9)
            p = sp + 1;
    }
    /* "<address>: Relay access denied": the address is in the recipients */
    if (*p == '<') {
        const char *close = strstr(p, ">: ");
        if (close)
            p = close + 3;
    }
    return p;
}

static void add_reject(struct reading *rd, const struct maillog_event *ev, time_t when)
{
    struct report *r = rd->r;
    char key[REPORT_KEY_MAX], detail[REPORT_KEY_MAX + 32];
    r->rejected++;
    r->hour_rejected[hour_of(when)]++;
    tern_report_table_add(&r->reject_reasons, reject_category(ev), 1, 0);
    reason_key(reply_text(ev->reason), key, sizeof(key));
    /* "... blocked using zen.example; https://.../1.2.3.4": one line per list */
    char *listed = strstr(key, " blocked using ");
    if (listed)
        listed[strcspn(listed, ";")] = 0;
    snprintf(detail, sizeof(detail), "%s: %s", *ev->stage ? ev->stage : "-", key);
    tern_report_table_add(&r->reject_details, detail, 1, 0);
}

static void add_delivery(struct reading *rd, const struct maillog_event *ev, time_t when)
{
    struct report *r = rd->r;
    struct message *m = message_get(&rd->ms, ev->id, strcmp(ev->status, "deferred") == 0);
    unsigned long long size = m ? m->size : 0;
    char key[REPORT_KEY_MAX];
    if (strcmp(ev->status, "sent") == 0 && strncmp(ev->reason, "forwarded as ", 13) == 0) {
        /* as pflogsumm counts it: the delivery is the new message's */
        r->forwarded++;
    } else if (strcmp(ev->status, "sent") == 0) {
        r->delivered++;
        r->hour_delivered[hour_of(when)]++;
        if (ev->relay && strchr(ev->relay, '['))
            r->relayed++;
        else
            r->delivered_here++;
        tern_report_table_add(&r->recipients, shown_address(ev->addr), 1, size);
        domain_of(ev->addr, key, sizeof(key));
        tern_report_table_add(&r->recipient_domains, key, 1, size);
        if (ev->delay_usec >= 0)
            delay_add(&r->delays, ev->delay_usec);
    } else if (strcmp(ev->status, "deferred") == 0) {
        r->deferrals++;
        r->hour_deferred[hour_of(when)]++;
        if (m && !(m->flags & M_DEFERRED)) {
            m->flags |= M_DEFERRED;
            r->deferred_messages++;
        } else if (!m) {
            r->deferred_messages++;
        }
        reason_key(ev->reason, key, sizeof(key));
        tern_report_table_add(&r->defer_reasons, key, 1, 0);
    } else if (strcmp(ev->status, "bounced") == 0 || strcmp(ev->status, "expired") == 0) {
        r->bounced++;
        if (strcmp(ev->status, "expired") == 0) {
            r->expired++;
            tern_report_table_add(&r->bounce_reasons, "expired in the queue (maximal_queue_lifetime)",
                             1, 0);
        } else {
            reason_key(ev->reason, key, sizeof(key));
            tern_report_table_add(&r->bounce_reasons, key, 1, 0);
        }
    } else {
        r->not_understood++;
    }
}

/* A line before the period only keeps the sizes of messages in flight. */
static void add_before(struct reading *rd, const struct maillog_event *ev)
{
    if (ev->kind == MAILLOG_FROM) {
        struct message *m = message_get(&rd->ms, ev->id, true);
        if (m) {
            m->size = (unsigned long long)ev->size;
            m->flags |= M_FROM | M_COUNTED;     /* received before the period */
        }
    } else if (ev->kind == MAILLOG_REMOVED) {
        message_remove(&rd->ms, ev->id);
    }
}

static void add_event(struct reading *rd, const struct maillog_event *ev, time_t when)
{
    struct report *r = rd->r;
    struct message *m;
    switch (ev->kind) {
    case MAILLOG_MALFORMED:
        r->not_understood++;
        break;
    case MAILLOG_CONNECT:
        r->connections++;
        break;
    case MAILLOG_DISCONNECT:
        if (ev->starttls)
            r->starttls++;
        break;
    case MAILLOG_TLS_IN:
        r->tls_in++;
        tern_report_table_add(&r->tls_in_versions, ev->tls_version, 1, 0);
        break;
    case MAILLOG_TLS_OUT:
        r->tls_out++;
        tern_report_table_add(&r->tls_out_versions, ev->tls_version, 1, 0);
        break;
    case MAILLOG_CLIENT:
    case MAILLOG_PICKUP:
        if (!(m = message_get(&rd->ms, ev->id, true)) || (m->flags & M_RECEIVED))
            break;
        m->flags |= M_RECEIVED | (ev->kind == MAILLOG_PICKUP ? M_LOCAL : 0);
        m->hour = hour_of(when);
        if (ev->kind == MAILLOG_PICKUP && !m->sender)
            m->sender = xstrndup(ev->addr, ADDRESS_MAX);
        count_received(rd, m);
        break;
    case MAILLOG_FROM:
        if (!(m = message_get(&rd->ms, ev->id, true)) || (m->flags & M_FROM))
            break;
        m->flags |= M_FROM;
        m->size = (unsigned long long)ev->size;
        free(m->sender);
        m->sender = xstrndup(ev->addr, ADDRESS_MAX);   /* as rewritten by cleanup */
        count_received(rd, m);
        break;
    case MAILLOG_DELIVERY:
        add_delivery(rd, ev, when);
        break;
    case MAILLOG_NOTIFICATION:
        if (strcmp(ev->reason, "non-delivery") == 0)
            r->notifications++;
        break;
    case MAILLOG_REMOVED:
        message_remove(&rd->ms, ev->id);
        break;
    case MAILLOG_REJECT:
        add_reject(rd, ev, when);
        break;
    case MAILLOG_DISCARD:
        r->discarded++;
        break;
    case MAILLOG_HOLD:
        if (strcmp(ev->id, "NOQUEUE") == 0) {
            r->held++;
        } else if ((m = message_get(&rd->ms, ev->id, true)) && !(m->flags & M_HELD)) {
            m->flags |= M_HELD;
            r->held++;
            if (!m->sender && ev->sender)
                m->sender = xstrndup(ev->sender, ADDRESS_MAX);
            count_received(rd, m);
        }
        break;
    case MAILLOG_OTHER:
        break;
    }
}

static void add_line(struct reading *rd, char *line)
{
    struct report *r = rd->r;
    struct maillog_line l;
    r->lines++;
    int rc = maillog_split(line, rd->syslog_name, &rd->clock, &l);
    if (rc < 0) {
        r->not_understood++;
        return;
    }
    if (rc == 0 || l.time > r->to)
        return;                       /* another program's line, or after the period */
    struct maillog_event ev;
    maillog_parse((char *)l.text, &ev);
    if (l.time < r->from)
        add_before(rd, &ev);
    else
        add_event(rd, &ev, l.time);
}

/* ---- reading the logs ---- */

static unsigned long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (unsigned long long)st.st_size : 0;
}

/* Every file in order; 0, or -1 when one could not be read (said on stderr). */
static int read_logs(struct reading *rd, char **files, size_t n)
{
    unsigned long long total = 0, before = 0;
    for (size_t i = 0; i < n; i++)
        total += file_size(files[i]);
    struct progress bar;
    progress_begin(&bar, "reading the log", total, true);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct strbuf err = STRBUF_INIT(1024);
        struct maillog_reader *lr = maillog_open(files[i], &err);
        if (!lr) {
            progress_end(&bar);
            fprintf(stderr, "tern report: %s\n", sb_str(&err));
            sb_free(&err);
            return -1;
        }
        rd->r->files++;
        char *line;
        size_t len;
        int got;
        while ((got = maillog_next(lr, &line, &len, &err)) > 0) {
            add_line(rd, line);
            if ((rd->r->lines & 1023) == 0)
                progress_update(&bar, before + maillog_offset(lr));
        }
        if (got < 0) {
            progress_end(&bar);
            fprintf(stderr, "tern report: %s: %s\n", files[i], sb_str(&err));
            rc = -1;
        }
        before += file_size(files[i]);
        maillog_close(lr);
        sb_free(&err);
        if (rc < 0)
            return rc;
    }
    progress_update(&bar, total);
    progress_end(&bar);
    return 0;
}

/* ---- the queue ---- */

struct queue_counts {
    unsigned long long count[QS_COUNT], bytes[QS_COUNT];
};

static int count_one(struct queued *q, void *ctx)
{
    struct queue_counts *c = ctx;
    c->count[q->state]++;
    c->bytes[q->state] += q->m.content_size;
    return 0;
}

/* The queue is counted by a child that enters it as `tern queue` does
 * (as mail_owner when run as root): this process keeps its privileges
 * for the mail it may submit. */
static void count_queue(struct report *r)
{
    int fds[2];
    if (pipe(fds) < 0) {
        snprintf(r->queue_error, sizeof(r->queue_error), "pipe: %s", strerror(errno));
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(r->queue_error, sizeof(r->queue_error), "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        tern_queue_enter();
        struct queue_counts c = { 0 };
        queue_walk(count_one, &c);
        _exit(write_all(fds[1], &c, sizeof(c)) == (ssize_t)sizeof(c) ? 0 : 1);
    }
    close(fds[1]);
    struct queue_counts c;
    ssize_t got = 0, n;
    while (got < (ssize_t)sizeof(c) && (n = read(fds[0], (char *)&c + got, sizeof(c) - (size_t)got)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        got += n;
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != (ssize_t)sizeof(c)) {
        snprintf(r->queue_error, sizeof(r->queue_error), "the queue could not be read (see above)");
        return;
    }
    r->queue_known = true;
    memcpy(r->queue_count, c.count, sizeof(c.count));
    memcpy(r->queue_bytes, c.bytes, sizeof(c.bytes));
}

/* ---- mail ---- */

static void append_base64_lines(struct strbuf *out, const struct strbuf *in)
{
    for (size_t off = 0; off < in->len; off += 57) {
        size_t n = in->len - off < 57 ? in->len - off : 57;
        base64_encode(out, in->data + off, n);
        sb_appends(out, "\n");
    }
}

/* The report as a MIME message for sendmail (lines ending in LF). */
static void build_message(const struct report *r, char **rcpts, size_t n, struct strbuf *msg)
{
    struct strbuf text = STRBUF_INIT(0), html = STRBUF_INIT(0);
    tern_report_text(r, &text);
    tern_report_html(r, &html);
    char from[32], to[32], boundary[64];
    tern_report_time(r->from, from, sizeof(from));
    tern_report_time(r->to, to, sizeof(to));
    snprintf(boundary, sizeof(boundary), "=_tern_report_%lld_%ld", now_usec(), (long)getpid());
    sb_appends(msg, "To: ");
    for (size_t i = 0; i < n; i++)
        sb_appendf(msg, "%s%s", i ? ", " : "", rcpts[i]);
    sb_appendf(msg, "\nSubject: Mail report for %s: %s to %s\n", r->host, from, to);
    sb_appends(msg, "Auto-Submitted: auto-generated\nMIME-Version: 1.0\n");
    sb_appendf(msg, "Content-Type: multipart/alternative; boundary=\"%s\"\n\n", boundary);
    sb_appends(msg, "This is a report in plain text and in HTML.\n\n");
    sb_appendf(msg, "--%s\nContent-Type: text/plain; charset=utf-8\n"
               "Content-Transfer-Encoding: base64\n\n", boundary);
    append_base64_lines(msg, &text);
    sb_appendf(msg, "\n--%s\nContent-Type: text/html; charset=utf-8\n"
               "Content-Transfer-Encoding: base64\n\n", boundary);
    append_base64_lines(msg, &html);
    sb_appendf(msg, "\n--%s--\n", boundary);
    sb_free(&text);
    sb_free(&html);
}

/* Through sendmail, as every local program submits (tern_sendmail.c). */
static int mail_report(const struct report *r, char **rcpts, size_t n)
{
    struct strbuf msg = STRBUF_INIT(0);
    build_message(r, rcpts, n, &msg);
    int rc = tern_sendmail("report", (const char *const *)rcpts, n, &msg);
    sb_free(&msg);
    return rc;
}

/* ---- the command ---- */

static const char usage_text[] =
    "usage: tern [-c CONFDIR] report [--since DURATION | --from TIME [--to TIME]]\n"
    "                               [--html] [--mail ADDRESS] [--top N] [--log FILE]...\n"
    "  summarize what the mail system did in a period, from its log and its queue:\n"
    "  messages received, delivered (here, relayed, forwarded), deferred, bounced,\n"
    "  rejected (by reason and restriction), discarded and held; the top senders,\n"
    "  recipients and their domains; delivery delays as percentiles; the busiest\n"
    "  hours; deferral and bounce reasons; the TLS share of connections; and the\n"
    "  queue now, by state.\n"
    "  --since DURATION  the period that ends now: 24h (the default), 7d, 90m, 3600s\n"
    "  --from TIME       from TIME (local time: \"2026-12-06 08:00\", 2026-12-06T08:00:00,\n"
    "  --to TIME         or 2026-12-06), to TIME (default: now)\n"
    "  --html            a self-contained HTML page with bar graphs instead of text\n"
    "  --mail ADDRESS    mail the report (text and HTML) to ADDRESS through sendmail\n"
    "                    instead of printing it; several addresses with commas\n"
    "  --top N           lines of the top lists (default 10, at most 100)\n"
    "  --log FILE        read FILE and its rotated copies (FILE.1, FILE.2.gz, ...)\n"
    "                    instead of maillog_file (default /var/log/mail.log with syslog)\n"
    "  Lines that are not Tern's log lines are counted as \"not understood\".\n";

enum { OPT_SINCE = 1, OPT_FROM, OPT_TO, OPT_HTML, OPT_MAIL, OPT_TOP, OPT_LOG };

static const struct option report_options[] = {
    { "since", required_argument, NULL, OPT_SINCE },
    { "from", required_argument, NULL, OPT_FROM },
    { "to", required_argument, NULL, OPT_TO },
    { "html", no_argument, NULL, OPT_HTML },
    { "mail", required_argument, NULL, OPT_MAIL },
    { "top", required_argument, NULL, OPT_TOP },
    { "log", required_argument, NULL, OPT_LOG },
    { NULL, 0, NULL, 0 },
};

/* "2026-12-06", "2026-12-06 08:00", "2026-12-06T08:00:30", local time; -1. */
static time_t parse_when(const char *s)
{
    struct tm tm = { 0 };
    const char *formats[] = { "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M",
                              "%Y-%m-%dT%H:%M", "%Y-%m-%d" };
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(s, formats[i], &tm);
        if (end && !*end) {
            tm.tm_isdst = -1;
            return mktime(&tm);
        }
    }
    return -1;
}

struct options {
    const char *since, *from, *to, *mail;
    bool html;
    long top;
    char *logs[LOGS_MAX];
    size_t nlogs;
};

static int parse_options(int argc, char **argv, struct options *o)
{
    int c;
    optind = 1;
    opterr = 0;
    *o = (struct options){ .top = REPORT_TOP_DEFAULT };
    while ((c = getopt_long(argc, argv, "+", report_options, NULL)) != -1) {
        switch (c) {
        case OPT_SINCE: o->since = optarg; break;
        case OPT_FROM: o->from = optarg; break;
        case OPT_TO: o->to = optarg; break;
        case OPT_HTML: o->html = true; break;
        case OPT_MAIL: o->mail = optarg; break;
        case OPT_TOP:
            if (parse_long(optarg, 1, REPORT_TOP_MAX, &o->top) < 0) {
                fprintf(stderr, "tern report: --top %s: expected a number from 1 to %d\n", optarg,
                        REPORT_TOP_MAX);
                return -1;
            }
            break;
        case OPT_LOG:
            if (o->nlogs == LOGS_MAX) {
                fprintf(stderr, "tern report: more than %d --log files\n", LOGS_MAX);
                return -1;
            }
            o->logs[o->nlogs++] = optarg;
            break;
        default:
            fprintf(stderr, "tern report: unknown option or missing value: %s (see tern report --help)\n",
                    argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tern report: unexpected argument \"%s\" (see tern report --help)\n",
                argv[optind]);
        return -1;
    }
    if (o->since && (o->from || o->to)) {
        fprintf(stderr, "tern report: --since and --from/--to exclude each other\n");
        return -1;
    }
    return 0;
}

/* The period from the options: 0, or -1 with the reason printed. */
static int set_period(struct report *r, const struct options *o)
{
    time_t now = time(NULL);
    r->to = now;
    long since = 86400;
    if (o->since && (since = parse_time_value(o->since, 'h')) <= 0) {
        fprintf(stderr, "tern report: --since %s: expected a duration such as 24h, 7d, 90m\n",
                o->since);
        return -1;
    }
    if (o->to && (r->to = parse_when(o->to)) < 0) {
        fprintf(stderr, "tern report: --to %s: expected a time such as \"2026-12-06 08:00\"\n", o->to);
        return -1;
    }
    r->from = r->to - since;
    if (o->from && (r->from = parse_when(o->from)) < 0) {
        fprintf(stderr, "tern report: --from %s: expected a time such as \"2026-12-06 08:00\"\n",
                o->from);
        return -1;
    }
    if (r->from >= r->to) {
        fprintf(stderr, "tern report: the period ends before it starts\n");
        return -1;
    }
    return 0;
}

static void recipients_free(char **rcpts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rcpts[i]);
}

/* --mail's comma (or space) separated addresses; 0, or -1 (printed). */
static int split_recipients(const char *list, char **out, size_t *n)
{
    char *copy = xstrdup(list), *save = NULL;
    *n = 0;
    for (char *a = strtok_r(copy, ", \t", &save); a; a = strtok_r(NULL, ", \t", &save)) {
        if (!tern_sendmail_address_ok(a) || *n == RECIPIENTS_MAX) {
            fprintf(stderr, "tern report: --mail: \"%.100s\" is not an address to mail to\n", a);
            recipients_free(out, *n);
            free(copy);
            return -1;
        }
        out[(*n)++] = xstrdup(a);
    }
    free(copy);
    if (*n == 0) {
        fprintf(stderr, "tern report: --mail: no address given\n");
        return -1;
    }
    return 0;
}

static void report_free(struct report *r)
{
    struct report_table *tables[] = { &r->senders, &r->recipients, &r->sender_domains,
        &r->recipient_domains, &r->reject_reasons, &r->reject_details, &r->defer_reasons,
        &r->bounce_reasons, &r->tls_in_versions, &r->tls_out_versions };
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
        tern_report_table_free(tables[i]);
    free(r->delays.buckets);
    free(r->log_names);
}

/* The files to read: --log FILEs, or maillog_file, or syslog's mail.log;
 * each with its rotated copies. */
static size_t log_files(const struct options *o, char **files, struct report *r)
{
    const char *configured = cfg_str(P_maillog_file);
    char *given[LOGS_MAX];
    size_t ngiven = 0, n = 0;
    if (o->nlogs)
        for (size_t i = 0; i < o->nlogs; i++)
            given[ngiven++] = o->logs[i];
    else
        given[ngiven++] = (char *)(*configured ? configured : "/var/log/mail.log");
    struct strbuf names = STRBUF_INIT(4096);
    for (size_t i = 0; i < ngiven; i++) {
        sb_appendf(&names, "%s%s", i ? ", " : "", given[i]);
        size_t got = maillog_files(given[i], files + n, LOGS_MAX * MAILLOG_FILES_MAX - n);
        if (got == 0)
            fprintf(stderr, "tern report: warning: no log file %s%s\n", given[i],
                    o->nlogs ? "" : *configured ? " (maillog_file)" : " (syslog's mail log; "
                    "give --log FILE)");
        n += got;
    }
    r->log_names = xstrdup(sb_str(&names));
    sb_free(&names);
    return n;
}

int tern_cmd_report(int argc, char **argv)
{
    if (tern_help(argc, argv, usage_text))
        return 0;
    struct options o;
    if (parse_options(argc, argv, &o) < 0)
        return 2;
    struct report r = { .top = (size_t)o.top };
    char *rcpts[RECIPIENTS_MAX];
    size_t nrcpts = 0;
    if (set_period(&r, &o) < 0 || (o.mail && split_recipients(o.mail, rcpts, &nrcpts) < 0))
        return 2;
    tern_load_config();
    const char *host = cfg_str(P_myhostname);
    if (!*host && gethostname(r.host, sizeof(r.host) - 1) == 0)
        host = r.host;
    str_copy(r.host, sizeof(r.host), host);
    char **files = xcalloc(LOGS_MAX * MAILLOG_FILES_MAX, sizeof(*files));
    size_t nfiles = log_files(&o, files, &r);
    struct reading rd = { .r = &r, .syslog_name = cfg_str(P_syslog_name) };
    maillog_clock_init(&rd.clock, time(NULL));
    int rc = read_logs(&rd, files, nfiles) < 0 ? 1 : 0;
    maillog_files_free(files, nfiles);
    free(files);
    messages_free(&rd.ms);
    if (rc == 0) {
        count_queue(&r);
        if (o.mail) {
            rc = mail_report(&r, rcpts, nrcpts);
        } else {
            struct strbuf out = STRBUF_INIT(0);
            if (o.html)
                tern_report_html(&r, &out);
            else
                tern_report_text(&r, &out);
            fwrite(out.data ? out.data : "", 1, out.len, stdout);
            sb_free(&out);
            if (fflush(stdout) != 0 || ferror(stdout))
                rc = 1;
        }
    }
    recipients_free(rcpts, nrcpts);
    report_free(&r);
    return rc;
}
