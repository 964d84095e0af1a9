/* mailq.c: the queue listed as Postfix's mailq shows it, for `tern queue`
 * (mailq, sendmail -bp) run by root and for showq, which lists it to
 * users: per message its ID with a mark (* active, ! on hold), size,
 * arrival time and sender, then each recipient still to be delivered
 * with the reason of its last deferral; or with json one JSON object per
 * line with postqueue -j's field names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "mailq.h"
#include "strbuf.h"
#include "util.h"

/* "ID* SIZE Mon Nov 23 02:00:53  " is 48 columns: recipients line up under the sender */
#define RECIPIENT_COLUMN 48

struct listing {
    const struct queue_filter *filter;
    bool json;
    FILE *out;
    unsigned long long bytes;
    size_t count;
};

/* The last logged reason of each recipient (defer/ID). */
struct reasons {
    const struct qmessage *m;
    const char **reason;          /* per recipient, owned */
};

static void note_reason(const struct queue_log_entry *e, void *ctx)
{
    struct reasons *r = ctx;
    for (size_t i = 0; i < r->m->nrcpts; i++)
        if (strcmp(r->m->rcpts[i].address, e->recipient) == 0) {
            free((char *)r->reason[i]);
            r->reason[i] = xstrdup(e->reason);
        }
}

static void reasons_load(struct reasons *r, const struct queued *q)
{
    r->m = &q->m;
    r->reason = xcalloc(q->m.nrcpts + 1, sizeof(*r->reason));
    queue_read_log(QDIR_DEFER_LOG, q->id, note_reason, r);
}

static void reasons_free(struct reasons *r)
{
    for (size_t i = 0; i < r->m->nrcpts; i++)
        free((char *)r->reason[i]);
    free(r->reason);
}

static void print_text(FILE *out, const struct queued *q, const struct reasons *why)
{
    char when[64];
    time_t t = (time_t)(q->m.arrival_usec / 1000000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
    fprintf(out, "%s%c %8llu %s  %s\n", q->id, queue_state_mark(q->state), q->m.content_size, when,
           *q->m.sender ? q->m.sender : "MAILER-DAEMON");
    const char *last = NULL;
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        if (q->m.rcpts[i].done)
            continue;
        const char *reason = why->reason[i];
        if (reason && (!last || strcmp(last, reason) != 0))
            fprintf(out, "(%s)\n", reason);
        last = reason;
        fprintf(out, "%*s%s\n", RECIPIENT_COLUMN, "", q->m.rcpts[i].address);
    }
    fprintf(out, "\n");
}

static void print_json(FILE *fp, const struct queued *q, const struct reasons *why)
{
    struct strbuf out = STRBUF_INIT(0);
    static const char *const names[] = { "incoming", "active", "deferred", "hold" };
    sb_appends(&out, "{\"queue_name\": ");
    json_str(&out, names[q->state]);
    sb_appends(&out, ", \"queue_id\": ");
    json_str(&out, q->id);
    sb_appendf(&out, ", \"arrival_time\": %lld, \"message_size\": %llu",
               q->m.arrival_usec / 1000000, q->m.content_size);
    if (q->state == QS_DEFERRED)
        sb_appendf(&out, ", \"next_attempt\": %lld", (long long)q->mtime);
    sb_appends(&out, ", \"sender\": ");
    json_str(&out, q->m.sender);
    sb_appends(&out, ", \"recipients\": [");
    bool first = true;
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        if (q->m.rcpts[i].done)
            continue;
        sb_appends(&out, first ? "{\"address\": " : ", {\"address\": ");
        json_str(&out, q->m.rcpts[i].address);
        if (why->reason[i]) {
            sb_appends(&out, ", \"delay_reason\": ");
            json_str(&out, why->reason[i]);
        }
        sb_appendc(&out, '}');
        first = false;
    }
    sb_appends(&out, "]}\n");
    fwrite(out.data, 1, out.len, fp);
    sb_free(&out);
}

static int list_one(struct queued *q, void *ctx)
{
    struct listing *l = ctx;
    if (!queue_filter_match(l->filter, q))
        return 0;
    if (!l->json && l->count == 0)
        fprintf(l->out, "%-17s %8s %-19s  %s\n", "-Queue ID-", "--Size--", "----Arrival Time----",
               "-Sender/Recipient-------");
    struct reasons why;
    reasons_load(&why, q);
    if (l->json)
        print_json(l->out, q, &why);
    else
        print_text(l->out, q, &why);
    reasons_free(&why);
    l->count++;
    l->bytes += q->m.content_size;
    return 0;
}

int mailq_print(FILE *out, const struct queue_filter *filter, bool json)
{
    struct listing l = { .filter = filter, .json = json, .out = out };
    queue_walk(list_one, &l);
    if (!json) {
        if (l.count == 0)
            fprintf(out, queue_filter_active(filter) ? "No matching messages in the queue\n"
                                                    : "Mail queue is empty\n");
        else
            fprintf(out, "-- %llu Kbytes in %zu Request%s.\n", (l.bytes + 1023) / 1024, l.count,
                    l.count == 1 ? "" : "s");
    }
    return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}
