/* console_quarantine.c: the quarantine pages (lib/global/quarantine.h,
 * which `tern quarantine` calls too): a user sees, shows, releases and
 * deletes the quarantined mail addressed to their own address, an
 * administrator every quarantined message. A login's address is the login
 * itself when it is an address, else login@$mydomain
 * (console_user_address). A user who names a message that is not theirs
 * gets the same 404 as for one that does not exist: the pages never tell
 * whether another user's mail is there. Sender, subject, reason and
 * headers come from mail and are escaped (and made printable first). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "console.h"
#include "http_form.h"
#include "log.h"
#include "quarantine.h"
#include "queue_scan.h"
#include "user_lists.h"
#include "util.h"

#define LIST_MAX 500                 /* messages listed on one page */
#define SUMMARY_MAX 10               /* messages on the home page */
#define HEADER_SHOWN (16 * 1024)     /* bytes of the header section shown */
#define BODY_SHOWN (8 * 1024)        /* bytes of the body shown */
#define NO_SUCH "No such message in the quarantine (released, deleted, or a wrong ID)."

bool console_user_address(const struct console_session *s, char *out, size_t size)
{
    struct strbuf err = STRBUF_INIT(1024);
    char addr[USER_LISTS_ADDRESS_MAX + 2];
    const char *domain = cfg_str(P_mydomain);
    int n = strchr(s->user, '@') ? snprintf(addr, sizeof(addr), "%s", s->user)
                                 : snprintf(addr, sizeof(addr), "%s@%s", s->user, domain);
    bool ok = n > 0 && (size_t)n < sizeof(addr) && (strchr(s->user, '@') || *domain)
              && user_lists_check_user(addr, &err) == 0 && strlen(addr) < size;
    sb_free(&err);
    if (ok)
        str_copy(out, size, addr);
    else if (size)
        out[0] = 0;
    return ok;
}

static void time_text(char *buf, size_t size, long long t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M UTC", &tm);
}

/* Escaped text of mail (a sender, a reason), made printable first. */
static void mail_text(struct strbuf *b, const char *s, size_t max)
{
    struct strbuf p = STRBUF_INIT(4 * max + 16);
    quarantine_printable(&p, s, strlen(s), max, false);
    html_escape(b, sb_str(&p));
    sb_free(&p);
}

/* What came from mail: the sender, then the subject, then the reason,
 * escaped, with the markup between them. */
static void mail_fields(struct strbuf *b, const struct quarantine_entry *e, const char *before_subject,
                        const char *before_reason)
{
    mail_text(b, *e->sender ? e->sender : "<>", 320);
    sb_appends(b, before_subject);
    html_escape(b, e->subject);
    sb_appends(b, before_reason);
    mail_text(b, e->reason ? e->reason : "", 500);
}

static void action_forms(struct console_reply *rep, const struct console_request *req, const char *id)
{
    console_action_button(rep, req, "/quarantine/action", "release", id);
    console_action_button(rep, req, "/quarantine/action", "delete", id);
}

struct listing {
    const struct console_request *req;
    struct console_reply *rep;
    size_t shown, max;
    bool actions;
};

static int list_one(const struct quarantine_entry *e, void *ctx)
{
    struct listing *l = ctx;
    if (l->shown >= l->max)
        return 0;
    struct strbuf *b = &l->rep->body;
    char when[64];
    time_text(when, sizeof(when), e->arrival);
    sb_appendf(b, "<tr id=\"q-%s\"><td><a href=\"/quarantine/show?id=%s\">%s</a></td><td>%s</td>"
                  "<td class=\"sender\">",
               e->id, e->id, e->id, when);
    mail_fields(b, e, "</td><td class=\"subject\">", "</td><td class=\"reason\">");
    sb_appends(b, "</td><td>");
    for (size_t i = 0; i < e->nrcpts; i++) {
        if (i)
            sb_appends(b, "<br>");
        mail_text(b, e->rcpts[i], 320);
    }
    if (e->nall > e->nrcpts)
        sb_appendf(b, "<br><span class=\"note\">and %zu other%s</span>", e->nall - e->nrcpts,
                   e->nall - e->nrcpts == 1 ? "" : "s");
    sb_appendf(b, "</td><td class=\"n\">%llu</td>", e->size);
    if (l->actions) {
        sb_appends(b, "<td>");
        action_forms(l->rep, l->req, e->id);
        sb_appends(b, "</td>");
    }
    sb_appends(b, "</tr>\n");
    l->shown++;
    return 0;
}

