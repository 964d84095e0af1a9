/* console_lists.c: the allow and deny lists page: a user sees and edits
 * the lists of their own address (console_user_address), an administrator
 * those of any address they name. The lists are read and written by
 * lib/global/user_lists.h as `tern lists` does it: the same checks of
 * what is given, the same table in data_directory (mail_owner's folder,
 * 0700; the console runs as mail_owner), under the same flock(2) of the
 * table's lock file, so a change here never meets a half-written table
 * in smtpd or `tern lists`. */
#include <string.h>

#include "config.h"
#include "console.h"
#include "http_form.h"
#include "log.h"
#include "user_lists.h"
#include "util.h"

/* The lists of user as two tables, each entry with its remove button. */
static void list_tables(struct console_reply *rep, const struct console_request *req, const char *user,
                        const char *entries)
{
    static const struct { const char *kind, *title, *note; } kinds[] = {
        { "allow", "Allowed senders", "mail from them skips the spam checks" },
        { "deny", "Refused senders", "mail from them is refused" },
    };
    struct strbuf *b = &rep->body;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        sb_appendf(b, "<section><h2>%s</h2><p class=\"note\">%s</p>\n<table id=\"%s-list\">"
                      "<tr><th>sender or @domain</th><th></th></tr>\n",
                   kinds[k].title, kinds[k].note, kinds[k].kind);
        size_t shown = 0, klen = strlen(kinds[k].kind);
        for (const char *p = entries; *p;) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            if (len > klen + 1 && strncmp(p, kinds[k].kind, klen) == 0 && p[klen] == ':') {
                char pattern[USER_LISTS_ADDRESS_MAX + 1];
                size_t plen = len - klen - 1;
                if (plen > USER_LISTS_ADDRESS_MAX)
                    plen = USER_LISTS_ADDRESS_MAX;
                memcpy(pattern, p + klen + 1, plen);
                pattern[plen] = 0;
                sb_appends(b, "<tr><td class=\"pattern\">");
                html_escape(b, pattern);
                sb_appends(b, "</td><td>");
                console_form_begin(rep, req, "/lists/action");
                sb_appendf(b, "<input type=\"hidden\" name=\"op\" value=\"remove\">"
                              "<input type=\"hidden\" name=\"kind\" value=\"%s\">", kinds[k].kind);
                sb_appends(b, "<input type=\"hidden\" name=\"user\" value=\"");
                html_escape(b, user);
                sb_appends(b, "\"><input type=\"hidden\" name=\"pattern\" value=\"");
                html_escape(b, pattern);
                sb_appendf(b, "\"><button type=\"submit\" id=\"remove-%s-", kinds[k].kind);
                html_escape(b, pattern);
                sb_appends(b, "\">remove</button></form></td></tr>\n");
                shown++;
            }
            p += len + (c ? 1 : 0);
        }
        if (!shown)
            sb_appends(b, "<tr><td colspan=\"2\" class=\"note\">none</td></tr>\n");
        sb_appends(b, "</table></section>\n");
    }
}

static void add_form(struct console_reply *rep, const struct console_request *req, const char *user,
                     const char *pattern, const char *kind)
{
    struct strbuf *b = &rep->body;
    sb_appends(b, "<h2>Add a sender</h2>\n");
    console_form_begin(rep, req, "/lists/action");
    sb_appends(b, "<input type=\"hidden\" name=\"op\" value=\"add\"><input type=\"hidden\" name=\"user\" value=\"");
    html_escape(b, user);
    sb_appends(b, "\"><label>Sender address or @domain <input name=\"pattern\" id=\"pattern\" value=\"");
    html_escape(b, pattern);
    sb_appendf(b, "\"></label>\n<select name=\"kind\" id=\"kind\"><option value=\"allow\"%s>allow</option>"
                  "<option value=\"deny\"%s>deny</option></select>\n"
                  "<button type=\"submit\" id=\"add\">Add</button></form>\n",
               strcmp(kind, "deny") != 0 ? " selected" : "", strcmp(kind, "deny") == 0 ? " selected" : "");
}

/* The page for user ("" when an administrator has not picked one). */
static void lists_page(const struct console_request *req, struct console_reply *rep, const char *user,
                       const char *notice, bool notice_is_error, const char *pattern, const char *kind)
{
    struct strbuf *b = &rep->body;
    console_page_begin(rep, req, "Allow and deny lists");
    if (notice)
        console_notice(b, notice, notice_is_error);
    if (req->session->admin) {
        sb_appends(b, "<form method=\"get\" action=\"/lists\"><label>The lists of <input name=\"user\" "
                      "id=\"pick-user\" value=\"");
        html_escape(b, user);
        sb_appends(b, "\"></label> <button type=\"submit\" id=\"pick\">Show</button></form>\n");
    }
    if (*user) {
        struct strbuf entries = STRBUF_INIT(0), err = STRBUF_INIT(1024);
        sb_appends(b, "<p class=\"note\" id=\"lists-whose\">Senders allowed and refused for mail to ");
        html_escape(b, user);
        sb_appends(b, ". An address entry wins over a domain entry.</p>\n");
        if (user_lists_get(user, &entries, &err) < 0) {
            sb_appends(b, "<p class=\"error\" id=\"lists-error\">The lists cannot be read now: ");
            html_escape(b, sb_str(&err));
            sb_appends(b, "</p>\n");
        } else {
            sb_appends(b, "<div class=\"grid\">\n");
            list_tables(rep, req, user, sb_str(&entries));
            sb_appends(b, "</div>\n");
            add_form(rep, req, user, pattern, kind);
        }
        sb_free(&entries);
        sb_free(&err);
    }
    console_page_end(rep);
}

