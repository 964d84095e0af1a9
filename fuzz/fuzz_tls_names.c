/* fuzz_tls_names.c: libFuzzer target for the TLS text smtpd takes from
 * outside: the server name (SNI) a client sends, turned into a table key,
 * and the protocol list syntax of main.cf. Any crash, leak or sanitizer
 * report is a bug.
 * sources: lib/tls/tls_protocols.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "lib/util/strbuf.h"
#include "lib/tls/tls_protocols.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size, 4096);
    if (!text)
        return 0;

    char key[300];
    const char *k = tls_server_name_key(text, key, (size & 1) ? sizeof(key) : 16);
    if (k && (strlen(k) >= sizeof(key) || strchr(k, '.') == k))
        abort();

    struct strbuf err = STRBUF_INIT(1024);
    int lo, hi;
    unsigned long no;
    if (tls_protocols_parse(text, &lo, &hi, &no, &err) == 0 && lo > hi)
        abort();
    sb_free(&err);
    free(text);
    return 0;
}
