/* sts_policy.h: parsers for MTA-STS (RFC 8461): the _mta-sts TXT
 * record, the policy file served at
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt, the header of a cached
 * policy, and the match of an MX host name against the policy's mx
 * patterns. Everything here comes from the network (or from a cache file
 * that holds what came from it): every size is bounded and anything that
 * does not parse is an error. No I/O; used by smtp/smtp_sts.c, `tern why`, the unit
 * tests and fuzz/fuzz_sts_policy.c. */
#ifndef TERN_STS_POLICY_H
#define TERN_STS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define STS_ID_MAX 32              /* RFC 8461 section 3.1: 1*32(ALPHA / DIGIT) */
#define STS_MX_MAX 32              /* mx patterns kept from one policy */
#define STS_NAME_MAX 253           /* one mx pattern or host name */
#define STS_POLICY_SIZE_MAX 65536  /* bytes of a policy file (section 3.3: 64k) */
#define STS_MAX_AGE_MAX 31557600L  /* seconds (section 3.2: about one year) */

enum sts_mode { STS_NONE, STS_TESTING, STS_ENFORCE };

struct sts_policy {
    enum sts_mode mode;
    long max_age;                               /* seconds */
    size_t nmx;
    char mx[STS_MX_MAX][STS_NAME_MAX + 1];   /* lower case, "*.example.com" allowed */
};

const char *sts_mode_name(enum sts_mode mode);

/* One TXT record's text ("v=STSv1; id=20160831085700Z;"): 1 when it is an
 * STS record with a valid id (copied to id), 0 when it is some other
 * record (not starting with v=STSv1), -1 with why when it starts with
 * v=STSv1 but is malformed. */
int sts_txt_parse(const char *txt, char id[STS_ID_MAX + 1], struct strbuf *why);

/* A policy file of len bytes (CRLF or LF lines of "key: value"): version
 * STSv1, mode enforce/testing/none, max_age, mx (one or more, except with
 * mode none); unknown keys are ignored, the first of a repeated key
 * counts. 0 ok; -1 with why. */
int sts_policy_parse(const char *text, size_t len, struct sts_policy *p,
                          struct strbuf *why);

/* Whether host (an MX host name, a trailing dot allowed) matches one of
 * the policy's mx patterns: equal ignoring case, or "*.rest" where host
 * is one label followed by ".rest" (section 4.1: the wildcard covers the
 * leftmost label only). */
bool sts_mx_match(const struct sts_policy *p, const char *host);

/* The name of a domain's file in the policy cache (smtp writes it, tern
 * why reads it): the domain in lower case without a final dot, only
 * letters, digits, '-' and '.', not starting with '.', with room left in
 * key for a temporary file's suffix; false for anything else. */
bool sts_cache_key(const char *domain, char *key, size_t size);

/* The policy's mx patterns, separated by ", ", appended to out. */
void sts_mx_list(const struct sts_policy *p, struct strbuf *out);

/* A cache file: a header of "id: ID", "fetched: SECONDS" and
 * "expires: SECONDS" lines (the epoch), an empty line, then the policy
 * file as it was fetched. 0 with the fields and the policy's start and
 * length; -1 with why. */
struct sts_cached {
    char id[STS_ID_MAX + 1];
    long long fetched, expires;
    const char *policy;
    size_t policy_len;
};
int sts_cache_parse(const char *text, size_t len, struct sts_cached *c,
                         struct strbuf *why);

#endif
