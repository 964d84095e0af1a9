/* fuzz_subject.c: libFuzzer target for the display of a quarantined
 * message's subject (lib/global/subject_decode.c): any Subject: value a
 * sender writes. Besides crashes and sanitizer reports: the result is at
 * most QUARANTINE_SUBJECT_MAX bytes plus "...", valid UTF-8 with no
 * control character, and decoding it again changes nothing but encoded
 * words it may still hold (so it is checked only for the same rules).
 * sources: lib/global/subject_decode.c lib/util/base64.c lib/util/json.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/global/quarantine.h"
#include "lib/util/json.h"

static void check(const char *out)
{
    size_t n = strlen(out);
    if (n > QUARANTINE_SUBJECT_MAX + 3)
        abort();
    const unsigned char *p = (const unsigned char *)out;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_sequence_length(p + i, n - i);
        if (k == 0 || (k == 1 && (p[i] < 0x20 || p[i] == 0x7f)) || (k == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0))
            abort();
        i += k;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[QUARANTINE_SUBJECT_MAX + 8], again[QUARANTINE_SUBJECT_MAX + 8];
    quarantine_subject_decode((const char *)data, size, out);
    check(out);
    quarantine_subject_decode(out, strlen(out), again);
    check(again);
    return 0;
}