static void table_head(struct strbuf *b, bool actions)
{
    sb_appendf(b, "<table id=\"quarantine\"><tr><th>ID</th><th>arrival</th><th>sender</th><th>subject</th>"
                  "<th>reason</th><th>recipients</th><th>size</th>%s</tr>\n",
               actions ? "<th>actions</th>" : "");
}

/* Whose quarantine the page shows: NULL for an administrator's view of
 * all, else the user's address in addr. false: the login has no address
 * (and the page says so). */
static bool whose(const struct console_request *req, struct console_reply *rep, char *addr, size_t size,
                  const char **recipient)
{
    *recipient = NULL;
    if (req->session->admin)
        return true;
    if (!console_user_address(req->session, addr, size)) {
        console_error_page(rep, req, 403, "Your login name is not a mail address and mydomain is not set: "
                                          "the console cannot tell which mail is yours.");
        return false;
    }
    *recipient = addr;
    return true;
}

/* An administrator's search by recipient: the form, and in addr the
 * address asked for ("" for every message). */
static void admin_filter(const struct console_request *req, struct strbuf *b, char *addr, size_t size)
{
    struct strbuf given = STRBUF_INIT(1024), err = STRBUF_INIT(1024);
    console_query(req, "recipient", &given);
    addr[0] = 0;
    if (given.len && given.len < size) {
        str_copy(addr, size, sb_str(&given));
        if (user_lists_check_user(addr, &err) < 0)
            addr[0] = 0;
    }
    sb_appends(b, "<form method=\"get\" action=\"/quarantine\"><label>Recipient <input name=\"recipient\" "
                  "id=\"filter-recipient\" value=\"");
    html_escape(b, sb_str(&given));
    sb_appends(b, "\"></label> <button type=\"submit\" id=\"search\">Search</button></form>\n");
    if (given.len && !*addr)
        console_notice(b, "Not an address: every message is shown.", true);
    sb_free(&given);
    sb_free(&err);
}

static void quarantine_list_page(const struct console_request *req, struct console_reply *rep,
                                 const char *notice, bool notice_is_error)
{
    char addr[USER_LISTS_ADDRESS_MAX + 1];
    const char *recipient;
    if (!whose(req, rep, addr, sizeof(addr), &recipient))
        return;
    struct strbuf *b = &rep->body;
    console_page_begin(rep, req, "Quarantine");
    if (notice_is_error)
        rep->status = 400;
    if (notice)
        console_notice(b, notice, notice_is_error);
    sb_appends(b, "<p class=\"note\" id=\"quarantine-whose\">");
    if (recipient) {
        sb_appends(b, "Mail to ");
        html_escape(b, recipient);
        sb_appends(b, " that the content checks held. Release a message to have it delivered, or "
                      "delete it.</p>\n");
    } else {
        sb_appends(b, "Every quarantined message (you are an administrator): a release or a delete acts "
                      "on the whole message, for all its recipients.</p>\n");
        admin_filter(req, b, addr, sizeof(addr));
        if (*addr)
            recipient = addr;
    }
    table_head(b, true);
    struct listing l = { .req = req, .rep = rep, .max = LIST_MAX, .actions = true };
    size_t n = quarantine_list(recipient, list_one, &l);
    sb_appends(b, "</table>\n");
    sb_appendf(b, "<p id=\"quarantine-count\">%zu message%s", n, n == 1 ? "" : "s");
    if (n > l.shown)
        sb_appendf(b, " (the first %zu shown)", l.shown);
    sb_appends(b, "</p>\n");
    console_page_end(rep);
}

void console_quarantine_page(const struct console_request *req, struct console_reply *rep)
{
    quarantine_list_page(req, rep, NULL, false);
}

/* ---- one message ---- */

