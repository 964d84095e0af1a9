/* test_tls_protocols.c: unit tests of Postfix's TLS protocol list syntax
 * (lib/tls/tls_protocols.c): ranges, exclusions, positive lists, and refusals. */
#include <string.h>

#include <openssl/ssl.h>

#include "check.h"
#include "strbuf.h"
#include "tls_protocols.h"

static int parse(const char *spec, int *lo, int *hi, unsigned long *holes)
{
    struct strbuf err = STRBUF_INIT(1024);
    int rc = tls_protocols_parse(spec, lo, hi, holes, &err);
    CHECK(rc == 0 || err.len > 0);
    sb_free(&err);
    return rc;
}

int main(void)
{
    int lo, hi;
    unsigned long holes;
    CHECK(parse(">=TLSv1.2", &lo, &hi, &holes) == 0);
    CHECK(lo == TLS1_2_VERSION && hi == TLS1_3_VERSION && holes == 0);
    CHECK(parse("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", &lo, &hi, &holes) == 0);
    CHECK(lo == TLS1_2_VERSION && hi == TLS1_3_VERSION);
    CHECK(parse("!SSLv2:!SSLv3:!TLSv1", &lo, &hi, &holes) == 0);
    CHECK(lo == TLS1_1_VERSION && hi == TLS1_3_VERSION);
    CHECK(parse("", &lo, &hi, &holes) == 0);
    CHECK(lo == TLS1_VERSION && hi == TLS1_3_VERSION);
    CHECK(parse("TLSv1.3", &lo, &hi, &holes) == 0);
    CHECK(lo == TLS1_3_VERSION && hi == TLS1_3_VERSION);
    CHECK(parse(">=TLSv1 <=TLSv1.2", &lo, &hi, &holes) == 0);
    CHECK(lo == TLS1_VERSION && hi == TLS1_2_VERSION);
    CHECK(parse("tlsv1.2 TLSV1.3", &lo, &hi, &holes) == 0);
    CHECK(lo == TLS1_2_VERSION && hi == TLS1_3_VERSION);
    CHECK(parse(">=TLSv1, !TLSv1.2", &lo, &hi, &holes) == 0);
    CHECK(lo == TLS1_VERSION && hi == TLS1_3_VERSION && holes == SSL_OP_NO_TLSv1_2);
    CHECK(parse("!TLSv1.1 !TLSv1.2", &lo, &hi, &holes) == 0);
    CHECK(lo == TLS1_VERSION && hi == TLS1_3_VERSION
          && holes == (SSL_OP_NO_TLSv1_1 | SSL_OP_NO_TLSv1_2));
    CHECK(parse("SSLv3", &lo, &hi, &holes) < 0);           /* nothing OpenSSL 3 speaks */
    CHECK(parse("!TLSv1.3 !TLSv1.2 !TLSv1.1 !TLSv1", &lo, &hi, &holes) < 0);
    CHECK(parse(">=TLSv1.4", &lo, &hi, &holes) < 0);
    CHECK(parse("=>TLSv1.2", &lo, &hi, &holes) < 0);
    CHECK(parse("TLSv1.2x", &lo, &hi, &holes) < 0);
    char big[300];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    CHECK(parse(big, &lo, &hi, &holes) < 0);
    return check_summary();
}
