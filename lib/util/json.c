/* json.c: JSON strings for the machine-readable output of the
 * administrator's commands: every byte that is not valid UTF-8 becomes
 * U+FFFD, so that hostile addresses and headers cannot break the output. */
#include <string.h>

#include "json.h"
#include "strbuf.h"

/* Length of the valid UTF-8 sequence at s (1-4), or 0. */
size_t utf8_sequence_length(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned min;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) { n = 2; cp = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { n = 3; cp = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { n = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void json_string(struct strbuf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    sb_appendc(out, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            sb_appendc(out, '\\');
            sb_appendc(out, (char)c);
            i++;
        } else if (c == '\n') {
            sb_appends(out, "\\n");
            i++;
        } else if (c == '\t') {
            sb_appends(out, "\\t");
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            sb_appendf(out, "\\u%04x", c);
            i++;
        } else {
            size_t n = utf8_sequence_length(p + i, len - i);
            if (n == 0) {
                sb_appends(out, "\\ufffd");
                i++;
            } else {
                sb_append(out, s + i, n);
                i += n;
            }
        }
    }
    sb_appendc(out, '"');
}

void json_str(struct strbuf *out, const char *s)
{
    json_string(out, s ? s : "", s ? strlen(s) : 0);
}
