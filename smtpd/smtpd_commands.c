/* smtpd_commands.c: the SMTP commands other than DATA, BDAT and ETRN
 * (smtpd_etrn.c): HELO, EHLO, MAIL, RCPT (with the relay check), RSET, NOOP,
 * QUIT, VRFY, EXPN, HELP and the refusals for TURN and anything unknown. Reply texts follow
 * Postfix so that administrators and their tools recognize them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics_client.h"
#include "smtpd.h"
#include "smtpd_limits.h"
#include "smtpd_sasl.h"
#include "smtpd_milter.h"
#include "smtpd_proxy.h"
#include "soft_bounce.h"
#include "strbuf.h"
#include "util.h"

void smtpd_command_log_reject(struct smtpd_session *s, const char *what, int code,
                              const char *text, const char *rcpt)
{
    smtpd_command_log_whatsup(s, "reject", what, code, text, rcpt);
}

void smtpd_command_log_whatsup(struct smtpd_session *s, const char *whatsup, const char *what,
                               int code, const char *text, const char *rcpt)
{
    struct strbuf line = STRBUF_INIT(4096), sent = STRBUF_INIT(1024);
    sb_appends(&sent, text);      /* what the client was sent (soft_bounce) */
    for (size_t i = 0; i < sent.len; i++)
        if (sent.data[i] == '\n' && strcmp(whatsup, "reject") != 0)   /* a filter's multi-line reply */
            sent.data[i] = ' ';
    code = soft_bounce_reply(code, sent.len ? sent.data : NULL);
    sb_appendf(&line, "NOQUEUE: %s: %s from %s: %d %s; from=<%s> to=<%s> proto=%s",
               whatsup, what, s->client_desc, code, sb_str(&sent),
               s->in_mail ? s->mail.sender.address : "", rcpt, s->esmtp ? "ESMTP" : "SMTP");
    if (s->helo_name)
        sb_appendf(&line, " helo=<%s>", s->helo_name);
    msg_info("%s", sb_str(&line));
    sb_free(&line);
    sb_free(&sent);
    METRICS_ADD(M_SMTPD_REJECTS, 1, "eod", "message_content");
}

static void ehlo_reply(struct smtpd_session *s)
{
    struct strbuf r = STRBUF_INIT(2048);
    sb_appendf(&r, "%s\nPIPELINING\n", smtpd_cfg.myhostname);
    if (smtpd_cfg.size_limit > 0)
        sb_appendf(&r, "SIZE %lld\n", smtpd_cfg.size_limit);
    else
        sb_appends(&r, "SIZE\n");
    if (!smtpd_cfg.disable_vrfy)
        sb_appends(&r, "VRFY\n");
    sb_appends(&r, "ETRN\n");
    if (smtpd_tls_server_level() != TLS_NONE && smtpd_tls_server_available() && !s->tls_active)
        sb_appends(&r, "STARTTLS\n");
    smtpd_sasl_ehlo_keywords(s, &r);
    sb_appends(&r, "ENHANCEDSTATUSCODES\n8BITMIME\nDSN\n");
    if (smtpd_cfg.smtputf8)
        sb_appends(&r, "SMTPUTF8\n");
    if (smtpd_cfg.requiretls && s->tls_active)     /* RFC 8689: only once TLS is up */
        sb_appends(&r, "REQUIRETLS\n");
    sb_appends(&r, "CHUNKING");
    smtpd_session_reply(s, 250, "%s", sb_str(&r));
    sb_free(&r);
}

/* Each command's continuation: it runs once the restrictions passed it,
 * and again once the milters passed it. */
static void smtpd_command_helo_accept(struct smtpd_session *s, char *name, bool ehlo);   /* takes name */
static void smtpd_command_mail_accept(struct smtpd_session *s);
static void smtpd_command_rcpt_accept(struct smtpd_session *s, const char *arg);
static void smtpd_command_rcpt_proxied(struct smtpd_session *s, int code, const char *text);

