/* fuzz_queue_file.c: libFuzzer target for the queue file reader: any byte
 * string is read as a queue file the way qmgr and `tern` read one.
 * sources: lib/global/queue_file.c lib/global/queue_id.c */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz/fuzz.h"
#include "queue.h"
#include "strbuf.h"

static int ignore(const char *data, size_t len, void *ctx)
{
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = fuzz_file(data, size);
    if (fd < 0)
        return 0;
    struct qmessage m;
    struct strbuf err = STRBUF_INIT(4096);
    if (qmessage_load_fd(fd, "fuzz", &m, &err) == 0 && m.complete)
        (void)qfile_read_content(fd, m.content_offset, ignore, NULL);
    qmessage_free(&m);
    sb_free(&err);
    return 0;
}
