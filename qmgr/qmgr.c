/* qmgr.c: the queue manager owns the queue once cleanup has committed a
 * message. At start it resumes what a crash left in active/, removes stale
 * temporary files, then moves each committed message from incoming/ to
 * active/ when woken by cleanup or every queue_run_delay. Delivery
 * scheduling builds on this. */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "queue.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

#define TEMP_FILE_MAX_AGE 3600   /* a cleanup never writes one file this long */
#define WAKEUP_FRAME_LIMIT 1024
#define WAKEUP_READ_TIMEOUT 5

static struct {
    struct event_base *base;
    struct event *scan_ev, *timer_ev;
    const char *qdir;
    long active_count;
} qm;

static void qdir_path(struct strbuf *sb, const char *sub, const char *name)
{
    sb_reset(sb);
    sb_appendf(sb, "%s/%s/%s", qm.qdir, sub, name);
}

static void move_to(const char *from_sub, const char *to_sub, const char *id)
{
    struct strbuf from = STRBUF_INIT(0), to = STRBUF_INIT(0);
    qdir_path(&from, from_sub, id);
    qdir_path(&to, to_sub, id);
    if (rename(from.data, to.data) < 0)
        msg_warn("%s: cannot move %s to %s: %m", id, from.data, to.data);
    sb_free(&from);
    sb_free(&to);
}

/* Recovery: messages in active/ at a crash are resumed from incoming/. */
static void recover_active(void)
{
    struct strbuf dir = STRBUF_INIT(0);
    qdir_path(&dir, QDIR_ACTIVE, "");
    DIR *d = opendir(dir.data);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (queue_id_valid(de->d_name))
            move_to(QDIR_ACTIVE, QDIR_INCOMING, de->d_name);
    if (d)
        closedir(d);
    sb_free(&dir);
}

static void remove_stale_temp(const char *name)
{
    struct strbuf path = STRBUF_INIT(0);
    qdir_path(&path, QDIR_INCOMING, name);
    struct stat st;
    if (lstat(path.data, &st) == 0 && time(NULL) - st.st_mtime > TEMP_FILE_MAX_AGE) {
        if (unlink(path.data) == 0)
            msg_info("removed stale temporary file %s", path.data);
    }
    sb_free(&path);
}

static void activate(const char *id)
{
    struct strbuf path = STRBUF_INIT(0), err = STRBUF_INIT(1024);
    struct qmessage m;
    qdir_path(&path, QDIR_INCOMING, id);
    if (qmessage_load(path.data, &m, &err) < 0 || !m.complete) {
        if (errno != ENOENT || err.len == 0) {
            msg_warn("%s: %s; moving it to %s/", id,
                     err.len ? sb_str(&err) : "incomplete queue file", QDIR_CORRUPT);
            move_to(QDIR_INCOMING, QDIR_CORRUPT, id);
        }
    } else {
        move_to(QDIR_INCOMING, QDIR_ACTIVE, id);
        qm.active_count++;
        size_t pending = 0;
        for (size_t i = 0; i < m.nrcpts; i++)
            pending += !m.rcpts[i].done;
        msg_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)",
                 id, m.sender, m.content_size, pending);
    }
    qmessage_free(&m);
    sb_free(&path);
    sb_free(&err);
}

static void scan_incoming(evutil_socket_t fd, short what, void *arg)
{
    struct strbuf dir = STRBUF_INIT(0);
    qdir_path(&dir, QDIR_INCOMING, "");
    DIR *d = opendir(dir.data);
    if (!d) {
        msg_warn("cannot open %s: %m", dir.data);
        sb_free(&dir);
        return;
    }
    long limit = cfg_int(P_qmgr_message_active_limit);
    struct dirent *de;
    while ((de = readdir(d)) && qm.active_count < limit) {
        if (de->d_name[0] == '.' && queue_id_valid(de->d_name + 1))
            remove_stale_temp(de->d_name);
        else if (queue_id_valid(de->d_name))
            activate(de->d_name);
    }
    closedir(d);
    sb_free(&dir);
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

static void waker_read(evutil_socket_t fd, short what, void *arg)
{
    struct waker *w = arg;
    if (what & EV_TIMEOUT) {
        waker_done(w);
        return;
    }
    char buf[WAKEUP_FRAME_LIMIT];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0 && sb_append(&w->in, buf, (size_t)n) == 0) {
        ssize_t size = attr_frame_size(w->in.data, w->in.len, WAKEUP_FRAME_LIMIT);
        if (size == 0)
            return;                        /* wait for the rest */
        struct attr_reader r;
        const char *what_queue;
        if (size > 0 && attr_reader_init(&r, w->in.data, (size_t)size) == 0
            && attr_get_str(&r, "wakeup", &what_queue) == 0 && attr_reader_done(&r) == 0)
            event_active(qm.scan_ev, EV_TIMEOUT, 0);
        else
            msg_warn("malformed wake-up request ignored");
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    waker_done(w);
}

static void qmgr_accept(int fd, struct event_base *base)
{
    struct strbuf hello = STRBUF_INIT(256);
    struct attr_writer aw;
    attr_begin(&aw, &hello);
    attr_put_str(&aw, "protocol", "qmgr");
    attr_end(&aw);
    (void)!write(fd, hello.data, hello.len);   /* tiny: fits any socket buffer */
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
    event_active(qm.scan_ev, EV_TIMEOUT, 0);
}

static void qmgr_post_init(struct event_base *base)
{
    qm.base = base;
    qm.qdir = xstrdup(cfg_str(P_queue_directory));
    recover_active();
    qm.scan_ev = event_new(base, -1, 0, scan_incoming, NULL);
    qm.timer_ev = event_new(base, -1, EV_PERSIST, qmgr_timer, NULL);
    struct timeval tv = { cfg_time(P_queue_run_delay), 0 };
    if (tv.tv_sec < 1)
        tv.tv_sec = 1;
    event_add(qm.timer_ev, &tv);
    event_active(qm.scan_ev, EV_TIMEOUT, 0);
}

int main(int argc, char **argv)
{
    static const struct server_ops ops = {
        .mode = SERVER_EVENT,
        .post_init = qmgr_post_init,
        .accept_event = qmgr_accept,
        .long_running = true,
    };
    server_main(argc, argv, "qmgr", &ops);
}
