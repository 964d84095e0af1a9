/* console_queue.c: the queue pages: the messages (filtered as `tern
 * queue --sender/--recipient/--domain/--state` filters them, and by
 * the start of their queue ID, with
 * lib/global/queue_scan.h), one message with its envelope, delivery log
 * and the start of its content, and the actions hold, release, delete,
 * requeue and flush, done by lib/global/queue_admin.h as `tern hold` and
 * the others do them. Every address, reason and header shown comes from
 * mail and is escaped. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "http_form.h"
#include "log.h"
#include "queue.h"
#include "queue_admin.h"
#include "queue_flush.h"
#include "queue_scan.h"

#define LIST_MAX 500                 /* messages listed on one page */
#define CONTENT_SHOWN (32 * 1024)    /* bytes of a message's content shown */

static const char *const actions[] = { "hold", "release", "requeue", "flush", "delete" };

static void time_text(char *buf, size_t size, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void action_buttons(struct console_reply *rep, const struct console_request *req, const char *id)
{
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        console_action_button(rep, req, "/queue/action", actions[i], id);
}

struct listing {
    struct queue_filter filter;
    const char *id;                  /* a queue ID or the start of one, "" for any */
    const struct console_request *req;
    struct console_reply *rep;
    size_t shown, matched;
};

static int list_one(struct queued *q, void *ctx)
{
    struct listing *l = ctx;
    if (!queue_filter_match(&l->filter, q) || strncmp(q->id, l->id, strlen(l->id)) != 0)
        return 0;
    if (++l->matched > LIST_MAX)
        return 0;
    struct strbuf *b = &l->rep->body;
    char when[64];
    time_text(when, sizeof(when), (time_t)(q->m.arrival_usec / 1000000));
    sb_appendf(b, "<tr id=\"msg-%s\"><td><a href=\"/queue/show?id=%s\">%s</a></td><td class=\"state\">%s</td>"
                  "<td>%s</td><td class=\"n\">%llu</td><td class=\"sender\">",
               q->id, q->id, q->id, queue_state_name(q->state), when, q->m.content_size);
    html_escape(b, q->m.sender && *q->m.sender ? q->m.sender : "<>");
    sb_appends(b, "</td><td>");
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        if (i)
            sb_appends(b, "<br>");
        html_escape(b, q->m.rcpts[i].address);
        if (q->m.rcpts[i].done)
            sb_appends(b, " (done)");
    }
    sb_appends(b, "</td><td>");
    action_buttons(l->rep, l->req, q->id);
    sb_appends(b, "</td></tr>\n");
    l->shown++;
    return 0;
}

static void filter_field(struct strbuf *b, const char *name, const char *label, const char *value)
{
    sb_appendf(b, "<label>%s <input name=\"%s\" id=\"filter-%s\" value=\"", label, name, name);
    html_escape(b, value);
    sb_appends(b, "\"></label>\n");
}

static void queue_list(const struct console_request *req, struct console_reply *rep, const char *notice,
                       bool notice_is_error)
{
    struct strbuf sender = STRBUF_INIT(1024), rcpt = STRBUF_INIT(1024), domain = STRBUF_INIT(1024),
                  state = STRBUF_INIT(64), id = STRBUF_INIT(64);
    console_query(req, "id", &id);
    console_query(req, "sender", &sender);
    console_query(req, "recipient", &rcpt);
    console_query(req, "domain", &domain);
    console_query(req, "state", &state);
    struct strbuf *b = &rep->body;
    console_page_begin(rep, req, "Queue");
    if (notice)
        console_notice(b, notice, notice_is_error);
    sb_appends(b, "<form method=\"get\" action=\"/queue\">\n");
    filter_field(b, "id", "Queue ID", sb_str(&id));
    filter_field(b, "sender", "Sender", sb_str(&sender));
    filter_field(b, "recipient", "Recipient", sb_str(&rcpt));
    filter_field(b, "domain", "Domain", sb_str(&domain));
    sb_appends(b, "<label>State <select name=\"state\" id=\"filter-state\"><option value=\"\">any</option>");
    for (int s = 0; s < QS_COUNT; s++)
        sb_appendf(b, "<option%s>%s</option>", strcmp(sb_str(&state), queue_state_name(s)) == 0 ? " selected" : "",
                   queue_state_name(s));
    sb_appends(b, "</select></label>\n<button type=\"submit\" id=\"search\">Search</button></form>\n");
    struct listing l = {
        .filter = { .sender = sender.len ? sb_str(&sender) : NULL, .recipient = rcpt.len ? sb_str(&rcpt) : NULL,
                    .domain = domain.len ? sb_str(&domain) : NULL,
                    .state = state.len ? queue_state_parse(sb_str(&state)) : -1 },
        .id = sb_str(&id), .req = req, .rep = rep,
    };
    sb_appends(b, "<table id=\"queue\"><tr><th>ID</th><th>state</th><th>arrival</th><th>size</th>"
                  "<th>sender</th><th>recipients</th><th>actions</th></tr>\n");
    if (l.filter.state >= 0 || !state.len)
        queue_walk(list_one, &l);
    sb_appends(b, "</table>\n");
    sb_appendf(b, "<p id=\"queue-count\">%zu message%s", l.matched, l.matched == 1 ? "" : "s");
    if (l.matched > l.shown)
        sb_appendf(b, " (the first %zu shown)", l.shown);
    sb_appends(b, "</p>\n");
    console_page_end(rep);
    sb_free(&sender);
    sb_free(&rcpt);
    sb_free(&domain);
    sb_free(&state);
    sb_free(&id);
}

