/* smtp_nexthop.c: the smtp client's next hops as the queue manager names
 * them (domain, [host]:port, LMTP's unix:PATH and inet:HOST), parsed
 * without doing I/O (see smtp_nexthop.h). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "smtp_nexthop.h"
#include "util.h"

static bool parse_literal(const char *host, struct dns_addr *a)
{
    if (inet_pton(AF_INET, host, &a->u.v4) == 1) {
        a->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, host, &a->u.v6) == 1) {
        a->family = AF_INET6;
        return true;
    }
    return false;
}

/* Split "host" and ":port" (or nothing) from text; brackets say no MX. */
static int nexthop_split(const char *text, struct smtp_nexthop *nh, const char **rest)
{
    const char *host = text;
    size_t hlen;
    if (!nh->use_mx) {
        const char *close = strchr(text, ']');
        if (!close)
            return -1;
        host = text + 1;
        if (strncasecmp(host, "ipv6:", 5) == 0 && host + 5 <= close)
            host += 5;
        hlen = (size_t)(close - host);
        *rest = close + 1;
    } else {
        const char *colon = strchr(text, ':');
        hlen = colon ? (size_t)(colon - text) : strlen(text);
        *rest = text + hlen;
    }
    if (hlen == 0 || hlen > DNS_NAME_MAX)
        return -1;
    memcpy(nh->host, host, hlen);
    nh->host[hlen] = 0;
    return 0;
}

int smtp_nexthop_parse(const char *text, int default_port, struct smtp_nexthop *nh)
{
    const char *rest;
    memset(nh, 0, sizeof(*nh));
    nh->port = default_port;
    nh->use_mx = text[0] != '[';
    if (nexthop_split(text, nh, &rest) < 0)
        return -1;
    if (*rest) {
        long port;
        if (rest[0] != ':' || parse_long(rest + 1, 1, 65535, &port) < 0)
            return -1;
        nh->port = (int)port;
    }
    size_t hlen = strlen(nh->host);
    nh->literal = !nh->use_mx && parse_literal(nh->host, &nh->addr);
    if (nh->literal)
        return 0;
    if (!address_domain_valid(nh->host, hlen, false) || nh->host[0] == '[')
        return -1;
    if (nh->host[hlen - 1] == '.')
        nh->host[hlen - 1] = 0;     /* lookups are absolute anyway */
    return nh->host[0] ? 0 : -1;
}

int smtp_lmtp_nexthop_parse(const char *text, int default_port, struct smtp_nexthop *nh)
{
    if (strncasecmp(text, "unix:", 5) == 0) {
        const char *path = text + 5;
        size_t n = strlen(path);
        memset(nh, 0, sizeof(*nh));
        if (n == 0 || n >= sizeof(nh->path))
            return -1;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
                return -1;
        memcpy(nh->path, path, n + 1);
        return 0;
    }
    if (strncasecmp(text, "inet:", 5) == 0)
        text += 5;
    if (smtp_nexthop_parse(text, default_port, nh) < 0)
        return -1;
    nh->use_mx = false;             /* LMTP has no MX records */
    if (!nh->literal)               /* "inet:127.0.0.1:24": an address, brackets or not */
        nh->literal = parse_literal(nh->host, &nh->addr);
    return 0;
}
