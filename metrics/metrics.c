/* metrics.c: the metrics collector and its Prometheus endpoint. One
 * program, two roles, chosen by the master.cf service type:
 *   unix  the collector (one long-running event-driven process on
 *         private/metrics): takes the daemons' update frames
 *         (lib/global/metrics_client.h), keeps every series and its history
 *         (metrics_store.h), counts the queue, saves its state to
 *         data_directory every metrics_history_save_time and at exit, and
 *         answers {request=current} and {request=series} (doc/PROTOCOLS.md).
 *   inet  the HTTP endpoint (metrics_http.c): GET /metrics, answered from
 *         the collector's current values in the Prometheus text format.
 * Both run as mail_owner; the collector never parses HTTP, the endpoint
 * never writes anything. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "attr.h"
#include "config.h"
#include "evframe.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "metrics_store.h"
#include "queue.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

#define COLLECTOR_REQUEST_LIMIT (256 * 1024)   /* a client's batch is far smaller */
#define COLLECTOR_OUTPUT_HIGH (4 * 1024 * 1024) /* a reader may leave one answer unread */
#define COLLECTOR_BATCH 64
#define NOTE_SECONDS 5                          /* history points and queue counts */
#define QUEUE_COUNT_MAX 10000000                /* entries counted per queue directory */
#define STATE_FILE "metrics.state"

static struct {
    struct metrics_store *store;
    int data_fd;                /* data_directory, opened before the privilege drop */
    time_t counted;             /* when the queue was last counted */
} col = { .data_fd = -1 };

/* ---- the queue by state ---- */

static long count_dir(const char *name)
{
    DIR *d = opendir(name);
    long n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while (n < QUEUE_COUNT_MAX && (e = readdir(d)))
        if (e->d_name[0] != '.' && (strcmp(name, QDIR_MAILDROP) == 0 || queue_id_valid(e->d_name)))
            n++;
    closedir(d);
    return n;
}

/* The queue's messages by state, as gauges; at most once a second. */
static void count_queue(time_t now)
{
    static const char *const states[] = { QDIR_MAILDROP, QDIR_INCOMING, QDIR_ACTIVE,
                                          QDIR_DEFERRED, QDIR_HOLD, QDIR_CORRUPT };
    if (now == col.counted)
        return;
    col.counted = now;
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        struct metric_sample s;
        metric_sample_init(&s, M_QUEUE_MESSAGES, METRICS_LABELS(states[i]));
        s.value = count_dir(states[i]);
        metrics_store_apply(col.store, &s);
    }
}

static void count_dropped(long long n)
{
    struct metric_sample s;
    metric_sample_init(&s, M_METRICS_DROPPED, NULL);
    s.value = n;
    metrics_store_apply(col.store, &s);
}

/* ---- requests ---- */

/* The samples of an update frame in turn, to apply them (store) or only
 * to check the frame (NULL): -1 for a malformed frame, else the number of
 * samples the store refused. */
static long long walk_update(struct attr_reader *r, struct metrics_store *store, const char **why)
{
    struct metric_sample s;
    int rc, taken = 0;
    long long refused = 0;
    while (taken < METRICS_SAMPLES_PER_FRAME && (rc = metrics_get_sample(r, &s, why)) == 1) {
        taken++;
        /* what the collector measures itself is not taken from anyone */
        if (store && (s.id == M_QUEUE_MESSAGES || s.id == M_METRICS_DROPPED
                      || !metrics_store_apply(store, &s)))
            refused++;
    }
    return rc < 0 || attr_reader_done(r) < 0 ? -1 : refused;
}

/* {request=update, samples...}: taken whole, or (malformed) not at all;
 * false then. */
static bool take_update(struct attr_reader *r)
{
    struct attr_reader check = *r;
    const char *why = NULL;
    if (walk_update(&check, NULL, &why) < 0) {
        msg_warn("malformed update from a client: %s; closing its connection",
                 why ? why : check.error ? check.error : "unexpected data");
        count_dropped(1);
        return false;
    }
    long long refused = walk_update(r, col.store, &why);
    if (refused > 0)
        count_dropped(refused);
    return true;
}

/* {request=current}: {status=0, every sample}. */
static void answer_current(struct strbuf *out)
{
    count_queue(time(NULL));
    struct attr_writer w;
    attr_begin(&w, out);
    attr_put_int(&w, "status", 0);
    for (size_t i = 0; i < metrics_store_count(col.store); i++)
        metrics_put_sample(&w, metrics_store_sample(col.store, i));
    if (attr_end(&w) < 0)
        msg_warn("the current values of %zu series do not fit in one answer of %d bytes; "
                 "lower metrics_series_limit", metrics_store_count(col.store), COLLECTOR_OUTPUT_HIGH);
}

/* {request=series, metric, labels, value (ignored), step, from, to}:
 * {status=0, first, step, points} or {status=1, reason}. */
