/* smtpd_sasl.c: the AUTH command of smtpd (RFC 4954) with Postfix's
 * parameters, replies and log lines. AUTH is offered after EHLO when
 * smtpd_sasl_auth_enable is on (and, with smtpd_tls_auth_only, only over
 * TLS), with the mechanisms the back-end has that the security options
 * allow. The exchange (initial response, 334 challenges, "*" to cancel)
 * is driven here; the password check is the back-end's: the password
 * tables (PLAIN and LOGIN decoded here) or Dovecot (every message relayed
 * as it is). Failures are logged as "warning: name[addr]: SASL PLAIN
 * authentication failed: ...", count as errors toward
 * smtpd_hard_error_limit, and AUTH commands are rate-limited through anvil
 * (smtpd_client_auth_rate_limit). */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "config.h"
#include "log.h"
#include "metrics_client.h"
#include "smtpd.h"
#include "smtpd_limits.h"
#include "smtpd_sasl.h"
#include "strbuf.h"
#include "util.h"

#define MECH_MAX 20            /* RFC 4422 */
#define USER_MAX 255
#define DECODED_MAX 4096       /* a decoded client response */

enum backend { BACKEND_TERN, BACKEND_DOVECOT };

static struct {
    bool enable, tls_only, broken_clients;
    enum backend backend;
    unsigned forbid, forbid_tls;    /* SASL_MECH_* a mechanism must not have */
    unsigned need, need_tls;        /* SASL_MECH_* a mechanism must have */
    bool pre_init_done;
    const char *service;
} sc;

enum exchange_kind { EX_PLAIN, EX_LOGIN, EX_RELAY };

struct smtpd_sasl {
    char mech[MECH_MAX + 1];
    enum exchange_kind kind;
    int step;                   /* LOGIN: 0 the user name is next, 1 the password */
    bool awaiting;              /* a 334 was sent: the next line is a response */
    char *login_user;           /* LOGIN: the user name given */
    char *attempt_user;         /* the user whose password is being checked */
    struct smtpd_dovecot_request *req;
    struct smtpd_passwd_job *job;
};

/* ---- configuration ---- */

static void read_security_options(const char *param, unsigned *forbid, unsigned *need)
{
    size_t n;
    char **words = cfg_list_split(cfg_get(param) ? cfg_get(param) : "", &n);
    *forbid = 0;
    *need = 0;
    for (size_t i = 0; i < n; i++) {
        const char *w = words[i];
        if (str_ieq(w, "noanonymous"))
            *forbid |= SASL_MECH_ANONYMOUS;
        else if (str_ieq(w, "noplaintext"))
            *forbid |= SASL_MECH_PLAINTEXT;
        else if (str_ieq(w, "nodictionary"))
            *forbid |= SASL_MECH_DICTIONARY;
        else if (str_ieq(w, "noactive"))
            *forbid |= SASL_MECH_ACTIVE;
        else if (str_ieq(w, "mutual_auth"))
            *need |= SASL_MECH_MUTUAL;
        else if (str_ieq(w, "forward_secrecy"))
            *need |= SASL_MECH_FWD_SECRECY;
        else
            msg_warn("main.cf: %s: unknown option \"%s\" ignored", param, w);
    }
    cfg_list_free(words, n);
}

void smtpd_sasl_pre_init(void)
{
    sc.pre_init_done = true;
    sc.enable = cfg_bool(P_smtpd_sasl_auth_enable);
    if (!sc.enable)
        return;
    const char *type = cfg_str(P_smtpd_sasl_type);
    if (str_ieq(type, "tern")) {
        sc.backend = BACKEND_TERN;
        struct strbuf err = STRBUF_INIT(1024);
        if (smtpd_passwd_open(cfg_str(P_smtpd_sasl_password_maps), &err) < 0)
            msg_fatal("main.cf: smtpd_sasl_password_maps: %s", sb_str(&err));
        sb_free(&err);
    } else if (str_ieq(type, "dovecot")) {
        sc.backend = BACKEND_DOVECOT;
    } else {
        msg_fatal("main.cf: smtpd_sasl_type = %s: expected tern or dovecot", type);
    }
}

void smtpd_sasl_init(struct event_base *base)
{
    if (!sc.pre_init_done)
        smtpd_sasl_pre_init();
    if (!sc.enable)
        return;
    sc.tls_only = cfg_bool(P_smtpd_tls_auth_only);
    sc.broken_clients = cfg_bool(P_broken_sasl_auth_clients);
    sc.service = cfg_str(P_smtpd_sasl_service);
    read_security_options("smtpd_sasl_security_options", &sc.forbid, &sc.need);
    read_security_options("smtpd_sasl_tls_security_options", &sc.forbid_tls, &sc.need_tls);
    if (sc.backend == BACKEND_TERN)
        smtpd_passwd_start_helpers(base);
    else
        smtpd_dovecot_client_init(base, cfg_str(P_smtpd_sasl_path), sc.service,
                                  cfg_time(P_smtpd_sasl_dovecot_timeout));
}

