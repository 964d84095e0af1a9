/* tlsrpt.c: SMTP TLS Reporting (RFC 8460): the record line of one TLS
 * session, a day's records summed up per policy domain, policy and
 * failure, the JSON report (section 4.4) and the _smtp._tls TXT record
 * parser (section 3). See tlsrpt.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/x509_vfy.h>

#include "json.h"
#include "tlsrpt.h"
#include "util.h"

#define RECORD_MAGIC "TLSRPT1"
#define RECORD_FIELDS 11

#define RESULT_NAME(name, text) text,
static const char *const result_names[TLSRPT_RESULT_COUNT] = { TLSRPT_RESULTS(RESULT_NAME) };
#undef RESULT_NAME

const char *tlsrpt_result_name(enum tlsrpt_result r)
{
    return (unsigned)r < TLSRPT_RESULT_COUNT ? result_names[r] : "validation-failure";
}

enum tlsrpt_result tlsrpt_result_of_x509(long e)
{
    switch (e) {
    case X509_V_OK:
        return TLSRPT_SUCCESS;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return TLSRPT_CERTIFICATE_EXPIRED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return TLSRPT_CERTIFICATE_HOST_MISMATCH;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_INVALID_CA:
        return TLSRPT_CERTIFICATE_NOT_TRUSTED;
    case X509_V_ERR_DANE_NO_MATCH:
        return TLSRPT_TLSA_INVALID;
    default:
        return TLSRPT_VALIDATION_FAILURE;
    }
}

/* ---- the record line ---- */

void tlsrpt_record_init(struct tlsrpt_record *r)
{
    memset(r, 0, sizeof(*r));
    sb_init(&r->policy, TLSRPT_ITEMS_MAX * (TLSRPT_ITEM_MAX + 1));
    sb_init(&r->mx, TLSRPT_ITEMS_MAX * (TLSRPT_ITEM_MAX + 1));
}

void tlsrpt_record_free(struct tlsrpt_record *r)
{
    sb_free(&r->policy);
    sb_free(&r->mx);
}

static size_t item_count(const struct strbuf *list)
{
    if (!list->len)
        return 0;
    size_t n = 1;
    for (size_t i = 0; i < list->len; i++)
        n += list->data[i] == '\n';
    return n;
}

void tlsrpt_item_add(struct strbuf *list, const char *item)
{
    size_t len = strnlen(item, TLSRPT_ITEM_MAX);
    if (!len || item_count(list) >= TLSRPT_ITEMS_MAX)
        return;
    size_t mark = list->len;
    if ((list->len && sb_appendc(list, '\n') < 0) || sb_append(list, item, len) < 0) {
        sb_truncate(list, mark);
        return;
    }
    for (size_t i = mark + (mark ? 1 : 0); i < list->len; i++)
        if (list->data[i] == '\n' || list->data[i] == '\r')
            list->data[i] = ' ';
}

/* One byte as the line keeps it: printable ASCII except the separators
 * and '%', everything else as %XX. */
static bool byte_plain(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '%' && c != ',';
}

static int encode(struct strbuf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (byte_plain(c) && !(len == 1 && c == '-')) {
            if (sb_appendc(out, c) < 0)
                return -1;
        } else if (sb_appendf(out, "%%%02X", c) < 0) {
            return -1;
        }
    }
    return 0;
}

/* A field: the text encoded, "-" when empty. */
static int field(struct strbuf *out, const char *s)
{
    if (sb_appendc(out, ' ') < 0)
        return -1;
    return *s ? encode(out, s, strlen(s)) : sb_appendc(out, '-');
}

/* A list field: its items encoded and separated by commas, as many as fit
 * within room bytes of the line; "-" for none. */
static int list_field(struct strbuf *out, const struct strbuf *list, size_t room)
{
    if (sb_appendc(out, ' ') < 0)
        return -1;
    size_t start = out->len, limit = start + room;
    const char *p = list->data, *end = list->data ? list->data + list->len : NULL;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t mark = out->len;
        if ((out->len > start && sb_appendc(out, ',') < 0) || encode(out, p, len) < 0
            || out->len > limit) {
            sb_truncate(out, mark);
            break;
        }
        p += len + 1;
    }
    return out->len > start ? 0 : sb_appendc(out, '-');
}