static int show_entry(const struct quarantine_entry *e, void *ctx)
{
    struct strbuf *b = ctx;
    char when[64];
    time_text(when, sizeof(when), e->arrival);
    sb_appendf(b, "<table id=\"envelope\"><tr><th>ID</th><td>%s</td></tr><tr><th>arrival</th><td>%s</td></tr>"
                  "<tr><th>size</th><td>%llu</td></tr><tr><th>sender</th><td id=\"sender\">",
               e->id, when, e->size);
    mail_fields(b, e, "</td></tr>\n<tr><th>subject</th><td id=\"subject\">",
                "</td></tr>\n<tr><th>reason</th><td id=\"reason\">");
    sb_appends(b, "</td></tr>\n");
    for (size_t i = 0; i < e->nrcpts; i++) {
        sb_appends(b, "<tr><th>recipient</th><td>");
        mail_text(b, e->rcpts[i], 320);
        sb_appends(b, "</td></tr>\n");
    }
    sb_appends(b, "</table>\n");
    return 0;
}

struct body_reader {
    struct strbuf *text;
    size_t limit;
};

static int take_content(const char *data, size_t len, void *ctx)
{
    struct body_reader *r = ctx;
    size_t room = r->limit - r->text->len;
    sb_append(r->text, data, len < room ? len : room);
    return r->text->len >= r->limit;
}

/* The start of the body of hold/ID (after the header section), printable. */
static void body_preview(struct strbuf *b, const char *id)
{
    struct queued q;
    struct strbuf err = STRBUF_INIT(1024), content = STRBUF_INIT(QUARANTINE_HEADER_SCAN + BODY_SHOWN + 1),
                  shown = STRBUF_INIT(4 * BODY_SHOWN + 16);
    if (queue_find(id, &q, &err) == 0) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", queue_state_dir(q.state), q.id);
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            struct body_reader r = { &content, QUARANTINE_HEADER_SCAN + BODY_SHOWN };
            (void)qfile_read_content(fd, q.m.content_offset, take_content, &r);
            close(fd);
        }
        queued_free(&q);
    }
    const char *s = sb_str(&content), *end = s + content.len, *start = NULL;
    for (const char *p = s; p < end && !start; p++)
        if (*p == '\n' && (p == s || p[-1] == '\n' || (p[-1] == '\r' && p - 1 > s && p[-2] == '\n')))
            start = p + 1;
    if (start)
        quarantine_printable(&shown, start, (size_t)(end - start), BODY_SHOWN, true);
    sb_appends(b, "<h2>Text (the start)</h2>\n<pre id=\"body\">");
    html_escape(b, sb_str(&shown));
    if (start && (size_t)(end - start) > BODY_SHOWN)
        sb_appends(b, "\n...");
    sb_appends(b, "</pre>\n");
    sb_free(&err);
    sb_free(&content);
    sb_free(&shown);
}

/* The page of message id, when recipient (NULL: an administrator) may see it. */
static void show_message(const struct console_request *req, struct console_reply *rep, const char *recipient,
                         const struct strbuf *id)
{
    struct strbuf err = STRBUF_INIT(1024), header = STRBUF_INIT(4 * QUARANTINE_HEADER_SCAN),
                  env = STRBUF_INIT(64 * 1024);
    if (!queue_id_valid(sb_str(id))
        || quarantine_show(sb_str(id), recipient, show_entry, &env, &header, &err) < 0) {
        console_error_page(rep, req, 404, NO_SUCH);
    } else {
        struct strbuf *b = &rep->body;
        console_page_begin(rep, req, "Quarantined message");
        sb_append(b, env.data, env.len);
        sb_appends(b, "<p>");
        action_forms(rep, req, sb_str(id));
        sb_appends(b, "</p>\n<h2>Header</h2>\n<pre id=\"header\">");
        struct strbuf cut = STRBUF_INIT(4 * HEADER_SHOWN + 16);
        size_t used = quarantine_printable(&cut, header.data ? header.data : "", header.len, HEADER_SHOWN, true);
        html_escape(b, sb_str(&cut));
        if (used < header.len)
            sb_appends(b, "\n...");
        sb_free(&cut);
        sb_appends(b, "</pre>\n");
        body_preview(b, sb_str(id));
        console_page_end(rep);
    }
    sb_free(&err);
    sb_free(&header);
    sb_free(&env);
}

