/* soft_bounce.h: Postfix's soft_bounce safety net. With soft_bounce = yes
 * nothing is returned to its sender and nothing is refused for good: a
 * delivery that would bounce is deferred instead, and every 5XX reply of
 * the SMTP server becomes 4XX, so that mail waits while an administrator
 * fixes a mistake in the configuration. A message that outlives
 * maximal_queue_lifetime is still returned, as with Postfix. */
#ifndef TERN_SOFT_BOUNCE_H
#define TERN_SOFT_BOUNCE_H

#include <stdbool.h>

/* Whether soft_bounce is on (read from the loaded configuration). */
bool soft_bounce_enabled(void);

/* The status a delivery outcome takes: 5 becomes 4 when soft_bounce is on,
 * and then the class digit of dsn ("5.X.Y", writable) becomes 4 as well. */
int soft_bounce_status(int status, char *dsn);

/* An SMTP reply: a code 5XX becomes 4XX when soft_bounce is on, and then
 * an enhanced status code "5.X.Y" at the start of text (writable, may be
 * NULL) becomes "4.X.Y"; the rest of the text stays as it is. Returns the
 * code to send (and to log, so that the log shows what the client got). */
int soft_bounce_reply(int code, char *text);

#endif
