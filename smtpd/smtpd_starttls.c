/* smtpd_starttls.c: TLS in an SMTP session: the STARTTLS command (RFC 3207)
 * and implicit TLS (smtpd_tls_wrappermode), the new-TLS-session rate limit
 * before a handshake, and what follows one: Postfix's log lines (with the
 * client certificate, smtpd_ccert.c), the
 * protocol and cipher kept in the session (Received:, policy attributes),
 * and the SMTP state reset that makes the client start over with EHLO. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "metrics_client.h"
#include "smtpd.h"
#include "smtpd_limits.h"
#include "strbuf.h"
#include "util.h"

void smtpd_tls_session_summary(const struct smtpd_session *s, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, "%s with cipher %s (%d/%d bits)", s->tls_protocol, s->tls_cipher,
             s->tls_cipher_bits, s->tls_cipher_alg_bits);
}

/* ---- STARTTLS ---- */

static void starttls_go(struct smtpd_session *s)
{
    smtpd_session_reply(s, 220, "2.0.0 Ready to start TLS");
    /* Nothing more is read in clear text; the handshake starts once the
     * reply is written (session_write_cb). */
    s->tls_starting = true;
    s->pause |= PAUSE_TLS;
}

static void starttls_rate_answer(struct smtpd_session *s, bool ok)
{
    if (ok)
        starttls_go(s);
    else
        smtpd_session_reply(s, 454, "4.7.0 Error: too many new TLS sessions from %s", s->client_addr);
}

void smtpd_starttls_command(struct smtpd_session *s, const char *arg)
{
    if (smtpd_tls_server_level() == TLS_NONE) {
        smtpd_session_reply(s, 502, "5.5.1 Error: command not implemented");
        return;
    }
    if (*arg) {
        smtpd_session_reply(s, 501, "5.5.4 Syntax: STARTTLS");
        return;
    }
    if (s->tls_active) {
        smtpd_session_reply(s, 554, "5.5.1 Error: TLS already active");
        return;
    }
    if (!smtpd_tls_server_available()) {
        msg_warn("%s: STARTTLS refused: TLS is not available: %s", s->client_desc,
                 smtpd_tls_server_unavailable_reason());
        smtpd_session_reply(s, 454, "4.7.0 TLS not available due to local problem");
        return;
    }
    if (smtpd_limits_newtls_wait(s, starttls_rate_answer))
        return;
    starttls_go(s);
}

/* ---- implicit TLS ---- */

static void wrapper_rate_answer(struct smtpd_session *s, bool ok)
{
    if (!ok) {
        smtpd_session_close_with(s, 421, "4.7.0 %s Error: too many new TLS sessions from %s",
                                 smtpd_cfg.myhostname, s->client_addr);
        return;
    }
    if (!smtpd_session_start_tls(s))
        smtpd_session_close_with(s, 421, "4.7.0 %s Error: TLS not available due to local problem",
                                 smtpd_cfg.myhostname);
}

void smtpd_tls_wrapper_start(struct smtpd_session *s)
{
    s->where = "CONNECT";
    if (!smtpd_tls_server_available()) {
        msg_warn("%s: connection refused: smtpd_tls_wrappermode needs TLS, which is not "
                 "available: %s", s->client_desc, smtpd_tls_server_unavailable_reason());
        smtpd_session_close_with(s, 421, "4.7.0 %s Error: TLS not available due to local problem",
                                 smtpd_cfg.myhostname);
        smtpd_session_finish_if_done(s);
        return;
    }
    if (smtpd_limits_newtls_wait(s, wrapper_rate_answer))
        return;
    wrapper_rate_answer(s, true);
    smtpd_session_finish_if_done(s);
}

/* ---- after the handshake ---- */

void smtpd_tls_handshake_done(struct smtpd_session *s)
{
    SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    int alg_bits = 0;
    str_copy(s->tls_protocol, sizeof(s->tls_protocol), SSL_get_version(ssl));
    str_copy(s->tls_cipher, sizeof(s->tls_cipher), c ? SSL_CIPHER_get_name(c) : "unknown");
    s->tls_cipher_bits = c ? SSL_CIPHER_get_bits(c, &alg_bits) : 0;
    s->tls_cipher_alg_bits = alg_bits;
    s->tls_handshaking = false;
    s->tls_active = true;
    METRICS_ADD(M_SMTPD_TLS, 1, s->tls_protocol);
    bool ccert_ok = smtpd_ccert_handshake_done(s);     /* and the log line */
    if (!SSL_session_reused(ssl))
        smtpd_limits_newtls_count(s);
    if (!ccert_ok) {
        s->pause &= ~PAUSE_TLS;
        smtpd_session_close_with(s, 421, "4.7.1 %s Service unavailable - try again later",
                                 smtpd_cfg.myhostname);
        smtpd_session_finish_if_done(s);
        return;
    }
    /* RFC 3207: forget everything learned before the handshake. */
    free(s->helo_name);
    s->helo_name = NULL;
    s->esmtp = false;
    smtpd_session_mail_reset(s);
    if (smtpd_tls_server_wrappermode()) {
        s->pause &= ~PAUSE_TLS;
        smtpd_session_start_greeting(s);
    } else {
        smtpd_session_resume(s, PAUSE_TLS);
    }
}

void smtpd_tls_handshake_failed(struct smtpd_session *s, short what)
{
    struct strbuf why = STRBUF_INIT(1024);
    unsigned long e;
    const char *sep = "";
    for (int i = 0; i < 8 && (e = bufferevent_get_openssl_error(s->bev)) != 0; i++) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        sb_appendf(&why, "%s%s", sep, buf);
        sep = "; ";
    }
    smtpd_tls_append_errors(&why);    /* anything left in the thread's queue */
    if (why.len == 0)
        sb_appends(&why, (what & BEV_EVENT_TIMEOUT) ? "timeout" : (what & BEV_EVENT_EOF)
                                                                  ? "lost connection"
                                                                  : "handshake failed");
    msg_info("SSL_accept error from %s: %s", s->client_desc, sb_str(&why));
    msg_info("lost connection after %s from %s", smtpd_tls_server_wrappermode() ? "CONNECT" : "STARTTLS",
             s->client_desc);
    s->quit_seen = true;        /* the line above said how it ended */
    sb_free(&why);
}