void console_quarantine_show(const struct console_request *req, struct console_reply *rep)
{
    char addr[USER_LISTS_ADDRESS_MAX + 1];
    const char *recipient;
    struct strbuf id = STRBUF_INIT(64);
    console_query(req, "id", &id);
    if (whose(req, rep, addr, sizeof(addr), &recipient))
        show_message(req, rep, recipient, &id);
    sb_free(&id);
}

/* ---- actions ---- */

void console_quarantine_action(const struct console_request *req, struct console_reply *rep)
{
    char addr[USER_LISTS_ADDRESS_MAX + 1];
    const char *recipient;
    if (!whose(req, rep, addr, sizeof(addr), &recipient))
        return;
    struct strbuf op = STRBUF_INIT(64), id = STRBUF_INIT(64), err = STRBUF_INIT(4096),
                  said = STRBUF_INIT(4096);
    console_field(req, "op", &op);
    console_field(req, "id", &id);
    bool release = strcmp(sb_str(&op), "release") == 0;
    if (!release && strcmp(sb_str(&op), "delete") != 0) {
        console_error_page(rep, req, 400, "Unknown action: release or delete.");
    } else if (!queue_id_valid(sb_str(&id))) {
        console_error_page(rep, req, 404, NO_SUCH);
    } else {
        msg_info("console: %s (%s) asks to %s %s from the quarantine", req->session->user, req->client,
                 sb_str(&op), sb_str(&id));
        int rc = release ? quarantine_release(sb_str(&id), recipient, &err)
                         : quarantine_delete(sb_str(&id), recipient, &err);
        if (rc < 0 && recipient) {
            /* not there and not theirs look the same to a user */
            console_error_page(rep, req, 404, NO_SUCH);
        } else {
            sb_appendf(&said, "%s: %s", sb_str(&id), sb_str(&err));
            quarantine_list_page(req, rep, sb_str(&said), rc < 0);
        }
    }
    sb_free(&op);
    sb_free(&id);
    sb_free(&err);
    sb_free(&said);
}

/* ---- summaries ---- */

static int count_one(const struct quarantine_entry *e, void *ctx)
{
    return 0;
}

void console_quarantine_summary(struct strbuf *b, const struct console_request *req, bool list)
{
    char addr[USER_LISTS_ADDRESS_MAX + 1];
    bool mine = console_user_address(req->session, addr, sizeof(addr));
    sb_appends(b, "<section id=\"quarantine-summary\"><h2>Quarantine</h2>\n");
    if (req->session->admin) {
        size_t all = quarantine_list(NULL, count_one, NULL);
        sb_appendf(b, "<p><a href=\"/quarantine\"><span id=\"quarantine-total\">%zu</span> message%s</a> "
                      "in the quarantine in all</p>\n", all, all == 1 ? "" : "s");
    }
    if (!mine) {
        sb_appends(b, "</section>\n");
        return;
    }
    /* the rows go to a reply of their own: the count comes first */
    struct console_reply shadow = { .body = STRBUF_INIT(CONSOLE_PAGE_LIMIT / 4) };
    struct listing l = { .req = req, .rep = &shadow, .max = SUMMARY_MAX };
    size_t n = quarantine_list(addr, list ? list_one : count_one, &l);
    sb_appendf(b, "<p><a href=\"/quarantine\"><span id=\"quarantine-mine\">%zu</span> message%s</a> to ", n,
               n == 1 ? "" : "s");
    html_escape(b, addr);
    sb_appendf(b, " wait%s in the quarantine</p>\n", n == 1 ? "s" : "");
    if (list && n > 0) {
        table_head(b, false);
        sb_append(b, shadow.body.data, shadow.body.len);
        sb_appends(b, "</table>\n");
        if (n > l.shown)
            sb_appendf(b, "<p class=\"note\">the first %zu shown</p>\n", l.shown);
    }
    sb_free(&shadow.body);
    sb_appends(b, "</section>\n");
}