void console_queue_page(const struct console_request *req, struct console_reply *rep)
{
    queue_list(req, rep, NULL, false);
}

/* ---- one message ---- */

static void log_entry(const struct queue_log_entry *e, void *ctx)
{
    struct strbuf *b = ctx;
    char when[64];
    time_text(when, sizeof(when), (time_t)e->time);
    sb_appendf(b, "<tr><td>%s</td><td>", when);
    html_escape(b, e->recipient ? e->recipient : "");
    sb_appends(b, "</td><td>");
    html_escape(b, e->status ? e->status : "");
    sb_appends(b, "</td><td>");
    html_escape(b, e->relay ? e->relay : "");
    sb_appends(b, "</td><td>");
    html_escape(b, e->reason ? e->reason : "");
    sb_appends(b, "</td></tr>\n");
}

static int take_content(const char *data, size_t len, void *ctx)
{
    struct strbuf *c = ctx;
    size_t room = CONTENT_SHOWN - c->len;
    sb_append(c, data, len < room ? len : room);
    return c->len >= CONTENT_SHOWN;
}

static void show_content(struct strbuf *b, const struct queued *q)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", queue_state_dir(q->state), q->id);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct strbuf content = STRBUF_INIT(CONTENT_SHOWN + 1);
    if (fd >= 0) {
        qfile_read_content(fd, q->m.content_offset, take_content, &content);
        close(fd);
    }
    sb_appends(b, "<h2>Content (the start)</h2>\n<pre id=\"content\">");
    html_escape(b, sb_str(&content));
    sb_appends(b, "</pre>\n");
    sb_free(&content);
}

void console_queue_show(const struct console_request *req, struct console_reply *rep)
{
    struct strbuf id = STRBUF_INIT(64), err = STRBUF_INIT(1024);
    console_query(req, "id", &id);
    struct queued q;
    if (!queue_id_valid(sb_str(&id)) || queue_find(sb_str(&id), &q, &err) < 0) {
        console_error_page(rep, req, 404, "No such message in the queue (delivered, deleted, or a wrong ID).");
        sb_free(&id);
        sb_free(&err);
        return;
    }
    struct strbuf *b = &rep->body;
    console_page_begin(rep, req, "Message");
    char when[64];
    time_text(when, sizeof(when), (time_t)(q.m.arrival_usec / 1000000));
    sb_appendf(b, "<table id=\"envelope\"><tr><th>ID</th><td>%s</td></tr><tr><th>state</th><td id=\"state\">%s</td></tr>"
                  "<tr><th>arrival</th><td>%s</td></tr><tr><th>size</th><td>%llu</td></tr><tr><th>sender</th><td id=\"sender\">",
               q.id, queue_state_name(q.state), when, q.m.content_size);
    html_escape(b, q.m.sender && *q.m.sender ? q.m.sender : "<>");
    sb_appends(b, "</td></tr>\n");
    for (size_t i = 0; i < q.m.nrcpts; i++) {
        sb_appends(b, "<tr><th>recipient</th><td>");
        html_escape(b, q.m.rcpts[i].address);
        sb_appends(b, q.m.rcpts[i].done ? " (done)</td></tr>\n" : "</td></tr>\n");
    }
    sb_appends(b, "</table>\n<p>");
    action_buttons(rep, req, q.id);
    sb_appends(b, "</p>\n<h2>Delivery attempts</h2>\n<table><tr><th>time</th><th>recipient</th><th>status</th>"
                  "<th>relay</th><th>reason</th></tr>\n");
    queue_read_log(QDIR_DEFER_LOG, q.id, log_entry, b);
    queue_read_log(QDIR_BOUNCE_LOG, q.id, log_entry, b);
    sb_appends(b, "</table>\n");
    show_content(b, &q);
    console_page_end(rep);
    queued_free(&q);
    sb_free(&id);
    sb_free(&err);
}

/* ---- actions ---- */

static void say_into(void *ctx, bool err, const char *text)
{
    struct strbuf *b = ctx;
    sb_appendf(b, "%s%s\n", err ? "error: " : "", text);
}

static void log_action(const char *text)
{
    msg_info("%s", text);
}

void console_queue_action(const struct console_request *req, struct console_reply *rep)
{
    struct strbuf op = STRBUF_INIT(64), id = STRBUF_INIT(64), said = STRBUF_INIT(64 * 1024);
    console_field(req, "op", &op);
    console_field(req, "id", &id);
    int which = queue_admin_op_parse(sb_str(&op));
    if (which < 0 || !queue_id_valid(sb_str(&id))) {
        console_error_page(rep, req, 400, "Unknown action or malformed queue ID.");
    } else {
        struct queue_admin_run r = { .op = which, .running = true, .say = say_into, .log = log_action,
                                     .ctx = &said };
        msg_info("console: %s (%s) asks to %s %s", req->session->user, req->client, sb_str(&op), sb_str(&id));
        queue_admin_act(&r, sb_str(&id));
        if (r.wake_incoming)
            (void)queue_wake_qmgr("incoming");
        if (r.wake_deferred || which == QA_FLUSH)
            (void)queue_wake_qmgr("deferred");
        if (r.changed)
            sb_appendf(&said, "%s: %s done%s\n", sb_str(&id), sb_str(&op),
                       r.later ? " (when the delivery under way ends)" : "");
        queue_list(req, rep, sb_str(&said), r.failed > 0);
    }
    sb_free(&op);
    sb_free(&id);
    sb_free(&said);
}
