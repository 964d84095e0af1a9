/* tlsrpt.h: SMTP TLS Reporting (RFC 8460) in Tern's terms: the result
 * types, the one-line record the smtp client appends for each TLS session
 * under a policy (tlsrpt.c writes and reads it), a day's records summed up
 * per policy domain, the JSON report of section 4 built from that sum, and
 * the parser of the _smtp._tls TXT record (section 3). Every input is
 * bounded here: record lines come from a file mail_owner can write, TXT
 * records from anyone's DNS. */
#ifndef TERN_TLSRPT_H
#define TERN_TLSRPT_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* One record line, newline included: below PIPE_BUF (4096), so that
 * appends by many smtp processes to the same file never interleave. */
#define TLSRPT_LINE_MAX 3800
#define TLSRPT_ITEM_MAX 512          /* one policy string or mx pattern kept */
#define TLSRPT_ITEMS_MAX 64          /* policy strings or mx patterns per record */
#define TLSRPT_REASON_MAX 200        /* failure-reason-code */
#define TLSRPT_IP_MAX 64
#define TLSRPT_DOMAIN_MAX 255
/* What one day's summary holds at most; records beyond still count in
 * their policy's summary where the policy is known. */
#define TLSRPT_DOMAINS_MAX 20000
#define TLSRPT_POLICIES_MAX 32       /* per domain */
#define TLSRPT_DETAILS_MAX 200       /* failure-details per policy */
/* The TXT record: at most this long (longer ones are refused), with at
 * most TLSRPT_RUA_MAX destinations of at most TLSRPT_URI_MAX bytes. */
#define TLSRPT_TXT_MAX 1000
#define TLSRPT_RUA_MAX 8
#define TLSRPT_URI_MAX 320

enum tlsrpt_policy_type { TLSRPT_POLICY_STS, TLSRPT_POLICY_TLSA };

/* Section 4.3: the result types, each with its name in reports; SUCCESS
 * is no failure. */
#define TLSRPT_RESULTS(X)                                                   \
    X(SUCCESS, "success")                                                   \
    X(STARTTLS_NOT_SUPPORTED, "starttls-not-supported")                     \
    X(CERTIFICATE_HOST_MISMATCH, "certificate-host-mismatch")               \
    X(CERTIFICATE_EXPIRED, "certificate-expired")                           \
    X(CERTIFICATE_NOT_TRUSTED, "certificate-not-trusted")                   \
    X(VALIDATION_FAILURE, "validation-failure")                             \
    X(TLSA_INVALID, "tlsa-invalid")                                         \
    X(DNSSEC_INVALID, "dnssec-invalid")                                     \
    X(DANE_REQUIRED, "dane-required")                                       \
    X(STS_POLICY_FETCH_ERROR, "sts-policy-fetch-error")                     \
    X(STS_POLICY_INVALID, "sts-policy-invalid")                             \
    X(STS_WEBPKI_INVALID, "sts-webpki-invalid")

#define TLSRPT_RESULT_ENUM(name, text) TLSRPT_##name,
enum tlsrpt_result { TLSRPT_RESULTS(TLSRPT_RESULT_ENUM) TLSRPT_RESULT_COUNT };
#undef TLSRPT_RESULT_ENUM

/* "starttls-not-supported", ...; "success" for TLSRPT_SUCCESS. */
const char *tlsrpt_result_name(enum tlsrpt_result r);
/* The result of an OpenSSL X509_V_ERR_* code (X509_V_OK: SUCCESS). */
enum tlsrpt_result tlsrpt_result_of_x509(long verify_error);

/* One TLS session (or a policy failure before any) for the record file.
 * The policy strings and mx patterns are each a list of items separated
 * by newlines (items hold no newline). */
struct tlsrpt_record {
    long long time;                          /* seconds since the epoch */
    char domain[TLSRPT_DOMAIN_MAX + 1];      /* the policy domain */
    enum tlsrpt_policy_type type;
    enum tlsrpt_result result;
    char sending_ip[TLSRPT_IP_MAX];          /* "" when unknown */
    char mx_host[TLSRPT_DOMAIN_MAX + 1];     /* "" when no server was tried */
    char receiving_ip[TLSRPT_IP_MAX];
    char reason[TLSRPT_REASON_MAX + 1];      /* failure-reason-code, "" none */
    struct strbuf policy;                    /* policy-string items */
    struct strbuf mx;                        /* mx-host items */
};
void tlsrpt_record_init(struct tlsrpt_record *r);
void tlsrpt_record_free(struct tlsrpt_record *r);
/* Add an item to r->policy or r->mx (newlines and NULs become spaces, cut
 * to TLSRPT_ITEM_MAX bytes; at most TLSRPT_ITEMS_MAX items). */
