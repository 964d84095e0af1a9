/* tern_show.c: `tern show ID` prints a queued message like postcat: its
 * envelope (sender, attributes, each recipient and whether it is done) and
 * its content; `tern why ID` answers "why is this message still queued?":
 * per recipient its state and every logged attempt (time, status, relay,
 * the remote reply), when the next attempt is due, and the MTA-STS
 * policies cached for the recipients' domains. Both have --json. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"
#include "tern.h"
#include "tern_queue.h"
#include "util.h"

static const char show_usage[] =
    "usage: tern [-c CONFDIR] show [--json] ID\n"
    "  print a queued message: its envelope (sender, attributes such as the\n"
    "  client's address, each recipient with its state) and its content, headers\n"
    "  and body, as it will be delivered. --json gives one JSON object.\n";

static const char why_usage[] =
    "usage: tern [-c CONFDIR] why [--json] ID\n"
    "  why is this message still queued? Its state and when its next delivery\n"
    "  attempt is due, then per recipient: pending, delivered or bounced, and\n"
    "  every logged attempt with its time, status code, relay and the remote\n"
    "  server's reply, then the MTA-STS policy cached for each recipient domain\n"
    "  (smtp_mta_sts = yes). --json gives one JSON object.\n";

/* why's answer when the message is not in the queue */
static const char why_gone_note[] =
    "tern why: a message that left the queue was delivered or returned: "
    "the mail log has its story\n";

static const char *const state_names[] = { "incoming", "active", "deferred", "hold" };

static void format_time(long long t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    strftime(buf, size, "%a %b %e %H:%M:%S %Y", &tm);
}

/* "2h 3m", "45s": how long, roughly. */
static void format_span(long long seconds, char *buf, size_t size)
{
    if (seconds < 0)
        seconds = -seconds;
    if (seconds >= 86400)
        snprintf(buf, size, "%lldd %lldh", seconds / 86400, seconds % 86400 / 3600);
    else if (seconds >= 3600)
        snprintf(buf, size, "%lldh %lldm", seconds / 3600, seconds % 3600 / 60);
    else if (seconds >= 60)
        snprintf(buf, size, "%lldm %llds", seconds / 60, seconds % 60);
    else
        snprintf(buf, size, "%llds", seconds);
}

/* Exactly one ID argument, and --json. -1 on a usage error (printed). */
static int one_id(int argc, char **argv, bool *json, const char **id)
{
    *json = false;
    *id = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            *json = true;
        } else if (argv[i][0] == '-' || *id) {
            fprintf(stderr, "tern %s: unexpected argument \"%s\" (see tern %s --help)\n", argv[0],
                    argv[i], argv[0]);
            return -1;
        } else {
            *id = argv[i];
        }
    }
    if (!*id) {
        fprintf(stderr, "tern %s: which message? (tern %s ID; `tern queue` lists them)\n", argv[0],
                argv[0]);
        return -1;
    }
    return 0;
}

/* The arguments of show and why, then the message they name: 0 with *q
 * loaded, or the exit status (2 usage, 1 no such message). */
static int load_named(int argc, char **argv, bool *json, struct queued *q)
{
    const char *id;
    if (one_id(argc, argv, json, &id) < 0)
        return 2;
    tern_queue_enter();
    struct strbuf err = STRBUF_INIT(1024);
    int rc = queue_find(id, q, &err);
    if (rc < 0)
        fprintf(stderr, "tern %s: %s: %s\n", argv[0], id, sb_str(&err));
    sb_free(&err);
    return rc < 0 ? 1 : 0;
}

/* ---- show ---- */

static int append_content(const char *data, size_t len, void *ctx)
{
    return sb_append(ctx, data, len);
}

static int read_content(const struct queued *q, struct strbuf *content)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", queue_state_dir(q->state), q->id);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = qfile_read_content(fd, q->m.content_offset, append_content, content);
    close(fd);
    return rc;
}

static void show_text(const struct queued *q, const struct strbuf *content)
{
    char when[64];
    format_time(q->m.arrival_usec / 1000000, when, sizeof(when));
    printf("*** ENVELOPE RECORDS %s/%s ***\n", queue_state_dir(q->state), q->id);
    printf("queue_id: %s\nqueue_state: %s\narrival_time: %s\nsender: %s\n", q->id,
           state_names[q->state], when, q->m.sender);
    for (size_t i = 0; i < q->m.nattrs; i++)
        printf("attribute: %s=%s\n", q->m.attr_names[i], q->m.attr_values[i]);
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        const struct qrcpt *r = &q->m.rcpts[i];
        printf("recipient: %s (%s)", r->address, r->done ? "done" : "pending");
        if (*r->orcpt)
            printf(" orcpt=%s", r->orcpt);
        if (*r->notify)
            printf(" notify=%s", r->notify);
        printf("\n");
    }
    printf("*** MESSAGE CONTENTS %s/%s ***\n", queue_state_dir(q->state), q->id);
    fwrite(content->data, 1, content->len, stdout);
    if (content->len && content->data[content->len - 1] != '\n')
        printf("\n");
    printf("*** END OF MESSAGE ***\n");
}

