/* smtpd_limits.h: client limits and session deadlines of the SMTP server:
 * the connection count and rate, message and recipient rate limits counted
 * by the anvil service across all smtpd processes (with the exemptions of
 * smtpd_client_event_limit_exceptions), the per-record deadline and the
 * total session time limit. */
#ifndef TERN_SMTPD_LIMITS_H
#define TERN_SMTPD_LIMITS_H

#include <stdbool.h>

struct event_base;
struct smtpd_session;

/* As root, before any chroot: open smtpd_client_event_limit_exceptions. */
void smtpd_limits_pre_init(void);
/* After the privilege drop, in the queue directory: read the parameters. */
void smtpd_limits_init(struct event_base *base);

/* A session starts (its peer is known): start its deadlines and ask anvil.
 * false: go on with the greeting now. true: the session waits for anvil,
 * and then either smtpd_session_start_greeting() runs or a 421 ends it. */
bool smtpd_limits_connect(struct smtpd_session *s);

/* MAIL FROM / RCPT TO, once their syntax is checked (arg: the command's
 * argument). false: go on. true: the command stops here; the session waits
 * for anvil, and then either runs the command again (smtpd_command_resume, when
 * this returns false) or refuses it with 452. */
bool smtpd_limits_mail_wait(struct smtpd_session *s, const char *arg);
bool smtpd_limits_rcpt_wait(struct smtpd_session *s, const char *arg);
/* AUTH, before its exchange starts: the same, with 450 for a refusal. */
bool smtpd_limits_auth_wait(struct smtpd_session *s, const char *arg);

/* Before a TLS handshake (STARTTLS or implicit TLS): false: go on now.
 * true: the session waits for anvil's count of new TLS sessions, then
 * answer(s, ok) runs: ok false means over smtpd_client_new_tls_session_rate_limit
 * (logged). After a handshake that did not resume a session,
 * smtpd_limits_newtls_count() counts it. */
bool smtpd_limits_newtls_wait(struct smtpd_session *s, void (*answer)(struct smtpd_session *s, bool ok));
void smtpd_limits_newtls_count(struct smtpd_session *s);

/* Input arrived / reading was switched on or off: the per-record deadline. */
void smtpd_limits_input(struct smtpd_session *s);
void smtpd_limits_reading(struct smtpd_session *s, bool on);

/* The session ends: tell anvil, stop the timers, free the state. */
void smtpd_limits_session_end(struct smtpd_session *s);

#endif
