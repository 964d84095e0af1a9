/* domains.h: the domain lists of main.cf: mydestination (delivered here),
 * relay_domains (relayed to from anyone), virtual_alias_domains (every
 * address there is a virtual alias), virtual_mailbox_domains (delivered
 * here by the virtual agent, without Unix accounts) and myorigin. Each list takes literal
 * domains, "/file/name" and "type:name" entries and "!" exclusions, as
 * Postfix's (lib/global/match_list.h). What an address is and where it
 * goes is decided by lib/global/resolve.h, which reads these lists;
 * callers ask the resolver, not these lists. */
#ifndef TERN_DOMAINS_H
#define TERN_DOMAINS_H

#include <stdbool.h>

#include "config.h"

struct strbuf;

/* Read the lists and myorigin from the configuration; call again after a
 * reload (a list whose value did not change keeps its open tables). Call
 * it first before a daemon drops privileges or chroots, so that its tables
 * are opened while their files can be read. A list that cannot be used is
 * logged, and every question about it answers -1. */
void domains_init(void);

/* Whether the list of parameter id (P_mydestination, P_relay_domains or
 * P_virtual_alias_domains, P_virtual_mailbox_domains) can be used: 0, or -1 with what is wrong in err
 * ("param: entry ...: why"). For `tern check`. */
int domains_check(enum param_id id, struct strbuf *err);

/* 1 listed, 0 not, -1 a table lookup failed (a temporary error, never
 * "not listed"). domain: lower-case, no trailing dot (struct address
 * .domain). mydestination, virtual_alias_domains and
 * virtual_mailbox_domains match names exactly
 * (".example.com" matches subdomains); relay_domains entries also match
 * subdomains (Postfix's parent_domain_matches_subdomains). */
int domain_is_local(const char *domain);
int domain_is_relay(const char *domain);
int domain_is_virtual_alias(const char *domain);
int domain_is_virtual_mailbox(const char *domain);
/* The domain that completes an address without one (myorigin's). */
const char *domain_myorigin(void);

#endif
