/* console_log.c: the log page: the lines of Tern's mail log (read with
 * lib/global/maillog.h, as `tern report` reads it) that match a queue
 * ID, an address and a client, the newest LINES_SHOWN of them. The log
 * holds what peers sent (addresses, replies, host names): every line is
 * escaped. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "console.h"
#include "console_stats.h"
#include "http_form.h"
#include "maillog.h"
#include "util.h"

#define LINES_SHOWN 500
#define LOG_READ_MAX (64LL * 1024 * 1024)     /* the newest; read while the loop waits */

struct wanted {
    const char *id, *address, *client;
};

static bool matches(const struct wanted *w, const struct maillog_line *l)
{
    if (*w->id && (strncmp(l->text, w->id, strlen(w->id)) != 0 || l->text[strlen(w->id)] != ':'))
        return false;
    if (*w->address && !strcasestr(l->text, w->address))
        return false;
    if (*w->client && !strcasestr(l->text, w->client))
        return false;
    return true;
}

static void filter_field(struct strbuf *b, const char *name, const char *label, const char *value)
{
    sb_appendf(b, "<label>%s <input name=\"%s\" id=\"log-%s\" value=\"", label, name, name);
    html_escape(b, value);
    sb_appends(b, "\"></label>\n");
}

void console_log_page(const struct console_request *req, struct console_reply *rep)
{
    struct strbuf id = STRBUF_INIT(64), address = STRBUF_INIT(1024), client = STRBUF_INIT(1024),
                  err = STRBUF_INIT(1024);
    console_query(req, "id", &id);
    console_query(req, "address", &address);
    console_query(req, "client", &client);
    struct wanted w = { sb_str(&id), sb_str(&address), sb_str(&client) };
    struct strbuf *b = &rep->body;
    console_page_begin(rep, req, "Log");
    sb_appends(b, "<form method=\"get\" action=\"/log\">\n");
    filter_field(b, "id", "Queue ID", w.id);
    filter_field(b, "address", "Address", w.address);
    filter_field(b, "client", "Client", w.client);
    sb_appends(b, "<button type=\"submit\" id=\"log-search\">Search</button></form>\n");
    char **ring = xcalloc(LINES_SHOWN, sizeof(*ring));
    size_t total = 0;
    const char *file = console_log_file();
    struct maillog_reader *r = maillog_open_tail(file, (unsigned long long)LOG_READ_MAX, &err);
    if (r) {
        struct maillog_clock clock;
        maillog_clock_init(&clock, time(NULL));
        const char *syslog_name = cfg_str(P_syslog_name);
        char *line;
        size_t len;
        while (maillog_offset(r) < (unsigned long long)LOG_READ_MAX && maillog_next(r, &line, &len, &err) == 1) {
            char *copy = xstrdup(line);
            struct maillog_line l;
            if (maillog_split(line, syslog_name, &clock, &l) == 1 && matches(&w, &l)) {
                free(ring[total % LINES_SHOWN]);
                ring[total++ % LINES_SHOWN] = copy;
            } else {
                free(copy);
            }
        }
        maillog_close(r);
    } else {
        sb_appends(b, "<p class=\"error\">");
        html_escape(b, sb_str(&err));
        sb_appends(b, "</p>\n");
    }
    sb_appendf(b, "<p id=\"log-count\">%zu matching line%s in ", total, total == 1 ? "" : "s");
    html_escape(b, file);
    if (total > LINES_SHOWN)
        sb_appendf(b, " (the last %d shown)", LINES_SHOWN);
    sb_appends(b, "</p>\n<pre id=\"log\">");
    size_t start = total > LINES_SHOWN ? total - LINES_SHOWN : 0;
    for (size_t i = start; i < total; i++) {
        html_escape(b, ring[i % LINES_SHOWN]);
        sb_appendc(b, '\n');
    }
    sb_appends(b, "</pre>\n");
    console_page_end(rep);
    for (size_t i = 0; i < LINES_SHOWN; i++)
        free(ring[i]);
    free(ring);
    sb_free(&id);
    sb_free(&address);
    sb_free(&client);
    sb_free(&err);
}
