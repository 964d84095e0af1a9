/* test_tls_certs.c: unit tests of lib/tls/tls_certs.c: digest names,
 * fingerprint formatting (Postfix's "AB:CD:..."), certificate and public
 * key fingerprints against digests computed here, common names made safe
 * for headers and log lines, and the expiry of the certificates of a PEM
 * file (made here with OpenSSL: a leaf, a chain, a malformed file). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "check.h"
#include "strbuf.h"
#include "tls_certs.h"

static EVP_PKEY *key;

/* A self-signed certificate valid from now - 1 day to now + days. */
static X509 *make_cert(const char *cn, const char *issuer_o, long days)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -86400);
    X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    if (cn)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_NAME *iname = X509_NAME_new();
    if (issuer_o)
        X509_NAME_add_entry_by_txt(iname, "O", MBSTRING_UTF8, (const unsigned char *)issuer_o, -1, -1, 0);
    else if (cn)
        X509_NAME_add_entry_by_txt(iname, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, iname);
    X509_NAME_free(iname);
    X509_sign(x, key, EVP_sha256());
    return x;
}

static void test_format(void)
{
    char out[16];
    const unsigned char md[] = { 0x0a, 0xbc, 0xff };
    CHECK(tls_fprint_format(md, 3, out, sizeof(out)) == 0);
    CHECK_STR(out, "0A:BC:FF");
    CHECK(tls_fprint_format(md, 3, out, 8) == -1);       /* needs 9 bytes */
    CHECK_STR(out, "");
    CHECK(tls_fprint_format(md, 3, out, 9) == 0);
    CHECK(tls_fprint_digest("SHA256") == EVP_sha256());
    CHECK(tls_fprint_digest("md5") == EVP_md5());
    CHECK(tls_fprint_digest("sha3-256") == NULL);
    CHECK(tls_fprint_digest("") == NULL);
}

static void test_fingerprints(void)
{
    X509 *x = make_cert("client.test", NULL, 10);
    char fp[TLS_FPRINT_MAX], want[TLS_FPRINT_MAX];
    unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
    unsigned int len;
    /* the certificate: the digest of its DER form */
    int n = i2d_X509(x, &der);
    EVP_Digest(der, (size_t)n, md, &len, EVP_sha256(), NULL);
    OPENSSL_free(der);
    tls_fprint_format(md, len, want, sizeof(want));
    CHECK(tls_cert_fprint(x, EVP_sha256(), fp, sizeof(fp)) == 0);
    CHECK_STR(fp, want);
    CHECK(strlen(fp) == 32 * 3 - 1);
    /* the public key: the digest of the DER SubjectPublicKeyInfo */
    der = NULL;
    n = i2d_PUBKEY(key, &der);
    EVP_Digest(der, (size_t)n, md, &len, EVP_sha256(), NULL);
    OPENSSL_free(der);
    tls_fprint_format(md, len, want, sizeof(want));
    CHECK(tls_pkey_fprint(x, EVP_sha256(), fp, sizeof(fp)) == 0);
    CHECK_STR(fp, want);
    CHECK(tls_pkey_fprint(x, EVP_sha512(), fp, sizeof(fp)) == 0 && strlen(fp) == 64 * 3 - 1);
    CHECK(tls_cert_fprint(x, EVP_sha256(), fp, 10) == -1);
    CHECK(tls_cert_fprint(NULL, EVP_sha256(), fp, sizeof(fp)) == -1);
    X509_free(x);
}

static void test_names(void)
{
    char cn[TLS_CN_MAX];
    X509 *x = make_cert("evil\"(name)\\\n", "Issuer Org", 10);
    tls_subject_cn(x, cn, sizeof(cn));
    CHECK_STR(cn, "evil??name???");
    tls_issuer_cn(x, cn, sizeof(cn));      /* no issuer CN: its organization */
    CHECK_STR(cn, "Issuer Org");
    tls_subject_cn(x, cn, 5);
    CHECK_STR(cn, "evil");
    X509_free(x);
    x = make_cert(NULL, NULL, 10);
    tls_subject_cn(x, cn, sizeof(cn));
    CHECK_STR(cn, "");
    tls_issuer_cn(x, cn, sizeof(cn));
    CHECK_STR(cn, "");
    X509_free(x);
    x = make_cert("caf\xc3\xa9", NULL, 10);     /* UTF-8 beyond ASCII */
    tls_subject_cn(x, cn, sizeof(cn));
    CHECK_STR(cn, "caf??");
    X509_free(x);
}

static void write_pem(const char *path, X509 **certs, int n, bool with_key)
{
    FILE *f = fopen(path, "w");
    if (with_key)
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    for (int i = 0; i < n; i++)
        PEM_write_X509(f, certs[i]);
    fclose(f);
}

static void test_expiry(void)
{
    char path[] = "/tmp/tern-test-tls-certs-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    struct strbuf err = STRBUF_INIT(1024);
    char cn[TLS_CN_MAX];
    time_t t = 0, now = time(NULL);
    X509 *certs[3] = { make_cert("leaf.test", NULL, 400), make_cert("ca.test", NULL, 5),
                       make_cert("root.test", NULL, -3) };
    /* the key before the chain is skipped; the earliest notAfter wins */
    write_pem(path, certs, 2, true);
    CHECK(tls_cert_file_expiry(path, &t, cn, sizeof(cn), &err) == 2);
    CHECK_STR(cn, "ca.test");
    CHECK(t > now + 4 * 86400 && t <= now + 5 * 86400 + 5);
    write_pem(path, certs, 3, false);
    CHECK(tls_cert_file_expiry(path, &t, cn, sizeof(cn), &err) == 3);
    CHECK_STR(cn, "root.test");
    CHECK(t < now - 2 * 86400);
    /* no certificate at all */
    write_pem(path, certs, 0, true);
    t = 42;
    CHECK(tls_cert_file_expiry(path, &t, cn, sizeof(cn), &err) == 0 && t == 42);
    /* garbage inside the PEM armour */
    FILE *f = fopen(path, "w");
    fputs("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    sb_reset(&err);
    CHECK(tls_cert_file_expiry(path, &t, cn, sizeof(cn), &err) == -1 && err.len > 0);
    unlink(path);
    sb_reset(&err);
    CHECK(tls_cert_file_expiry(path, &t, cn, sizeof(cn), &err) == -1);
    CHECK(strstr(sb_str(&err), "cannot open") != NULL);
    for (int i = 0; i < 3; i++)
        X509_free(certs[i]);
    sb_free(&err);
}

int main(void)
{
    key = EVP_EC_gen("P-256");
    CHECK(key != NULL);
    test_format();
    test_fingerprints();
    test_names();
    test_expiry();
    EVP_PKEY_free(key);
    return check_summary();
}
