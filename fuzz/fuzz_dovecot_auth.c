/* fuzz_dovecot_auth.c: libFuzzer target for what smtpd reads from
 * Dovecot's auth service: the input is split into lines the way smtpd's
 * client splits them and each is parsed; whatever parses must keep its
 * promises (strings inside the line, no control characters in a user name
 * or reason, base64 text in a challenge that decodes or is refused). The
 * whole input is also offered to the base64 decoder, whose output must
 * encode back to the same text.
 * sources: lib/global/dovecot_auth.c lib/util/base64.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "dovecot_auth.h"
#include "strbuf.h"

static void check_text(const char *s, const char *line, size_t len)
{
    if (!s)
        return;
    if (s < line || s > line + len)
        abort();
    for (; *s; s++)
        if ((unsigned char)*s < 32 || *s == 127)
            abort();
}

static void one_line(const uint8_t *data, size_t len)
{
    char *line = malloc(len + 1);
    memcpy(line, data, len);
    struct dovecot_line l;
    if (dovecot_parse_line(line, len, &l) == 0) {
        check_text(l.user, line, len);
        check_text(l.reason, line, len);
        check_text(l.mech, line, len);
        if (l.type == DOVECOT_CONT) {
            struct strbuf d = STRBUF_INIT(DOVECOT_LINE_MAX);
            base64_decode(&d, l.data, strlen(l.data));
            sb_free(&d);
        }
    }
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    size_t start = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n') {
            one_line(data + start, i - start);
            start = i + 1;
        }
    }
    if (start < size)
        one_line(data + start, size - start);

    struct strbuf d = STRBUF_INIT(65536), e = STRBUF_INIT(2 * 65536);
    if (base64_decode(&d, (const char *)data, size) == 0) {
        if (base64_encode(&e, d.data ? d.data : "", d.len) < 0 || e.len != size
            || (size && memcmp(e.data, data, size) != 0))
            abort();
    }
    sb_free(&d);
    sb_free(&e);
    return 0;
}
