/* fuzz_cleanup_mime.c: libFuzzer target for the MIME state machine behind
 * cleanup's header and body checks. The input is a message: its primary
 * header section (up to the first empty line) is given field by field, the
 * rest is fed in chunks whose size the first byte chooses, with small
 * limits so that long lines, long headers and the nesting limit are met.
 * Besides crashes and sanitizer reports, the headers and body lines handed
 * out must add up to the body byte for byte when nothing was cut.
 * sources: cleanup/cleanup_mime.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup/cleanup_mime.h"

struct rebuild {
    struct strbuf out;
};

static void on_header(void *ctx, enum mime_class cls, const char *text, size_t len)
{
    struct rebuild *r = ctx;
    if (cls > MIME_CLASS_NESTED || len == 0 || memchr(text, ':', len) == NULL)
        abort();                 /* every header handed out has a name and a colon */
    sb_append(&r->out, text, len);
    sb_appendc(&r->out, '\n');
}

static void on_body(void *ctx, const char *text, size_t len, bool eol, unsigned long long offset)
{
    struct rebuild *r = ctx;
    (void)offset;
    if (memchr(text, '\n', len))
        abort();                 /* a body line never holds its LF */
    sb_append(&r->out, text, len);
    if (eol)
        sb_appendc(&r->out, '\n');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    size_t step = 1 + data[0] % 64;
    const char *msg = (const char *)data + 1;
    size_t len = size - 1;
    const char *blank = memmem(msg, len, "\n\n", 2);
    size_t head = blank ? (size_t)(blank - msg) + 1 : 0;   /* the primary fields, with their LFs */

    struct rebuild r;
    sb_init(&r.out, 0);
    struct mime_limits lim = { 80, 200 + (data[0] & 0x80 ? len : 0), 1 + data[0] % 7, false };
    struct mime_callbacks cb = { on_header, on_body, &r };
    struct mime_state m;
    cleanup_mime_init(&m, &lim, &cb);
    for (size_t off = 0; off < head;) {
        const char *nl = memchr(msg + off, '\n', head - off);
        size_t n = (size_t)(nl - (msg + off));
        while (off + n + 1 < head && (msg[off + n + 1] == ' ' || msg[off + n + 1] == '\t'))
            n += 1 + (size_t)((const char *)memchr(msg + off + n + 1, '\n', head - off - n - 1)
                              - (msg + off + n + 1));
        cleanup_mime_primary_header(&m, msg + off, n);
        off += n + 1;
    }
    cleanup_mime_primary_done(&m);
    const char *body = msg + head + (blank ? 1 : 0);
    size_t blen = len - (size_t)(body - msg);
    for (size_t off = 0; off < blen; off += step)
        cleanup_mime_feed(&m, body + off, blen - off < step ? blen - off : step);
    cleanup_mime_finish(&m);
    /* With headers never cut and a body ending in LF, nothing is lost. */
    if (lim.header_limit >= blen && (blen == 0 || body[blen - 1] == '\n')
        && (r.out.len != blen || memcmp(sb_str(&r.out), body, blen) != 0))
        abort();
    cleanup_mime_free(&m);
    sb_free(&r.out);
    return 0;
}
