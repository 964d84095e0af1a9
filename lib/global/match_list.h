/* match_list.h: the lists of domains and of networks in main.cf, as
 * Postfix's match lists: mydestination, relay_domains,
 * virtual_alias_domains (domains) and mynetworks,
 * smtpd_client_event_limit_exceptions (networks). Each entry is
 *   - a literal: a domain name (".example.com" matches its subdomains
 *     only) or a network ("192.0.2.0/24", "[2001:db8::]/32", an address);
 *   - "type:name", a lookup table (lib/global/maps.h): a domain list looks
 *     up the domain, then (for tables of fixed keys, not pcre:/regexp:/
 *     cidr:) each parent, as "example.com" with MATCH_F_PARENT and as
 *     ".example.com" without; a network list looks up the address text,
 *     which cidr: tables match by network. A found key matches whatever
 *     its value;
 *   - "/file/name", replaced by the entries of that file (white space,
 *     commas and new lines separate them, '#' starts a comment line);
 *   - any of these after "!": a match of it means "not in the list".
 * The first entry that matches decides. A table that cannot be looked up
 * makes the answer -1, which callers treat as a temporary error, never as
 * "not in the list". */
#ifndef TERN_MATCH_LIST_H
#define TERN_MATCH_LIST_H

#include <stddef.h>

struct strbuf;
struct match_list;

enum match_kind { MATCH_DOMAINS, MATCH_NETWORKS };

/* "example.com" also matches its subdomains, as Postfix's
 * parent_domain_matches_subdomains does for relay_domains and mynetworks. */
#define MATCH_F_PARENT 0x01

/* Parse the value of param; NULL with "param: entry ...: why" in err when
 * an entry is malformed, a file cannot be read or a table cannot be opened. */
struct match_list *match_list_open(const char *param, const char *value, enum match_kind kind,
                                   int flags, struct strbuf *err);
void match_list_free(struct match_list *l);
size_t match_list_count(const struct match_list *l);

/* 1 listed, 0 not, -1 a table lookup failed (logged). domain: lower case,
 * no trailing dot; addr: an IPv4 or IPv6 address in text form. */
int match_list_domain(const struct match_list *l, const char *domain);
int match_list_addr(const struct match_list *l, const char *addr);

#endif
