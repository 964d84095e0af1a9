/* smtpd_sasl.h: SMTP AUTH (RFC 4954) in smtpd: the command and its
 * exchange (smtpd_sasl.c), the password-table back-end
 * (smtpd_sasl_passwd.c) and the Dovecot back-end (smtpd_sasl_dovecot.c). */
#ifndef TERN_SMTPD_SASL_H
#define TERN_SMTPD_SASL_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct smtpd_session;
struct strbuf;

/* ---- smtpd_sasl.c: the AUTH command ---- */
void smtpd_sasl_pre_init(void);                   /* as root: open the password tables */
void smtpd_sasl_init(struct event_base *base);    /* after the privilege drop */
/* Append the AUTH lines of the EHLO reply (each ending in "\n"), if any. */
void smtpd_sasl_ehlo_keywords(struct smtpd_session *s, struct strbuf *r);
void smtpd_sasl_auth_command(struct smtpd_session *s, const char *arg);
/* A line arrives while AUTH waits for the client's response. */
bool smtpd_sasl_in_exchange(const struct smtpd_session *s);
void smtpd_sasl_exchange_line(struct smtpd_session *s, const char *line, size_t len);
/* The client's response line was too long: end the exchange (true), or
 * false when no exchange is under way. */
bool smtpd_sasl_line_too_long(struct smtpd_session *s);
void smtpd_sasl_session_end(struct smtpd_session *s);

/* Back-end answers, delivered to the session (from the event loop, never
 * from inside the call that asked). */
enum smtpd_sasl_status { SASL_DONE, SASL_FAIL, SASL_TEMP, SASL_MORE };
/* DONE: text is the user name; FAIL and TEMP: the reason; MORE: the
 * base64 challenge for a 334 reply. */
void smtpd_sasl_backend_answer(struct smtpd_session *s, enum smtpd_sasl_status st, const char *text);

/* Mechanism properties, for the security options (as Dovecot's). */
#define SASL_MECH_ANONYMOUS  0x01
#define SASL_MECH_PLAINTEXT  0x02
#define SASL_MECH_DICTIONARY 0x04
#define SASL_MECH_ACTIVE     0x08
#define SASL_MECH_FWD_SECRECY 0x10
#define SASL_MECH_MUTUAL     0x20

/* ---- smtpd_sasl_passwd.c: smtpd_sasl_type = tern ---- */
struct smtpd_passwd_job;
int smtpd_passwd_open(const char *maps, struct strbuf *err);   /* 0 ok, -1 with err (as root) */
void smtpd_passwd_start_helpers(struct event_base *base);      /* after the privilege drop */
/* Check a user's password against smtpd_sasl_password_maps; the answer
 * (SASL_DONE or SASL_FAIL) comes through smtpd_sasl_backend_answer. NULL when
 * the tables cannot be asked now (why says so: a temporary failure). */
struct smtpd_passwd_job *smtpd_passwd_check_start(struct smtpd_session *s, const char *user,
                                                  const char *password, const char **why);
/* The session no longer waits for the answer. */
void smtpd_passwd_check_cancel(struct smtpd_passwd_job *j);

/* ---- smtpd_sasl_dovecot.c: smtpd_sasl_type = dovecot ---- */
struct smtpd_dovecot_request;
void smtpd_dovecot_client_init(struct event_base *base, const char *path, const char *service,
                               long timeout);
/* The mechanisms Dovecot offers: calls fn for each (name, SASL_MECH_*
 * flags); before the first handshake, PLAIN and LOGIN. */
void smtpd_dovecot_client_mechs(void (*fn)(const char *name, unsigned flags, void *ctx), void *ctx);
/* Start an authentication; the answers come through smtpd_sasl_backend_answer.
 * resp: the base64 initial response or NULL. */
struct smtpd_dovecot_request *smtpd_dovecot_auth_start(struct smtpd_session *s, const char *mech,
                                                       const char *resp);
/* The client's base64 response to a challenge. */
void smtpd_dovecot_auth_continue(struct smtpd_dovecot_request *r, const char *resp);
/* Forget a request (the session ends or gave up); no answer follows. */
void smtpd_dovecot_request_cancel(struct smtpd_dovecot_request *r);

#endif