/* ---- mechanisms ---- */

struct mech_walk {
    const struct smtpd_session *s;
    struct strbuf *list;       /* "PLAIN LOGIN" */
    const char *want;          /* a mechanism looked for, or NULL */
    bool found;
};

static bool mech_allowed(const struct smtpd_session *s, unsigned flags)
{
    unsigned forbid = s->tls_active ? sc.forbid_tls : sc.forbid;
    unsigned need = s->tls_active ? sc.need_tls : sc.need;
    return !(flags & forbid) && (flags & need) == need;
}

static void mech_visit(const char *name, unsigned flags, void *ctx)
{
    struct mech_walk *w = ctx;
    if (!mech_allowed(w->s, flags))
        return;
    if (w->list)
        sb_appendf(w->list, "%s%s", w->list->len ? " " : "", name);
    if (w->want && str_ieq(w->want, name))
        w->found = true;
}

static void mechs_walk(struct mech_walk *w)
{
    if (sc.backend == BACKEND_DOVECOT) {
        smtpd_dovecot_client_mechs(mech_visit, w);
        return;
    }
    mech_visit("PLAIN", SASL_MECH_PLAINTEXT, w);
    mech_visit("LOGIN", SASL_MECH_PLAINTEXT, w);
}

static bool auth_offered(const struct smtpd_session *s)
{
    return sc.enable && !(sc.tls_only && !s->tls_active);
}

void smtpd_sasl_ehlo_keywords(struct smtpd_session *s, struct strbuf *r)
{
    if (!auth_offered(s))
        return;
    struct strbuf list = STRBUF_INIT(1024);
    struct mech_walk w = { s, &list, NULL, false };
    mechs_walk(&w);
    if (list.len) {
        sb_appendf(r, "AUTH %s\n", sb_str(&list));
        if (sc.broken_clients)
            sb_appendf(r, "AUTH=%s\n", sb_str(&list));
    }
    sb_free(&list);
}

/* ---- the outcome ---- */

static void exchange_end(struct smtpd_session *s)
{
    struct smtpd_sasl *x = s->sasl;
    if (!x)
        return;
    if (x->req)
        smtpd_dovecot_request_cancel(x->req);
    smtpd_passwd_check_cancel(x->job);
    free(x->attempt_user);
    if (x->login_user) {
        memset(x->login_user, 0, strlen(x->login_user));
        free(x->login_user);
    }
    free(x);
    s->sasl = NULL;
    s->pause &= ~PAUSE_AUTH;
}

/* A user name we keep: it goes into log lines, the queue file and policy
 * requests. */
static bool user_name_ok(const char *u)
{
    size_t n = 0;
    for (; u[n]; n++)
        if ((unsigned char)u[n] <= 32 || u[n] == 127 || n >= USER_MAX)
            return false;
    return n > 0;
}

/* A reason from the back-end, as it may appear in a reply and a log line. */
static void clean_reason(char *out, size_t outsz, const char *in)
{
    size_t o = 0;
    for (; *in && o + 1 < outsz; in++)
        out[o++] = ((unsigned char)*in < 32 || *in == 127) ? ' ' : *in;
    out[o] = 0;
    if (!o)
        str_copy(out, outsz, "authentication failure");
}

static void auth_failed(struct smtpd_session *s, bool temp, const char *reason, const char *user)
{
    char why[300];
    char mech[MECH_MAX + 1];
    clean_reason(why, sizeof(why), reason);
    str_copy(mech, sizeof(mech), s->sasl ? s->sasl->mech : "");
    if (!user && s->sasl)
        user = s->sasl->attempt_user;
    bool show_user = user && user_name_ok(user);
    msg_warn("%s: SASL %s authentication failed: %s%s%s", s->client_desc, mech, why,
             show_user ? ", sasl_username=" : "", show_user ? user : "");
    exchange_end(s);
    METRICS_ADD(M_SMTPD_AUTH, 1, temp ? "tempfail" : "failure");
    if (temp)
        smtpd_session_reply(s, 454, "4.7.0 Temporary authentication failure: %s", why);
    else
        smtpd_session_reply(s, 535, "5.7.8 Error: authentication failed: %s", why);
}

