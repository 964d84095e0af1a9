/* smtp_dane.c: what the dane and dane-only TLS levels (RFC 7672) make of
 * one server. Only a server whose MX and address records were validated
 * by DNSSEC has TLSA records worth asking for; its usable records make TLS
 * mandatory and authenticate the server (smtp_tls.c hands them to
 * OpenSSL), records that exist but are unusable still make TLS mandatory,
 * and a TLSA lookup that fails (SERVFAIL: a bogus signature, or a broken
 * zone) skips the server: an attacker who can make the lookup fail must
 * not get a clear-text session. Without secure TLSA records, dane is
 * opportunistic TLS (may) and dane-only does not use the server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "log.h"
#include "smtp.h"
#include "util.h"

#define DANE_TA 2
#define DANE_EE 3
#define DANE_SEL_CERT 0
#define DANE_SEL_SPKI 1
#define DANE_MATCH_FULL 0
#define DANE_MATCH_SHA256 1
#define DANE_MATCH_SHA512 2

bool smtp_dane_usable(const struct dns_tlsa *t)
{
    if (t->usage != DANE_TA && t->usage != DANE_EE)
        return false;           /* PKIX-TA(0) and PKIX-EE(1): unusable for SMTP (section 3.1.3) */
    if (t->selector != DANE_SEL_CERT && t->selector != DANE_SEL_SPKI)
        return false;
    switch (t->mtype) {
    case DANE_MATCH_FULL: return t->len > 0;
    case DANE_MATCH_SHA256: return t->len == 32;
    case DANE_MATCH_SHA512: return t->len == 64;
    default: return false;
    }
}

void smtp_dane_host_init(struct smtp_dane_host *d)
{
    memset(d, 0, sizeof(*d));
    sb_init(&d->reason, SMTP_REASON_MAX);
}

void smtp_dane_host_free(struct smtp_dane_host *d)
{
    free(d->tlsa);
    d->tlsa = NULL;
    sb_free(&d->reason);
}

/* This server is not used; the caller appends the reason to d->reason. */
static struct strbuf *dane_refuse(struct smtp_dane_host *d, enum tlsrpt_result rpt)
{
    d->status = 4;
    d->rpt = rpt;
    str_copy(d->dsn, sizeof(d->dsn), "4.7.5");
    sb_reset(&d->reason);
    return &d->reason;
}

/* The TLSA records of name:port. DNS_TEMPFAIL: the lookup failed (logged,
 * and d refuses the server); DNS_OK with records that were validated;
 * anything else: no validated records. */
static enum dns_status tlsa_lookup(struct smtp_request *rq, const char *name, int port,
                                   struct dns_tlsa **tlsa, size_t *n, struct smtp_dane_host *d)
{
    char qname[DNS_NAME_MAX + 32];
    snprintf(qname, sizeof(qname), "_%d._tcp.%s", port, name);
    bool secure = false;
    struct strbuf why = STRBUF_INIT(512);
    enum dns_status st = dns_lookup_tlsa(smtp_cfg.dns, qname, tlsa, n, &secure, &why);
    if (st == DNS_TEMPFAIL) {
        msg_warn("%s: TLSA lookup error for %s:%d: %s", rq->dr->queue_id, name, port, sb_str(&why));
        sb_appendf(dane_refuse(d, TLSRPT_DNSSEC_INVALID), "TLS is required by DANE, but the TLSA lookup for %s:%d "
                   "failed: %s", name, port, sb_str(&why));
    } else if (st == DNS_OK && !secure) {
        st = DNS_NODATA;        /* section 2.2.2: records not validated are as none */
    }
    if (st != DNS_OK) {
        free(*tlsa);
        *tlsa = NULL;
        *n = 0;
    }
    sb_free(&why);
    return st;
}

void smtp_dane_decide(struct smtp_request *rq, const char *host, const char *canonical, int port,
                      bool secure, struct smtp_dane_host *d)
{
    if (d->host[0] && strcmp(d->host, host) == 0)
        return;                 /* another address of the same server */
    free(d->tlsa);
    d->tlsa = NULL;
    d->ntlsa = 0;
    d->status = 0;
    d->rpt = TLSRPT_SUCCESS;
    d->level = SMTP_TLS_MAY;
    sb_reset(&d->reason);
    str_copy(d->host, sizeof(d->host), host);
    str_copy(d->base, sizeof(d->base), host);
    bool only = rq->tls.level == SMTP_TLS_DANE_ONLY;
    if (!secure) {
        /* RFC 7672 section 2.2: DANE applies only where the MX and address
         * records are secure. */
        if (only)
            sb_appendf(dane_refuse(d, TLSRPT_DANE_REQUIRED), "TLS is required by DANE (dane-only), but the DNS records "
                       "of %s:%d are not DNSSEC-validated", host, port);
        return;
    }
    struct dns_tlsa *tlsa = NULL;
    size_t n = 0;
    enum dns_status st = DNS_NODATA;
    /* Section 2.2.2: a host name that is an alias (its address records
     * were validated, CNAME included) has its TLSA records looked for at
     * the end of the chain first, then at the name itself. The first
     * validated records decide; a failed lookup stops. */
    if (canonical && *canonical && strcasecmp(canonical, host) != 0) {
        st = tlsa_lookup(rq, canonical, port, &tlsa, &n, d);
        if (st == DNS_OK)
            str_copy(d->base, sizeof(d->base), canonical);
    }
    if (st != DNS_OK && st != DNS_TEMPFAIL)
        st = tlsa_lookup(rq, host, port, &tlsa, &n, d);
    if (st == DNS_TEMPFAIL) {
        ;                       /* d refuses the server */
    } else if (st != DNS_OK) {
        if (only)
            sb_appendf(dane_refuse(d, TLSRPT_DANE_REQUIRED), "TLS is required by DANE (dane-only), but %s:%d has no "
                       "DNSSEC-validated TLSA records", host, port);
    } else {
        size_t usable = 0;
        for (size_t i = 0; i < n; i++)
            if (smtp_dane_usable(&tlsa[i]))
                tlsa[usable++] = tlsa[i];
        if (usable) {
            d->level = SMTP_TLS_DANE;
            d->tlsa = tlsa;
            d->ntlsa = usable;
            tlsa = NULL;
        } else if (only) {
            sb_appendf(dane_refuse(d, TLSRPT_TLSA_INVALID), "TLS is required by DANE (dane-only), but none of the "
                       "TLSA records of %s:%d is usable", d->base, port);
        } else {
            /* Section 3.1.3: records that exist but cannot be used still
             * mean the server does TLS; without authentication. */
            msg_info("%s: %s:%d: no usable DANE TLSA records; TLS required without "
                     "authentication", rq->dr->queue_id, d->base, port);
            d->level = SMTP_TLS_ENCRYPT;
            d->rpt = TLSRPT_TLSA_INVALID;
        }
    }
    free(tlsa);
}