int tlsrpt_record_format(const struct tlsrpt_record *r, struct strbuf *line)
{
    struct strbuf out = STRBUF_INIT(TLSRPT_LINE_MAX - 1);
    int rc = sb_appendf(&out, "%s %lld", RECORD_MAGIC, r->time) < 0 || field(&out, r->domain) < 0
             || field(&out, r->type == TLSRPT_POLICY_TLSA ? "tlsa" : "sts") < 0
             || field(&out, tlsrpt_result_name(r->result)) < 0 || field(&out, r->sending_ip) < 0
             || field(&out, r->mx_host) < 0 || field(&out, r->receiving_ip) < 0
             || field(&out, r->reason) < 0 ? -1 : 0;
    /* what is left: a third for the mx patterns, the rest for the policy */
    size_t left = out.len + 8 < TLSRPT_LINE_MAX - 1 ? TLSRPT_LINE_MAX - 1 - out.len - 8 : 0;
    if (rc == 0 && list_field(&out, &r->mx, left / 3) < 0)
        rc = -1;
    left = out.len + 4 < TLSRPT_LINE_MAX - 1 ? TLSRPT_LINE_MAX - 1 - out.len - 4 : 0;
    if (rc == 0 && list_field(&out, &r->policy, left) < 0)
        rc = -1;
    if (rc == 0)
        rc = sb_append(line, out.data, out.len) < 0 || sb_appendc(line, '\n') < 0 ? -1 : 0;
    sb_free(&out);
    return rc;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode [s, s + len) into out. strict: every byte that is not
 * an escape must be one the record writer keeps plain. -1 on a bad escape,
 * a NUL, a byte out of place or overflow. */
static int pct_decode(const char *s, size_t len, struct strbuf *out, bool strict)
{
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        } else if (strict && !byte_plain((unsigned char)c)) {
            return -1;
        }
        if (c == 0 || sb_appendc(out, c) < 0)
            return -1;
    }
    return 0;
}

static int decode(const char *s, size_t len, struct strbuf *out)
{
    return pct_decode(s, len, out, true);
}

static int decode_into(const char *s, size_t len, char *dst, size_t size)
{
    struct strbuf tmp = STRBUF_INIT(size - 1);
    int rc = 0;
    if (!(len == 1 && s[0] == '-'))
        rc = decode(s, len, &tmp);
    str_copy(dst, size, sb_str(&tmp));
    sb_free(&tmp);
    return rc;
}

static int decode_list(const char *s, size_t len, struct strbuf *list)
{
    if (len == 1 && s[0] == '-')
        return 0;
    const char *end = s + len;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        size_t n = comma ? (size_t)(comma - s) : (size_t)(end - s);
        struct strbuf item = STRBUF_INIT(TLSRPT_ITEM_MAX);
        int rc = n ? decode(s, n, &item) : -1;
        if (rc == 0 && memchr(item.data, '\n', item.len))
            rc = -1;
        if (rc == 0)
            tlsrpt_item_add(list, sb_str(&item));
        sb_free(&item);
        if (rc < 0)
            return -1;
        s += n + 1;
    }
    return 0;
}