static void show_json(const struct queued *q, const struct strbuf *content)
{
    struct strbuf out = STRBUF_INIT(0);
    sb_appends(&out, "{\"queue_id\": ");
    json_str(&out, q->id);
    sb_appends(&out, ", \"queue_name\": ");
    json_str(&out, state_names[q->state]);
    sb_appendf(&out, ", \"arrival_time\": %lld, \"message_size\": %llu, \"sender\": ",
               q->m.arrival_usec / 1000000, q->m.content_size);
    json_str(&out, q->m.sender);
    sb_appends(&out, ", \"attributes\": {");
    for (size_t i = 0; i < q->m.nattrs; i++) {
        if (i)
            sb_appends(&out, ", ");
        json_str(&out, q->m.attr_names[i]);
        sb_appends(&out, ": ");
        json_str(&out, q->m.attr_values[i]);
    }
    sb_appends(&out, "}, \"recipients\": [");
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        const struct qrcpt *r = &q->m.rcpts[i];
        sb_appends(&out, i ? ", {\"address\": " : "{\"address\": ");
        json_str(&out, r->address);
        sb_appends(&out, ", \"orcpt\": ");
        json_str(&out, r->orcpt);
        sb_appends(&out, ", \"notify\": ");
        json_str(&out, r->notify);
        sb_appendf(&out, ", \"done\": %s}", r->done ? "true" : "false");
    }
    /* the header section ends at the first empty line */
    size_t split = content->len;
    const char *data = content->data ? content->data : "";
    if (content->len && data[0] == '\n')
        split = 0;
    const char *blank = content->len ? memmem(data, content->len, "\n\n", 2) : NULL;
    if (split != 0 && blank)
        split = (size_t)(blank - data) + 1;
    size_t body_start = split < content->len ? split + 1 : content->len;
    sb_appends(&out, "], \"headers\": ");
    json_string(&out, data, split);
    sb_appends(&out, ", \"body\": ");
    json_string(&out, data + body_start, content->len - body_start);
    sb_appends(&out, "}");
    tern_json_print(&out);
}

/* The message printed as text or JSON with its content: 0, or 1 when the
 * content cannot be read. */
static int show_message(const struct queued *q, bool json)
{
    struct strbuf content = STRBUF_INIT(0);
    int rc = 0;
    if (read_content(q, &content) < 0) {
        fprintf(stderr, "tern show: %s: cannot read its content (it was just delivered or moved?)\n",
                q->id);
        rc = 1;
    } else if (json) {
        show_json(q, &content);
    } else {
        show_text(q, &content);
    }
    sb_free(&content);
    return rc;
}

/* ---- why ---- */

struct attempt {
    long long time;
    char *status, *relay, *reason;
    bool bounced;
};

struct history {
    const struct qmessage *m;
    struct attempt **attempts;    /* per recipient */
    size_t *n;
    bool bounced_log;
};

static void note_attempt(const struct queue_log_entry *e, void *ctx)
{
    struct history *h = ctx;
    for (size_t i = 0; i < h->m->nrcpts; i++) {
        if (strcmp(h->m->rcpts[i].address, e->recipient) != 0)
            continue;
        h->attempts[i] = xrealloc(h->attempts[i], (h->n[i] + 1) * sizeof(struct attempt));
        h->attempts[i][h->n[i]++] = (struct attempt){ e->time, xstrdup(e->status), xstrdup(e->relay),
                                                     xstrdup(e->reason), h->bounced_log };
    }
}

static void history_load(struct history *h, const struct queued *q)
{
    h->m = &q->m;
    h->attempts = xcalloc(q->m.nrcpts + 1, sizeof(*h->attempts));
    h->n = xcalloc(q->m.nrcpts + 1, sizeof(*h->n));
    h->bounced_log = false;
    queue_read_log(QDIR_DEFER_LOG, q->id, note_attempt, h);
    h->bounced_log = true;
    queue_read_log(QDIR_BOUNCE_LOG, q->id, note_attempt, h);
}

static void history_free(struct history *h)
{
    for (size_t i = 0; i < h->m->nrcpts; i++) {
        for (size_t k = 0; k < h->n[i]; k++) {
            free(h->attempts[i][k].status);
            free(h->attempts[i][k].relay);
            free(h->attempts[i][k].reason);
        }
        free(h->attempts[i]);
    }
    free(h->attempts);
    free(h->n);
}

static const char *rcpt_state(const struct history *h, size_t i)
{
    if (!h->m->rcpts[i].done)
        return "pending";
    for (size_t k = 0; k < h->n[i]; k++)
        if (h->attempts[i][k].bounced)
            return "bounced";
    return "delivered";
}

