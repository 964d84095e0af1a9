/* dns_rbl.h: what every DNS blocklist (DNSBL/DNSWL) client shares: the
 * query name of a client address under a list's domain, and the reply
 * filters of Postfix's syntax ("domain=127.0.0.2", "=127.0.[2..11].[1;3]")
 * that decide which A answers count as "listed". Used by smtpd's
 * reject_rbl_client and by postscreen's weighted scoring. */
#ifndef TERN_DNS_RBL_H
#define TERN_DNS_RBL_H

#include <stdbool.h>
#include <stddef.h>

#include "dns.h"

/* "d.c.b.a.DOMAIN" (IPv4) or the 32 reversed nibbles (IPv6) of addr, an
 * address in text form; false when addr is not an address or the name
 * does not fit in size. */
bool dns_rbl_query_name(const char *addr, const char *domain, char *out, size_t size);

/* Does the A answer a match the filter (each of the four octets a
 * number, "[lo..hi]" or "[n;m;lo..hi]")? An IPv6 answer never does. */
bool dns_rbl_filter_matches(const char *filter, const struct dns_addr *a);
/* Whether answer a is a listing: one filter matches, or, without a filter,
 * any address of 127.0.0.0/8 but the 127.255.255.x error codes (an answer
 * outside it is a list gone bad: a lapsed domain with a wildcard). */
bool dns_rbl_listing(const char *filter, const struct dns_addr *a);

/* Is filter well formed (checked when the configuration is read)? */
bool dns_rbl_filter_valid(const char *filter);

#endif
