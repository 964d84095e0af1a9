/* console_session.c: logins to the web console. A login is checked by
 * the SASL back-end smtpd uses (smtpd_sasl_type: tern, the hashes of
 * smtpd_sasl_password_maps, or dovecot, Dovecot's auth service: see
 * console_auth.c), and becomes a session kept in this process's memory
 * only: a random token in an HttpOnly, SameSite=Strict cookie (Secure over
 * TLS), a second random token that every POST form must carry (checked in
 * constant time), a bounded lifetime and idle time, and a bounded number
 * of sessions (the oldest makes room). Every login, right or wrong, is
 * logged; a wrong password is answered only after
 * console_login_failure_delay, and past ADDRESS_FAILURES_PER_MINUTE
 * failures from one client address within a minute of its first, that
 * address's logins are refused without a check until that minute ends
 * (one client cannot lock the others out; ALL_FAILURES_PER_MINUTE bounds
 * the checks of many). Each address's minute starts at its own first
 * failure, not at the clock's minute: failures just before a full minute
 * would otherwise count for nothing just after it. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "config.h"
#include "console.h"
#include "dovecot_auth.h"
#include "console_auth.h"
#include "http_form.h"
#include "log.h"
#include "passwd_check.h"
#include "util.h"

#define ADDRESS_FAILURES_PER_MINUTE 10
#define ALL_FAILURES_PER_MINUTE 300
#define FAILING_ADDRESSES_MAX 256     /* addresses counted in one minute */
#define FAILURE_WINDOW 60             /* seconds a count lasts, from its first failure */

static struct {
    struct console_session *slots;    /* token[0] == 0: free */
    size_t count;
    time_t since;                     /* when the count of all failures began */
    int failures;
    struct failing {
        char client[64];
        int failures;
        time_t since;                 /* its first failure counted */
    } failing[FAILING_ADDRESSES_MAX];
    size_t nfailing;
} sess;

/* Counts whose minute is over are dropped. */
static void forget_old_failures(time_t now)
{
    if (now - sess.since >= FAILURE_WINDOW) {
        sess.since = now;
        sess.failures = 0;
    }
    size_t kept = 0;
    for (size_t i = 0; i < sess.nfailing; i++)
        if (now - sess.failing[i].since < FAILURE_WINDOW)
            sess.failing[kept++] = sess.failing[i];
    sess.nfailing = kept;
}

/* The failures counted for client (NULL: none yet). */
static struct failing *failing_of(const char *client, bool add)
{
    for (size_t i = 0; i < sess.nfailing; i++)
        if (strcmp(sess.failing[i].client, client) == 0)
            return &sess.failing[i];
    if (!add || sess.nfailing == FAILING_ADDRESSES_MAX)
        return NULL;             /* a full table: the overall bound still holds */
    struct failing *f = &sess.failing[sess.nfailing++];
    str_copy(f->client, sizeof(f->client), client);
    f->failures = 0;
    f->since = time(NULL);
    return f;
}

void console_session_init(void)
{
    long n = cfg_int(P_console_session_limit);
    sess.count = n < 1 ? 1 : (size_t)n;
    sess.slots = xcalloc(sess.count, sizeof(*sess.slots));
}

/* 32 random bytes as base64url text. */
static void random_token(char *out)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[33];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        msg_fatal("console: no random bytes for a session token");
    size_t o = 0;
    for (size_t i = 0; i + 2 < sizeof(raw) && o + 4 <= CONSOLE_TOKEN_SIZE + 1; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        for (int k = 3; k >= 0 && o < CONSOLE_TOKEN_SIZE; k--)
            out[o++] = alphabet[(v >> (6 * k)) & 63];
    }
    out[o] = 0;
}

static bool expired(const struct console_session *s, time_t now)
{
    return now - s->created >= cfg_time(P_console_session_lifetime)
        || now - s->used >= cfg_time(P_console_session_idle_time);
}

