/* log_delivery.c: the delivery log line (log_delivery.h), written here and
 * nowhere else so that qmgr and every agent keep one frozen shape. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "log_delivery.h"
#include "util.h"

const char *delivery_status_name(int status)
{
    switch (status) {
    case 2:
        return "sent";
    case 4:
        return "deferred";
    case 5:
        return "bounced";
    default:
        return "?";
    }
}

long long delivery_queue_delay(long long arrival_usec, long long start_usec)
{
    return arrival_usec > 0 && arrival_usec < start_usec ? start_usec - arrival_usec : 0;
}

const char *delivery_orig_to(const char *orcpt, const char *to)
{
    if (orcpt && strncasecmp(orcpt, "rfc822;", 7) == 0 && strcasecmp(orcpt + 7, to) != 0)
        return orcpt + 7;
    return NULL;
}

void log_delivery(const char *id, const char *to, const char *orig_to, const char *relay,
                  unsigned conn_use, const struct delivery_delays *delays, const char *dsn,
                  const char *status, const char *reason)
{
    char total[32], a[32], b[32], c[32], d[32], use[32] = "";
    format_delay(total, sizeof(total),
                 delays->queued + delays->qmgr + delays->connect + delays->transfer);
    format_delay(a, sizeof(a), delays->queued);
    format_delay(b, sizeof(b), delays->qmgr);
    format_delay(c, sizeof(c), delays->connect);
    format_delay(d, sizeof(d), delays->transfer);
    if (conn_use >= 2)       /* as Postfix: the Nth delivery over one connection */
        snprintf(use, sizeof(use), ", conn_use=%u", conn_use);
    /* log.c replaces control bytes in the whole line, so addresses and
     * reasons cannot forge a line of their own */
    msg_info("%s: to=<%s>, %s%s%srelay=%s%s, delay=%s, delays=%s/%s/%s/%s, dsn=%s, status=%s (%s)",
             id, to, orig_to ? "orig_to=<" : "", orig_to ? orig_to : "", orig_to ? ">, " : "",
             relay, use, total, a, b, c, d, dsn, status, reason);
}
