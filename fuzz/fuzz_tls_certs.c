/* fuzz_tls_certs.c: libFuzzer target for what Tern reads out of a client
 * certificate, which comes from the network: the DER certificate is
 * decoded by OpenSSL, then its subject and issuer names are made safe for
 * log lines and the Received: header, and its fingerprints formatted. A
 * name that keeps a quote, parenthesis, backslash or control byte, or an
 * overlong result, is a bug, as is any crash or sanitizer report.
 * sources: lib/tls/tls_certs.c -lcrypto */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "lib/util/strbuf.h"
#include "lib/tls/tls_certs.h"

static void check_safe(const char *s, size_t max)
{
    if (strlen(s) >= max)
        abort();
    for (; *s; s++)
        if ((unsigned char)*s < 32 || (unsigned char)*s >= 127 || strchr("\"()\\", *s))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    const unsigned char *p = data;
    X509 *x = d2i_X509(NULL, &p, (long)size);
    if (!x)
        return 0;
    char cn[TLS_CN_MAX], fp[TLS_FPRINT_MAX];
    size_t small = 1 + size % 16;
    tls_subject_cn(x, cn, sizeof(cn));
    check_safe(cn, sizeof(cn));
    tls_issuer_cn(x, cn, small);
    check_safe(cn, small);
    if (tls_cert_fprint(x, EVP_sha256(), fp, sizeof(fp)) == 0 && strlen(fp) != 95)
        abort();
    tls_pkey_fprint(x, EVP_sha512(), fp, sizeof(fp));
    if (strlen(fp) >= sizeof(fp))
        abort();
    tls_cert_not_after(x);
    X509_free(x);
    return 0;
}
