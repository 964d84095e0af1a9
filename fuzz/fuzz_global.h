/* fuzz_global.h: what the fuzz targets of the mail-system library
 * (lib/global) share: settings made once per process, and the input
 * loaded as a queue file. Each target is one translation unit, so these
 * are static; a target uses them only with the sources they call. */
#ifndef TERN_FUZZ_GLOBAL_H
#define TERN_FUZZ_GLOBAL_H

#include <stdbool.h>

#include "fuzz/fuzz.h"
#include "config.h"
#include "queue.h"
#include "strbuf.h"

/* Settings as main.cf would give them ({name, value} pairs), made the
 * first time only: true then, when the caller initialises what reads
 * them. */
#define FUZZ_CONFIGURE_ONCE(settings) \
    fuzz_configure_once(settings, sizeof(settings) / sizeof((settings)[0]))
static inline bool fuzz_configure_once(const char *const (*settings)[2], size_t n)
{
    static bool done;
    if (done)
        return false;
    done = true;
    for (size_t i = 0; i < n; i++)
        cfg_override(settings[i][0], settings[i][1]);
    return true;
}

/* The input loaded as a queue file, the way qmgr and pickup load one: its
 * descriptor with m filled (qmessage_free it), or -1 when it does not
 * load. */
static inline int fuzz_queue_load(const uint8_t *data, size_t size, struct qmessage *m)
{
    int fd = fuzz_file(data, size);
    if (fd < 0)
        return -1;
    struct strbuf err = STRBUF_INIT(4096);
    int rc = qmessage_load_fd(fd, "fuzz", m, &err);
    sb_free(&err);
    return rc < 0 ? -1 : fd;       /* a failed load leaves m empty */
}

#endif
