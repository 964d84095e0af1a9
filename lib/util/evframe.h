/* evframe.h: taking whole length-prefixed frames (a 4-byte big-endian
 * length first: the attribute frames of attr.h, milter packets) out of a
 * libevent input buffer as they arrive, for any protocol that says how to
 * read its header. */
#ifndef TERN_EVFRAME_H
#define TERN_EVFRAME_H

#include <stddef.h>
#include <sys/types.h>

struct evbuffer;

/* A protocol's header reader: the size of the whole frame at head (avail
 * bytes there), 0 when more bytes are needed, -1 when the header says a
 * size beyond limit (attr_frame_size, milter_packet_size). */
typedef ssize_t (*evframe_sizer)(const void *head, size_t avail, size_t limit);

/* The next frame of in, removed from it into *frame (malloc'd, the caller
 * frees): its size; 0 (nothing taken) while it has not all arrived; -1 when
 * the header is out of range (the connection is then out of step). */
ssize_t evframe_take(struct evbuffer *in, evframe_sizer size_of, size_t limit,
                     unsigned char **frame);

#endif
