/* soft_bounce.c: turning final failures into temporary ones when
 * soft_bounce = yes (soft_bounce.h); qmgr, the delivery agents and smtpd
 * all ask here, so the rule is the same wherever mail could be refused. */
#include <ctype.h>

#include "config.h"
#include "soft_bounce.h"

bool soft_bounce_enabled(void)
{
    return cfg_bool(P_soft_bounce);
}

int soft_bounce_status(int status, char *dsn)
{
    if (status != 5 || !soft_bounce_enabled())
        return status;
    if (dsn && dsn[0] == '5' && dsn[1] == '.')
        dsn[0] = '4';
    return 4;
}

int soft_bounce_reply(int code, char *text)
{
    if (code < 500 || code > 599 || !soft_bounce_enabled())
        return code;
    if (text && text[0] == '5' && text[1] == '.' && isdigit((unsigned char)text[2]))
        text[0] = '4';
    return code - 100;
}
