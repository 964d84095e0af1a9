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
static struct strbuf *dane_refuse(struct smtp_dane_host *d)
{
    d->status = 4;
    str_copy(d->dsn, sizeof(d->dsn), "4.7.5");
    sb_reset(&d->reason);
    return &d->reason;
}

void smtp_dane_decide(struct smtp_request *rq, const char *host, int port, bool secure,
                      struct smtp_dane_host *d)
{
    if (d->host[0] && strcmp(d->host, host) == 0)
        return;                 /* another address of the same server */
    free(d->tlsa);
    d->tlsa = NULL;
    d->ntlsa = 0;
    d->status = 0;
    d->level = SMTP_TLS_MAY;
    sb_reset(&d->reason);
    str_copy(d->host, sizeof(d->host), host);
    bool only = rq->tls.level == SMTP_TLS_DANE_ONLY;
    if (!secure) {
        /* RFC 7672 section 2.2: DANE applies only where the MX and address
         * records are secure. */
        if (only)
            sb_appendf(dane_refuse(d), "TLS is required by DANE (dane-only), but the DNS records "
                       "of %s:%d are not DNSSEC-validated", host, port);
        return;
    }
    char name[DNS_NAME_MAX + 32];
    snprintf(name, sizeof(name), "_%d._tcp.%s", port, host);
    struct dns_tlsa *tlsa = NULL;
    size_t n = 0;
    bool tlsa_secure = false;
    struct strbuf why = STRBUF_INIT(512);
    enum dns_status st = dns_lookup_tlsa(smtp_cfg.dns, name, &tlsa, &n, &tlsa_secure, &why);
    if (st == DNS_TEMPFAIL) {
        msg_warn("%s: TLSA lookup error for %s:%d: %s", rq->dr->queue_id, host, port, sb_str(&why));
        sb_appendf(dane_refuse(d), "TLS is required by DANE, but the TLSA lookup for %s:%d "
                   "failed: %s", host, port, sb_str(&why));
    } else if (st != DNS_OK || !tlsa_secure) {
        /* No TLSA records, or records that were not validated (section
         * 2.2.2: as if there were none). */
        if (only)
            sb_appendf(dane_refuse(d), "TLS is required by DANE (dane-only), but %s:%d has no "
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
            sb_appendf(dane_refuse(d), "TLS is required by DANE (dane-only), but none of the "
                       "TLSA records of %s:%d is usable", host, port);
        } else {
            /* Section 3.1.3: records that exist but cannot be used still
             * mean the server does TLS; without authentication. */
            msg_info("%s: %s:%d: no usable DANE TLSA records; TLS required without "
                     "authentication", rq->dr->queue_id, host, port);
            d->level = SMTP_TLS_ENCRYPT;
        }
    }
    free(tlsa);
    sb_free(&why);
}
