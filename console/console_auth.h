/* console_auth.h: checking a console login's password with the SASL
 * back-end of smtpd_sasl_type (console_auth.c). */
#ifndef TERN_CONSOLE_AUTH_H
#define TERN_CONSOLE_AUTH_H

#include <stdbool.h>

/* false when no login can succeed (tern: no password table). */
bool console_auth_ready(void);

/* 1 right, 0 wrong (or unknown user), -1 the back-end cannot answer. */
int console_auth_check(const char *user, const char *password, const char *client);

#endif
