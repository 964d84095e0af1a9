/* tls_certs.c: fingerprints, names and expiry dates of X.509 certificates
 * (see tls_certs.h). */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "strbuf.h"
#include "tls_certs.h"

#define PEM_CERTS_MAX 64

const EVP_MD *tls_fprint_digest(const char *name)
{
    static const struct { const char *name; const EVP_MD *(*md)(void); } digests[] = {
        { "md5", EVP_md5 }, { "sha1", EVP_sha1 }, { "sha224", EVP_sha224 },
        { "sha256", EVP_sha256 }, { "sha384", EVP_sha384 }, { "sha512", EVP_sha512 },
    };
    for (size_t i = 0; i < sizeof(digests) / sizeof(digests[0]); i++)
        if (strcasecmp(name, digests[i].name) == 0)
            return digests[i].md();
    return NULL;
}

int tls_fprint_format(const unsigned char *md, size_t mdlen, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    if (outsz == 0)
        return -1;
    out[0] = 0;
    if (mdlen == 0 || mdlen * 3 > outsz)
        return -1;
    for (size_t i = 0; i < mdlen; i++) {
        out[3 * i] = hex[md[i] >> 4];
        out[3 * i + 1] = hex[md[i] & 15];
        out[3 * i + 2] = i + 1 < mdlen ? ':' : 0;
    }
    return 0;
}

int tls_cert_fprint(X509 *cert, const EVP_MD *md, char *out, size_t outsz)
{
    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (outsz)
        out[0] = 0;
    if (!cert || !md || X509_digest(cert, md, buf, &len) != 1) {
        ERR_clear_error();
        return -1;
    }
    return tls_fprint_format(buf, len, out, outsz);
}

/* Postfix's public key fingerprint is the digest of the whole DER
 * SubjectPublicKeyInfo (what `openssl pkey -pubin -outform DER` writes),
 * not of the key's bit string alone (X509_pubkey_digest). */
int tls_pkey_fprint(X509 *cert, const EVP_MD *md, char *out, size_t outsz)
{
    unsigned char buf[EVP_MAX_MD_SIZE], *spki = NULL;
    unsigned int len = 0;
    if (outsz)
        out[0] = 0;
    int n = cert && md ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &spki) : -1;
    int ok = n > 0 && EVP_Digest(spki, (size_t)n, buf, &len, md, NULL) == 1;
    OPENSSL_free(spki);
    if (!ok) {
        ERR_clear_error();
        return -1;
    }
    return tls_fprint_format(buf, len, out, outsz);
}

/* The first entry nid of name, in UTF-8, made safe; false when absent. */
static bool name_entry(X509_NAME *name, int nid, char *out, size_t outsz)
{
    int i = name ? X509_NAME_get_index_by_NID(name, nid, -1) : -1;
    if (i < 0)
        return false;
    ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char *utf8 = NULL;
    int n = data ? ASN1_STRING_to_UTF8(&utf8, data) : -1;
    if (n < 0) {
        ERR_clear_error();
        return false;
    }
    size_t j = 0;
    for (int k = 0; k < n && j + 1 < outsz; k++) {
        unsigned char c = utf8[k];
        out[j++] = (c < 32 || c >= 127 || c == '"' || c == '(' || c == ')' || c == '\\') ? '?' : (char)c;
    }
    out[j] = 0;
    OPENSSL_free(utf8);
    return true;
}

void tls_subject_cn(X509 *cert, char *out, size_t outsz)
{
    if (outsz && (!cert || !name_entry(X509_get_subject_name(cert), NID_commonName, out, outsz)))
        out[0] = 0;
}

void tls_issuer_cn(X509 *cert, char *out, size_t outsz)
{
    if (!outsz)
        return;
    X509_NAME *issuer = cert ? X509_get_issuer_name(cert) : NULL;
    if (!name_entry(issuer, NID_commonName, out, outsz)
        && !name_entry(issuer, NID_organizationName, out, outsz))
        out[0] = 0;
}

int tls_pem_certs(const char *file, void (*fn)(X509 *cert, void *ctx), void *ctx,
                  struct strbuf *err)
{
    BIO *bio = BIO_new_file(file, "r");
    if (!bio) {
        sb_appendf(err, "cannot open %s: %s", file, strerror(errno));
        ERR_clear_error();
        return -1;
    }
    int count = 0, rc = 0;
    for (int n = 0; n < PEM_CERTS_MAX; n++) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        long len = 0;
        if (!PEM_read_bio(bio, &name, &header, &data, &len)) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
                sb_appendf(err, "%s: malformed PEM data", file);
                rc = -1;
            }
            ERR_clear_error();
            break;
        }
        if (strcmp(name, "CERTIFICATE") == 0 || strcmp(name, "TRUSTED CERTIFICATE") == 0) {
            const unsigned char *p = data;
            X509 *x = strcmp(name, "CERTIFICATE") == 0 ? d2i_X509(NULL, &p, len)
                                                        : d2i_X509_AUX(NULL, &p, len);
            if (!x) {
                sb_appendf(err, "%s: cannot decode certificate %d", file, count + 1);
                ERR_clear_error();
                rc = -1;
            } else {
                count++;
                fn(x, ctx);
                X509_free(x);
            }
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        if (rc < 0)
            break;
    }
    BIO_free(bio);
    return rc < 0 ? -1 : count;
}

time_t tls_cert_not_after(X509 *cert)
{
    struct tm tm;
    const ASN1_TIME *t = cert ? X509_get0_notAfter(cert) : NULL;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
        ERR_clear_error();
        return (time_t)-1;
    }
    return timegm(&tm);
}

struct expiry {
    time_t first;
    bool any, bad;
    char *cn;
    size_t cnsz;
};

static void expiry_one(X509 *cert, void *ctx)
{
    struct expiry *e = ctx;
    time_t t = tls_cert_not_after(cert);
    if (t == (time_t)-1) {
        e->bad = true;
        return;
    }
    if (!e->any || t < e->first) {
        e->first = t;
        e->any = true;
        tls_subject_cn(cert, e->cn, e->cnsz);
    }
}

int tls_cert_file_expiry(const char *file, time_t *not_after, char *cn, size_t cnsz,
                         struct strbuf *err)
{
    struct expiry e = { .cn = cn, .cnsz = cnsz };
    if (cnsz)
        cn[0] = 0;
    int n = tls_pem_certs(file, expiry_one, &e, err);
    if (n > 0 && e.bad) {
        sb_appendf(err, "%s: a certificate has an unreadable expiry date", file);
        return -1;
    }
    if (n > 0)
        *not_after = e.first;
    return n;
}
