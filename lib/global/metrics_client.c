/* metrics_client.c: the daemons' side of the metrics collector (see
 * metrics_client.h): a small hash table of series changed since the last
 * send, one update frame per METRICS_FLUSH_MS, written without waiting. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "attr.h"
#include "log.h"
#include "metrics_client.h"
#include "strbuf.h"
#include "util.h"

#define TABLE_SLOTS (2 * METRICS_CLIENT_SERIES)    /* open addressing, half full at most */
#define OUTPUT_LIMIT (256 * 1024)                  /* unsent bytes kept for a slow collector */

static struct {
    bool started;
    char path[108];
    struct event *timer;            /* EVENT daemons: armed while reports are held */
    struct metric_sample slots[TABLE_SLOTS];
    bool used[TABLE_SLOTS];
    size_t held;
    long long first_held_usec;      /* when the oldest held report came, or an unfinished send was left */
    int fd;                         /* connection to the collector, -1: none */
    time_t retry_after;             /* no new connection before this time */
    struct strbuf out;              /* frames not yet taken by the socket */
    unsigned long frames_sent;
    time_t warned;
} mc = { .fd = -1 };

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    metrics_flush();
}

void metrics_client_start(struct event_base *base, const char *path)
{
    str_copy(mc.path, sizeof(mc.path), path ? path : METRICS_SOCKET);
    sb_init(&mc.out, OUTPUT_LIMIT);
    if (base && !(mc.timer = evtimer_new(base, on_timer, NULL)))
        msg_fatal("cannot set up the metrics timer: out of memory");
    mc.started = true;
}

/* Unsent bytes are left: try again one period from now. */
static void arm_retry(void)
{
    mc.first_held_usec = now_usec();
    if (mc.timer) {
        struct timeval tv = { METRICS_FLUSH_MS / 1000, (METRICS_FLUSH_MS % 1000) * 1000 };
        evtimer_add(mc.timer, &tv);
    }
}

/* The slot of s's series, taken when new; NULL when the table is full and
 * could not be emptied. */
static struct metric_sample *series_slot(const struct metric_sample *s)
{
    if (mc.held >= METRICS_CLIENT_SERIES)
        metrics_flush();
    if (mc.held >= METRICS_CLIENT_SERIES)
        return NULL;
    for (unsigned long i = metric_sample_hash(s) % TABLE_SLOTS;; i = (i + 1) % TABLE_SLOTS) {
        if (!mc.used[i]) {
            mc.used[i] = true;
            mc.slots[i] = *s;
            if (mc.held++ == 0 && mc.out.len == 0)
                arm_retry();
            return &mc.slots[i];
        }
        if (metric_sample_same_series(&mc.slots[i], s))
            return &mc.slots[i];
    }
}

/* The held sample of id and labels (zero when new), or NULL. */
static struct metric_sample *held(enum metric_id id, const char *const *labels)
{
    if (!mc.started)
        return NULL;
    struct metric_sample s;
    metric_sample_init(&s, id, labels);
    return series_slot(&s);
}

void metrics_add(enum metric_id id, long long delta, const char *const *labels)
{
    struct metric_sample *s = delta > 0 ? held(id, labels) : NULL;
    if (s)
        s->value += delta;
}

void metrics_set(enum metric_id id, long long value, const char *const *labels)
{
    struct metric_sample *s = held(id, labels);
    if (s)
        s->value = value;
}

void metrics_observe(enum metric_id id, long long value, const char *const *labels)
{
    struct metric_sample *s = held(id, labels);
    if (s)
        metric_sample_observe(s, value);
}

long long metrics_flush_deadline(void)
{
    return mc.held || mc.out.len ? mc.first_held_usec + METRICS_FLUSH_MS * 1000LL : 0;
}

void metrics_flush_due(void)
{
    long long deadline = metrics_flush_deadline();
    if (deadline && now_usec() >= deadline)
        metrics_flush();
}

static void disconnect(void)
{
    if (mc.fd >= 0)
        close(mc.fd);
    mc.fd = -1;
    sb_reset(&mc.out);      /* a partly sent frame cannot be finished on a new connection */
    mc.retry_after = time(NULL) + METRICS_RETRY_SECONDS;
}

/* Connect without waiting; false (and no new try for a while) on failure. */
static bool connect_collector(void)
{
    if (mc.fd >= 0)
        return true;
    if (time(NULL) < mc.retry_after)
        return false;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    str_copy(sun.sun_path, sizeof(sun.sun_path), mc.path);
    mc.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (mc.fd >= 0 && connect(mc.fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
        return true;
    time_t now = time(NULL);
    if (now - mc.warned >= 3600) {     /* the collector may be off on purpose: rarely said */
        msg_debug("metrics: cannot reach %s: %m; reports are dropped", mc.path);
        mc.warned = now;
    }
    disconnect();
    return false;
}

/* Move the held reports into one update frame at the end of mc.out; false
 * when they do not fit beside what is still unsent (they are dropped). */
static bool take_held(void)
{
    size_t mark = mc.out.len;
    struct attr_writer w;
    attr_begin(&w, &mc.out);
    attr_put_str(&w, "request", "update");
    for (size_t i = 0; i < TABLE_SLOTS; i++)
        if (mc.used[i])
            metrics_put_sample(&w, &mc.slots[i]);
    bool ok = attr_end(&w) == 0;
    if (!ok)
        sb_truncate(&mc.out, mark);
    memset(mc.used, 0, sizeof(mc.used));
    mc.held = 0;
    if (mc.timer)
        evtimer_del(mc.timer);
    return ok;
}

/* metrics_flush without keeping errno (the sends set it). */
static void flush_now(void)
{
    if (!mc.started || (mc.held == 0 && mc.out.len == 0))
        return;
    if (!connect_collector()) {
        memset(mc.used, 0, sizeof(mc.used));
        mc.held = 0;
        if (mc.timer)
            evtimer_del(mc.timer);
        return;
    }
    if (mc.held && take_held())
        mc.frames_sent++;
    char sink[512];     /* the greeting and nothing else comes back: read and forget it */
    while (recv(mc.fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
        continue;
    while (mc.out.len > 0) {
        ssize_t n = send(mc.fd, mc.out.data, mc.out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            sb_consume(&mc.out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            arm_retry();    /* the rest goes with the next flush */
            return;
        }
        disconnect();       /* the collector went away: its next run starts afresh */
        return;
    }
}

void metrics_flush(void)
{
    int saved = errno;      /* a report never changes what its caller sees */
    flush_now();
    errno = saved;
}

unsigned long metrics_client_frames_sent(void) { return mc.frames_sent; }
size_t metrics_client_held(void) { return mc.held; }