static void helo_command(struct smtpd_session *s, const char *arg, bool ehlo)
{
    if (s->in_mail) {
        smtpd_session_reply(s, 503, "5.5.1 Error: MAIL transaction in progress");
        return;
    }
    char *name = smtp_parse_helo(arg);
    if (!name) {
        smtpd_session_reply(s, 501, "5.5.4 Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
        return;
    }
    /* smtpd_helo_restrictions without smtpd_delay_reject */
    if (smtpd_check_helo_wait(s, name, ehlo, smtpd_command_helo_accept))
        return;
    smtpd_command_helo_accept(s, name, ehlo);
}

static void smtpd_command_helo_accept(struct smtpd_session *s, char *name, bool ehlo)
{
    if (smtpd_milter_helo_wait(s, name, ehlo, smtpd_command_helo_accept))
        return;
    free(s->helo_name);
    s->helo_name = name;
    s->esmtp = ehlo;
    if (ehlo)
        ehlo_reply(s);
    else
        smtpd_session_reply(s, 250, "%s", smtpd_cfg.myhostname);
}

static struct smtp_parse_opts parse_opts(const struct smtpd_session *s)
{
    /* REQUIRETLS: refused with "issue STARTTLS first" where STARTTLS could
     * make it acceptable, unknown where no TLS is to be had */
    bool tls_possible = s->tls_active
                        || (smtpd_tls_server_level() != TLS_NONE && smtpd_tls_server_available());
    struct smtp_parse_opts o = { smtpd_cfg.size_limit, smtpd_cfg.smtputf8, smtpd_cfg.strict_rfc821,
                                 smtpd_cfg.requiretls && tls_possible,
                                 smtpd_cfg.requiretls && s->tls_active };
    return o;
}

bool smtpd_helo_given(struct smtpd_session *s)
{
    if (smtpd_cfg.helo_required && !s->helo_name) {
        smtpd_session_reply(s, 503, "5.5.1 Error: send HELO/EHLO first");
        return false;
    }
    return true;
}

static void mail_command(struct smtpd_session *s, const char *arg)
{
    struct smtp_parse_opts o = parse_opts(s);
    struct smtp_parse_error err;
    if (!smtpd_helo_given(s))
        return;
    if (s->in_mail) {
        smtpd_session_reply(s, 503, "5.5.1 Error: nested MAIL command");
        return;
    }
    if (smtp_parse_mail(arg, &o, &s->mail, &err) < 0) {
        smtpd_session_reply(s, err.code, "%s", err.text);
        return;
    }
    if (smtpd_limits_mail_wait(s, arg)) {     /* runs again, or is refused, with anvil's count */
        smtp_mail_args_free(&s->mail);
        return;
    }
    /* smtpd_sender_restrictions without smtpd_delay_reject */
    if (smtpd_check_mail_wait(s, smtpd_command_mail_accept))
        return;
    smtpd_command_mail_accept(s);
}

static void smtpd_command_mail_proxied(struct smtpd_session *s, int code, const char *text);

static void smtpd_command_mail_accept(struct smtpd_session *s)
{
    if (smtpd_milter_mail_wait(s, smtpd_command_mail_accept))
        return;
    if (smtpd_proxy_mail_wait(s, smtpd_command_mail_proxied))   /* smtpd_proxy_filter */
        return;
    s->in_mail = true;
    smtpd_session_reply(s, 250, "2.1.0 Ok");
}

/* The proxy filter's answer to MAIL FROM: its refusal is the client's. */
static void smtpd_command_mail_proxied(struct smtpd_session *s, int code, const char *text)
{
    if (code / 100 != 2) {
        s->in_mail = true;      /* for the log line's from=<> */
        smtpd_command_log_whatsup(s, "proxy-reject", "MAIL", code, text, "");
        smtpd_session_mail_reset(s);
        smtpd_session_reply(s, code, "%s", text);
        return;
    }
    s->in_mail = true;
    smtpd_session_reply(s, 250, "2.1.0 Ok");
}

static void add_rcpt(struct smtpd_session *s, const struct smtp_rcpt_args *r)
{
    char notify[64];
    if (s->nrcpt == s->caprcpt) {
        s->caprcpt = s->caprcpt ? s->caprcpt * 2 : 8;
        s->rcpts = xrealloc(s->rcpts, s->caprcpt * sizeof(*s->rcpts));
    }
    struct smtpd_rcpt *d = &s->rcpts[s->nrcpt++];
    d->address = xstrdup(r->rcpt.address);
    d->orcpt = xstrdup(r->orcpt ? r->orcpt : "");
    d->notify = xstrdup(smtp_notify_string(r->notify, notify, sizeof(notify)));
}

static void rcpt_command(struct smtpd_session *s, const char *arg)
{
    struct smtp_parse_opts o = parse_opts(s);
    struct smtp_parse_error err;
    struct smtp_rcpt_args r;
    if (!s->in_mail) {
        smtpd_session_reply(s, 503, "5.5.1 Error: need MAIL command");
        return;
    }
    if (s->bdat_mode) {
        smtpd_session_reply(s, 503, "5.5.1 Error: RCPT after BDAT");
        return;
    }
    if (smtpd_cfg.recipient_limit > 0 && (long)s->nrcpt >= smtpd_cfg.recipient_limit) {
        smtpd_session_reply(s, 452, "4.5.3 Error: too many recipients");
        return;
    }
    if (smtp_parse_rcpt(arg, &o, s->mail.smtputf8, &r, &err) < 0) {
        smtpd_session_reply(s, err.code, "%s", err.text);
        return;
    }
    if (smtpd_limits_rcpt_wait(s, arg)) {     /* runs again, or is refused, with anvil's count */
        smtp_rcpt_args_free(&r);
        return;
    }
    smtpd_check_rcpt(s, arg, &r, smtpd_command_rcpt_accept);   /* replies, or goes on there */
    smtp_rcpt_args_free(&r);
}

static void smtpd_command_rcpt_accept(struct smtpd_session *s, const char *arg)
{
    struct smtp_parse_opts o = parse_opts(s);
    struct smtp_parse_error err;
    struct smtp_rcpt_args r;
    if (smtp_parse_rcpt(arg, &o, s->mail.smtputf8, &r, &err) < 0) {
        smtpd_session_reply(s, err.code, "%s", err.text);
        return;
    }
    if (smtpd_milter_rcpt_wait(s, arg, &r, smtpd_command_rcpt_accept)) {
        smtp_rcpt_args_free(&r);
        return;
    }
    add_rcpt(s, &r);
    smtp_rcpt_args_free(&r);
    if (smtpd_proxy_rcpt_wait(s, s->nrcpt - 1, smtpd_command_rcpt_proxied))   /* smtpd_proxy_filter */
        return;
    smtpd_session_reply(s, 250, "2.1.5 Ok");
}

/* The proxy filter's answer to RCPT TO: its refusal replaces our 250 and
 * the recipient is dropped from the transaction. */
static void smtpd_command_rcpt_proxied(struct smtpd_session *s, int code, const char *text)
{
    if (code / 100 == 2 || s->nrcpt == 0) {
        smtpd_session_reply(s, 250, "2.1.5 Ok");
        return;
    }
    struct smtpd_rcpt *d = &s->rcpts[--s->nrcpt];
    smtpd_command_log_whatsup(s, "proxy-reject", "RCPT", code, text, d->address);
    free(d->address);
    free(d->orcpt);
    free(d->notify);
    smtpd_session_reply(s, code, "%s", text);
}

/* VRFY and EXPN (both off with disable_vrfy_command = yes): the address
 * may come in angle brackets; it is judged as a recipient would be. */
static void vrfy_command(struct smtpd_session *s, const char *verb, const char *arg)
{
    if (smtpd_cfg.disable_vrfy) {
        smtpd_session_reply(s, 502, "5.5.1 %s command is disabled", verb);
        return;
    }
    size_t len = strlen(arg);
    while (len > 0 && (arg[len - 1] == ' ' || arg[len - 1] == '\t'))
        len--;
    if (len >= 2 && arg[0] == '<' && arg[len - 1] == '>') {
        arg++;
        len -= 2;
    }
    char address[ADDRESS_MAX_LEN + 1];
    if (len == 0 || len >= sizeof(address) || memchr(arg, '<', len) || memchr(arg, '>', len)) {
        smtpd_session_reply(s, 501, "5.5.4 Syntax: %s address", verb);
        return;
    }
    memcpy(address, arg, len);
    address[len] = 0;
    smtpd_check_verify(s, address);
}

static void simple_command(struct smtpd_session *s, enum smtp_verb v, const char *arg)
{
    switch (v) {
    case SMTP_RSET:
        if (*arg) {
            smtpd_session_reply(s, 501, "5.5.4 Syntax: RSET");
            return;
        }
        smtpd_session_mail_reset(s);
        smtpd_session_reply(s, 250, "2.0.0 Ok");
        return;
    case SMTP_NOOP:
        smtpd_session_reply(s, 250, "2.0.0 Ok");
        return;
    case SMTP_QUIT:
        s->quit_seen = true;
        smtpd_session_close_with(s, 221, "2.0.0 Bye");
        return;
    case SMTP_HELP:
        smtpd_session_reply(s, 214, "2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY "
                            "EXPN ETRN HELP STARTTLS");
        return;
    case SMTP_TURN:
        smtpd_session_reply(s, 502, "5.5.1 Error: command not implemented");
        return;
    default:
        smtpd_session_reply(s, 500, "5.5.2 Error: command not recognized");
        return;
    }
}

/* An unknown command goes to the milters first; they may answer it. */
static void unknown_command(struct smtpd_session *s, const char *line, size_t len)
{
    if (!smtpd_milter_unknown_wait(s, line, len))
        smtpd_session_reply(s, 500, "5.5.2 Error: command not recognized");
}

void smtpd_command_dispatch(struct smtpd_session *s, const char *line, size_t len)
{
    if (smtpd_sasl_in_exchange(s)) {      /* a response to an AUTH challenge */
        smtpd_sasl_exchange_line(s, line, len);
        return;
    }
    const char *arg;
    enum smtp_verb v = len ? smtp_parse_verb(line, len, &arg) : SMTP_UNKNOWN;
    smtpd_session_begin_command(s, v);
    if (len == 0 || smtp_line_has_nul(line, len)) {
        smtpd_session_reply(s, 500, "5.5.2 Error: bad syntax");
        return;
    }
    if (smtp_line_bad_utf8(line, len)) {
        smtpd_session_reply(s, 500, "5.5.2 Error: bad UTF-8 syntax");
        return;
    }
    if (smtpd_check_command_denied(s, v))   /* the client restrictions refused this client */
        return;
    if (smtpd_tls_server_level() == TLS_ENCRYPT && !s->tls_active && v != SMTP_EHLO && v != SMTP_HELO
        && v != SMTP_STARTTLS && v != SMTP_NOOP && v != SMTP_QUIT && v != SMTP_RSET) {
        smtpd_session_reply(s, 530, "5.7.0 Must issue a STARTTLS command first");
        return;
    }
    if (smtpd_milter_command_denied(s, v))    /* a milter refused this client */
        return;
    switch (v) {
    case SMTP_HELO: helo_command(s, arg, false); break;
    case SMTP_EHLO: helo_command(s, arg, true); break;
    case SMTP_AUTH: smtpd_sasl_auth_command(s, arg); break;
    case SMTP_MAIL: mail_command(s, arg); break;
    case SMTP_RCPT: rcpt_command(s, arg); break;
    case SMTP_DATA: smtpd_data_command(s, arg); break;
    case SMTP_BDAT: smtpd_bdat_command(s, arg); break;
    case SMTP_VRFY: vrfy_command(s, "VRFY", arg); break;
    case SMTP_EXPN: vrfy_command(s, "EXPN", arg); break;
    case SMTP_ETRN: smtpd_etrn_command(s, arg); break;
    case SMTP_STARTTLS: smtpd_starttls_command(s, arg); break;
    case SMTP_UNKNOWN: unknown_command(s, line, len); break;
    default: simple_command(s, v, arg); break;
    }
}

void smtpd_command_resume(struct smtpd_session *s, enum smtp_verb v, const char *arg)
{
    if (v == SMTP_MAIL)
        mail_command(s, arg);
    else if (v == SMTP_RCPT)
        rcpt_command(s, arg);
    else if (v == SMTP_AUTH)
        smtpd_sasl_auth_command(s, arg);
}
