/* domains.h: which domains are ours: mydestination (delivered here),
 * relay_domains (relayed to from anyone), and the final domain of an address
 * whose local part carries sender routing (%, !, @). smtpd's relay decision
 * and qmgr's routing both ask here, so they can never disagree. */
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

/* Peel sender routing out of a local part until none is left; the domain
 * then reached is where the mail would really go. Returns a malloc'ed
 * domain, or NULL when the routing is malformed or too deep. */
char *address_final_domain(const char *local, const char *domain);

#endif
