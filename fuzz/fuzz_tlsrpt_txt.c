/* fuzz_tlsrpt_txt.c: libFuzzer target for the SMTP TLS Reporting (RFC
 * 8460) parsers: the _smtp._tls TXT record anyone's DNS sends (alone, and
 * as a set of records split at newlines), and a line of the day's record
 * file with the JSON report built from it. The first byte picks the
 * parser. Any crash, leak or sanitizer report is a bug, and so is a
 * parsed record that breaks its own bounds.
 * sources: lib/global/tlsrpt.c lib/util/json.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "lib/global/tlsrpt.h"
#include "lib/util/strbuf.h"

static void check_rua(const struct tlsrpt_rua *rua)
{
    if (rua->n == 0 || rua->n > TLSRPT_RUA_MAX)
        abort();
    for (size_t i = 0; i < rua->n; i++) {
        const char *u = rua->dest[i].uri;
        if (!memchr(u, 0, sizeof(rua->dest[i].uri)) || !u[0])
            abort();
        for (const char *p = u; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == ',' || *p == ';')
                abort();
        if (!rua->dest[i].https && !strchr(u, '@'))
            abort();
    }
}

static void txt_set(char *text)
{
    const char *list[16];
    size_t n = 0;
    for (char *p = text; p && n < 16;) {
        list[n++] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = 0;
    }
    struct tlsrpt_rua rua;
    struct strbuf why = STRBUF_INIT(1024);
    if (tlsrpt_txt_choose(list, n, &rua, &why) == 1)
        check_rua(&rua);
    sb_free(&why);
}

static void record_line(const char *text, size_t len)
{
    struct tlsrpt_record r;
    struct strbuf why = STRBUF_INIT(1024);
    tlsrpt_record_init(&r);
    if (tlsrpt_record_parse(text, len, &r, &why) == 0) {
        /* what parses formats again within the bound, and sums up */
        struct strbuf line = STRBUF_INIT(0);
        if (tlsrpt_record_format(&r, &line) < 0 || line.len > TLSRPT_LINE_MAX)
            abort();
        sb_free(&line);
        struct tlsrpt_summary s;
        tlsrpt_summary_init(&s);
        tlsrpt_summary_add(&s, &r);
        tlsrpt_summary_add(&s, &r);
        if (s.ndomains != 1)
            abort();
        struct tlsrpt_meta m = { "org", "contact@example.com", "id", 0, 86399 };
        struct strbuf json = STRBUF_INIT(0);
        tlsrpt_report_json(&s.domains[0], &m, &json);
        sb_free(&json);
        tlsrpt_summary_free(&s);
    }
    tlsrpt_record_free(&r);
    sb_free(&why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *text = fuzz_text(data + 1, size - 1, 8192);
    if (!text)
        return 0;
    switch (data[0] % 3) {
    case 0: {
        struct tlsrpt_rua rua;
        struct strbuf why = STRBUF_INIT(1024);
        int rc = tlsrpt_txt_parse(text, &rua, &why);
        if (rc == 1)
            check_rua(&rua);
        else if (rc < 0 && (rua.n || !why.len))
            abort();
        sb_free(&why);
        break;
    }
    case 1:
        txt_set(text);
        break;
    default:
        record_line(text, size - 1);
        break;
    }
    free(text);
    return 0;
}
