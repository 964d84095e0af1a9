/* console_auth.h: checking a console login's password with the SASL
 * back-end of smtpd_sasl_type (console_auth.c). */
#ifndef TERN_CONSOLE_AUTH_H
#define TERN_CONSOLE_AUTH_H

#include <stdbool.h>

#include "strbuf.h"

/* false when no login can succeed (tern: no password table). */
bool console_auth_ready(void);

/* 1 right, 0 wrong (or unknown user), -1 the back-end cannot answer.
 * On 1, who holds the name the back-end authenticated, which is the one
 * the session must carry: Dovecot may map the name typed to another
 * (auth_username_format, a master user). secured: the password came over
 * TLS or from the loopback, for Dovecot's disable_plaintext_auth. */
int console_auth_check(const char *user, const char *password, const char *client, bool secured,
                       struct strbuf *who);

#endif
