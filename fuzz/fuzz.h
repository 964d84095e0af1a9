/* fuzz.h: what the fuzz targets share: the input as a C string, the
 * input as a file, a configuration set once, and the round-trip check of
 * an encoder. Each target is one translation unit, so these are static. */
#ifndef TERN_FUZZ_H
#define TERN_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The input as a NUL-terminated string (malloc'd; the caller frees), or
 * NULL when it is longer than max: inputs that long teach nothing new. */
static inline char *fuzz_text(const uint8_t *data, size_t size, size_t max)
{
    if (size > max)
        return NULL;
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = 0;
    return text;
}

/* The input as the content of a file: a descriptor (one per process,
 * reused) holding exactly these bytes, or -1. */
static inline int fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0)
        fd = memfd_create("fuzz-input", 0);
    if (fd < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        return -1;
    return fd;
}

/* What an encoder wrote again must be the very bytes decoded. */
static inline void fuzz_same_bytes(const void *again, size_t again_len, const uint8_t *data,
                                   size_t len)
{
    if (again_len != len || memcmp(again, data, len) != 0)
        abort();
}

#endif