int tlsrpt_record_parse(const char *line, size_t len, struct tlsrpt_record *r, struct strbuf *why)
{
    const char *f[RECORD_FIELDS];
    size_t flen[RECORD_FIELDS], n = 0;
    const char *p = line, *end = line + len;
    if (len >= TLSRPT_LINE_MAX) {
        sb_set(why, "line too long");
        return -1;
    }
    while (p < end && n < RECORD_FIELDS) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        f[n] = p;
        flen[n] = sp ? (size_t)(sp - p) : (size_t)(end - p);
        n++;
        p += flen[n - 1] + (sp ? 1 : 0);
        if (!sp)
            break;
    }
    if (n != RECORD_FIELDS || p != end || (len && line[len - 1] == ' ')) {
        sb_set(why, "wrong number of fields");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!flen[i]) {
            sb_set(why, "empty field");
            return -1;
        }
    if (flen[0] != strlen(RECORD_MAGIC) || memcmp(f[0], RECORD_MAGIC, flen[0]) != 0) {
        sb_set(why, "not a TLSRPT1 record");
        return -1;
    }
    char num[24], type[8], result[32];
    long long t = 0;
    if (decode_into(f[1], flen[1], num, sizeof(num)) < 0 || flen[1] >= sizeof(num)) {
        sb_set(why, "bad time");
        return -1;
    }
    for (const char *q = num; *q; q++)
        if (!isdigit((unsigned char)*q) || t > 100000000000LL) {
            sb_set(why, "bad time");
            return -1;
        } else {
            t = t * 10 + (*q - '0');
        }
    r->time = t;
    if (decode_into(f[2], flen[2], r->domain, sizeof(r->domain)) < 0 || !r->domain[0]
        || decode_into(f[3], flen[3], type, sizeof(type)) < 0
        || decode_into(f[4], flen[4], result, sizeof(result)) < 0
        || decode_into(f[5], flen[5], r->sending_ip, sizeof(r->sending_ip)) < 0
        || decode_into(f[6], flen[6], r->mx_host, sizeof(r->mx_host)) < 0
        || decode_into(f[7], flen[7], r->receiving_ip, sizeof(r->receiving_ip)) < 0
        || decode_into(f[8], flen[8], r->reason, sizeof(r->reason)) < 0
        || decode_list(f[9], flen[9], &r->mx) < 0 || decode_list(f[10], flen[10], &r->policy) < 0) {
        sb_set(why, "bad field encoding");
        return -1;
    }
    if (!tlsrpt_domain_ok(r->domain)) {
        sb_set(why, "not a domain name");
        return -1;
    }
    if (strcmp(type, "sts") == 0)
        r->type = TLSRPT_POLICY_STS;
    else if (strcmp(type, "tlsa") == 0)
        r->type = TLSRPT_POLICY_TLSA;
    else {
        sb_set(why, "unknown policy type");
        return -1;
    }
    int res = -1;
    for (int i = 0; i < TLSRPT_RESULT_COUNT; i++)
        if (strcmp(result, result_names[i]) == 0)
            res = i;
    if (res < 0) {
        sb_set(why, "unknown result type");
        return -1;
    }
    r->result = (enum tlsrpt_result)res;
    return 0;
}

/* ---- the summary of a day ---- */

void tlsrpt_summary_init(struct tlsrpt_summary *s)
{
    memset(s, 0, sizeof(*s));
}

void tlsrpt_summary_free(struct tlsrpt_summary *s)
{
    for (size_t i = 0; i < s->ndomains; i++) {
        struct tlsrpt_domain *d = &s->domains[i];
        for (size_t j = 0; j < d->npolicies; j++)
            FREE_ALL(d->policies[j].policy, d->policies[j].mx, d->policies[j].details);
        free(d->policies);
    }
    free(s->domains);
    free(s->hash);
    memset(s, 0, sizeof(*s));
}

static size_t name_hash(const char *name)
{
    size_t h = 1469598103934665603ULL;
    for (; *name; name++)
        h = (h ^ (unsigned char)tolower((unsigned char)*name)) * 1099511628211ULL;
    return h;
}

static void hash_insert(struct tlsrpt_summary *s, size_t index)
{
    size_t h = name_hash(s->domains[index].name) & (s->hash_size - 1);
    while (s->hash[h])
        h = (h + 1) & (s->hash_size - 1);
    s->hash[h] = index + 1;
}

