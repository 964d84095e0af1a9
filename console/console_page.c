/* console_page.c: the frame of every console page (one style sheet in
 * the page, no script, nothing fetched from elsewhere), forms with their
 * CSRF field, redirects and error pages, and the fields of a request.
 * Every value that did not come from this file is HTML-escaped. */
#include <string.h>

#include "console.h"
#include "http_form.h"

static const char style[] =
    "body{font-family:sans-serif;margin:0;color:#222;background:#f6f7f9}"
    "header{background:#234;color:#fff;padding:.5em 1em;display:flex;gap:1.5em;align-items:center}"
    "header a{color:#cde;text-decoration:none}header form{margin:0 0 0 auto}"
    "main{padding:1em 2em}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}"
    "table{border-collapse:collapse;background:#fff;margin:.5em 0}"
    "td,th{border:1px solid #ccd;padding:.2em .6em;text-align:left;font-size:.9em}"
    "td.n{text-align:right}.error{color:#a00;font-weight:bold}.note{color:#555}"
    ".grid{display:flex;flex-wrap:wrap;gap:1.5em}.grid section{min-width:18em}"
    "form.login{display:flex;flex-direction:column;gap:.6em;max-width:20em}"
    "svg{background:#fff;border:1px solid #ccd}pre{white-space:pre-wrap;word-break:break-all}"
    "form.inline{display:inline}";

void console_page_begin(struct console_reply *rep, const struct console_request *req, const char *title)
{
    struct strbuf *b = &rep->body;
    sb_appends(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width\">");
    if (rep->refresh_seconds > 0)
        sb_appendf(b, "<meta http-equiv=\"refresh\" content=\"%d\">", rep->refresh_seconds);
    sb_appends(b, "<title>");
    html_escape(b, title);
    sb_appendf(b, " - Tern</title><style>%s</style></head>\n<body><header><strong>Tern</strong>\n", style);
    if (req->session) {
        console_nav(b, req->session);
        console_form_begin(rep, req, "/logout");
        sb_appends(b, "<span>");
        html_escape(b, req->session->user);
        sb_appends(b, "</span> <button type=\"submit\" id=\"logout\">Log out</button></form>\n");
    }
    sb_appends(b, "</header>\n<main>\n<h1>");
    html_escape(b, title);
    sb_appends(b, "</h1>\n");
}

void console_page_end(struct console_reply *rep)
{
    sb_appends(&rep->body, "</main></body></html>\n");
}

void console_form_begin(struct console_reply *rep, const struct console_request *req, const char *action)
{
    sb_appends(&rep->body, "<form method=\"post\" class=\"inline\" action=\"");
    html_escape(&rep->body, action);
    sb_appends(&rep->body, "\"><input type=\"hidden\" name=\"csrf\" value=\"");
    if (req->session)
        html_escape(&rep->body, req->session->csrf);
    sb_appends(&rep->body, "\">");
}

void console_action_button(struct console_reply *rep, const struct console_request *req, const char *action,
                           const char *op, const char *id)
{
    struct strbuf *b = &rep->body;
    console_form_begin(rep, req, action);
    sb_appends(b, "<input type=\"hidden\" name=\"op\" value=\"");
    html_escape(b, op);
    sb_appends(b, "\"><input type=\"hidden\" name=\"id\" value=\"");
    html_escape(b, id);
    sb_appends(b, "\"><button type=\"submit\" id=\"");
    html_escape(b, op);
    sb_appendc(b, '-');
    html_escape(b, id);
    sb_appends(b, "\">");
    html_escape(b, op);
    sb_appends(b, "</button></form>\n");
}

void console_notice(struct strbuf *out, const char *text, bool is_error)
{
    sb_appendf(out, "<pre class=\"%s\" id=\"notice\">", is_error ? "error" : "note");
    html_escape(out, text);
    sb_appends(out, "</pre>\n");
}

void console_redirect(struct console_reply *rep, const char *location)
{
    rep->status = 303;
    rep->type = "text/plain; charset=utf-8";
    sb_appendf(&rep->headers, "Location: %s\r\n", location);
    sb_appendf(&rep->body, "See %s\n", location);
}

void console_error_page(struct console_reply *rep, const struct console_request *req, int status,
                        const char *text)
{
    sb_reset(&rep->body);
    rep->status = status;
    rep->type = "text/html; charset=utf-8";
    console_page_begin(rep, req, http_status_text(status));
    sb_appends(&rep->body, "<p class=\"error\" id=\"error\">");
    html_escape(&rep->body, text);
    sb_appends(&rep->body, "</p>\n");
    console_page_end(rep);
}

void console_query(const struct console_request *req, const char *name, struct strbuf *out)
{
    const char *q = req->http->query;
    http_form_value(q, strlen(q), name, out);
}

void console_field(const struct console_request *req, const char *name, struct strbuf *out)
{
    http_form_value(req->body ? req->body : "", req->body ? req->body_len : 0, name, out);
}

void console_count_table(struct strbuf *out, const char *what, const char *const *labels,
                         const long long *counts, size_t n)
{
    sb_appends(out, "<table><tr><th>");
    html_escape(out, what);
    sb_appends(out, "</th><th>count</th></tr>\n");
    if (n == 0)
        sb_appends(out, "<tr><td colspan=\"2\" class=\"note\">none</td></tr>\n");
    for (size_t i = 0; i < n; i++) {
        sb_appends(out, "<tr><td>");
        html_escape(out, labels[i]);
        sb_appendf(out, "</td><td class=\"n\">%lld</td></tr>\n", counts[i]);
    }
    sb_appends(out, "</table>\n");
}
