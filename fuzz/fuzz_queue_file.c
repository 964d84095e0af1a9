/* fuzz_queue_file.c: libFuzzer target for the queue file reader: any byte
 * string is read as a queue file the way qmgr and `tern` read one.
 * sources: lib/global/queue_file.c lib/global/queue_id.c */
#include <stdint.h>

#include "fuzz/fuzz_global.h"

static int ignore(const char *data, size_t len, void *ctx)
{
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qmessage m;
    int fd = fuzz_queue_load(data, size, &m);
    if (fd >= 0 && m.complete)
        (void)qfile_read_content(fd, m.content_offset, ignore, NULL);
    qmessage_free(&m);
    return 0;
}
