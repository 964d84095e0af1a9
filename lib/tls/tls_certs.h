/* tls_certs.h: what Tern reads out of X.509 certificates, shared by the
 * SMTP server, the SMTP client and `tern check`: fingerprints in Postfix's
 * form (upper-case hex pairs joined by ':') of a certificate or of its
 * public key, the subject's and issuer's common names made safe for log
 * lines and headers, and the expiry dates of the certificates in a PEM
 * file. */
#ifndef TERN_TLS_CERTS_H
#define TERN_TLS_CERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct strbuf;

/* "AB:CD:..." of the longest digest, with its terminating NUL. */
#define TLS_FPRINT_MAX (EVP_MAX_MD_SIZE * 3)
#define TLS_CN_MAX 256

/* The digest of smtpd_tls_fingerprint_digest: md5, sha1, sha224, sha256,
 * sha384 or sha512 (any case); NULL for another name. */
const EVP_MD *tls_fprint_digest(const char *name);

/* Fingerprint of the DER certificate (tls_cert_fprint) or of its DER
 * SubjectPublicKeyInfo (tls_pkey_fprint) into out; 0, or -1 when out is
 * too small or the digest fails (out is then ""). */
int tls_cert_fprint(X509 *cert, const EVP_MD *md, char *out, size_t outsz);
int tls_pkey_fprint(X509 *cert, const EVP_MD *md, char *out, size_t outsz);
/* Binary digest to "AB:CD:..."; -1 when it does not fit. */
int tls_fprint_format(const unsigned char *md, size_t mdlen, char *out, size_t outsz);

/* The subject's common name, and the issuer's (its organization when it
 * has no CN), as printable ASCII without quotes, parentheses or
 * backslashes (each such byte becomes '?'), truncated to outsz; "" when
 * absent. */
void tls_subject_cn(X509 *cert, char *out, size_t outsz);
void tls_issuer_cn(X509 *cert, char *out, size_t outsz);

/* Calls fn for each certificate in the PEM file (keys and other objects
 * are skipped), at most 64; returns the number of certificates, or -1
 * with a message in err when the file cannot be read or holds a
 * certificate that cannot be decoded. */
int tls_pem_certs(const char *file, void (*fn)(X509 *cert, void *ctx), void *ctx,
                  struct strbuf *err);

/* notAfter of a certificate as time_t; -1 when it cannot be converted. */
time_t tls_cert_not_after(X509 *cert);

/* The certificate of the PEM file that expires first (the leaf or one of
 * its chain): its notAfter in *not_after and its subject CN in cn. Returns
 * the number of certificates (0: none, *not_after untouched), or -1 with
 * a message in err. */
int tls_cert_file_expiry(const char *file, time_t *not_after, char *cn, size_t cnsz,
                         struct strbuf *err);

#endif
