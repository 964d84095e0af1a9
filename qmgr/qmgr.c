/* qmgr.c: the queue manager owns the queue once cleanup has committed a
 * message. At start it resumes what a crash left in active/ and removes
 * stale temporary files; then it moves each committed message from
 * incoming/ to active/ whenever a wake-up arrives on public/qmgr and every
 * queue_run_delay, when a pass over deferred/ brings back the messages due
 * again (in slices, between other events);
 * qmgr_message.c schedules their delivery. */
#include <errno.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "qmgr.h"
#include "qmgr_message.h"
#include "qmgr_route.h"
#include "qmgr_sched.h"
#include "queue.h"
#include "resolve.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

#define WAKEUP_FRAME_LIMIT 1024
#define WAKEUP_READ_TIMEOUT 5       /* seconds a waker may take to send its frame */

/* While new mail arrives (incoming/ gave a message in the last second),
 * the slices of a deferred/ pass take at most this share of qmgr's time:
 * retrying 100,000 messages for a dead site is work that can wait
 * seconds, new mail is not. With no new mail they run back to back. */
#define NEW_MAIL_RECENT_USEC 1000000
#define DEFERRED_SHARE_PERCENT 5
#define DEFERRED_PAUSE_MAX_USEC 1000000

static struct {
    struct event *scan_ev;          /* an incoming/ scan is due */
    struct event *deferred_ev;      /* the next slice of a deferred/ pass is due */
    enum qmgr_pass deferred;        /* what that pass has left to do */
    struct event *timer_ev;         /* every queue_run_delay */
    time_t last_temp_sweep;
} qm;

/* Ask for a scan. Requests made before it runs, including those made while
 * a scan is under way, are served by one more scan. A deferred/ pass that
 * stopped at the active queue's limits goes on too. */
void qmgr_request_scan(void)
{
    event_active(qm.scan_ev, EV_TIMEOUT, 0);
    if (qm.deferred == QMGR_PASS_FULL)
        event_active(qm.deferred_ev, EV_TIMEOUT, 0);
}

/* Run ev's callback after the I/O that is ready by then. (An event_active
 * from inside a callback runs in the same turn of the loop, before any
 * I/O: a chain of them would hold off agents' replies and new mail.) */
static void run_after_io(struct event *ev)
{
    static const struct timeval now = { 0, 0 };
    event_add(ev, &now);
}

/* A pass over deferred/, begun now and continued in slices. */
static void start_deferred_pass(void)
{
    qmgr_deferred_pass();
    event_active(qm.deferred_ev, EV_TIMEOUT, 0);
}

static void qmgr_deferred_slice(evutil_socket_t fd, short what, void *arg)
{
    long long start = now_usec();
    qm.deferred = qmgr_scan_deferred();
    if (qm.deferred != QMGR_PASS_MORE)
        return;
    if (start - qmgr_queue.new_mail_usec >= NEW_MAIL_RECENT_USEC) {
        run_after_io(qm.deferred_ev);
        return;
    }
    long long pause = (now_usec() - start) * (100 - DEFERRED_SHARE_PERCENT) / DEFERRED_SHARE_PERCENT;
    if (pause > DEFERRED_PAUSE_MAX_USEC)
        pause = DEFERRED_PAUSE_MAX_USEC;
    struct timeval tv = { (time_t)(pause / 1000000), (suseconds_t)(pause % 1000000) };
    event_add(qm.deferred_ev, &tv);
}

static void qmgr_scan(evutil_socket_t fd, short what, void *arg)
{
    time_t now = time(NULL);
    if (now - qm.last_temp_sweep >= QMGR_TEMP_FILE_MAX_AGE / 4) {
        qmgr_remove_stale_temp();
        qm.last_temp_sweep = now;
    }
    if (qmgr_scan_incoming())
        run_after_io(qm.scan_ev);    /* more waiting: continue after other events */
}

/* ---- wake-up connections (doc/PROTOCOLS.md) ---- */

struct waker {
    int fd;
    struct event *ev;
    struct strbuf in;
};

static void waker_done(struct waker *w)
{
    event_free(w->ev);
    close(w->fd);
    sb_free(&w->in);
    free(w);
    server_client_done();
}

/* Only root and mail_owner (qmgr's own uid) may change messages. */
static bool peer_is_administrator(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return false;
    return cred.uid == 0 || cred.uid == geteuid();
}

/* {admin=delete|hold|requeue, id=ID}: answered with {status=INT}. */
static void admin_frame(int fd, struct attr_reader *r)
{
    const char *op, *id;
    int status;
    if (attr_get_str(r, "admin", &op) < 0 || attr_get_str(r, "id", &id) < 0
        || attr_reader_done(r) < 0) {
        msg_warn("malformed administration request ignored: %s", r->error ? r->error : "?");
        return;
    }
    if (!peer_is_administrator(fd)) {
        msg_warn("administration request from an unprivileged user refused");
        status = QMGR_ADMIN_DENIED;
    } else {
        status = qmgr_message_admin(op, id);
    }
    struct strbuf out = STRBUF_INIT(WAKEUP_FRAME_LIMIT);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_int(&w, "status", status);
    if (attr_end(&w) == 0)
        (void)!write(fd, out.data, out.len);
    sb_free(&out);
}

