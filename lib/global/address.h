/* address.h: the one parser for RFC 5321 mailbox addresses, used by smtpd
 * for its relay decision and later by delivery: paths "<local@domain>" with
 * quoted local parts, source routes (stripped) and address literals, plus the
 * classification of sender-specified routing (%, !, @ in the local part). */
#ifndef TERN_ADDRESS_H
#define TERN_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;

/* Upper bounds on what the parser accepts; everything beyond is a syntax error. */
#define ADDRESS_MAX_LEN 1000     /* whole path text */
#define ADDRESS_LOCAL_MAX 512    /* local part, RFC 5321 says 64; real mail exceeds it */
#define ADDRESS_DOMAIN_MAX 255
#define ADDRESS_LABEL_MAX 63

/* Facts found while parsing (struct address .flags). */
#define ADDR_F_NULL     0x0001   /* the null path <> */
#define ADDR_F_ROUTE    0x0002   /* a source route was present (and stripped) */
#define ADDR_F_PERCENT  0x0004   /* local part contains '%' */
#define ADDR_F_BANG     0x0008   /* local part contains '!' */
#define ADDR_F_AT       0x0010   /* (quoted) local part contains '@' */
#define ADDR_F_QUOTED   0x0020   /* local part was a quoted string */
#define ADDR_F_LITERAL  0x0040   /* domain is an address literal [..] */
#define ADDR_F_UTF8     0x0080   /* contains non-ASCII (UTF-8) bytes */
#define ADDR_F_NODOMAIN 0x0100   /* no @domain at all ("postmaster") */
#define ADDR_F_BRACKETS 0x0200   /* the text was enclosed in <> */
/* Local-part routing a sender put there: such an address is never local just
 * because its domain is; see address_unroute(). */
#define ADDR_F_ROUTED (ADDR_F_PERCENT | ADDR_F_BANG | ADDR_F_AT)

/* Options for address_parse(). */
#define ADDR_ALLOW_NULL     0x01   /* accept <> */
#define ADDR_ALLOW_UTF8     0x02   /* accept UTF-8 (SMTPUTF8 was given) */
#define ADDR_ALLOW_NODOMAIN 0x04   /* accept a local part without @domain */
#define ADDR_ALLOW_BARE     0x08   /* accept an address without <> */

/* Error classes, so that a caller can pick its reply code. */
enum address_error {
    ADDR_OK = 0,
    ADDR_ERR_SYNTAX,      /* not an address at all */
    ADDR_ERR_UTF8,        /* non-ASCII without ADDR_ALLOW_UTF8 */
    ADDR_ERR_BAD_UTF8,    /* bytes that are not well-formed UTF-8 */
    ADDR_ERR_TOO_LONG,
};

struct address {
    char *address;   /* external form without <> and route: local@domain, the
                        local part quoted as it was given, case preserved;
                        "" for the null path */
    char *local;     /* local part, unquoted, case preserved */
    char *local_lc;  /* local part, unquoted, lower-cased (ASCII) */
    char *domain;    /* lower-cased, trailing dot removed; "" when none */
    unsigned flags;  /* ADDR_F_* */
};

/* Parse text[0..len) as an address ("<...>" path, or bare when allowed).
 * On success returns ADDR_OK and fills *a (free with address_free); on failure
 * returns the error class, *a is left empty and *why (if not NULL) points to a
 * static explanation. */
enum address_error address_parse(const char *text, size_t len, unsigned opts,
                                 struct address *a, const char **why);
void address_free(struct address *a);

/* The routing operators address_unroute() follows: Postfix's
 * resolve_dequoted_address ('@' in a quoted local part), allow_percent_hack
 * ('%') and swap_bangpath ('!'). */
#define ADDR_ROUTE_AT      0x01
#define ADDR_ROUTE_PERCENT 0x02
#define ADDR_ROUTE_BANG    0x04
#define ADDR_ROUTE_ALL     (ADDR_ROUTE_AT | ADDR_ROUTE_PERCENT | ADDR_ROUTE_BANG)

/* Follow one hop of sender-specified routing in a local part, with the
 * operators in ops: "user@host" (the rightmost quoted '@'), else "user%host"
 * (the rightmost '%'), else "host!user" (the first '!'). Returns 1 with the
 * next local part and domain (domain lower-cased; both malloc'ed), 0 when
 * the local part has no routing, -1 when the hop has an empty part. */
int address_unroute(const char *local, unsigned ops, char **next_local, char **next_domain);

/* Append local to out as the local part of an address in external form:
 * as it is when it is a dot-string, else as a quoted string. -1 when out
 * is full. */
int address_quote_local(const char *local, struct strbuf *out);

/* Domain syntax check: RFC 1035 labels (letters, digits, '-', also '_'),
 * optional trailing dot, or an address literal. utf8 allows U-labels. */
bool address_domain_valid(const char *domain, size_t len, bool utf8);

/* Lower-case copy of a domain with one trailing dot removed (malloc'ed). */
char *address_domain_normalize(const char *domain);

/* Well-formed UTF-8 (no overlongs, no surrogates, no NUL). */
bool utf8_valid(const char *s, size_t len);

#endif
