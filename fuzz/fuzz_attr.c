/* fuzz_attr.c: libFuzzer target for the internal IPC decoder: any byte
 * string is offered as a frame and read the way cleanup reads an envelope.
 * sources: lib/util/attr.c */
#include <stdint.h>
#include <string.h>

#include "attr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssize_t frame = attr_frame_size(data, size, 1 << 16);
    if (frame <= 0)
        return 0;
    struct attr_reader r;
    if (attr_reader_init(&r, data, (size_t)frame) < 0)
        return 0;
    const char *s;
    const void *b;
    size_t len;
    long long n;
    char name[ATTR_NAME_MAX + 1];
    for (int i = 0; i < 64 && attr_peek_name(&r, name, sizeof(name)); i++) {
        if (strcmp(name, "nattr") == 0 || strcmp(name, "flags") == 0)
            (void)attr_get_int(&r, name, 0, 1000, &n);
        else if (attr_get_str(&r, name, &s) < 0 && attr_get_bytes(&r, name, &b, &len) < 0)
            break;
        (void)attr_opt_str(&r, "end", &s);
    }
    (void)attr_reader_done(&r);
    return 0;
}