struct tlsrpt_domain *tlsrpt_summary_find(const struct tlsrpt_summary *s, const char *name)
{
    if (!s->hash_size)
        return NULL;
    size_t h = name_hash(name) & (s->hash_size - 1);
    for (; s->hash[h]; h = (h + 1) & (s->hash_size - 1))
        if (strcasecmp(s->domains[s->hash[h] - 1].name, name) == 0)
            return &s->domains[s->hash[h] - 1];
    return NULL;
}

static struct tlsrpt_domain *domain_find(struct tlsrpt_summary *s, const char *name)
{
    struct tlsrpt_domain *found = tlsrpt_summary_find(s, name);
    if (found)
        return found;
    if (s->ndomains >= TLSRPT_DOMAINS_MAX)
        return NULL;
    if (s->ndomains == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->domains = xrealloc(s->domains, s->cap * sizeof(*s->domains));
    }
    /* the table stays at most half full */
    if ((s->ndomains + 1) * 2 > s->hash_size) {
        free(s->hash);
        s->hash_size = s->hash_size ? s->hash_size * 2 : 64;
        s->hash = xcalloc(s->hash_size, sizeof(*s->hash));
        for (size_t i = 0; i < s->ndomains; i++)
            hash_insert(s, i);
    }
    struct tlsrpt_domain *d = &s->domains[s->ndomains];
    memset(d, 0, sizeof(*d));
    str_copy(d->name, sizeof(d->name), name);
    str_lower(d->name);
    hash_insert(s, s->ndomains++);
    return d;
}

static struct tlsrpt_policy *policy_find(struct tlsrpt_domain *d, const struct tlsrpt_record *r)
{
    const char *pol = sb_str(&r->policy), *mx = sb_str(&r->mx);
    for (size_t i = 0; i < d->npolicies; i++) {
        struct tlsrpt_policy *p = &d->policies[i];
        if (p->type == r->type && strcmp(p->policy, pol) == 0 && strcmp(p->mx, mx) == 0)
            return p;
    }
    if (d->npolicies >= TLSRPT_POLICIES_MAX)
        return NULL;
    d->policies = xrealloc(d->policies, (d->npolicies + 1) * sizeof(*d->policies));
    struct tlsrpt_policy *p = &d->policies[d->npolicies++];
    memset(p, 0, sizeof(*p));
    p->type = r->type;
    p->policy = xstrdup(pol);
    p->mx = xstrdup(mx);
    return p;
}

static void detail_count(struct tlsrpt_policy *p, const struct tlsrpt_record *r)
{
    for (size_t i = 0; i < p->ndetails; i++) {
        struct tlsrpt_detail *e = &p->details[i];
        if (e->result == r->result && strcmp(e->sending_ip, r->sending_ip) == 0
            && strcasecmp(e->mx_host, r->mx_host) == 0 && strcmp(e->receiving_ip, r->receiving_ip) == 0
            && strcmp(e->reason, r->reason) == 0) {
            e->count++;
            return;
        }
    }
    if (p->ndetails >= TLSRPT_DETAILS_MAX)
        return;
    p->details = xrealloc(p->details, (p->ndetails + 1) * sizeof(*p->details));
    struct tlsrpt_detail *e = &p->details[p->ndetails++];
    memset(e, 0, sizeof(*e));
    e->result = r->result;
    str_copy(e->sending_ip, sizeof(e->sending_ip), r->sending_ip);
    str_copy(e->mx_host, sizeof(e->mx_host), r->mx_host);
    str_copy(e->receiving_ip, sizeof(e->receiving_ip), r->receiving_ip);
    str_copy(e->reason, sizeof(e->reason), r->reason);
    e->count = 1;
}

void tlsrpt_summary_add(struct tlsrpt_summary *s, const struct tlsrpt_record *r)
{
    s->records++;
    struct tlsrpt_domain *d = domain_find(s, r->domain);
    if (!d) {
        s->dropped++;
        return;
    }
    struct tlsrpt_policy *p = policy_find(d, r);
    if (!p) {
        d->dropped++;
        return;
    }
    if (r->result == TLSRPT_SUCCESS) {
        p->successes++;
    } else {
        p->failures++;
        detail_count(p, r);
    }
}

