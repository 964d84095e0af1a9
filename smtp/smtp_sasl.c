/* smtp_sasl.c: AUTH to a remote server (RFC 4954), as Postfix's SMTP client
 * does it: with smtp_sasl_auth_enable, when the server offers AUTH and
 * smtp_sasl_password_maps has an entry for it (the remote host name first,
 * then the next hop as written: "[relay.example]:587"), with PLAIN or
 * LOGIN among the server's mechanisms that smtp_sasl_mechanism_filter and
 * the security options of the connection allow. Both mechanisms send the
 * password itself, so the defaults (noplaintext) never send it: the
 * administrator allows them on TLS connections with
 * smtp_sasl_tls_security_options = noanonymous, or everywhere with
 * smtp_sasl_security_options = noanonymous. Credentials never reach a log
 * line, and their copies are wiped after use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "config.h"
#include "log.h"
#include "maps.h"
#include "smtp.h"
#include "util.h"

#define SASL_VALUE_MAX 1024         /* a username:password table value */
#define SASL_B64_MAX 1400           /* base64 of at most SASL_VALUE_MAX + 2 bytes */

void smtp_sasl_init(void)
{
    struct strbuf why = STRBUF_INIT(256);
    smtp_cfg.sasl_enable = cfg_bool(smtp_param(P_smtp_sasl_auth_enable));
    smtp_cfg.sasl_soft_bounce = cfg_bool(smtp_param(P_smtp_sasl_auth_soft_bounce));
    static const enum param_id opts[] = { P_smtp_sasl_security_options, P_smtp_sasl_tls_security_options,
                                          P_smtp_sasl_tls_verified_security_options };
    unsigned *dest[] = { &smtp_cfg.sasl_options, &smtp_cfg.sasl_tls_options,
                         &smtp_cfg.sasl_tls_verified_options };
    for (size_t i = 0; i < 3; i++)
        if (smtp_sasl_options_parse(cfg_str(smtp_param(opts[i])), dest[i], &why) < 0)
            msg_fatal("%s = %s: %s (main.cf)", smtp_param_name(opts[i]), cfg_str(smtp_param(opts[i])),
                      sb_str(&why));
    const char *filter = cfg_str(smtp_param(P_smtp_sasl_mechanism_filter));
    smtp_cfg.sasl_mechanism_filter = *filter ? smtp_sasl_mechs_parse(filter, strlen(filter))
                                             : SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN;
    if (*filter && !smtp_cfg.sasl_mechanism_filter)
        msg_warn("%s = %s: names neither PLAIN nor LOGIN, the only mechanisms "
                 "implemented; the %s client will not authenticate",
                 smtp_param_name(P_smtp_sasl_mechanism_filter), filter, smtp_cfg.lmtp ? "LMTP" : "SMTP");
    const char *maps = cfg_str(smtp_param(P_smtp_sasl_password_maps));
    /* Opened now, as root: password tables are readable by root only. */
    if (smtp_cfg.sasl_enable && *maps) {
        smtp_cfg.sasl_password_maps = maplist_open(maps, &why);
        if (!smtp_cfg.sasl_password_maps)
            msg_fatal("%s: %s (main.cf)", smtp_param_name(P_smtp_sasl_password_maps), sb_str(&why));
    }
    sb_free(&why);
}

void smtp_sasl_exit(void)
{
    maplist_close(smtp_cfg.sasl_password_maps);
    smtp_cfg.sasl_password_maps = NULL;
}

static void wipe(struct strbuf *sb)
{
    if (sb->data)
        OPENSSL_cleanse(sb->data, sb->cap);
    sb_free(sb);
}

void smtp_sasl_free(char *user, char *password)
{
    if (user) {
        OPENSSL_cleanse(user, strlen(user));
        free(user);
    }
    if (password) {
        OPENSSL_cleanse(password, strlen(password));
        free(password);
    }
}

int smtp_sasl_lookup(const struct smtp_session *s, const struct smtp_request *rq, char **user,
                     char **password)
{
    *user = *password = NULL;
    if (!smtp_cfg.sasl_password_maps)
        return 0;
    struct strbuf value = STRBUF_INIT(SASL_VALUE_MAX);
    const char *keys[] = { s->host, rq->dr->nexthop };
    int rc = 0;
    for (size_t k = 0; k < 2 && rc == 0; k++)
        rc = maplist_lookup(smtp_cfg.sasl_password_maps, keys[k], &value);
    if (rc > 0) {
        const char *v = sb_str(&value), *colon = strchr(v, ':');
        *user = colon ? xstrndup(v, (size_t)(colon - v)) : xstrdup(v);
        *password = xstrdup(colon ? colon + 1 : "");
    }
    wipe(&value);
    return rc;
}

/* Base64 of data (len bytes) into out: -1 when it would not fit. */
static int base64(const unsigned char *data, size_t len, char *out, size_t size)
{
    if (len > SASL_VALUE_MAX + 2 || 4 * ((len + 2) / 3) + 1 > size)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return 0;
}

/* Send one line of the exchange (shown in debug logs as shown) and read
 * the reply: 0, or -1 when the connection failed. */
static int exchange(struct smtp_session *s, const char *shown, const char *line)
{
    if (smtp_queue_secret(s, shown, line) < 0 || smtp_flush(s, smtp_cfg.helo_timeout) < 0)
        return -1;
    return smtp_read_reply(s, smtp_cfg.helo_timeout);
}

