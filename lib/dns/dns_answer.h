/* dns_answer.h: from a raw DNS answer (the bytes c-ares hands over, which a
 * hostile server chose) to Tern's bounded results: the header's status and
 * AD bit, MX hosts, addresses, one TXT record, PTR names, TLSA records. c-ares parses the wire format; here every name is
 * checked and every count bounded. No I/O: shared by dns.c and
 * dns_event.c, and fuzzed by fuzz/fuzz_dns_answer.c. Functions return an
 * ARES_* status: ARES_SUCCESS with at least one result, ARES_ENODATA, or
 * ARES_EBADRESP for an answer that does not parse or holds nothing usable. */
#ifndef TERN_DNS_ANSWER_H
#define TERN_DNS_ANSWER_H

#include <stdbool.h>
#include <stddef.h>

#include "dns.h"

struct hostent;

/* A host name fit to use: a valid domain of at most DNS_NAME_MAX bytes. */
bool dns_name_ok(const char *host);

/* MX records into out[0..max), sorted by preference (equal preferences in
 * the order received); names that are not valid are dropped, the null MX
 * "." becomes "". */
int dns_answer_mx(const unsigned char *abuf, int alen, struct dns_mx *out, size_t max,
                  size_t *n);

/* A (family AF_INET) or AAAA (AF_INET6) records into out[0..max), max at
 * most DNS_ADDR_MAX. */
int dns_answer_addrs(const unsigned char *abuf, int alen, int family, struct dns_addr *out,
                     size_t max, size_t *n);

/* The header of an answer: its RCODE as an ARES_* status as ares_query()
 * reports it (NOERROR is ARES_SUCCESS even without records, NXDOMAIN
 * ARES_ENOTFOUND, SERVFAIL ARES_ESERVFAIL, ...; ARES_EBADRESP for less than
 * a header or a message that is no response) and the AD bit (RFC 4035
 * section 3.2.3: the resolver validated every record in the answer). */
int dns_answer_header(const unsigned char *abuf, int alen, bool *ad);

/* TLSA records (RFC 6698) of the answer section into out[0..max): every
 * record of type TLSA and class IN whose data is at least one byte of
 * certificate association data and at most DNS_TLSA_DATA_MAX bytes; the
 * owner names are not checked (the resolver followed any CNAME). Records
 * of other types (CNAME, RRSIG) are skipped. ARES_SUCCESS with n >= 1,
 * ARES_ENODATA when there is none, ARES_EBADRESP for a message that does
 * not parse. */
int dns_answer_tlsa(const unsigned char *abuf, int alen, struct dns_tlsa *out, size_t max,
                    size_t *n);

/* Where the answer's CNAME records lead from the question's name (at most
 * 8 links; RFC 7672 section 2.2.2 looks for TLSA records there first):
 * true with a valid name in target (size bytes at least DNS_NAME_MAX + 1),
 * false when the name is no alias or the chain does not parse. */
bool dns_answer_cname(const unsigned char *abuf, int alen, char *target, size_t size);

/* The first TXT record, its strings joined, non-printable bytes as '?',
 * cut to size - 1 bytes, into txt. */
int dns_answer_txt(const unsigned char *abuf, int alen, char *txt, size_t size);

/* Every TXT record, each with its strings joined, non-printable bytes as
 * '?', cut to DNS_TXT_MAX bytes, into out[0..max). */
int dns_answer_txts(const unsigned char *abuf, int alen, char (*out)[DNS_TXT_MAX + 1], size_t max,
                    size_t *n);

/* What c-ares made of a PTR or address answer (ares_gethostbyaddr,
 * ares_gethostbyname, or the parsers that fill a hostent): the valid names
 * (h_name, then aliases) into names[0..max), or the addresses of the
 * family asked for into out[0..max). The count is returned. */
size_t dns_hostent_names(const struct hostent *he, char (*names)[DNS_NAME_MAX + 1], size_t max);
size_t dns_hostent_addrs(const struct hostent *he, int family, struct dns_addr *out, size_t max);

#endif