static int domain_cmp(const void *a, const void *b)
{
    return strcmp(((const struct tlsrpt_domain *)a)->name, ((const struct tlsrpt_domain *)b)->name);
}

void tlsrpt_summary_sort(struct tlsrpt_summary *s)
{
    if (s->ndomains > 1)
        qsort(s->domains, s->ndomains, sizeof(*s->domains), domain_cmp);
    if (s->hash_size) {
        memset(s->hash, 0, s->hash_size * sizeof(*s->hash));
        for (size_t i = 0; i < s->ndomains; i++)
            hash_insert(s, i);
    }
}

/* ---- the JSON report ---- */

void tlsrpt_datetime(long long t, char buf[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm))
        memset(&tm, 0, sizeof(tm));
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A JSON array of a record's item list. */
static void json_items(struct strbuf *out, const char *list)
{
    sb_appendc(out, '[');
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, "\n");
        if (p != list)
            sb_appendc(out, ',');
        json_string(out, p, n);
        p += n + (p[n] ? 1 : 0);
    }
    sb_appendc(out, ']');
}

static void json_member(struct strbuf *out, bool first, const char *name)
{
    if (!first)
        sb_appendc(out, ',');
    json_str(out, name);
    sb_appendc(out, ':');
}

static void json_detail(struct strbuf *out, const struct tlsrpt_detail *e)
{
    sb_appendc(out, '{');
    json_member(out, true, "result-type");
    json_str(out, tlsrpt_result_name(e->result));
    if (e->sending_ip[0]) {
        json_member(out, false, "sending-mta-ip");
        json_str(out, e->sending_ip);
    }
    if (e->mx_host[0]) {
        json_member(out, false, "receiving-mx-hostname");
        json_str(out, e->mx_host);
    }
    if (e->receiving_ip[0]) {
        json_member(out, false, "receiving-ip");
        json_str(out, e->receiving_ip);
    }
    json_member(out, false, "failed-session-count");
    sb_appendf(out, "%lld", e->count);
    if (e->reason[0]) {
        json_member(out, false, "failure-reason-code");
        json_str(out, e->reason);
    }
    sb_appendc(out, '}');
}

static void json_policy(struct strbuf *out, const char *domain, const struct tlsrpt_policy *p)
{
    sb_appendc(out, '{');
    json_member(out, true, "policy");
    sb_appendc(out, '{');
    json_member(out, true, "policy-type");
    json_str(out, p->type == TLSRPT_POLICY_TLSA ? "tlsa" : "sts");
    json_member(out, false, "policy-string");
    json_items(out, p->policy);
    json_member(out, false, "policy-domain");
    json_str(out, domain);
    if (*p->mx) {
        json_member(out, false, "mx-host");
        json_items(out, p->mx);
    }
    sb_appendc(out, '}');
    json_member(out, false, "summary");
    sb_appendc(out, '{');
    json_member(out, true, "total-successful-session-count");
    sb_appendf(out, "%lld", p->successes);
    json_member(out, false, "total-failure-session-count");
    sb_appendf(out, "%lld", p->failures);
    sb_appendc(out, '}');
    if (p->ndetails) {
        json_member(out, false, "failure-details");
        sb_appendc(out, '[');
        for (size_t i = 0; i < p->ndetails; i++) {
            if (i)
                sb_appendc(out, ',');
            json_detail(out, &p->details[i]);
        }
        sb_appendc(out, ']');
    }
    sb_appendc(out, '}');
}

void tlsrpt_report_json(const struct tlsrpt_domain *d, const struct tlsrpt_meta *m, struct strbuf *out)
{
    char start[32], end[32];
    tlsrpt_datetime(m->start, start);
    tlsrpt_datetime(m->end, end);
    sb_appendc(out, '{');
    json_member(out, true, "organization-name");
    json_str(out, m->organization);
    json_member(out, false, "date-range");
    sb_appendc(out, '{');
    json_member(out, true, "start-datetime");
    json_str(out, start);
    json_member(out, false, "end-datetime");
    json_str(out, end);
    sb_appendc(out, '}');
    json_member(out, false, "contact-info");
    json_str(out, m->contact);
    json_member(out, false, "report-id");
    json_str(out, m->report_id);
    json_member(out, false, "policies");
    sb_appendc(out, '[');
    for (size_t i = 0; i < d->npolicies; i++) {
        if (i)
            sb_appendc(out, ',');
        json_policy(out, d->name, &d->policies[i]);
    }
    sb_appendc(out, ']');
    sb_appendc(out, '}');
}