/* The value of the console's cookie in the Cookie header, or "". */
static void cookie_token(const struct http_request *http, char *out, size_t size)
{
    out[0] = 0;
    const char *h = http_request_header(http, "Cookie");
    size_t nlen = strlen(CONSOLE_COOKIE);
    while (h && *h) {
        while (*h == ' ' || *h == ';')
            h++;
        size_t n = strcspn(h, ";");
        if (n > nlen && strncmp(h, CONSOLE_COOKIE, nlen) == 0 && h[nlen] == '=') {
            size_t v = n - nlen - 1;
            if (v < size) {
                memcpy(out, h + nlen + 1, v);
                out[v] = 0;
            }
            return;
        }
        h += n;
    }
}

struct console_session *console_session_find(const struct http_request *http)
{
    char token[CONSOLE_TOKEN_SIZE + 1];
    cookie_token(http, token, sizeof(token));
    if (strlen(token) != CONSOLE_TOKEN_SIZE)
        return NULL;
    time_t now = time(NULL);
    struct console_session *found = NULL;
    for (size_t i = 0; i < sess.count; i++) {
        struct console_session *s = &sess.slots[i];
        if (!s->token[0])
            continue;
        if (expired(s, now)) {
            msg_info("console: session of %s ended (expired)", s->user);
            memset(s, 0, sizeof(*s));
            continue;
        }
        /* every slot is compared, so the time does not tell which matched */
        if (passwd_same_text(s->token, token))
            found = s;
    }
    if (found)
        found->used = now;
    return found;
}

bool console_session_csrf_ok(const struct console_request *req)
{
    struct strbuf v = STRBUF_INIT(256);
    console_field(req, "csrf", &v);
    bool ok = req->session && v.len == CONSOLE_TOKEN_SIZE && passwd_same_text(sb_str(&v), req->session->csrf);
    sb_free(&v);
    return ok;
}

static struct console_session *session_new(const char *user)
{
    struct console_session *slot = NULL;
    time_t now = time(NULL);
    for (size_t i = 0; i < sess.count && !slot; i++)
        if (!sess.slots[i].token[0] || expired(&sess.slots[i], now))
            slot = &sess.slots[i];
    if (!slot) {
        /* room is made by this user's own oldest session, else by the
         * oldest one of a user who is not an administrator; an
         * administrator's session ends only for another administrator's
         * login, so that logging in again and again as an ordinary user
         * cannot end the administrators' sessions */
        bool admin = cfg_list_has(cfg_str(P_console_admins), user);
        for (int pass = 0; pass < 3 && !slot; pass++)
            for (size_t i = 0; i < sess.count; i++) {
                struct console_session *c = &sess.slots[i];
                bool fits = pass == 0 ? strcmp(c->user, user) == 0 : pass == 1 ? !c->admin : admin;
                if (fits && (!slot || c->created < slot->created))
                    slot = c;
            }
        if (!slot)
            return NULL;
        msg_info("console: session of %s ended to make room (console_session_limit)", slot->user);
    }
    memset(slot, 0, sizeof(*slot));
    random_token(slot->token);
    random_token(slot->csrf);
    str_copy(slot->user, sizeof(slot->user), user);
    slot->admin = cfg_list_has(cfg_str(P_console_admins), user);
    slot->created = slot->used = now;
    return slot;
}

static void login_form(struct console_reply *rep, const struct console_request *req, const char *user,
                       const char *error)
{
    console_page_begin(rep, req, "Log in");
    if (error) {
        sb_appends(&rep->body, "<p class=\"error\" id=\"login-error\">");
        html_escape(&rep->body, error);
        sb_appends(&rep->body, "</p>\n");
    }
    if (!console_auth_ready())
        sb_appends(&rep->body, "<p class=\"note\" id=\"login-setup\">No login is possible yet: smtpd_sasl_password_maps "
                               "is empty. Add a user name and a crypt(3) hash there (openssl passwd -6), name the "
                               "administrators in console_admins, and reload Tern (see console(8)).</p>\n");
    sb_appends(&rep->body, "<form method=\"post\" action=\"/login\" class=\"login\">\n"
                           "<label>User name <input name=\"user\" id=\"user\" autocomplete=\"username\" value=\"");
    html_escape(&rep->body, user);
    sb_appends(&rep->body, "\"></label>\n<label>Password <input name=\"password\" id=\"password\" "
                           "type=\"password\" autocomplete=\"current-password\"></label>\n"
                           "<button type=\"submit\" id=\"login\">Log in</button>\n</form>\n");
    console_page_end(rep);
}

