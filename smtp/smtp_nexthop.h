/* smtp_nexthop.h: the smtp client's next hops, parsed without I/O. */
#ifndef TERN_SMTP_NEXTHOP_H
#define TERN_SMTP_NEXTHOP_H

#include <stdbool.h>

#include "dns.h"

#define SMTP_UNIX_PATH_MAX 108        /* sun_path, its NUL included */

struct smtp_nexthop {
    char host[DNS_NAME_MAX + 1];   /* domain, host name or address, without brackets */
    char path[SMTP_UNIX_PATH_MAX]; /* LMTP over a UNIX-domain socket: its path, else "" */
    int port;
    bool use_mx;                   /* a domain: look up its MX records */
    bool literal;                  /* host is an IP address (addr holds it) */
    struct dns_addr addr;
};
/* "domain", "domain:port" (MX lookup), "[host]", "[host]:port",
 * "[1.2.3.4]", "[ipv6:2001:db8::1]:port" (no MX lookup). 0 ok, -1 malformed. */
int smtp_nexthop_parse(const char *text, int default_port, struct smtp_nexthop *nh);
/* An LMTP next hop, as Postfix's lmtp: "unix:PATH" (relative: under the
 * working directory, queue_directory), "inet:HOST[:PORT]" or HOST[:PORT]
 * with HOST a name or "[address]". Never an MX lookup. 0 ok, -1 malformed. */
int smtp_lmtp_nexthop_parse(const char *text, int default_port, struct smtp_nexthop *nh);

#endif
