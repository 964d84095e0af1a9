/* fuzz.h: what the fuzz targets share: the input as a C string, the
 * input as a file, and the round-trip check of an encoder and of a frame
 * protocol. Each target is one translation unit, so these are static. */
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

/* The decoders of an attr-frame protocol PROTO (anvil, proxy: the
 * functions PROTO_decode_request, PROTO_encode_request and the same for
 * the reply) on the input's first frame of at most limit bytes: a request
 * that decodes must pass request_ok and encode again to the very bytes
 * decoded; a reply that decodes must pass reply_ok and encode. The caller
 * includes attr.h, strbuf.h and the protocol's header. */
#define FUZZ_FRAME_ROUND_TRIP(data, size, limit, PROTO, request_ok, reply_ok)                   \
    do {                                                                                       \
        ssize_t frame_ = attr_frame_size(data, size, limit);                                   \
        struct PROTO##_request req_;                                                           \
        struct PROTO##_reply rep_;                                                             \
        const char *why_;                                                                      \
        struct strbuf again_ = STRBUF_INIT((limit) + 4);                                       \
        if (frame_ > 0 && PROTO##_decode_request(data, (size_t)frame_, &req_, &why_) == 0) {   \
            if (!request_ok(&req_) || PROTO##_encode_request(&again_, &req_) < 0)              \
                abort();                                                                       \
            fuzz_same_bytes(again_.data, again_.len, data, (size_t)frame_);                    \
        }                                                                                      \
        sb_reset(&again_);                                                                     \
        if (frame_ > 0 && PROTO##_decode_reply(data, (size_t)frame_, &rep_) == 0               \
            && (!reply_ok(&rep_) || PROTO##_encode_reply(&again_, &rep_) < 0))                 \
            abort();                                                                           \
        sb_free(&again_);                                                                      \
    } while (0)

#endif
