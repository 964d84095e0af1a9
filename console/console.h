/* console.h: what the parts of the web console share. The console is one
 * long-running unprivileged process (console.c) serving HTTP/1.1
 * connections in its event loop; a request is routed through one table
 * (console_routes.c) to a page, one file per page (console_dashboard.c,
 * console_queue.c, console_log.c, ...). A page gets the parsed request and
 * its session, and fills a reply; it never writes to the connection. */
#ifndef TERN_CONSOLE_H
#define TERN_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "http_request.h"
#include "strbuf.h"

#define CONSOLE_TOKEN_SIZE 43         /* 32 random bytes, base64url without padding */
#define CONSOLE_USER_MAX 256
#define CONSOLE_PAGE_LIMIT (8 * 1024 * 1024)
#define CONSOLE_COOKIE "tern_console"

struct console_session {
    char token[CONSOLE_TOKEN_SIZE + 1];   /* the cookie */
    char csrf[CONSOLE_TOKEN_SIZE + 1];    /* in every form, checked on every POST */
    char user[CONSOLE_USER_MAX + 1];
    bool admin;
    time_t created, used;
};

struct console_request {
    const struct http_request *http;
    const char *body;                     /* the POST body, body_len bytes */
    size_t body_len;
    struct console_session *session;      /* NULL: not logged in */
    const char *client;                   /* the client's address */
    bool tls;
};

struct console_reply {
    int status;
    const char *type;                     /* Content-Type */
    struct strbuf headers;                /* extra header lines, each with CRLF */
    struct strbuf body;
    long long delay_ms;                   /* answer only after this long */
    int refresh_seconds;                  /* the page reloads itself this often (0: never) */
};

enum console_access {
    CONSOLE_PUBLIC,                       /* anyone (the login page) */
    CONSOLE_USER,                         /* anyone logged in */
    CONSOLE_ADMIN,                        /* a login named in console_admins */
};

/* One page: its path, its method, who may see it, and its handler. */
struct console_route {
    const char *path;
    const char *method;                   /* "GET" or "POST" */
    enum console_access access;
    void (*handle)(const struct console_request *req, struct console_reply *rep);
};

/* ---- console_routes.c: the table ---- */
const struct console_route *console_route_find(const char *method, const char *path, bool *path_known);
/* Links of the navigation bar, for a user (admin or not). */
void console_nav(struct strbuf *out, const struct console_session *s);

/* ---- console_session.c: logins ---- */
void console_session_init(void);          /* after the privilege drop */
struct console_session *console_session_find(const struct http_request *http);
/* The form's csrf field against the session's, in constant time. */
bool console_session_csrf_ok(const struct console_request *req);
void console_login_page(const struct console_request *req, struct console_reply *rep);
void console_login_post(const struct console_request *req, struct console_reply *rep);
void console_logout_post(const struct console_request *req, struct console_reply *rep);
/* The authentication back-end, opened before the privilege drop. */
void console_auth_pre_init(void);

/* ---- console_page.c: the parts of every page ---- */
void console_page_begin(struct console_reply *rep, const struct console_request *req, const char *title);
void console_page_end(struct console_reply *rep);
/* A POST form to action, with the session's csrf field. */
void console_form_begin(struct console_reply *rep, const struct console_request *req, const char *action);
/* A POST form to action of one button named op, with the hidden fields
 * op and id; the button's id is "OP-ID". */
void console_action_button(struct console_reply *rep, const struct console_request *req, const char *action,
                           const char *op, const char *id);
/* What an action did (or why it did nothing), at the top of a page. */
void console_notice(struct strbuf *out, const char *text, bool is_error);
void console_redirect(struct console_reply *rep, const char *location);
void console_error_page(struct console_reply *rep, const struct console_request *req, int status,
                        const char *text);
/* A query field of the request (decoded into out, "" when absent). */
void console_query(const struct console_request *req, const char *name, struct strbuf *out);
/* A form field of the POST body. */
void console_field(const struct console_request *req, const char *name, struct strbuf *out);
/* An HTML table from rows of label/count pairs. */
void console_count_table(struct strbuf *out, const char *what, const char *const *labels,
                         const long long *counts, size_t n);

/* ---- console_svg.c: graphs drawn on the server ---- */
/* A bar graph of n values (-1: unknown) from time first, step seconds apart. */
void console_svg_bars(struct strbuf *out, const char *title, const long long *values, size_t n,
                      time_t first, long step);

/* ---- the pages ---- */
void console_home(const struct console_request *req, struct console_reply *rep);
void console_dashboard(const struct console_request *req, struct console_reply *rep);
void console_queue_page(const struct console_request *req, struct console_reply *rep);
void console_queue_show(const struct console_request *req, struct console_reply *rep);
void console_queue_action(const struct console_request *req, struct console_reply *rep);
void console_log_page(const struct console_request *req, struct console_reply *rep);
void console_quarantine_page(const struct console_request *req, struct console_reply *rep);
void console_quarantine_show(const struct console_request *req, struct console_reply *rep);
void console_quarantine_action(const struct console_request *req, struct console_reply *rep);
void console_lists_page(const struct console_request *req, struct console_reply *rep);
void console_lists_action(const struct console_request *req, struct console_reply *rep);

/* ---- console_quarantine.c: whose mail ---- */
/* The mail address of a login: the login when it is an address, else
 * login@$mydomain; checked and lower-cased. false: none. */
bool console_user_address(const struct console_session *s, char *out, size_t size);
/* The quarantine's counts (all, for an administrator; the login's own),
 * and with list the login's first messages, as a section of a page. */
void console_quarantine_summary(struct strbuf *out, const struct console_request *req, bool list);

#endif
