/* fuzz_smtpd_parse.c: libFuzzer target for everything smtpd parses from a
 * client line: the verb split, MAIL and RCPT with their ESMTP parameters
 * (REQUIRETLS known or not, allowed or not, by the size's bits),
 * HELO, BDAT and xtext. Any crash, leak or sanitizer report is a bug.
 * sources: lib/global/smtp_command.c lib/global/address.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "lib/global/smtp_command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = fuzz_text(data, size, 4096);
    if (!line)
        return 0;

    const char *arg;
    enum smtp_verb verb = smtp_parse_verb(line, strlen(line), &arg);
    struct smtp_parse_opts opts = { .size_limit = 10240000, .smtputf8_enable = (size & 1) != 0,
                                    .strict_rfc821 = (size & 4) != 0,
                                    .requiretls_known = (size & 8) != 0,
                                    .requiretls_allowed = (size & 16) != 0 };
    struct smtp_parse_error err;
    if (verb == SMTP_MAIL) {
        struct smtp_mail_args m;
        if (smtp_parse_mail(arg, &opts, &m, &err) == 0)
            smtp_mail_args_free(&m);
    } else if (verb == SMTP_RCPT) {
        struct smtp_rcpt_args r;
        if (smtp_parse_rcpt(arg, &opts, (size & 2) != 0, &r, &err) == 0)
            smtp_rcpt_args_free(&r);
    } else if (verb == SMTP_HELO || verb == SMTP_EHLO) {
        free(smtp_parse_helo(arg));
    } else if (verb == SMTP_BDAT) {
        long long count;
        bool last;
        (void)smtp_parse_bdat(arg, &count, &last);
    } else {
        free(xtext_decode(line, size, 500, (size & 4) != 0));
        struct address a;
        if (address_parse(line, size, ADDR_ALLOW_NULL | ADDR_ALLOW_UTF8 | ADDR_ALLOW_BARE,
                          &a, NULL) == ADDR_OK) {
            char *nl, *nd;
            if (address_unroute(a.local, ADDR_ROUTE_ALL, &nl, &nd) == 1) {
                free(nl);
                free(nd);
            }
            address_free(&a);
        }
    }
    (void)smtp_line_has_nul(line, size);
    (void)smtp_line_bad_utf8(line, size);
    free(line);
    return 0;
}