static void auth_succeeded(struct smtpd_session *s, const char *user)
{
    if (!user_name_ok(user)) {
        auth_failed(s, true, "the authentication server gave an unusable user name", NULL);
        return;
    }
    METRICS_ADD(M_SMTPD_AUTH, 1, "success");
    free(s->sasl_username);
    free(s->sasl_method);
    s->sasl_username = xstrdup(user);
    s->sasl_method = xstrdup(s->sasl->mech);
    exchange_end(s);
    smtpd_session_reply(s, 235, "2.7.0 Authentication successful");
}

static void send_challenge(struct smtpd_session *s, const char *b64)
{
    if (strlen(b64) + 4 > smtpd_cfg.line_limit) {
        auth_failed(s, true, "challenge too long", NULL);
        return;
    }
    s->sasl->awaiting = true;
    smtpd_session_reply(s, 334, "%s", b64);
}

void smtpd_sasl_backend_answer(struct smtpd_session *s, enum smtpd_sasl_status st, const char *text)
{
    if (!s->sasl)
        return;
    if (st != SASL_MORE) {          /* the back-end is done with it */
        s->sasl->req = NULL;
        s->sasl->job = NULL;
    }
    s->pause &= ~PAUSE_AUTH;
    switch (st) {
    case SASL_DONE: auth_succeeded(s, text); break;
    case SASL_FAIL: auth_failed(s, false, text, NULL); break;
    case SASL_TEMP: auth_failed(s, true, text, NULL); break;
    case SASL_MORE: send_challenge(s, text); break;
    }
    smtpd_session_resume(s, PAUSE_AUTH);
    smtpd_session_finish_if_done(s);
}

/* ---- the password-table back-end: PLAIN and LOGIN ---- */

static void check_password(struct smtpd_session *s, const char *user, const char *password)
{
    struct smtpd_sasl *x = s->sasl;
    const char *why;
    if (!user_name_ok(user)) {
        auth_failed(s, false, "authentication failure", NULL);
        return;
    }
    free(x->attempt_user);
    x->attempt_user = xstrdup(user);
    x->job = smtpd_passwd_check_start(s, user, password, &why);
    if (!x->job) {
        auth_failed(s, true, why, NULL);
        return;
    }
    s->pause |= PAUSE_AUTH;     /* the answer comes from the helper threads */
}

/* authzid NUL authcid NUL password; a different authzid (acting for
 * someone else) is not supported. */
static void plain_response(struct smtpd_session *s, const struct strbuf *d)
{
    const char *p = d->data ? d->data : "", *end = p + d->len;
    const char *nul1 = memchr(p, 0, d->len);
    const char *nul2 = nul1 ? memchr(nul1 + 1, 0, (size_t)(end - nul1 - 1)) : NULL;
    if (!nul2 || memchr(nul2 + 1, 0, (size_t)(end - nul2 - 1))) {
        auth_failed(s, false, "malformed PLAIN response", NULL);
        return;
    }
    const char *authz = p, *user = nul1 + 1, *password = nul2 + 1;
    if (*authz && strcmp(authz, user) != 0) {
        auth_failed(s, false, "authorization identity differs from the user name", user);
        return;
    }
    check_password(s, user, password);
}

static void login_response(struct smtpd_session *s, const struct strbuf *d)
{
    struct smtpd_sasl *x = s->sasl;
    const char *text = d->data ? d->data : "";
    if (memchr(text, 0, d->len)) {
        auth_failed(s, false, "malformed LOGIN response", NULL);
        return;
    }
    if (x->step == 0) {
        x->login_user = xstrdup(text);
        x->step = 1;
        send_challenge(s, "UGFzc3dvcmQ6");        /* "Password:" */
        return;
    }
    char *user = xstrdup(x->login_user);
    check_password(s, user, text);
    free(user);
}

/* ---- the exchange ---- */

/* One base64 response (initial or after 334) for the current mechanism. */
static void take_response(struct smtpd_session *s, const char *b64, size_t n)
{
    struct smtpd_sasl *x = s->sasl;
    struct strbuf d = STRBUF_INIT(DECODED_MAX);
    bool empty = n == 1 && b64[0] == '=';       /* an empty initial response */
    if (!empty && base64_decode(&d, b64, n) < 0) {
        sb_free(&d);
        msg_warn("%s: SASL %s authentication failed: malformed base64 response", s->client_desc,
                 x->mech);
        exchange_end(s);
        smtpd_session_reply(s, 501, "5.5.2 Cannot decode response");
        return;
    }
    x->awaiting = false;
    if (x->kind == EX_RELAY) {
        s->pause |= PAUSE_AUTH;
        smtpd_dovecot_auth_continue(x->req, empty ? "" : b64);
    } else if (x->kind == EX_PLAIN) {
        plain_response(s, &d);
    } else {
        login_response(s, &d);
    }
    if (d.data)
        memset(d.data, 0, d.len);
    sb_free(&d);
}

