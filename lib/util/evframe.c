/* evframe.c: whole frames out of a libevent input buffer (evframe.h); only
 * the header is made contiguous until the whole frame is there. And the
 * client connections of the services that answer attribute frames. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

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

/* One client connection of an evframe_service. */
struct evframe_client {
    struct bufferevent *bev;
    const struct evframe_service *svc;
    void *ctx;
    bool closing;               /* the last answer is on its way; then close */
};

static void client_close(struct evframe_client *c)
{
    bufferevent_free(c->bev);
    c->svc->closed(c->ctx);
    free(c);
}

/* Stop reading, send what is queued, then close. */
static void client_finish(struct evframe_client *c)
{
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        client_close(c);
}

/* At most batch whole frames of the input; false when the connection must
 * close at once (an oversized frame, a client that does not read). When
 * more frames wait after the batch, the read callback runs again after the
 * other connections had a turn. */
static bool client_serve(struct evframe_client *c)
{
    const struct evframe_service *svc = c->svc;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (int n = 0; n < svc->batch; n++) {
        unsigned char *frame;
        ssize_t size = evframe_take(in, attr_frame_size, svc->limit, &frame);
        if (size < 0) {
            msg_warn("oversized request from a client; closing its connection");
            return false;
        }
        if (size == 0)
            return true;                /* the rest is on its way */
        bool ok = svc->handle(c->ctx, c->bev, (const char *)frame, (size_t)size);
        free(frame);
        if (!ok) {
            client_finish(c);           /* its last answer goes out first */
            return true;
        }
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) > svc->output_high) {
            msg_warn("a client does not read its answers; closing its connection");
            return false;
        }
    }
    if (evbuffer_get_length(in) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
    return true;
}

static void client_read(struct bufferevent *bev, void *arg)
{
    struct evframe_client *c = arg;
    if (!c->closing && !client_serve(c))
        client_close(c);
}

/* The last answer has been sent: close. */
static void client_written(struct bufferevent *bev, void *arg)
{
    struct evframe_client *c = arg;
    if (c->closing)
        client_close(c);
}

static void client_event(struct bufferevent *bev, short what, void *arg)
{
    client_close(arg);
}

void evframe_serve_client(struct bufferevent *bev, const struct evframe_service *svc, void *ctx)
{
    struct evframe_client *c = xcalloc(1, sizeof(*c));
    c->bev = bev;
    c->svc = svc;
    c->ctx = ctx;
    struct strbuf hello = STRBUF_INIT(256);
    if (attr_frame_str(&hello, "protocol", svc->protocol) == 0)
        bufferevent_write(bev, hello.data, hello.len);
    sb_free(&hello);
    bufferevent_setcb(bev, client_read, client_written, client_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

bool evframe_backlogged(struct bufferevent *bev, size_t high, bool *paused)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) <= high)
        return false;
    *paused = true;
    return true;
}

struct bufferevent *evframe_connect_unix(struct event_base *base, const char *path,
                                         size_t frame_limit, int timeout,
                                         void (*readcb)(struct bufferevent *, void *),
                                         void (*eventcb)(struct bufferevent *, short, void *),
                                         void *arg, const char **why)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (str_copy(sun.sun_path, sizeof(sun.sun_path), path) >= sizeof(sun.sun_path)) {
        *why = strerror(ENAMETOOLONG);
        return NULL;
    }
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        *why = "out of resources";
        return NULL;
    }
    bufferevent_setcb(bev, readcb, NULL, eventcb, arg);
    bufferevent_setwatermark(bev, EV_READ, 0, 2 * frame_limit);
    struct timeval tv = { timeout, 0 };
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(bev, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        *why = strerror(errno);
        bufferevent_free(bev);
        return NULL;
    }
    return bev;
}