/* The one frame a client sends: {wakeup=incoming|deferred} from cleanup,
 * pickup or `tern flush`, or an administration request from `tern`. */
static void waker_frame(int fd, const struct strbuf *in, size_t size)
{
    struct attr_reader r;
    const char *queue;
    char name[ATTR_NAME_MAX + 1];
    if (attr_reader_init(&r, in->data, size) == 0 && size == in->len
        && attr_peek_name(&r, name, sizeof(name)) && strcmp(name, "admin") == 0) {
        admin_frame(fd, &r);
        return;
    }
    if (attr_reader_init(&r, in->data, size) < 0 || attr_get_str(&r, "wakeup", &queue) < 0
        || attr_reader_done(&r) < 0 || size != in->len) {
        msg_warn("malformed wake-up request ignored: %s", r.error ? r.error : "extra data");
    } else if (strcmp(queue, "incoming") == 0) {
        qmgr_request_scan();
    } else if (strcmp(queue, "deferred") == 0) {
        /* a flush: suspended destinations get another chance at once too */
        qmgr_message_resume_all();
        start_deferred_pass();
        qmgr_request_scan();
    } else {
        msg_warn("wake-up request for an unknown queue ignored");
    }
}

static void waker_read(evutil_socket_t fd, short what, void *arg)
{
    struct waker *w = arg;
    char buf[WAKEUP_FRAME_LIMIT];
    if (what & EV_TIMEOUT) {
        waker_done(w);
        return;
    }
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0 && sb_append(&w->in, buf, (size_t)n) == 0) {
        ssize_t size = attr_frame_size(w->in.data, w->in.len, WAKEUP_FRAME_LIMIT);
        if (size == 0)
            return;                  /* wait for the rest */
        if (size > 0)
            waker_frame(fd, &w->in, (size_t)size);
        else
            msg_warn("oversized wake-up request ignored");
    } else if (n > 0) {
        msg_warn("oversized wake-up request ignored");
    }
    waker_done(w);
}

static void qmgr_accept(int fd, struct event_base *base)
{
    struct strbuf hello = STRBUF_INIT(WAKEUP_FRAME_LIMIT);
    struct attr_writer aw;
    attr_begin(&aw, &hello);
    attr_put_str(&aw, "protocol", "qmgr");
    /* Wakers do not wait for this greeting (doc/PROTOCOLS.md) and may be
     * gone already: their frame is still in the socket, so read it anyway. */
    if (attr_end(&aw) == 0)
        (void)!write(fd, hello.data, hello.len);
    sb_free(&hello);
    struct waker *w = xcalloc(1, sizeof(*w));
    w->fd = fd;
    sb_init(&w->in, WAKEUP_FRAME_LIMIT);
    w->ev = event_new(base, fd, EV_READ | EV_PERSIST, waker_read, w);
    struct timeval tv = { WAKEUP_READ_TIMEOUT, 0 };
    event_add(w->ev, &tv);
}

static void qmgr_timer(evutil_socket_t fd, short what, void *arg)
{
    start_deferred_pass();
    qmgr_request_scan();
}

/* As root, before any chroot: the address resolver reads this host's
 * interface addresses, and transport_maps is opened while its path is
 * reachable. */
static void qmgr_pre_init(void)
{
    resolve_init();
    qmgr_resolve_init();
    qmgr_agents_init();
}

static void qmgr_post_init(struct event_base *base)
{
    qmgr_queue.active_limit = cfg_int(P_qmgr_message_active_limit);
    if (qmgr_queue.active_limit < 1)
        qmgr_queue.active_limit = 1;
    qmgr_message_init(base);
    qfile_use_spares(true);      /* finished files are kept in spare/ (QUEUE.md) */
    qmgr_recover_active();
    qmgr_remove_stale_temp();
    qm.last_temp_sweep = time(NULL);
    qm.scan_ev = event_new(base, -1, 0, qmgr_scan, NULL);
    qm.deferred_ev = event_new(base, -1, 0, qmgr_deferred_slice, NULL);
    qm.timer_ev = event_new(base, -1, EV_PERSIST, qmgr_timer, NULL);
    struct timeval tv = { cfg_time(P_queue_run_delay), 0 };
    if (tv.tv_sec < 1)
        tv.tv_sec = 1;
    event_add(qm.timer_ev, &tv);
    start_deferred_pass();
    qmgr_request_scan();
}

SERVER_MAIN("qmgr", .mode = SERVER_EVENT, .accept_event = qmgr_accept, .wakeup = qmgr_request_scan,
            .pre_init = qmgr_pre_init, .post_init = qmgr_post_init, .long_running = true)
