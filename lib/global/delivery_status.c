/* delivery_status.c: recording the outcome of one delivery
 * (delivery_status.h). */
#include <stdarg.h>
#include <stdio.h>

#include "delivery_status.h"
#include "soft_bounce.h"
#include "util.h"

void delivery_status_set(struct delivery_status *st, int status, const char *dsn,
                         const char *fmt, ...)
{
    va_list ap;
    str_copy(st->dsn, sizeof(st->dsn), dsn);
    st->status = soft_bounce_status(status, st->dsn);
    va_start(ap, fmt);
    vsnprintf(st->reason, sizeof(st->reason), fmt, ap);
    va_end(ap);
    str_sanitize(st->reason);
    st->aux = -1;
}
