/* subject_decode.c: a Subject: value as the quarantine shows it
 * (quarantine_subject_decode, quarantine.h): RFC 2047 encoded words
 * decoded, folding undone, only printable UTF-8 left, bounded. The text is
 * the sender's: every byte is hostile (fuzzed by fuzz/fuzz_subject.c). */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "json.h"
#include "quarantine.h"
#include "strbuf.h"

#define SUBJECT_RAW_MAX 4096        /* decoded bytes looked at before cutting */

static int hexval(int c)
{
    static const char digits[] = "0123456789abcdef";
    const char *p = c ? strchr(digits, tolower(c)) : NULL;
    return p ? (int)(p - digits) : -1;
}

/* Decode one encoded word "=?charset?E?text?=" at s (n bytes available)
 * into out; its length, or 0 when it is not one this code decodes. */
static size_t encoded_word(const char *s, size_t n, struct strbuf *out)
{
    if (n < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    const char *cs = s + 2, *end = s + n;
    const char *q1 = memchr(cs, '?', (size_t)(end - cs));
    if (!q1 || q1 + 3 >= end || q1[2] != '?')
        return 0;
    const char *text = q1 + 3;
    const char *stop = NULL;
    for (const char *p = text; p + 1 < end; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            return 0;
        if (p[0] == '?' && p[1] == '=') {
            stop = p;
            break;
        }
    }
    if (!stop)
        return 0;
    size_t cslen = (size_t)(q1 - cs);
    const char *star = memchr(cs, '*', cslen);     /* RFC 2231 language */
    if (star)
        cslen = (size_t)(star - cs);
    bool latin1 = (cslen == 10 && strncasecmp(cs, "iso-8859-1", 10) == 0);
    bool utf8 = (cslen == 5 && strncasecmp(cs, "utf-8", 5) == 0)
                || (cslen == 8 && strncasecmp(cs, "us-ascii", 8) == 0);
    if (!latin1 && !utf8)
        return 0;
    struct strbuf raw = STRBUF_INIT(SUBJECT_RAW_MAX);
    int enc = q1[1];
    int rc = 0;
    if (enc == 'B' || enc == 'b') {
        rc = base64_decode(&raw, text, (size_t)(stop - text));
    } else if (enc == 'Q' || enc == 'q') {
        for (const char *p = text; p < stop && rc == 0; p++) {
            if (*p == '_') {
                rc = sb_appendc(&raw, ' ');
            } else if (*p == '=' && stop - p >= 3 && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
                rc = sb_appendc(&raw, (char)(hexval(p[1]) * 16 + hexval(p[2])));
                p += 2;
            } else {
                rc = sb_appendc(&raw, *p);
            }
        }
    } else {
        rc = -1;
    }
    if (rc < 0) {
        sb_free(&raw);
        return 0;
    }
    for (size_t i = 0; i < raw.len; i++) {
        unsigned char c = (unsigned char)raw.data[i];
        if (latin1 && c >= 0x80) {
            sb_appendc(out, (char)(0xc0 | (c >> 6)));
            sb_appendc(out, (char)(0x80 | (c & 0x3f)));
        } else {
            sb_appendc(out, (char)c);
        }
    }
    sb_free(&raw);
    return (size_t)(stop + 2 - s);
}

void quarantine_subject_decode(const char *in, size_t len, char *out)
{
    struct strbuf raw = STRBUF_INIT(SUBJECT_RAW_MAX);
    size_t ws_start = 0;           /* where the blanks after an encoded word began */
    bool after_word = false;
    size_t i = 0;
    while (i < len && (in[i] == ' ' || in[i] == '\t'))
        i++;
    while (i < len && raw.len < SUBJECT_RAW_MAX - 8) {
        char c = in[i];
        if (c == '\r' || c == '\n') {            /* folding: the line break goes */
            i++;
            continue;
        }
        if (c == '=' && in + i + 1 < in + len && in[i + 1] == '?') {
            size_t mark = raw.len;
            size_t n = encoded_word(in + i, len - i, &raw);
            if (n) {
                if (after_word) {
                    /* blanks between two encoded words are not text */
                    size_t got = raw.len - mark;
                    if (got)         /* an empty word may leave raw unallocated */
                        memmove(raw.data + ws_start, raw.data + mark, got);
                    sb_truncate(&raw, ws_start + got);
                }
                i += n;
                after_word = true;
                ws_start = raw.len;
                continue;
            }
        }
        if (c != ' ' && c != '\t')
            after_word = false;
        sb_appendc(&raw, c);
        i++;
    }
    bool more = i < len;
    /* printable UTF-8, bounded, cut on a character */
    struct strbuf shown = STRBUF_INIT(QUARANTINE_SUBJECT_MAX + 8);
    size_t used = quarantine_printable(&shown, raw.data, raw.len, QUARANTINE_SUBJECT_MAX, false);
    if (shown.len)
        memcpy(out, shown.data, shown.len);
    bool cut = used < raw.len || more;
    memcpy(out + shown.len, cut ? "..." : "", cut ? 4 : 1);
    sb_free(&shown);
    sb_free(&raw);
}

size_t quarantine_printable(struct strbuf *out, const char *in, size_t len, size_t max, bool lines)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t k = 0, o = 0;
    while (k < len) {
        size_t n = utf8_sequence_length(p + k, len - k);
        /* U+0080 to U+009F are control characters (C1: CSI and such) */
        bool c1 = n == 2 && p[k] == 0xc2 && p[k + 1] < 0xa0;
        size_t width = n > 1 && !c1 ? n : 1;
        if (o + width > max)
            break;
        if (width > 1) {
            sb_append(out, in + k, n);
        } else {
            unsigned char ch = p[k];
            bool ok = (ch >= 0x20 && ch < 0x7f) || (lines && ch == '\n');
            sb_appendc(out, ch == '\t' ? ' ' : ok ? (char)ch : '?');
        }
        k += n > 1 ? n : 1;
        o += width;
    }
    return k;
}