bool smtpd_sasl_in_exchange(const struct smtpd_session *s)
{
    return s->sasl && s->sasl->awaiting;
}

void smtpd_sasl_exchange_line(struct smtpd_session *s, const char *line, size_t len)
{
    struct smtpd_sasl *x = s->sasl;
    if (len == 1 && line[0] == '*') {
        msg_warn("%s: SASL %s authentication aborted", s->client_desc, x->mech);
        exchange_end(s);
        smtpd_session_reply(s, 501, "5.7.0 Authentication aborted");
        return;
    }
    take_response(s, line, len);
}

bool smtpd_sasl_line_too_long(struct smtpd_session *s)
{
    if (!smtpd_sasl_in_exchange(s))
        return false;
    msg_warn("%s: SASL %s authentication failed: response line too long", s->client_desc,
             s->sasl->mech);
    exchange_end(s);
    smtpd_session_reply(s, 500, "5.5.6 Authentication exchange line is too long");
    return true;
}

static bool auth_refused(struct smtpd_session *s)
{
    if (!sc.enable) {
        smtpd_session_reply(s, 503, "5.5.1 Error: authentication not enabled");
    } else if (!s->esmtp) {
        smtpd_session_reply(s, 503, "5.5.1 Error: send EHLO first");
    } else if (s->in_mail) {
        smtpd_session_reply(s, 503, "5.5.1 Error: MAIL transaction in progress");
    } else if (sc.tls_only && !s->tls_active) {
        smtpd_session_reply(s, 538, "5.7.11 Encryption required for requested authentication mechanism");
    } else if (s->sasl_username) {
        smtpd_session_reply(s, 503, "5.5.1 Error: already authenticated");
    } else {
        return false;
    }
    return true;
}

void smtpd_sasl_auth_command(struct smtpd_session *s, const char *arg)
{
    if (auth_refused(s))
        return;
    size_t mlen = strcspn(arg, " ");
    const char *init = arg + mlen;
    while (*init == ' ')
        init++;
    /* RFC 4422 mechanism names: upper-case letters, digits, '-' and '_' */
    bool name_ok = mlen > 0 && mlen <= MECH_MAX;
    for (size_t i = 0; i < mlen && name_ok; i++) {
        char c = arg[i];
        name_ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                  || c == '-' || c == '_';
    }
    if (!name_ok || strchr(init, ' ')) {
        smtpd_session_reply(s, 501, "5.5.4 Syntax: AUTH mechanism");
        return;
    }
    if (smtpd_limits_auth_wait(s, arg))     /* runs again, or is refused, with anvil's count */
        return;
    struct smtpd_sasl *x = xcalloc(1, sizeof(*x));
    s->sasl = x;
    memcpy(x->mech, arg, mlen);
    for (char *p = x->mech; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    struct mech_walk w = { s, NULL, x->mech, false };
    mechs_walk(&w);
    if (!w.found) {
        auth_failed(s, false, "Invalid authentication mechanism", NULL);
        return;
    }
    if (sc.backend == BACKEND_DOVECOT) {
        x->kind = EX_RELAY;
        if (*init && strcmp(init, "=") != 0) {
            struct strbuf d = STRBUF_INIT(DECODED_MAX);
            int rc = base64_decode(&d, init, strlen(init));
            sb_free(&d);
            if (rc < 0) {
                exchange_end(s);
                smtpd_session_reply(s, 501, "5.5.2 Cannot decode response");
                return;
            }
        }
        x->req = smtpd_dovecot_auth_start(s, x->mech, *init ? (strcmp(init, "=") ? init : "") : NULL);
        if (!x->req) {
            auth_failed(s, true, "Connection lost to authentication server", NULL);
            return;
        }
        s->pause |= PAUSE_AUTH;
        return;
    }
    x->kind = strcmp(x->mech, "PLAIN") == 0 ? EX_PLAIN : EX_LOGIN;
    if (*init)
        take_response(s, init, strlen(init));
    else
        send_challenge(s, x->kind == EX_PLAIN ? "" : "VXNlcm5hbWU6");    /* "Username:" */
}

void smtpd_sasl_session_end(struct smtpd_session *s)
{
    exchange_end(s);
    free(s->sasl_method);
    s->sasl_method = NULL;
}