static void answer_series(struct attr_reader *r, struct strbuf *out)
{
    struct metric_sample s;
    const char *why = "malformed request";
    long long step = 0, from = 0, to = 0;
    time_t first = 0;
    struct strbuf points = STRBUF_INIT(8 * 1024 * 1024);
    bool ok = metrics_get_sample(r, &s, &why) == 1
        && attr_get_int(r, "step", 60, 3600, &step) == 0
        && attr_get_int(r, "from", 0, 1LL << 40, &from) == 0
        && attr_get_int(r, "to", 0, 1LL << 40, &to) == 0 && attr_reader_done(r) == 0;
    metrics_store_note(col.store, time(NULL));
    if (ok && metrics_store_history(col.store, &s, (long)step, from, to, &first, &points) < 0) {
        why = "no history of that series at that step";
        ok = false;
    }
    struct attr_writer w;
    attr_begin(&w, out);
    attr_put_int(&w, "status", ok ? 0 : 1);
    if (ok) {
        attr_put_int(&w, "first", first);
        attr_put_int(&w, "step", step);
        attr_put_str(&w, "points", sb_str(&points));
    } else {
        attr_put_str(&w, "reason", why);
    }
    attr_end(&w);
    sb_free(&points);
}

static bool collector_request(void *ctx, struct bufferevent *bev, const char *frame, size_t len)
{
    struct attr_reader r;
    const char *req;
    if (attr_reader_init(&r, frame, len) < 0 || attr_get_str(&r, "request", &req) < 0) {
        msg_warn("malformed request from a client; closing its connection");
        return false;
    }
    if (strcmp(req, "update") == 0)
        return take_update(&r);
    struct strbuf out = STRBUF_INIT(COLLECTOR_OUTPUT_HIGH);
    bool known = true;
    if (strcmp(req, "current") == 0 && attr_reader_done(&r) == 0)
        answer_current(&out);
    else if (strcmp(req, "series") == 0)
        answer_series(&r, &out);
    else
        known = false;
    bool ok = known && out.len > 0 && bufferevent_write(bev, out.data, out.len) == 0;
    if (!known)
        msg_warn("unknown request \"%.64s\" from a client; closing its connection", req);
    sb_free(&out);
    return ok;
}

static const struct evframe_service collector_service = {
    .protocol = METRICS_PROTOCOL, .limit = COLLECTOR_REQUEST_LIMIT, .batch = COLLECTOR_BATCH,
    .output_high = COLLECTOR_OUTPUT_HIGH, .handle = collector_request, .closed = server_frames_closed,
};

static void collector_accept(int fd, struct event_base *base)
{
    server_serve_frames(fd, base, &collector_service, NULL);
}

/* ---- life cycle ---- */

static void save_state(void)
{
    const char *why = NULL;
    if (col.data_fd < 0 || !col.store)
        return;
    metrics_store_note(col.store, time(NULL));
    if (metrics_store_save(col.store, col.data_fd, STATE_FILE, &why) < 0)
        msg_warn("%s/%s: %s: %m; the history since the last save would not survive a restart",
                 cfg_str(P_data_directory), STATE_FILE, why);
}

static void on_note(evutil_socket_t fd, short what, void *arg)
{
    time_t now = time(NULL);
    count_queue(now);
    metrics_store_note(col.store, now);
}

static void on_save(evutil_socket_t fd, short what, void *arg)
{
    save_state();
}

static void periodic(struct event_base *base, event_callback_fn fn, long seconds)
{
    struct event *ev = event_new(base, -1, EV_PERSIST, fn, NULL);
    struct timeval tv = { seconds, 0 };
    if (!ev || event_add(ev, &tv) < 0)
        msg_fatal("cannot set up a timer: out of memory");
}

static void collector_pre_init(void)
{
    /* data_directory belongs to mail_owner: its descriptor is taken once,
     * without following a link, and the state file is reached through it */
    col.data_fd = open(cfg_str(P_data_directory), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (col.data_fd < 0)
        msg_warn("cannot open data_directory %s: %m; the metrics history is kept in memory only",
                 cfg_str(P_data_directory));
}

static size_t positive(long v)
{
    return v < 1 ? 1 : (size_t)v;
}

static void collector_post_init(struct event_base *base)
{
    struct metrics_store_limits lim = {
        .series = positive(cfg_int(P_metrics_series_limit)),
        .history = (size_t)(cfg_int(P_metrics_history_series_limit) < 0 ? 0
                                                                        : cfg_int(P_metrics_history_series_limit)),
        .domains = positive(cfg_int(P_metrics_domain_limit)),
    };
    col.store = metrics_store_create(&lim);
    const char *why = NULL;
    if (col.data_fd >= 0 && metrics_store_load(col.store, col.data_fd, STATE_FILE, &why) < 0)
        msg_warn("%s/%s: %s; the history before it is lost", cfg_str(P_data_directory), STATE_FILE, why);
    count_queue(time(NULL));
    metrics_store_note(col.store, time(NULL));
    periodic(base, on_note, NOTE_SECONDS);
    periodic(base, on_save, (long)positive(cfg_time(P_metrics_history_save_time)));
}

int main(int argc, char **argv)
{
    static const struct server_ops collector = {
        .mode = SERVER_EVENT, .accept_event = collector_accept,
        .pre_init = collector_pre_init, .post_init = collector_post_init, .pre_exit = save_state,
        .long_running = true, .metrics_collector = true,
    };
    static const struct server_ops endpoint = {
        .mode = SERVER_SINGLE, .serve = metrics_http_serve, .metrics_collector = true,
    };
    /* the role follows the service type master gives (-t inet: the endpoint) */
    bool inet = false;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "-t") == 0)
            inet = strcmp(argv[i + 1], "inet") == 0;
    server_main(argc, argv, "metrics", inet ? &endpoint : &collector);
}
