/* anvil_client.c: asynchronous client of the anvil service (see
 * anvil_client.h): one pipelined UNIX connection in the caller's event
 * loop, a queue of requests waiting for their answers, and the fail-open
 * rules when anvil is missing, slow or broken. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "anvil_client.h"
#include "attr.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

#define ANVIL_WARN_INTERVAL 60      /* seconds between warnings about anvil */
#define ANVIL_RETRY_CONNECT 1       /* seconds without requests after a failed connect */
#define ANVIL_RETRY_BROKEN 10       /* ... after a timeout or a protocol error */
#define ANVIL_OUTPUT_LIMIT (64 * 1024)  /* unsent requests: anvil is not reading */

struct anvil_pending {
    struct anvil_pending *next;
    anvil_reply_fn fn;              /* NULL: cancelled or not wanted */
    void *ctx;
};

struct anvil_client {
    struct event_base *base;
    char *path;
    struct bufferevent *bev;        /* NULL while not connected */
    bool greeted;                   /* {protocol=anvil} has arrived */
    unsigned conn_id, last_id;
    struct anvil_pending *head, *tail;
    time_t retry_after;             /* no new connection before this */
    time_t last_warning;
};

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);

struct anvil_client *anvil_client_create(struct event_base *base, const char *path)
{
    struct anvil_client *c = xcalloc(1, sizeof(*c));
    c->base = base;
    c->path = xstrdup(path);
    return c;
}

static void warn_limited(struct anvil_client *c, const char *why)
{
    time_t now = time(NULL);
    if (c->last_warning && now - c->last_warning < ANVIL_WARN_INTERVAL)
        return;
    c->last_warning = now;
    msg_warn("problem talking to service %s: %s; client connection and rate limits are "
             "not enforced until it answers", c->path, why);
}

/* Drop the connection and answer everything still waiting with "no answer".
 * retry: seconds before a new connection may be tried. */
static void client_fail(struct anvil_client *c, const char *why, int retry)
{
    if (why)
        warn_limited(c, why);
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    c->conn_id = 0;
    c->greeted = false;
    if (retry > 0)
        c->retry_after = time(NULL) + retry;
    struct anvil_pending *p = c->head;
    c->head = c->tail = NULL;
    while (p) {
        struct anvil_pending *next = p->next;
        if (p->fn)
            p->fn(p->ctx, NULL);
        free(p);
        p = next;
    }
}

void anvil_client_free(struct anvil_client *c)
{
    if (!c)
        return;
    client_fail(c, NULL, 0);
    free(c->path);
    free(c);
}

static int client_connect(struct anvil_client *c)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (str_copy(sa.sun_path, sizeof(sa.sun_path), c->path) >= sizeof(sa.sun_path)) {
        warn_limited(c, "socket path too long");
        c->retry_after = time(NULL) + ANVIL_RETRY_BROKEN;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        warn_limited(c, strerror(errno));
        if (fd >= 0)
            close(fd);
        c->retry_after = time(NULL) + ANVIL_RETRY_CONNECT;
        return -1;
    }
    c->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        close(fd);
        warn_limited(c, "out of memory");
        c->retry_after = time(NULL) + ANVIL_RETRY_CONNECT;
        return -1;
    }
    bufferevent_setcb(c->bev, client_read_cb, NULL, client_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->greeted = false;
    if (++c->last_id == 0)          /* 0 means "not connected" */
        c->last_id = 1;
    c->conn_id = c->last_id;
    return 0;
}

/* The answer timer runs only while answers are owed. */
static void update_timeout(struct anvil_client *c)
{
    struct timeval tv = { ANVIL_CLIENT_TIMEOUT_MS / 1000, (ANVIL_CLIENT_TIMEOUT_MS % 1000) * 1000 };
    bufferevent_set_timeouts(c->bev, c->head ? &tv : NULL, NULL);
}

struct anvil_pending *anvil_client_ask(struct anvil_client *c, enum anvil_request_type type,
                                       const char *service, const char *addr,
                                       anvil_reply_fn fn, void *ctx)
{
    if (!c->bev && (time(NULL) < c->retry_after || client_connect(c) < 0))
        return NULL;
    struct anvil_request req = { type, service, addr };
    struct strbuf out = STRBUF_INIT(ANVIL_FRAME_LIMIT);
    if (anvil_encode_request(&out, &req) < 0) {
        sb_free(&out);
        warn_limited(c, "request not sent: service name or client address too long");
        return NULL;
    }
    struct evbuffer *output = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(output) + out.len > ANVIL_OUTPUT_LIMIT
        || bufferevent_write(c->bev, out.data, out.len) < 0) {
        sb_free(&out);
        client_fail(c, "the service does not read its requests", ANVIL_RETRY_BROKEN);
        return NULL;
    }
    sb_free(&out);
    struct anvil_pending *p = xcalloc(1, sizeof(*p));
    p->fn = fn;
    p->ctx = ctx;
    bool was_idle = !c->head;
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
    if (was_idle)
        update_timeout(c);
    return p;
}

void anvil_pending_cancel(struct anvil_pending *p)
{
    if (p)
        p->fn = NULL;
}

unsigned anvil_client_connection(const struct anvil_client *c)
{
    return c->bev ? c->conn_id : 0;
}

/* One whole frame from anvil. false: the connection is broken. */
static bool client_frame(struct anvil_client *c, const void *frame, size_t len)
{
    if (!c->greeted) {
        struct attr_reader r;
        const char *proto;
        if (attr_reader_init(&r, frame, len) < 0 || attr_get_str(&r, "protocol", &proto) < 0
            || attr_reader_done(&r) < 0 || strcmp(proto, ANVIL_PROTOCOL) != 0)
            return false;
        c->greeted = true;
        return true;
    }
    struct anvil_reply rep;
    struct anvil_pending *p = c->head;
    if (!p || anvil_decode_reply(frame, len, &rep) < 0)
        return false;
    c->head = p->next;
    if (!c->head)
        c->tail = NULL;
    update_timeout(c);
    if (p->fn)
        p->fn(p->ctx, &rep);
    free(p);
    return true;
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    struct anvil_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    unsigned id = c->conn_id;
    /* A callback may fail this connection and even open the next one. */
    while (c->bev && c->conn_id == id) {
        size_t avail = evbuffer_get_length(in);
        size_t look = avail < ANVIL_FRAME_LIMIT + 4 ? avail : ANVIL_FRAME_LIMIT + 4;
        const void *head = evbuffer_pullup(in, (ssize_t)look);
        ssize_t size = attr_frame_size(head, look, ANVIL_FRAME_LIMIT);
        if (size == 0)
            return;                 /* the rest is still on its way */
        if (size < 0) {
            client_fail(c, "oversized answer", ANVIL_RETRY_BROKEN);
            return;
        }
        char frame[ANVIL_FRAME_LIMIT + 4];
        evbuffer_remove(in, frame, (size_t)size);
        if (!client_frame(c, frame, (size_t)size)) {
            client_fail(c, "unexpected or malformed answer", ANVIL_RETRY_BROKEN);
            return;
        }
    }
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct anvil_client *c = arg;
    if (what & BEV_EVENT_TIMEOUT)
        client_fail(c, "timeout waiting for an answer", ANVIL_RETRY_BROKEN);
    else if (what & BEV_EVENT_EOF)
        client_fail(c, c->head ? "connection closed before the answer" : NULL, 0);
    else
        client_fail(c, c->head ? strerror(EVUTIL_SOCKET_ERROR()) : NULL, 0);
}