/* ---- the TXT record ---- */

static bool wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 6068 addr-spec after "mailto:", percent-decoded: a plain address
 * local@domain of printable ASCII without the characters that would need
 * quoting. Header fields after '?' are ignored. */
static bool mailto_address(const char *s, size_t len, char *out, size_t size)
{
    const char *q = memchr(s, '?', len);
    if (q)
        len = (size_t)(q - s);
    struct strbuf a = STRBUF_INIT(size - 1);
    bool ok = len > 0 && pct_decode(s, len, &a, false) == 0;
    if (ok) {
        const char *at = strrchr(sb_str(&a), '@');
        ok = at && at != a.data && at[1] && a.len <= 254;
        for (size_t i = 0; ok && i < a.len; i++) {
            unsigned char c = (unsigned char)a.data[i];
            ok = c > 0x20 && c < 0x7f && !strchr("<>()[]\\,;:\"", c);
        }
        if (ok)
            ok = tlsrpt_domain_ok(at + 1);
    }
    if (ok)
        str_copy(out, size, sb_str(&a));
    sb_free(&a);
    return ok;
}

/* https://host[:port][/path...], printable ASCII without quotes, angle
 * brackets and the like. */
static bool https_uri(const char *s, size_t len)
{
    if (len > TLSRPT_URI_MAX || len <= 8 || strncasecmp(s, "https://", 8) != 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"<>\\^`{|}", c))
            return false;
    }
    return s[8] != '/' && s[8] != ':' && s[8] != '?' && s[8] != '#';
}

/* The value of rua=: URIs separated by commas (with optional white space). */
static int parse_rua(const char *v, size_t len, struct tlsrpt_rua *rua, struct strbuf *why)
{
    const char *p = v, *end = v + len;
    bool any = false;
    while (p < end) {
        while (p < end && wsp(*p))
            p++;
        const char *u = p;
        while (p < end && *p != ',' && !wsp(*p))
            p++;
        size_t ulen = (size_t)(p - u);
        while (p < end && wsp(*p))
            p++;
        if (p < end && *p != ',') {
            sb_set(why, "white space inside a rua URI");
            return -1;
        }
        if (p < end)
            p++;                /* the comma */
        if (!ulen) {
            sb_set(why, "empty rua URI");
            return -1;
        }
        any = true;
        if (rua->n >= TLSRPT_RUA_MAX)
            continue;
        if (ulen > 7 && strncasecmp(u, "mailto:", 7) == 0) {
            if (!mailto_address(u + 7, ulen - 7, rua->dest[rua->n].uri, sizeof(rua->dest[0].uri))) {
                sb_appendf(why, "%sbad mailto: URI", why->len ? "; " : "");
                continue;
            }
            rua->dest[rua->n++].https = false;
        } else if (ulen > 6 && strncasecmp(u, "https:", 6) == 0) {
            if (!https_uri(u, ulen)) {
                sb_appendf(why, "%sbad https: URI", why->len ? "; " : "");
                continue;
            }
            memcpy(rua->dest[rua->n].uri, u, ulen);
            rua->dest[rua->n].uri[ulen] = 0;
            rua->dest[rua->n++].https = true;
        }
        /* other schemes: not for us (section 3) */
    }
    if (!any) {
        sb_set(why, "empty rua");
        return -1;
    }
    return 0;
}

static bool ext_name_ok(const char *s, size_t len)
{
    if (!len || len > 32 || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

static bool ext_value_ok(const char *s, size_t len)
{
    if (!len)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ';' || c == '=')
            return false;
    }
    return true;
}

