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

/* A service that answers attribute frames on event connections (anvil,
 * proxymap): its greeting, its bounds and its request handler. */
struct evframe_service {
    const char *protocol;       /* the greeting: one frame protocol=NAME */
    size_t limit;               /* the largest request frame */
    int batch;                  /* frames handled before other connections get a turn */
    size_t output_high;         /* answers a client may leave unread */
    /* One request frame; the answer is written to bev. false: the request
     * was refused; its answer, if any, is sent, then the connection is
     * closed. */
    bool (*handle)(void *ctx, struct bufferevent *bev, const char *frame, size_t len);
    /* The connection is gone (ctx is the service's to free). */
    void (*closed)(void *ctx);
};

/* Serve the client on bev (a new connection, its callbacks still unset)
 * until it leaves: greet it, pass it each whole request frame in turn,
 * close it (bufferevent_free, then svc->closed(ctx)) when it goes away,
 * sends an oversized frame, does not read its answers (warned), or a
 * request is refused. */
void evframe_serve_client(struct bufferevent *bev, const struct evframe_service *svc, void *ctx);

/* A client connection to the frame service at the UNIX socket path (in
 * the working directory: the queue directory), started in base: the
 * callbacks set, reads and writes enabled, each bounded by timeout
 * seconds, input held to twice frame_limit. NULL, with why naming the
 * cause ("out of resources" or the connect error), when it cannot even
 * be started. */
struct bufferevent *evframe_connect_unix(struct event_base *base, const char *path,
                                         size_t frame_limit, int timeout,
                                         void (*readcb)(struct bufferevent *, void *),
                                         void (*eventcb)(struct bufferevent *, short, void *),
                                         void *arg, const char **why);

/* Whether bev's output holds more than high bytes; then *paused is set, so
 * that the caller resumes the input it paused once the output drains. */
bool evframe_backlogged(struct bufferevent *bev, size_t high, bool *paused);

#endif
