/* fuzz_milter_msg.c: libFuzzer target for the message milters see and edit
 * (a client's content is hostile): any byte string is parsed into headers
 * and body, rendered again (a message with its empty line must come back
 * byte for byte), then edited the way filters ask and rendered once more.
 * sources: lib/milter_msg.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct milter_msg m;
    struct strbuf out = STRBUF_INIT(0);
    milter_msg_parse(&m, (const char *)data, size, 1 << 20);
    if (milter_msg_render(&m, &out) < 0)
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
    if (milter_msg_render(&m, &out) < 0)
        abort();
    milter_msg_free(&m);
    sb_free(&out);
    return 0;
}
