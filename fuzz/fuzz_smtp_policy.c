/* fuzz_smtp_policy.c: libFuzzer target for what the SMTP client parses from
 * lookup tables, main.cf and EHLO replies about TLS and AUTH: policy values
 * of smtp_tls_policy_maps, protocol lists, SASL security options and the
 * AUTH mechanisms of an EHLO reply. The first byte picks the parser. Any
 * crash, leak or sanitizer report is a bug.
 * sources: smtp/smtp_policy.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    struct strbuf why = STRBUF_INIT(1024);
    switch (data[0] % 4) {
    case 0: {
        struct smtp_tls_policy p;
        if (smtp_tls_policy_parse(text, &p, &why) == 0 && p.has_match) {
            const char *item;
            size_t len;
            for (size_t i = 0; i < 100 && smtp_tls_match_item(p.match, i, &item, &len); i++)
                if (len == 0 || item + len > p.match + sizeof(p.match))
                    abort();
        }
        break;
    }
    case 1: {
        unsigned mask;
        if (smtp_tls_protocols_parse(text, &mask, &why) == 0
            && (mask == 0 || smtp_tls_protocols_highest(mask) < smtp_tls_protocols_lowest(mask)))
            abort();
        break;
    }
    case 2: {
        unsigned flags;
        (void)smtp_sasl_options_parse(text, &flags, &why);
        (void)smtp_sasl_mechs_parse(text, size - 1);
        break;
    }
    default:
        /* raw bytes, NULs included, as the reply buffer holds them */
        (void)smtp_ehlo_auth_mechs((const char *)data + 1, size - 1);
        break;
    }
    sb_free(&why);
    free(text);
    return 0;
}
