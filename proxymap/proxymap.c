/* proxymap.c: the table lookup service that every process of the instance
 * shares, like Postfix's proxymap(8): a process with a proxy:TYPE:NAME
 * table (lib/global/map_proxy.c) asks here instead of opening TYPE:NAME
 * itself, so that hundreds of smtpd sessions cost one PostgreSQL or LDAP
 * connection, not one per process. One long-running event-driven process on
 * private/proxymap, as mail_owner, answers {request=lookup, table, key}
 * with {status, value} (lib/global/proxy_proto.h, doc/PROTOCOLS.md).
 *
 * It opens only the tables that proxy_read_maps names as proxy:TYPE:NAME,
 * each once, at its first lookup, with mail_owner's privileges, and keeps
 * it (and its server connection) open: a process of mail_owner's uid that
 * asks for any other table, or a nested proxy: table, is refused and
 * logged, so that it cannot make this process open files it would not
 * otherwise open. Lookups are answered one at a time, in the order they
 * arrive; a table whose file changes makes the process hand over to a
 * fresh one, as every daemon does. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "attr.h"
#include "evframe.h"
#include "config.h"
#include "log.h"
#include "maps.h"
#include "proxy_proto.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

#define PROXY_OUTPUT_HIGH (1024 * 1024)  /* a client this far behind is dropped */
#define PROXY_BATCH 64                   /* requests answered per read event */
#define PROXY_REOPEN_DELAY 5             /* seconds between attempts to open a table that failed */

/* An allowed table, open or not yet. */
struct proxy_table {
    char *name;             /* TYPE:NAME */
    struct map *map;        /* NULL until opened */
    time_t failed_at;       /* the last attempt to open it failed then */
};

static struct {
    struct proxy_allowed *allowed;
    struct proxy_table *tables;
    size_t ntables;
} px;

/* The open table for an allowed name, opened now if need be; NULL when it
 * cannot be opened (logged, tried again after PROXY_REOPEN_DELAY). */
static struct map *table_get(const char *name)
{
    struct proxy_table *t = NULL;
    for (size_t i = 0; i < px.ntables && !t; i++)
        if (strcmp(px.tables[i].name, name) == 0)
            t = &px.tables[i];
    if (!t) {
        /* bounded: only names of proxy_read_maps come here */
        px.tables = xrealloc(px.tables, (px.ntables + 1) * sizeof(*px.tables));
        t = &px.tables[px.ntables++];
        memset(t, 0, sizeof(*t));
        t->name = xstrdup(name);
    }
    if (t->map)
        return t->map;
    time_t now = time(NULL);
    if (t->failed_at && now - t->failed_at < PROXY_REOPEN_DELAY)
        return NULL;
    struct strbuf err = STRBUF_INIT(4096);
    t->map = map_open(name, &err);
    if (!t->map) {
        t->failed_at = now;
        msg_warn("cannot open table %s: %s; its lookups fail until it can be opened", name,
                 sb_str(&err));
    } else {
        msg_debug("opened table %s", name);
    }
    sb_free(&err);
    return t->map;
}

/* The answer to one well-formed request. */
static void proxy_answer(const struct proxy_request *req, struct strbuf *value,
                         struct proxy_reply *rep)
{
    rep->value = "";
    if (strncmp(req->table, "proxy:", 6) == 0) {
        msg_warn("request for nested table %.200s refused: a proxy: table cannot be proxied "
                 "again", req->table);
        rep->status = PROXY_STAT_DENY;
        return;
    }
    if (!proxy_allowed_has(px.allowed, req->table)) {
        msg_warn("request for table %.200s refused: it is not in proxy_read_maps (add "
                 "proxy:%.200s there if Tern's own tables name it)", req->table, req->table);
        rep->status = PROXY_STAT_DENY;
        return;
    }
    struct map *m = table_get(req->table);
    if (!m) {
        rep->status = PROXY_STAT_RETRY;
        return;
    }
    int found = map_lookup(m, req->key, value);
    msg_debug("%s: %.100s: %s", req->table, req->key,
              found > 0 ? "found" : found == 0 ? "not found" : "lookup failed");
    if (found > 0 && value->len > PROXY_VALUE_MAX) {
        msg_warn("%s: the value of \"%.100s\" is longer than %d bytes: lookup failed",
                 req->table, req->key, PROXY_VALUE_MAX);
        found = -1;
    }
    rep->status = found > 0 ? PROXY_STAT_OK : found == 0 ? PROXY_STAT_NOKEY : PROXY_STAT_RETRY;
    if (found > 0)
        rep->value = sb_str(value);
}

/* One request frame: its answer queued; false when the connection is to
 * be closed once that answer is sent. */
static bool proxymap_request(void *ctx, struct bufferevent *bev, const char *frame, size_t len)
{
    struct proxy_request req;
    struct proxy_reply rep = { PROXY_STAT_BAD, "" };
    struct strbuf value = STRBUF_INIT(PROXY_VALUE_MAX + 1);
    const char *why = NULL;
    bool ok = proxy_decode_request(frame, len, &req, &why) == 0;
    if (ok)
        proxy_answer(&req, &value, &rep);
    else
        msg_warn("malformed request from a client: %s; closing its connection", why);
    struct strbuf out = STRBUF_INIT(PROXY_FRAME_LIMIT);
    if (proxy_encode_reply(&out, &rep) < 0 || bufferevent_write(bev, out.data, out.len) < 0)
        ok = false;
    sb_free(&out);
    sb_free(&value);
    return ok;
}

static const struct evframe_service proxymap_service = {
    .protocol = PROXY_PROTOCOL, .limit = PROXY_FRAME_LIMIT, .batch = PROXY_BATCH,
    .output_high = PROXY_OUTPUT_HIGH, .handle = proxymap_request,
    .closed = server_frames_closed,
};

static void proxymap_accept(int fd, struct event_base *base)
{
    server_serve_frames(fd, base, &proxymap_service, NULL);
}

static void proxymap_post_init(struct event_base *base)
{
    px.allowed = proxy_allowed_open(cfg_str(P_proxy_read_maps));
    msg_debug("%zu table(s) allowed by proxy_read_maps", proxy_allowed_count(px.allowed));
}

static void proxymap_pre_exit(void)
{
    for (size_t i = 0; i < px.ntables; i++) {
        map_close(px.tables[i].map);
        free(px.tables[i].name);
    }
    free(px.tables);
    px.tables = NULL;
    px.ntables = 0;
    proxy_allowed_free(px.allowed);
    px.allowed = NULL;
}

SERVER_MAIN("proxymap", .mode = SERVER_EVENT, .accept_event = proxymap_accept,
            .post_init = proxymap_post_init, .pre_exit = proxymap_pre_exit)
