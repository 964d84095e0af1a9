/* evframe.h: taking whole length-prefixed frames (a 4-byte big-endian
 * length first: the attribute frames of attr.h, milter packets) out of a
 * libevent input buffer as they arrive, for any protocol that says how to
 * read its header. */
#ifndef TERN_EVFRAME_H
#define TERN_EVFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct evbuffer;
struct bufferevent;

/* A protocol's header reader: the size of the whole frame at head (avail
 * bytes there), 0 when more bytes are needed, -1 when the header says a
 * size beyond limit (attr_frame_size, milter_packet_size). */
typedef ssize_t (*evframe_sizer)(const void *head, size_t avail, size_t limit);

/* The next frame of in, removed from it into *frame (malloc'd, the caller
 * frees): its size; 0 (nothing taken) while it has not all arrived; -1 when
 * the header is out of range (the connection is then out of step). */
ssize_t evframe_take(struct evbuffer *in, evframe_sizer size_of, size_t limit,
                     unsigned char **frame);

/* How a service's connection ends a round of evframe_serve. */
enum evframe_served {
    EVFRAME_WAITING,     /* all whole frames handled; more may come */
    EVFRAME_BROKEN,      /* an oversized frame, or a client that does not read
                          * its answers (warned): close the connection */
    EVFRAME_REFUSED,     /* the handler returned false */
};

/* The request loop of a service that answers attribute frames on an event
 * connection (anvil, proxymap): at most batch whole frames of bev's input,
 * each passed to handle; the output may grow to output_high bytes. When
 * more frames wait after the batch, bev's read callback runs again after
 * the other connections had a turn. */
enum evframe_served evframe_serve(struct bufferevent *bev, evframe_sizer size_of, size_t limit,
                                  int batch, size_t output_high,
                                  bool (*handle)(void *ctx, const char *frame, size_t len),
                                  void *ctx);

/* A service's greeting: one attribute frame protocol=NAME. */
void evframe_send_protocol(struct bufferevent *bev, const char *protocol);

#endif
