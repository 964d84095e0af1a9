/* fuzz_postscreen_line.c: libFuzzer target for what a hostile client
 * sends postscreen's SMTP engine: the input is a byte stream cut into
 * lines as the engine cuts it (with line buffers of several sizes), and
 * each line goes through the non-SMTP command test. Every line must fit
 * its buffer, be NUL-terminated, consume input, and the whole stream must
 * be consumed in a bounded number of steps.
 * sources: postscreen/postscreen_line.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postscreen/postscreen.h"

static void cut(const char *buf, size_t len, size_t size)
{
    char line[64 + 1];
    char *forbidden[] = { "CONNECT", "GET", "POST" };
    size_t pos = 0, steps = 0;
    while (pos < len) {
        int flags = 0;
        size_t used = postscreen_line_take(buf + pos, len - pos, line, size, &flags);
        if (used == 0)
            break;          /* an incomplete last line, shorter than the buffer */
        if (used > len - pos || strlen(line) >= size)
            abort();
        if (!(flags & PSC_LINE_NUL) && memchr(buf + pos, 0, strlen(line)))
            abort();
        postscreen_line_non_smtp(line, forbidden, 3);
        pos += used;
        if (++steps > len)
            abort();
    }
    if (pos < len && len - pos >= size - 1)
        abort();            /* a whole buffer's worth left unread */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    cut((const char *)data, size, 2);
    cut((const char *)data, size, 16);
    cut((const char *)data, size, 65);
    return 0;
}
