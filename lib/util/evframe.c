/* evframe.c: whole frames out of a libevent input buffer (evframe.h); only
 * the header is made contiguous until the whole frame is there. */
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "attr.h"
#include "evframe.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

#define EVFRAME_HEADER 4

ssize_t evframe_take(struct evbuffer *in, evframe_sizer size_of, size_t limit,
                     unsigned char **frame)
{
    *frame = NULL;
    size_t avail = evbuffer_get_length(in);
    if (avail < EVFRAME_HEADER)
        return 0;
    const unsigned char *head = evbuffer_pullup(in, EVFRAME_HEADER);
    if (!head)
        return 0;
    ssize_t size = size_of(head, avail, limit);
    if (size <= 0)
        return size;
    *frame = xmalloc((size_t)size);
    evbuffer_remove(in, *frame, (size_t)size);
    return size;
}

enum evframe_served evframe_serve(struct bufferevent *bev, evframe_sizer size_of, size_t limit,
                                  int batch, size_t output_high,
                                  bool (*handle)(void *ctx, const char *frame, size_t len),
                                  void *ctx)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    for (int n = 0; n < batch; n++) {
        unsigned char *frame;
        ssize_t size = evframe_take(in, size_of, limit, &frame);
        if (size < 0) {
            msg_warn("oversized request from a client; closing its connection");
            return EVFRAME_BROKEN;
        }
        if (size == 0)
            return EVFRAME_WAITING;       /* the rest is on its way */
        bool ok = handle(ctx, (const char *)frame, (size_t)size);
        free(frame);
        if (!ok)
            return EVFRAME_REFUSED;
        if (evbuffer_get_length(bufferevent_get_output(bev)) > output_high) {
            msg_warn("a client does not read its answers; closing its connection");
            return EVFRAME_BROKEN;
        }
    }
    /* More may be buffered: come back after the other clients had a turn. */
    if (evbuffer_get_length(in) > 0)
        bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
    return EVFRAME_WAITING;
}

void evframe_send_protocol(struct bufferevent *bev, const char *protocol)
{
    struct strbuf hello = STRBUF_INIT(256);
    struct attr_writer w;
    attr_begin(&w, &hello);
    attr_put_str(&w, "protocol", protocol);
    if (attr_end(&w) == 0)
        bufferevent_write(bev, hello.data, hello.len);
    sb_free(&hello);
}
