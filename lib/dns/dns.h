/* dns.h: DNS lookups (MX, A, AAAA, TLSA, TXT) through the c-ares resolver, with
 * the resolver's servers configurable so that tests can use their own DNS
 * server. With DNSSEC on (dns_set_dnssec), each answer also says whether a
 * validating resolver vouched for it (the AD bit). Each lookup runs to completion or to its deadline; suited to
 * daemons that serve one client at a time (the delivery agents). Every
 * answer is hostile: counts and names are bounded and checked here. */
#ifndef TERN_DNS_H
#define TERN_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

struct strbuf;
struct dns_resolver;

#define DNS_NAME_MAX 255     /* longest host name kept from an answer */
#define DNS_MX_MAX 64        /* MX records kept per domain */
#define DNS_ADDR_MAX 32      /* addresses kept per host and family */
#define DNS_TLSA_MAX 16      /* TLSA records kept per name */
#define DNS_TLSA_DATA_MAX 4096   /* certificate association data of one TLSA record */
#define DNS_TXT_MAX 1024     /* bytes of one TXT record kept (its strings joined) */
#define DNS_TXTS_MAX 16      /* TXT records kept per name */

enum dns_status {
    DNS_OK,
    DNS_NOTFOUND,   /* NXDOMAIN: the name does not exist */
    DNS_NODATA,     /* the name exists, but has no record of that type */
    DNS_TEMPFAIL,   /* SERVFAIL, timeout, unreachable server, malformed answer */
};

struct dns_mx {
    int preference;
    char host[DNS_NAME_MAX + 1];   /* "" for the null MX "." of RFC 7505 */
};

struct dns_addr {
    int family;                    /* AF_INET or AF_INET6 */
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } u;
};

/* One TLSA record (RFC 6698): certificate usage, selector, matching type
 * and the certificate association data, as published. */
struct dns_tlsa {
    unsigned char usage, selector, mtype;
    size_t len;
    unsigned char data[DNS_TLSA_DATA_MAX];
};

/* servers: "" for the system's resolv.conf, else a list separated by commas
 * or white space of "ADDR", "ADDR:PORT", "[ADDR]:PORT" (IPv6 in brackets).
 * timeout: seconds one lookup may take, retries included. Call before a
 * chroot: the system configuration is read here. NULL with err on failure. */
struct dns_resolver *dns_open(const char *servers, int timeout, struct strbuf *err);
void dns_close(struct dns_resolver *r);

/* Ask for DNSSEC validation from now on: queries carry the AD bit (RFC
 * 6840 section 5.7), and an answer counts as secure when the resolver set
 * AD in its reply. AD is believed only from a resolver on this host
 * (127.0.0.0/8, ::1: nobody on the path can forge it) unless trust_remote
 * says the path to the configured resolvers is trusted. Returns whether
 * AD is believed; false means every answer stays insecure. */
bool dns_set_dnssec(struct dns_resolver *r, bool trust_remote);

/* MX records of name, sorted by preference (equal preferences in the order
 * received). On DNS_OK *mx is malloc'ed with *count >= 1 entries. On any
 * other status why holds a short explanation ("Host not found", ...).
 * secure (may be NULL): whether the answer, records or denial, was
 * DNSSEC-validated (see dns_set_dnssec). */
enum dns_status dns_lookup_mx(struct dns_resolver *r, const char *name,
                              struct dns_mx **mx, size_t *count, bool *secure,
                              struct strbuf *why);

/* A and/or AAAA records of name, queried at once. DNS_OK when either family
 * gave addresses (IPv6 first in *addrs); otherwise a temporary failure of
 * either wins over "not found", which wins over "no data". secure (may be
 * NULL): at least one answer came, and every answer that came (records or
 * denial) was validated; a query that failed is left out. canonical (may
 * be NULL, else DNS_NAME_MAX + 1 bytes): where CNAME records led from name,
 * "" when name is no alias. */
enum dns_status dns_lookup_addr(struct dns_resolver *r, const char *name, bool want_v4,
                                bool want_v6, struct dns_addr **addrs, size_t *count,
                                bool *secure, char *canonical, struct strbuf *why);

/* TLSA records of name ("_25._tcp.mx.example.com"), as dns_answer_tlsa
 * keeps them; on DNS_OK *tlsa is malloc'ed with *count >= 1 entries.
 * SERVFAIL (a bogus signature, with a validating resolver) is DNS_TEMPFAIL. */
enum dns_status dns_lookup_tlsa(struct dns_resolver *r, const char *name, struct dns_tlsa **tlsa,
                                size_t *count, bool *secure, struct strbuf *why);

/* TXT records of name, each with its strings joined (non-printable bytes
 * as '?', cut to DNS_TXT_MAX bytes); on DNS_OK *txt is malloc'ed with
 * *count >= 1 entries. */
enum dns_status dns_lookup_txt(struct dns_resolver *r, const char *name,
                               char (**txt)[DNS_TXT_MAX + 1], size_t *count, struct strbuf *why);

/* Numeric text of an address into buf (at least INET6_ADDRSTRLEN bytes). */
const char *dns_addr_text(const struct dns_addr *a, char *buf, size_t bufsz);

#endif