int tlsrpt_txt_parse(const char *txt, struct tlsrpt_rua *rua, struct strbuf *why)
{
    static const char version[] = "v=TLSRPTv1";
    memset(rua, 0, sizeof(*rua));
    size_t vlen = sizeof(version) - 1;
    size_t len = strnlen(txt, TLSRPT_TXT_MAX + 1);
    if (strncmp(txt, version, vlen) != 0 || (txt[vlen] && txt[vlen] != ';' && !wsp(txt[vlen])))
        return 0;
    if (len > TLSRPT_TXT_MAX) {
        sb_set(why, "TLSRPT record too long");
        return -1;
    }
    const char *p = txt + vlen, *end = txt + len;
    bool have_rua = false;
    struct strbuf uri_why = STRBUF_INIT(256);
    int rc = 0;
    while (p < end && rc == 0) {
        /* field-delim = *WSP ";" *WSP */
        while (p < end && wsp(*p))
            p++;
        if (p == end)
            break;
        if (*p != ';') {
            sb_set(why, "expected ';' between fields");
            rc = -1;
            break;
        }
        p++;
        while (p < end && wsp(*p))
            p++;
        if (p == end)
            break;              /* a trailing delimiter */
        const char *name = p;
        while (p < end && *p != '=' && *p != ';' && !wsp(*p))
            p++;
        if (p == end || *p != '=') {
            sb_set(why, "a field without '='");
            rc = -1;
            break;
        }
        size_t nlen = (size_t)(p - name);
        const char *value = ++p;
        while (p < end && *p != ';')
            p++;
        const char *vend = p;
        while (vend > value && wsp(vend[-1]))
            vend--;
        if (nlen == 3 && memcmp(name, "rua", 3) == 0) {
            if (have_rua) {
                sb_set(why, "more than one rua field");
                rc = -1;
            } else {
                have_rua = true;
                rc = parse_rua(value, (size_t)(vend - value), rua, &uri_why);
                if (rc < 0)
                    sb_set(why, sb_str(&uri_why));
            }
        } else if (!ext_name_ok(name, nlen) || !ext_value_ok(value, (size_t)(vend - value))) {
            sb_set(why, "malformed field");
            rc = -1;
        }
    }
    if (rc == 0 && !have_rua) {
        sb_set(why, "no rua field");
        rc = -1;
    }
    if (rc == 0 && rua->n == 0) {
        sb_reset(why);
        sb_appendf(why, "no usable mailto: or https: destination in rua%s%s",
                   uri_why.len ? ": " : "", sb_str(&uri_why));
        rc = -1;
    }
    sb_free(&uri_why);
    if (rc < 0)
        memset(rua, 0, sizeof(*rua));
    return rc < 0 ? -1 : 1;
}

int tlsrpt_txt_choose(const char *const *txts, size_t n, struct tlsrpt_rua *rua, struct strbuf *why)
{
    int found = 0, rc = 0;
    memset(rua, 0, sizeof(*rua));
    for (size_t i = 0; i < n; i++) {
        struct tlsrpt_rua one;
        struct strbuf err = STRBUF_INIT(512);
        int r = tlsrpt_txt_parse(txts[i], &one, &err);
        if (r != 0)
            found++;
        if (r > 0) {
            *rua = one;
            rc = 1;
        } else if (r < 0) {
            sb_set(why, sb_str(&err));
            rc = -1;
        }
        sb_free(&err);
    }
    if (found > 1) {
        sb_set(why, "more than one TLSRPT record");
        rc = -1;
    }
    if (rc < 0)
        memset(rua, 0, sizeof(*rua));
    return rc;
}

bool tlsrpt_domain_ok(const char *name)
{
    size_t len = strlen(name), label = 0;
    if (!len || len > 253 || name[0] == '.' || name[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '.') {
            if (!label)
                return false;
            label = 0;
        } else if (isalnum(c) || c == '-' || c == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return true;
}
