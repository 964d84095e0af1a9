/* rewrite.h: address rewriting as Postfix's cleanup does it (canonical(5),
 * virtual(5), ADDRESS_REWRITING_README), in one place: cleanup applies it to
 * every message, and smtpd asks the same code what a recipient will become
 * so that it judges the address delivery will see.
 *
 * Addresses are in external form ("local@domain", the local part quoted
 * when it must be); "" is the null sender and is never rewritten. An
 * address without a domain is looked up as if it had myorigin's.
 *
 * Table lookups, in Postfix's order (the first key any table answers wins):
 * user+ext@domain, user@domain, then, when domain is myorigin or one of
 * ours (resolve_domain_is_local), user+ext and user, then @domain.
 * Pattern tables (pcre:, regexp:) are asked the whole address only. A
 * result "@other" means the same user at other; a match on a key without
 * the address extension copies the extension into the result when the
 * class is in propagate_unmatched_extensions.
 *
 * Every lookup that fails (a table that cannot be opened or answer) makes
 * the function return -1: the caller must then refuse the message for now
 * (451 4.3.0), never treat the address as not listed. */
#ifndef TERN_REWRITE_H
#define TERN_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;

/* Address classes, as in canonical_classes and masquerade_classes. */
#define REWRITE_ENV_SENDER 0x01
#define REWRITE_ENV_RCPT   0x02
#define REWRITE_HDR_SENDER 0x04
#define REWRITE_HDR_RCPT   0x08

/* receive_override_options */
#define RECEIVE_NO_UNKNOWN_RCPT 0x01   /* smtpd: no reject_unlisted_recipient */
#define RECEIVE_NO_MAPPINGS     0x02   /* cleanup: no canonical, masquerade, virtual, BCC */
#define RECEIVE_NO_CHECKS       0x04   /* cleanup: no header_checks, body_checks */
#define RECEIVE_NO_MILTERS      0x08   /* smtpd, pickup: no milters */

/* The RECEIVE_* bits of a receive_override_options value; unknown words
 * are warned about and ignored, as in Postfix. */
unsigned rewrite_receive_overrides(const char *value);

/* The content_filter of this service (main.cf or its master.cf -o) as the
 * "transport:nexthop" that smtpd and pickup give cleanup with each message
 * (a value without a colon names the transport only, as in Postfix: the
 * recipient's domain is the next hop); NULL when empty. Newly allocated. */
char *rewrite_content_filter(void);

/* Read the parameters and open the tables (before privileges are dropped).
 * A table that cannot be opened is logged once and then fails every lookup.
 * Call resolve_init() too: the "user" keys ask resolve_domain_is_local(). */
void rewrite_init(void);

/* Whether any of canonical, masquerading, virtual aliasing or BCC is
 * configured at all. */
bool rewrite_active(void);

/* Canonical mapping (recipient_ or sender_canonical_maps, then
 * canonical_maps, each per its classes, each repeated until the address
 * no longer changes, at most 10 times) and then masquerading (per
 * masquerade_classes). cls is one REWRITE_* class. out receives the
 * result (the address itself when nothing applies). 0 ok, -1 lookup
 * failure (out undefined). */
int rewrite_address(const char *addr, unsigned cls, struct strbuf *out);

/* Just one of the two steps. */
int rewrite_canonical(const char *addr, unsigned cls, struct strbuf *out);
int rewrite_masquerade(const char *addr, unsigned cls, struct strbuf *out);

/* Virtual alias expansion of one envelope recipient (already canonical):
 * recursive, one-to-many; an address that lists itself among its targets
 * is kept and not expanded again. */
struct rewrite_expansion {
    char **addrs;        /* the final recipients (the address itself when
                            the tables do not list it) */
    size_t n;
    bool listed;         /* the tables listed the address */
};
#define REWRITE_LOOKUP_FAILED -1     /* a table could not answer: 451 4.3.0 */
#define REWRITE_LIMIT_EXCEEDED -2    /* recursion or expansion limit: 451 4.6.0 */
/* 0 ok, or one of the negative codes above (logged with id, x empty). */
int rewrite_virtual(const char *addr, const char *id, struct rewrite_expansion *x);
void rewrite_expansion_free(struct rewrite_expansion *x);

/* recipient_bcc_maps (sender false) or sender_bcc_maps (sender true) for
 * addr: 1 found (out holds the BCC address), 0 none, -1 lookup failure. */
int rewrite_bcc(const char *addr, bool sender, struct strbuf *out);
/* always_bcc, or "" */
const char *rewrite_always_bcc(void);

/* Is domain (lower case) in virtual_alias_domains? 1 yes, 0 no, -1 a
 * table could not answer. */
int rewrite_virtual_alias_domain(const char *domain);

/* The addresses in a message header's value (From:, To:, ...), each
 * passed through rewrite_address with class cls; everything else (display
 * names, comments, groups, folding) is copied as it is. remote_domain, when
 * not NULL, is appended to addresses without a domain first. 1 something
 * changed (out holds the new value), 0 nothing did, -1 lookup failure. */
int rewrite_header_value(const char *value, size_t len, unsigned cls, const char *remote_domain,
                         struct strbuf *out);

/* The class of a header field name: REWRITE_HDR_SENDER (From, Sender,
 * Reply-To, Return-Path, Errors-To, Return-Receipt-To, Resent-From,
 * Resent-Sender, Resent-Reply-To), REWRITE_HDR_RCPT (To, Cc, Bcc,
 * Apparently-To, Resent-To, Resent-Cc, Resent-Bcc), or 0. */
unsigned rewrite_header_class(const char *name, size_t len);

#endif
