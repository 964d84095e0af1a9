/* console_auth.c: the console's password check, by the back-end smtpd's
 * AUTH uses (smtpd_sasl_type): tern checks smtpd_sasl_password_maps'
 * crypt(3) hashes (lib/global/passwd_check.h, opened as root before the
 * privilege drop); dovecot asks Dovecot's auth service at smtpd_sasl_path
 * with mechanism PLAIN and service "console", one connection per login,
 * every server line parsed by lib/global/dovecot_auth.c and every wait
 * bounded by smtpd_sasl_dovecot_timeout. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "base64.h"
#include "config.h"
#include "console.h"
#include "console_auth.h"
#include "dovecot_auth.h"
#include "log.h"
#include "passwd_check.h"
#include "strbuf.h"
#include "util.h"

static bool use_dovecot, tables_open;

void console_auth_pre_init(void)
{
    const char *type = cfg_str(P_smtpd_sasl_type);
    struct strbuf err = STRBUF_INIT(1024);
    if (str_ieq(type, "dovecot"))
        use_dovecot = true;
    else if (!str_ieq(type, "tern"))
        msg_fatal("main.cf: smtpd_sasl_type = %s: expected tern or dovecot", type);
    else if (passwd_check_open(cfg_str(P_smtpd_sasl_password_maps), &err) < 0)
        msg_warn("console: %s; nobody can log in to the console", sb_str(&err));
    else
        tables_open = true;
    sb_free(&err);
}

static int tern_check(const char *user, const char *password)
{
    char setting[PASSWD_HASH_MAX];
    bool known, bad_hash;
    if (passwd_check_setting(user, setting, sizeof(setting), &known) < 0)
        return -1;
    bool ok = passwd_check_verify(password, setting, known, &bad_hash);
    if (bad_hash)
        msg_warn("smtpd_sasl_password_maps: user %s: password hash of an unknown or disabled method", user);
    return ok ? 1 : 0;
}

/* ---- dovecot ---- */

struct line_reader {
    int fd;
    long long deadline_ms;
    char buf[DOVECOT_LINE_MAX + 1];
    size_t len;
};

/* The next line (its LF cut off) in r->buf, moved to the start: its
 * length, or -1 (timeout, EOF, too long). The caller consumes it. */
static long next_line(struct line_reader *r, size_t *consumed)
{
    for (;;) {
        char *lf = memchr(r->buf, '\n', r->len);
        if (lf) {
            *consumed = (size_t)(lf - r->buf) + 1;
            return lf - r->buf;
        }
        if (r->len >= DOVECOT_LINE_MAX)
            return -1;
        long long left = r->deadline_ms - now_usec() / 1000;
        struct pollfd p = { r->fd, POLLIN, 0 };
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -1;
        ssize_t n = read(r->fd, r->buf + r->len, DOVECOT_LINE_MAX - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        r->len += (size_t)n;
    }
}

/* The next line parsed: 0, or -1 (unreadable or malformed). */
static int next_parsed(struct line_reader *r, struct dovecot_line *l, char *copy)
{
    size_t used;
    long n = next_line(r, &used);
    if (n < 0)
        return -1;
    memcpy(copy, r->buf, (size_t)n);
    memmove(r->buf, r->buf + used, r->len - used);
    r->len -= used;
    return dovecot_parse_line(copy, (size_t)n, l);
}

static int dovecot_check(const char *user, const char *password, const char *client, bool secured,
                         struct strbuf *who)
{
    long timeout = cfg_time(P_smtpd_sasl_dovecot_timeout) < 1 ? 1 : cfg_time(P_smtpd_sasl_dovecot_timeout);
    int fd = unix_connect(cfg_str(P_smtpd_sasl_path), (int)timeout);
    if (fd < 0) {
        msg_warn("console: cannot connect to Dovecot's auth service %s: %m", cfg_str(P_smtpd_sasl_path));
        return -1;
    }
    struct line_reader *r = xcalloc(1, sizeof(*r));
    char *copy = xmalloc(DOVECOT_LINE_MAX + 1);
    r->fd = fd;
    r->deadline_ms = now_usec() / 1000 + 1000LL * timeout;
    struct strbuf out = STRBUF_INIT(4 * DOVECOT_LINE_MAX), plain = STRBUF_INIT(2048),
                  resp = STRBUF_INIT(4096);
    int result = -1;
    struct dovecot_line l;
    /* PLAIN: authzid NUL authcid NUL password */
    sb_appendc(&plain, 0);
    sb_appends(&plain, user);
    sb_appendc(&plain, 0);
    sb_appends(&plain, password);
    if (base64_encode(&resp, plain.data, plain.len) < 0 || dovecot_format_hello(&out, (unsigned long)getpid()) < 0
        || write_all(fd, out.data, out.len) < 0)
        goto out;
    bool plain_offered = false;
    do {
        if (next_parsed(r, &l, copy) < 0)
            goto out;
        if (l.type == DOVECOT_MECH && strcmp(l.mech, "PLAIN") == 0)
            plain_offered = true;
    } while (l.type != DOVECOT_DONE);
    if (!plain_offered) {
        msg_warn("console: Dovecot's auth service offers no PLAIN mechanism");
        goto out;
    }
    sb_reset(&out);
    if (dovecot_format_auth(&out, 1, "PLAIN", "console", "127.0.0.1", client, secured,
                            sb_str(&resp)) < 0) {
        result = 0;     /* a name with control characters is no user */
        goto out;
    }
    if (write_all(fd, out.data, out.len) < 0)
        goto out;
    do {
        if (next_parsed(r, &l, copy) < 0)
            goto out;
    } while ((l.type != DOVECOT_OK && l.type != DOVECOT_FAIL && l.type != DOVECOT_CONT) || l.id != 1);
    result = l.type == DOVECOT_OK ? 1 : l.type == DOVECOT_FAIL && !l.temp ? 0 : -1;
    /* the session is the user Dovecot authenticated, never the name typed */
    if (result == 1 && (!l.user || !*l.user || sb_set(who, l.user) < 0)) {
        msg_warn("console: Dovecot's auth service accepted \"%s\" but named no user", user);
        result = -1;
    }
out:
    if (result < 0)
        msg_warn("console: no usable answer from Dovecot's auth service %s", cfg_str(P_smtpd_sasl_path));
    memset(plain.data ? plain.data : copy, 0, plain.data ? plain.len : 0);
    memset(r, 0, sizeof(*r));
    free(r);
    free(copy);
    sb_free(&out);
    sb_free(&plain);
    sb_free(&resp);
    close(fd);
    return result;
}

bool console_auth_ready(void)
{
    return use_dovecot || tables_open;
}

int console_auth_check(const char *user, const char *password, const char *client, bool secured,
                       struct strbuf *who)
{
    if (use_dovecot)
        return dovecot_check(user, password, client, secured, who);
    int rc = tern_check(user, password);
    if (rc == 1 && sb_set(who, user) < 0)
        rc = -1;
    return rc;
}
