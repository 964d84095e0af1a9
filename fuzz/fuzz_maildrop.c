/* fuzz_maildrop.c: libFuzzer target for pickup's reading of a maildrop
 * file: any byte string is loaded as a queue file, checked by the maildrop
 * rules, and its content streamed, as pickup does before it hands a file
 * to cleanup.
 * sources: lib/global/queue_file.c lib/global/queue_id.c lib/global/maildrop.c */
#include <stdint.h>

#include "fuzz/fuzz_global.h"
#include "maildrop.h"

static int count(const char *data, size_t len, void *ctx)
{
    *(size_t *)ctx += len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qmessage m;
    int fd = fuzz_queue_load(data, size, &m);
    struct maildrop_info info;
    const char *why;
    size_t content = 0;
    if (fd >= 0 && maildrop_check(&m, &info, &why) == 0
        && qfile_read_content(fd, m.content_offset, count, &content) == 0 && content != m.content_size)
        __builtin_trap();   /* the streamed content is what the reader counted */
    qmessage_free(&m);
    return 0;
}
