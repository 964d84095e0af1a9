/* dns_event.h: DNS lookups that run inside a libevent loop (c-ares driven
 * by the loop's events), for daemons that serve many clients at once: smtpd
 * asks for the client's name (PTR, then A/AAAA to confirm it), DNS
 * blocklists (A, TXT) and sender domains (MX, A, AAAA) without stopping its
 * other sessions. Answers are checked and bounded as in dns.h. */
#ifndef TERN_DNS_EVENT_H
#define TERN_DNS_EVENT_H

#include <stdbool.h>
#include <stddef.h>

#include "dns.h"

struct event_base;
struct strbuf;
struct dnsev;
struct dnsev_query;

/* DNSEV_HOST4/6 and DNSEV_PTR try the hosts file first, as the system's
 * own lookups do; the others ask DNS only. */
enum dnsev_type { DNSEV_A, DNSEV_AAAA, DNSEV_TXT, DNSEV_PTR, DNSEV_MX, DNSEV_HOST4, DNSEV_HOST6 };

#define DNSEV_TXT_MAX 512      /* bytes of one TXT answer kept */
#define DNSEV_NAMES_MAX 8      /* PTR names / MX hosts kept */

struct dnsev_answer {
    enum dns_status status;
    const char *why;                     /* explanation when not DNS_OK */
    struct dns_addr addrs[DNS_ADDR_MAX]; /* A / AAAA */
    size_t naddr;
    char txt[DNSEV_TXT_MAX + 1];         /* TXT: the first record, its strings joined */
    char names[DNSEV_NAMES_MAX][DNS_NAME_MAX + 1];  /* PTR names, MX hosts ("" null MX) */
    size_t nnames;
};

typedef void (*dnsev_fn)(void *ctx, const struct dnsev_answer *answer);

/* servers as for dns_open ("" for resolv.conf); timeout in seconds for one
 * lookup, retries included. Call before a chroot (reads the system's
 * configuration); dnsev_attach() binds it to the loop later. */
struct dnsev *dnsev_open(const char *servers, int timeout, struct strbuf *err);
void dnsev_attach(struct dnsev *d, struct event_base *base);

/* Start a lookup of name (for DNSEV_PTR: an address in text form). fn is
 * called exactly once, later, from the loop, unless the query is cancelled
 * first. Returns NULL (fn never called) only when the name cannot be asked. */
struct dnsev_query *dnsev_lookup(struct dnsev *d, const char *name, enum dnsev_type type,
                                 dnsev_fn fn, void *ctx);
/* The caller no longer wants the answer: fn will not be called. */
void dnsev_cancel(struct dnsev_query *q);

#endif
