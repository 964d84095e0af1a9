/* console_routes.c: the one table of the console's pages. A new page is
 * a file with its handler (console.h) and a line here; who may see it is
 * decided here, before its handler runs (console.c). */
#include <string.h>

#include "console.h"
#include "http_form.h"

static const struct console_route routes[] = {
    { "/", "GET", CONSOLE_USER, console_home },
    { "/login", "GET", CONSOLE_PUBLIC, console_login_page },
    { "/login", "POST", CONSOLE_PUBLIC, console_login_post },
    { "/logout", "POST", CONSOLE_USER, console_logout_post },
    { "/dashboard", "GET", CONSOLE_ADMIN, console_dashboard },
    { "/queue", "GET", CONSOLE_ADMIN, console_queue_page },
    { "/queue/show", "GET", CONSOLE_ADMIN, console_queue_show },
    { "/queue/action", "POST", CONSOLE_ADMIN, console_queue_action },
    { "/log", "GET", CONSOLE_ADMIN, console_log_page },
    { "/quarantine", "GET", CONSOLE_USER, console_quarantine_page },
    { "/quarantine/show", "GET", CONSOLE_USER, console_quarantine_show },
    { "/quarantine/action", "POST", CONSOLE_USER, console_quarantine_action },
    { "/lists", "GET", CONSOLE_USER, console_lists_page },
    { "/lists/action", "POST", CONSOLE_USER, console_lists_action },
};

/* The navigation bar: the GET pages a user may see, with their titles. */
static const struct {
    const char *path, *title;
    enum console_access access;
} nav[] = {
    { "/dashboard", "Dashboard", CONSOLE_ADMIN },
    { "/queue", "Queue", CONSOLE_ADMIN },
    { "/log", "Log", CONSOLE_ADMIN },
    { "/quarantine", "Quarantine", CONSOLE_USER },
    { "/lists", "Lists", CONSOLE_USER },
};

const struct console_route *console_route_find(const char *method, const char *path, bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        *path_known = true;
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
    }
    return NULL;
}

void console_nav(struct strbuf *out, const struct console_session *s)
{
    for (size_t i = 0; i < sizeof(nav) / sizeof(nav[0]); i++)
        if (nav[i].access != CONSOLE_ADMIN || s->admin)
            sb_appendf(out, "<a href=\"%s\">%s</a>\n", nav[i].path, nav[i].title);
}

void console_home(const struct console_request *req, struct console_reply *rep)
{
    if (req->session->admin) {
        console_redirect(rep, "/dashboard");
        return;
    }
    console_page_begin(rep, req, "Welcome");
    sb_appends(&rep->body, "<p id=\"welcome\">You are logged in as ");
    html_escape(&rep->body, req->session->user);
    sb_appends(&rep->body, ". Here you see the mail held for you in the quarantine, and keep your "
                           "<a href=\"/lists\">lists</a> of senders you allow and refuse.</p>\n");
    console_quarantine_summary(&rep->body, req, true);
    console_page_end(rep);
}
