/* netlist.h: lists of networks in mynetworks style ("127.0.0.0/8 [::1]/128
 * 10.1.2.3 2001:db8::/32 !192.0.2.7"), parsed once and matched against
 * client addresses. The first matching entry decides; "!" negates it. */
#ifndef TERN_NETLIST_H
#define TERN_NETLIST_H

#include <stdbool.h>
#include <sys/socket.h>

struct strbuf;
struct netlist;

/* Parse a list separated by commas and/or white space. Returns the list, or
 * NULL with a message in err (which entry, what is wrong) when any entry is
 * malformed, has host bits set beyond its prefix, or is not an address
 * (host names and lookup tables are not supported). An empty list is valid. */
struct netlist *netlist_parse(const char *text, struct strbuf *err);
void netlist_free(struct netlist *nl);

/* Number of entries (for logging and tests). */
size_t netlist_count(const struct netlist *nl);

/* Does the address match? IPv4-mapped IPv6 addresses match IPv4 entries. */
bool netlist_match(const struct netlist *nl, const struct sockaddr *sa);
/* Same for an address in text form ("192.0.2.1", "::1"); false if unparsable. */
bool netlist_match_text(const struct netlist *nl, const char *addr);

#endif