/* Whose lists: the user's own address, or for an administrator the
 * address given (checked, lower-cased into user). 0, or -1 with err. */
static int lists_user(const struct console_request *req, const char *given, char *user, size_t size,
                      struct strbuf *err)
{
    user[0] = 0;
    if (!req->session->admin || !*given) {
        if (!console_user_address(req->session, user, size)) {
            if (!req->session->admin)
                sb_set(err, "Your login name is not a mail address and mydomain is not set: the console "
                            "cannot tell which lists are yours.");
            return req->session->admin ? 0 : -1;
        }
        return 0;
    }
    if (strlen(given) >= size) {
        sb_set(err, "the user is too long");
        return -1;
    }
    str_copy(user, size, given);
    if (user_lists_check_user(user, err) < 0) {
        user[0] = 0;
        return -1;
    }
    return 0;
}

void console_lists_page(const struct console_request *req, struct console_reply *rep)
{
    struct strbuf given = STRBUF_INIT(1024), err = STRBUF_INIT(1024);
    char user[USER_LISTS_ADDRESS_MAX + 2];
    console_query(req, "user", &given);
    if (lists_user(req, sb_str(&given), user, sizeof(user), &err) < 0) {
        if (!req->session->admin)
            console_error_page(rep, req, 403, sb_str(&err));
        else {
            rep->status = 400;
            lists_page(req, rep, "", sb_str(&err), true, "", "");
        }
    } else {
        lists_page(req, rep, user, NULL, false, "", "");
    }
    sb_free(&given);
    sb_free(&err);
}

void console_lists_action(const struct console_request *req, struct console_reply *rep)
{
    struct strbuf given = STRBUF_INIT(1024), op = STRBUF_INIT(64), kind = STRBUF_INIT(64),
                  pattern = STRBUF_INIT(1024), err = STRBUF_INIT(4096), said = STRBUF_INIT(4096);
    char user[USER_LISTS_ADDRESS_MAX + 2], pat[USER_LISTS_ADDRESS_MAX + 2];
    console_field(req, "user", &given);
    console_field(req, "op", &op);
    console_field(req, "kind", &kind);
    console_field(req, "pattern", &pattern);
    /* a user's own lists only: the user field counts for administrators */
    int rc = lists_user(req, sb_str(&given), user, sizeof(user), &err);
    bool add = strcmp(sb_str(&op), "add") == 0, allow = strcmp(sb_str(&kind), "allow") == 0;
    if (rc < 0 && !req->session->admin) {
        console_error_page(rep, req, 403, sb_str(&err));
        goto out;
    }
    if (rc == 0 && !*user) {
        sb_set(&err, "Name the user whose lists to change.");
        rc = -1;
    } else if (rc == 0 && !add && strcmp(sb_str(&op), "remove") != 0) {
        sb_set(&err, "Unknown action: add or remove.");
        rc = -1;
    } else if (rc == 0 && !allow && strcmp(sb_str(&kind), "deny") != 0) {
        sb_set(&err, "Choose the allow or the deny list.");
        rc = -1;
    } else if (rc == 0) {
        /* one byte more than allowed is kept, so that the check sees it */
        str_copy(pat, sizeof(pat), sb_str(&pattern));
        rc = pattern.len > USER_LISTS_ADDRESS_MAX ? (sb_set(&err, "the pattern is too long"), -1)
                                                 : user_lists_check_pattern(pat, &err);
    }
    if (rc == 0) {
        enum user_list_kind k = allow ? USER_LIST_ALLOW : USER_LIST_DENY;
        rc = add ? user_lists_add(user, k, pat, (size_t)cfg_int(P_user_lists_max_entries), &err)
                 : user_lists_remove(user, k, pat, &err);
        if (rc == 0)
            msg_info("console: %s (%s): %s %s %s for %s: %s", req->session->user, req->client,
                     add ? "add" : "remove", allow ? "allow" : "deny", pat, user, sb_str(&err));
    }
    if (rc == 0)
        sb_appendf(&said, "%s %s: %s", allow ? "allow" : "deny", pat, sb_str(&err));
    else
        sb_appendf(&said, "Nothing was changed: %s.", sb_str(&err));
    if (rc < 0)
        rep->status = 400;
    /* after a refusal the form keeps what was typed, to be corrected */
    lists_page(req, rep, user, sb_str(&said), rc < 0, rc < 0 ? sb_str(&pattern) : "",
               rc < 0 ? sb_str(&kind) : "");
out:
    sb_free(&given);
    sb_free(&op);
    sb_free(&kind);
    sb_free(&pattern);
    sb_free(&err);
    sb_free(&said);
}
