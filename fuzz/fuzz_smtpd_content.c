/* fuzz_smtpd_content.c: libFuzzer target for smtpd's DATA and BDAT content
 * decoders (smtpd/smtpd_content.c), which take the plain bytes of a line
 * as whole runs: decoding the input byte by byte, in pieces of a size
 * taken from the input and all at once must give the same content, size,
 * end of data and bare CR/LF verdicts. A difference aborts; so does any
 * crash or sanitizer report.
 * sources: smtpd/smtpd_content.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util/strbuf.h"
#include "smtpd/smtpd_content.h"

struct outcome {
    struct strbuf out;
    size_t consumed;
    struct smtpd_content_decoder d;
};

static void decode(struct outcome *o, const char *in, size_t n, size_t step, bool data, bool after_crlf)
{
    sb_init(&o->out, 0);
    smtpd_content_decoder_init(&o->d, after_crlf);
    size_t pos = 0;
    while (pos < n && !(data && o->d.done)) {
        size_t chunk = step ? (n - pos < step ? n - pos : step) : n - pos;
        if (data) {
            pos += smtpd_content_decode_data(&o->d, in + pos, chunk, &o->out);
        } else {
            smtpd_content_decode_bdat(&o->d, in + pos, chunk, &o->out);
            pos += chunk;
        }
    }
    if (!data)
        smtpd_content_finish_bdat(&o->d, &o->out);
    o->consumed = pos;
}

static void same(const struct outcome *a, const struct outcome *b)
{
    if (a->out.len != b->out.len || (a->out.len && memcmp(a->out.data, b->out.data, a->out.len) != 0)
        || a->consumed != b->consumed || a->d.size != b->d.size || a->d.done != b->d.done
        || a->d.saw_bare_lf != b->d.saw_bare_lf || a->d.saw_bare_cr != b->d.saw_bare_cr)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    size_t step = 1 + data[0] % 13;
    bool after_crlf = (data[0] & 0x80) != 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    for (int mode = 0; mode < 2; mode++) {
        struct outcome one, piece, all;
        decode(&one, in, n, 1, mode == 0, after_crlf);
        decode(&piece, in, n, step, mode == 0, after_crlf);
        decode(&all, in, n, 0, mode == 0, after_crlf);
        same(&one, &all);
        same(&one, &piece);
        sb_free(&one.out);
        sb_free(&piece.out);
        sb_free(&all.out);
    }
    return 0;
}