/* AUTH PLAIN with the initial response. */
static int auth_plain(struct smtp_session *s, const char *user, const char *password)
{
    size_t ul = strlen(user), pl = strlen(password);
    unsigned char raw[SASL_VALUE_MAX + 2];
    char b64[SASL_B64_MAX], line[SASL_B64_MAX + 16];
    if (ul + pl > SASL_VALUE_MAX)
        return -2;
    raw[0] = 0;
    memcpy(raw + 1, user, ul);
    raw[1 + ul] = 0;
    memcpy(raw + 2 + ul, password, pl);
    int rc = base64(raw, ul + pl + 2, b64, sizeof(b64));
    if (rc == 0) {
        snprintf(line, sizeof(line), "AUTH PLAIN %s", b64);
        rc = exchange(s, "AUTH PLAIN <credentials>", line);
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(b64, sizeof(b64));
    OPENSSL_cleanse(line, sizeof(line));
    if (rc == 0 && s->reply.code == 334)
        rc = exchange(s, "*", "*") < 0 ? -1 : -3;     /* no challenge is expected: cancel */
    return rc;
}

/* AUTH LOGIN: the user name and the password, each after a 334. */
static int auth_login(struct smtp_session *s, const char *user, const char *password)
{
    char b64[SASL_B64_MAX];
    if (strlen(user) > SASL_VALUE_MAX || strlen(password) > SASL_VALUE_MAX)
        return -2;
    int rc = exchange(s, "AUTH LOGIN", "AUTH LOGIN");
    if (rc == 0 && s->reply.code == 334) {
        rc = base64((const unsigned char *)user, strlen(user), b64, sizeof(b64)) < 0 ? -2
             : exchange(s, "<username>", b64);
        if (rc == 0 && s->reply.code == 334)
            rc = base64((const unsigned char *)password, strlen(password), b64, sizeof(b64)) < 0 ? -2
                 : exchange(s, "<password>", b64);
    }
    OPENSSL_cleanse(b64, sizeof(b64));
    if (rc == 0 && s->reply.code == 334)
        rc = exchange(s, "*", "*") < 0 ? -1 : -3;      /* a third challenge: cancel */
    return rc;
}

static unsigned connection_options(const struct smtp_session *s)
{
    if (!s->ssl)
        return smtp_cfg.sasl_options;
    return s->tls_trusted && s->tls_matched ? smtp_cfg.sasl_tls_verified_options
                                            : smtp_cfg.sasl_tls_options;
}

enum smtp_sasl_result smtp_sasl_authenticate(struct smtp_session *s, const struct smtp_request *rq,
                                             struct strbuf *why, char dsn[SMTP_DSN_SIZE],
                                             int *status)
{
    if (!smtp_cfg.sasl_enable || !(s->features & SMTP_FEAT_AUTH))
        return SMTP_SASL_SKIPPED;
    char *user, *password;
    int found = smtp_sasl_lookup(s, rq, &user, &password);
    *status = 4;
    sb_reset(why);
    if (found < 0) {
        msg_warn("%s: SASL password lookup for %s: table lookup error", rq->dr->queue_id, s->host);
        str_copy(dsn, SMTP_DSN_SIZE, "4.3.0");
        sb_appends(why, "SASL password table lookup error");
        return SMTP_SASL_FAILED;
    }
    if (found == 0)
        return SMTP_SASL_SKIPPED;
    unsigned mechs = s->auth_mechs & smtp_cfg.sasl_mechanism_filter
                     & smtp_sasl_mechs_allowed(connection_options(s));
    if (!mechs) {
        smtp_sasl_free(user, password);
        str_copy(dsn, SMTP_DSN_SIZE, "4.7.0");
        sb_appendf(why, "SASL authentication failed: server %s offered no compatible authentication "
                   "mechanisms for this type of connection security", s->name);
        return SMTP_SASL_FAILED;
    }
    unsigned mech = mechs & SMTP_AUTH_PLAIN ? SMTP_AUTH_PLAIN : SMTP_AUTH_LOGIN;
    int rc = mech == SMTP_AUTH_PLAIN ? auth_plain(s, user, password) : auth_login(s, user, password);
    smtp_sasl_free(user, password);
    if (rc == 0 && s->reply.code / 100 == 2) {
        s->authenticated = true;
        msg_debug("%s: authenticated with %s", s->desc, smtp_sasl_mech_name(mech));
        return SMTP_SASL_OK;
    }
    str_copy(dsn, SMTP_DSN_SIZE, "4.7.0");
    if (rc == -1) {
        str_copy(dsn, SMTP_DSN_SIZE, "4.4.2");
        if (s->timed_out)
            sb_appendf(why, "conversation with %s timed out while performing SASL authentication", s->name);
        else
            sb_appendf(why, "lost connection with %s while performing SASL authentication", s->name);
    } else if (rc == -2) {
        sb_appendf(why, "SASL authentication failed; cannot authenticate to server %s: "
                   "credentials too long", s->name);
    } else {
        int cls = s->reply.code / 100;
        *status = cls == 5 && !smtp_cfg.sasl_soft_bounce ? 5 : 4;
        smtp_reply_dsn(&s->reply, *status, dsn);
        sb_appendf(why, "SASL authentication failed; server %s said: ", s->name);
        smtp_reply_oneline(&s->reply, why);
        if (rc == -3)
            sb_appendf(why, " (unexpected %s challenge)", smtp_sasl_mech_name(mech));
    }
    return SMTP_SASL_FAILED;
}