void tlsrpt_item_add(struct strbuf *list, const char *item);

/* The record as one line ending in "\n", shorter than TLSRPT_LINE_MAX:
 * fields separated by spaces, each percent-encoded; list items that do
 * not fit are left out (the mx patterns may use a third of the room).
 * 0 ok, -1 when even the fixed fields do not fit (never with the bounds
 * of struct tlsrpt_record). */
int tlsrpt_record_format(const struct tlsrpt_record *r, struct strbuf *line);
/* A line (without its newline) back into r (initialized by the caller).
 * 0 ok, -1 with why when it is not a well-formed record. */
int tlsrpt_record_parse(const char *line, size_t len, struct tlsrpt_record *r, struct strbuf *why);

/* ---- one day's records, summed up ---- */
struct tlsrpt_detail {
    enum tlsrpt_result result;
    char sending_ip[TLSRPT_IP_MAX];
    char mx_host[TLSRPT_DOMAIN_MAX + 1];
    char receiving_ip[TLSRPT_IP_MAX];
    char reason[TLSRPT_REASON_MAX + 1];
    long long count;
};
struct tlsrpt_policy {
    enum tlsrpt_policy_type type;
    char *policy, *mx;           /* the record's item lists */
    long long successes, failures;
    struct tlsrpt_detail *details;
    size_t ndetails;
};
struct tlsrpt_domain {
    char name[TLSRPT_DOMAIN_MAX + 1];
    struct tlsrpt_policy *policies;
    size_t npolicies;
    long long dropped;           /* records of a policy beyond TLSRPT_POLICIES_MAX */
    bool reported;               /* for the caller: already reported */
};
struct tlsrpt_summary {
    struct tlsrpt_domain *domains;
    size_t ndomains, cap;
    size_t *hash;                /* open addressing: index + 1, 0 free */
    size_t hash_size;
    long long records, dropped;  /* dropped: a domain beyond TLSRPT_DOMAINS_MAX */
};
void tlsrpt_summary_init(struct tlsrpt_summary *s);
void tlsrpt_summary_free(struct tlsrpt_summary *s);
/* Count one record in its domain, policy and (for failures) detail. */
void tlsrpt_summary_add(struct tlsrpt_summary *s, const struct tlsrpt_record *r);
/* The domain of that name, NULL when the summary has none. */
struct tlsrpt_domain *tlsrpt_summary_find(const struct tlsrpt_summary *s, const char *name);
/* Sort the domains by name (for a stable order of the reports). */
void tlsrpt_summary_sort(struct tlsrpt_summary *s);

/* What a report says besides the domain's counts. */
struct tlsrpt_meta {
    const char *organization;    /* organization-name */
    const char *contact;         /* contact-info */
    const char *report_id;
    long long start, end;        /* date-range, seconds since the epoch */
};
/* The RFC 8460 section 4.4 JSON report of one domain. */
void tlsrpt_report_json(const struct tlsrpt_domain *d, const struct tlsrpt_meta *m, struct strbuf *out);
/* "2026-12-05T00:00:00Z" */
void tlsrpt_datetime(long long t, char buf[32]);

/* ---- the _smtp._tls TXT record ---- */
struct tlsrpt_rua {
    size_t n;
    struct {
        bool https;                      /* else mailto */
        char uri[TLSRPT_URI_MAX + 1];    /* https: the URI; mailto: the address */
    } dest[TLSRPT_RUA_MAX];
};
/* One TXT record: 1 a TLSRPTv1 record with at least one usable mailto: or
 * https: destination (rua filled; other schemes are ignored); 0 not a
 * TLSRPT record (it does not begin with "v=TLSRPTv1"); -1 with why: a
 * TLSRPT record that is malformed, too long or has no usable rua. */
int tlsrpt_txt_parse(const char *txt, struct tlsrpt_rua *rua, struct strbuf *why);
/* Section 3: of a name's TXT records, exactly one must be a TLSRPT
 * record. 1 found (rua filled), 0 none, -1 with why (more than one, or
 * the one is invalid). */
int tlsrpt_txt_choose(const char *const *txts, size_t n, struct tlsrpt_rua *rua, struct strbuf *why);

/* Whether name is a domain name fit for a report (letters, digits,
 * hyphens, underscores and dots, labels of 1..63, at most 253 bytes). */
bool tlsrpt_domain_ok(const char *name);

#endif