/* One sentence about what happens next to the message. */
static void next_step(const struct queued *q, char *buf, size_t size)
{
    char when[64], span[32];
    long long now = now_usec() / 1000000;
    switch (q->state) {
    case QS_INCOMING:
        snprintf(buf, size, "It is waiting for the queue manager to take it up.");
        break;
    case QS_ACTIVE:
        snprintf(buf, size, "It is being delivered now.");
        break;
    case QS_HOLD:
        snprintf(buf, size, "It is on hold and will not be delivered until `tern release %s`.", q->id);
        break;
    case QS_DEFERRED:
        format_time(q->mtime, when, sizeof(when));
        format_span(q->mtime - now, span, sizeof(span));
        if (q->mtime > now)
            snprintf(buf, size, "Next delivery attempt: %s (in %s); `tern flush %s` tries now.", when,
                     span, q->id);
        else
            snprintf(buf, size, "Next delivery attempt: due since %s, at the next queue run "
                     "(queue_run_delay); `tern flush %s` tries now.", when, q->id);
        break;
    default:
        buf[0] = 0;
    }
}

static void why_text(const struct queued *q, const struct history *h)
{
    char when[64], span[32], next[512];
    long long arrival = q->m.arrival_usec / 1000000;
    format_time(arrival, when, sizeof(when));
    format_span(now_usec() / 1000000 - arrival, span, sizeof(span));
    printf("%s (%s): from <%s>, arrived %s (%s ago).\n", q->id, state_names[q->state], q->m.sender,
           when, span);
    next_step(q, next, sizeof(next));
    printf("%s\n", next);
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        printf("\n<%s>: %s", q->m.rcpts[i].address, rcpt_state(h, i));
        if (h->n[i])
            printf(", %zu attempt%s logged", h->n[i], h->n[i] == 1 ? "" : "s");
        printf("\n");
        for (size_t k = 0; k < h->n[i]; k++) {
            const struct attempt *a = &h->attempts[i][k];
            format_time(a->time, when, sizeof(when));
            printf("  %s  %s  relay=%s\n      %s\n", when, a->status, a->relay, a->reason);
        }
    }
    tern_sts_why_text(q);
}

static void why_json(const struct queued *q, const struct history *h)
{
    struct strbuf out = STRBUF_INIT(0);
    char next[512];
    sb_appends(&out, "{\"queue_id\": ");
    json_str(&out, q->id);
    sb_appends(&out, ", \"queue_name\": ");
    json_str(&out, state_names[q->state]);
    sb_appendf(&out, ", \"arrival_time\": %lld", q->m.arrival_usec / 1000000);
    if (q->state == QS_DEFERRED)
        sb_appendf(&out, ", \"next_attempt\": %lld", (long long)q->mtime);
    next_step(q, next, sizeof(next));
    sb_appends(&out, ", \"next_step\": ");
    json_str(&out, next);
    sb_appends(&out, ", \"sender\": ");
    json_str(&out, q->m.sender);
    sb_appends(&out, ", \"recipients\": [");
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        sb_appends(&out, i ? ", {\"address\": " : "{\"address\": ");
        json_str(&out, q->m.rcpts[i].address);
        sb_appends(&out, ", \"state\": ");
        json_str(&out, rcpt_state(h, i));
        sb_appends(&out, ", \"attempts\": [");
        for (size_t k = 0; k < h->n[i]; k++) {
            const struct attempt *a = &h->attempts[i][k];
            sb_appendf(&out, "%s{\"time\": %lld, \"status\": ", k ? ", " : "", a->time);
            json_str(&out, a->status);
            sb_appends(&out, ", \"relay\": ");
            json_str(&out, a->relay);
            sb_appends(&out, ", \"reason\": ");
            json_str(&out, a->reason);
            sb_appendc(&out, '}');
        }
        sb_appends(&out, "]}");
    }
    sb_appendc(&out, ']');
    tern_sts_why_json(q, &out);
    sb_appendc(&out, '}');
    tern_json_print(&out);
}

/* The message's state and each recipient's attempts, as text or JSON. */
static int why_message(const struct queued *q, bool json)
{
    struct history h;
    history_load(&h, q);
    if (json)
        why_json(q, &h);
    else
        why_text(q, &h);
    history_free(&h);
    return 0;
}

/* ---- the commands ---- */

/* show and why take the same arguments and find the message the same way;
 * they differ in what they print. gone_note, when not NULL, follows the
 * error when there is no such message. */
static int named_command(int argc, char **argv, const char *usage, const char *gone_note,
                         int (*print)(const struct queued *q, bool json))
{
    if (tern_help(argc, argv, usage))
        return 0;
    bool json;
    struct queued q;
    int status = load_named(argc, argv, &json, &q);
    if (status == 1 && gone_note)
        fputs(gone_note, stderr);
    if (status)
        return status;
    int rc = print(&q, json);
    queued_free(&q);
    return rc;
}

int tern_cmd_show(int argc, char **argv)
{
    return named_command(argc, argv, show_usage, NULL, show_message);
}

int tern_cmd_why(int argc, char **argv)
{
    return named_command(argc, argv, why_usage, why_gone_note, why_message);
}
