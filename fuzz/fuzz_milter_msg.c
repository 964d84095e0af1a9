/* fuzz_milter_msg.c: libFuzzer target for the message milters see and edit
 * (a client's content is hostile): any byte string, spooled to a file as
 * smtpd does, is parsed into headers and body with a header limit taken
 * from the input, rendered again (a message with its empty line must come
 * back byte for byte, whatever the limit), then edited the way filters ask
 * and rendered once more, in pieces of a size taken from the input.
 * sources: lib/milter/milter_msg.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "milter.h"
#include "strbuf.h"
#include "util.h"

static int to_strbuf(const char *data, size_t len, void *arg)
{
    return sb_append(arg, data, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct milter_msg m;
    struct strbuf out = STRBUF_INIT(0);
    int fd = memfd_create("content", MFD_CLOEXEC);
    if (fd < 0 || write_all(fd, data, size) != (ssize_t)size)
        abort();
    size_t limit = size ? 1 + data[0] * 4 : 1;
    if (milter_msg_parse(&m, fd, (off_t)size, limit, 1 << 20) < 0
        || milter_msg_render(&m, to_strbuf, &out) < 0 || milter_msg_size(&m) != (off_t)out.len)
        abort();
    /* content renders unchanged (a last line without LF gets one) */
    if ((size == 0 || data[size - 1] == '\n') && m.nhdrs < 10000
        && (out.len != size || memcmp(out.data, data, size) != 0))
        abort();
    milter_msg_insert_header(&m, size % 7, "X-Ins", "v\n\tw", false);
    milter_msg_change_header(&m, size % 3, "Subject", "", false);
    milter_msg_change_header(&m, 1, m.nhdrs ? m.hdrs[0].name : "X-None", "changed", true);
    milter_msg_add_header(&m, "X-Add", "a", false);
    sb_reset(&out);
    if (milter_msg_render(&m, to_strbuf, &out) < 0 || milter_msg_size(&m) != (off_t)out.len)
        abort();
    struct milter_render r = MILTER_RENDER_INIT;
    char piece[64];
    size_t len, piece_size = 1 + size % sizeof(piece), total = 0;
    while (milter_msg_render_next(&m, &r, piece, piece_size, &len) == 0 && len > 0) {
        if (len > piece_size || total + len > out.len || memcmp(out.data + total, piece, len) != 0)
            abort();
        total += len;
    }
    if (total != out.len)
        abort();
    milter_msg_free(&m);
    sb_free(&out);
    return 0;
}
