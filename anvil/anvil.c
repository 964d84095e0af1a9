/* anvil.c: the client connection and rate counter that all smtpd processes
 * share, like Postfix's anvil(8). One long-running event-driven process on
 * private/anvil answers {request=connect|disconnect|message|recipient|
 * newtls|newtls_status|auth, service, addr} with the client's connections
 * now and its rate of that event in the current anvil_rate_time_unit
 * (doc/PROTOCOLS.md); smtpd compares them with its limits. It only counts:
 * what is allowed is smtpd's decision. Peaks are logged every
 * anvil_status_update_time and at exit. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "anvil_proto.h"
#include "anvil_table.h"
#include "attr.h"
#include "evframe.h"
#include "config.h"
#include "log.h"
#include "metrics_client.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

#define ANVIL_OUTPUT_HIGH (256 * 1024)  /* a client this far behind is dropped */
#define ANVIL_BATCH 256                 /* requests answered per read event */

static struct {
    struct anvil_table *table;
    struct event *expire_ev, *stats_ev;
} av;

/* One request frame of a client (the evframe_service handler; ctx is the
 * client's peer record); false when the client must be dropped. */
static bool anvil_request(void *ctx, struct bufferevent *bev, const char *frame, size_t len)
{
    struct anvil_peer *peer = ctx;
    time_t now = time(NULL);
    struct anvil_request req;
    struct anvil_reply rep;
    const char *why = NULL;
    if (anvil_decode_request(frame, len, &req, &why) < 0) {
        msg_warn("malformed request from a client: %s; closing its connection", why);
        return false;
    }
    anvil_table_request(av.table, peer, &req, now, &rep);
    msg_debug("%s %s:%s: count=%ld rate=%ld", anvil_request_name(req.type), req.service,
              req.addr, rep.count, rep.rate);
    struct strbuf out = STRBUF_INIT(ANVIL_FRAME_LIMIT);
    bool ok = anvil_encode_reply(&out, &rep) == 0
        && bufferevent_write(bev, out.data, out.len) == 0;
    sb_free(&out);
    return ok;
}

/* A client is gone: its connections no longer count. */
static void anvil_client_closed(void *ctx)
{
    anvil_peer_close(av.table, ctx);
    server_client_done();
}

static const struct evframe_service anvil_service = {
    .protocol = ANVIL_PROTOCOL, .limit = ANVIL_FRAME_LIMIT, .batch = ANVIL_BATCH,
    .output_high = ANVIL_OUTPUT_HIGH, .handle = anvil_request, .closed = anvil_client_closed,
};

static void anvil_accept(int fd, struct event_base *base)
{
    struct bufferevent *bev =
        server_client_bufferevent(fd, base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (bev)
        evframe_serve_client(bev, &anvil_service, anvil_peer_create(av.table));
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    anvil_table_expire(av.table, time(NULL));
    metrics_set(M_ANVIL_CONN_COUNT_PEAK, anvil_table_peak(av.table, false), NULL);
    metrics_set(M_ANVIL_CONN_RATE_PEAK, anvil_table_peak(av.table, true), NULL);
}

static void on_stats(evutil_socket_t fd, short what, void *arg)
{
    anvil_table_log_stats(av.table);
}

static struct event *periodic(struct event_base *base, event_callback_fn fn, long seconds)
{
    struct event *ev = event_new(base, -1, EV_PERSIST, fn, NULL);
    struct timeval tv = { seconds, 0 };
    if (!ev || event_add(ev, &tv) < 0)
        msg_fatal("cannot set up a timer: out of memory");
    return ev;
}

static void anvil_post_init(struct event_base *base)
{
    long unit = cfg_time(P_anvil_rate_time_unit);
    long stats = cfg_time(P_anvil_status_update_time);
    long limit = cfg_int(P_anvil_client_table_limit);
    if (unit < 1)
        unit = 1;
    if (stats < 1)
        stats = 1;
    if (limit < 1)
        limit = 1;
    av.table = anvil_table_create((size_t)limit, unit);
    /* Expiry only returns memory; the rates themselves restart on access. */
    av.expire_ev = periodic(base, on_expire, unit < 10 ? unit : 10);
    av.stats_ev = periodic(base, on_stats, stats);
}

static void anvil_pre_exit(void)
{
    if (av.table)
        anvil_table_log_stats(av.table);
}

SERVER_MAIN("anvil", .mode = SERVER_EVENT, .accept_event = anvil_accept,
            .post_init = anvil_post_init, .pre_exit = anvil_pre_exit, .long_running = true)
