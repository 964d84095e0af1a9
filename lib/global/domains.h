/* domains.h: the domain lists of main.cf: mydestination (delivered here),
 * relay_domains (relayed to from anyone) and myorigin. What an address is
 * and where it goes is decided by lib/global/resolve.h, which reads these lists;
 * callers ask the resolver, not these lists. */
#ifndef TERN_DOMAINS_H
#define TERN_DOMAINS_H

#include <stdbool.h>

/* Read mydestination, relay_domains and myorigin from the configuration;
 * call again after a reload. */
void domains_init(void);

/* domain: lower-case, no trailing dot (struct address .domain). */
bool domain_is_local(const char *domain);
/* relay_domains entries match the domain and its subdomains (Postfix's
 * parent_domain_matches_subdomains); ".example.com" matches subdomains only. */
bool domain_is_relay(const char *domain);
/* The domain that completes an address without one (myorigin's). */
const char *domain_myorigin(void);

#endif
