/* local_result.c: the outcome of one delivery (status, enhanced status code,
 * one line of text) and the mapping of system errors to deferral or bounce. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "local.h"
#include "soft_bounce.h"
#include "util.h"

void local_result_set(struct local_result *r, int status, const char *dsn, const char *fmt, ...)
{
    va_list ap;
    str_copy(r->dsn, sizeof(r->dsn), dsn);
    r->status = soft_bounce_status(status, r->dsn);
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
    str_sanitize(r->reason);
    r->aux = -1;
}

const char *local_result_dsn_for_errno(int err, int *status)
{
    return mailbox_dsn_for_errno(err, status);
}

void local_result_from_mailbox(struct local_result *r, const struct mailbox_status *st)
{
    local_result_set(r, st->status, st->dsn, "%s", st->reason);
}