void console_login_page(const struct console_request *req, struct console_reply *rep)
{
    if (req->session) {
        console_redirect(rep, "/");
        return;
    }
    login_form(rep, req, "", NULL);
}

void console_login_post(const struct console_request *req, struct console_reply *rep)
{
    struct strbuf user = STRBUF_INIT(CONSOLE_USER_MAX + 1), password = STRBUF_INIT(1024),
                  who = STRBUF_INIT(DOVECOT_FIELD_MAX + 1);
    console_field(req, "user", &user);
    console_field(req, "password", &password);
    forget_old_failures(time(NULL));
    struct failing *mine = failing_of(req->client, false);
    bool counted = true;
    const char *error = NULL, *why = NULL;
    if (!user.len || user.len > CONSOLE_USER_MAX || !str_printable(sb_str(&user), CONSOLE_USER_MAX)
        || strchr(sb_str(&user), ' ')) {
        error = "Give a user name and a password.";
        why = "no valid user name";
    } else if (!console_auth_ready()) {
        error = "No login is possible yet (no password table).";
        why = "smtpd_sasl_password_maps is empty";
    } else if ((mine && mine->failures >= ADDRESS_FAILURES_PER_MINUTE)
               || sess.failures >= ALL_FAILURES_PER_MINUTE) {
        error = "Too many failed logins in the last minute: wait a minute and try again.";
        why = "too many failures in a minute; not checked";
        counted = false;             /* a refusal unchecked adds to no count */
    } else {
        /* over TLS, or from this host: what Dovecot's disable_plaintext_auth allows */
        bool secured = req->tls || strncmp(req->client, "127.", 4) == 0 || strcmp(req->client, "::1") == 0
                       || strncmp(req->client, "::ffff:127.", 11) == 0;
        int rc = console_auth_check(sb_str(&user), sb_str(&password), req->client, secured, &who);
        if (rc == 1 && (!who.len || who.len > CONSOLE_USER_MAX || !str_printable(sb_str(&who), CONSOLE_USER_MAX)
                        || strchr(sb_str(&who), ' '))) {
            msg_warn("console: the authentication back-end named an unusable user for \"%s\"",
                     str_sanitize((char *)sb_str(&user)));
            rc = -1;
        }
        if (rc < 0) {
            error = "The password cannot be checked now (the authentication service is unavailable); "
                    "try again later.";
            why = "authentication back-end unavailable";
        } else if (rc == 0) {
            error = "Wrong user name or password.";
            why = "wrong user name or password";
        }
    }
    if (error) {
        if (counted) {
            sess.failures++;
            if ((mine = failing_of(req->client, true)))
                mine->failures++;
        }
        msg_warn("console: login of \"%s\" from %s failed: %s", str_sanitize((char *)sb_str(&user)),
                 req->client, why);
        rep->delay_ms = 1000LL * cfg_time(P_console_login_failure_delay);
        login_form(rep, req, sb_str(&user), error);
    } else {
        struct console_session *s = session_new(sb_str(&who));
        if (!s) {
            msg_warn("console: login of %s from %s refused: every session is an administrator's "
                     "(console_session_limit)", sb_str(&who), req->client);
            login_form(rep, req, sb_str(&user), "No session is free now; try again later.");
            goto done;
        }
        msg_info("console: login of %s from %s%s", s->user, req->client,
                 s->admin ? " (administrator)" : "");
        sb_appendf(&rep->headers, "Set-Cookie: %s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%ld%s\r\n",
                   CONSOLE_COOKIE, s->token, cfg_time(P_console_session_lifetime), req->tls ? "; Secure" : "");
        console_redirect(rep, "/");
    }
done:
    if (password.data)
        memset(password.data, 0, password.len);     /* it held the password */
    sb_free(&user);
    sb_free(&who);
    sb_free(&password);
}

void console_logout_post(const struct console_request *req, struct console_reply *rep)
{
    msg_info("console: logout of %s from %s", req->session->user, req->client);
    memset(req->session, 0, sizeof(*req->session));
    sb_appendf(&rep->headers, "Set-Cookie: %s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s\r\n",
               CONSOLE_COOKIE, req->tls ? "; Secure" : "");
    console_redirect(rep, "/login");
}
