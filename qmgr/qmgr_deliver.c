/* qmgr_deliver.c: the delivery scheduler. Each message in active/ is loaded,
 * its pending recipients routed (qmgr_resolve.c) and grouped into jobs per
 * destination (transport + next hop), at most
 * default_destination_recipient_limit recipients per job. Jobs are handed
 * to the transport's delivery agent over private/TRANSPORT (doc/PROTOCOLS.md)
 * with at most default_destination_concurrency_limit at a time per
 * destination. When every job of a message is over, the message is removed
 * (all final), bounced (notices for 5xx recipients) and/or deferred (moved
 * to deferred/ with its next retry time as the file's mtime). */
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "cleanup_client.h"
#include "config.h"
#include "domains.h"
#include "log.h"
#include "qmgr.h"
#include "qmgr_deliver.h"
#include "qmgr_dsn.h"
#include "qmgr_route.h"
#include "queue.h"
#include "strbuf.h"
#include "util.h"

#define AGENT_FRAME_LIMIT 65536
#define AGENT_TIMEOUT 3600          /* a delivery agent has its own, shorter, timeouts */

struct outcome {                    /* a recipient's result in this round */
    int status;                     /* 0 none yet, 2, 4, 5 */
    char *dsn, *reason, *relay;
};

struct qmsg {
    char id[QUEUE_ID_SIZE];
    struct qmessage m;
    struct outcome *out;            /* per recipient of m */
    int jobs_left;
};

struct dest {
    char *transport, *nexthop;
    int busy;                       /* jobs running */
    struct job *head, *tail;        /* waiting jobs */
    struct dest *next;
};

struct job {
    struct qmsg *msg;
    struct dest *dest;
    size_t *idx;                    /* recipients of msg->m */
    size_t n, answered;
    struct bufferevent *bev;
    bool hello_seen;
    struct job *next;
};

static struct {
    struct event_base *base;
    struct dest *dests;
    long in_memory;
} qd;

long qmgr_deliver_in_memory(void)
{
    return qd.in_memory;
}

void qmgr_deliver_init(struct event_base *base)
{
    qd.base = base;
    domains_init();
}

static struct dest *dest_get(const char *transport, const char *nexthop)
{
    for (struct dest *d = qd.dests; d; d = d->next)
        if (strcmp(d->transport, transport) == 0 && strcmp(d->nexthop, nexthop) == 0)
            return d;
    struct dest *d = xcalloc(1, sizeof(*d));
    d->transport = xstrdup(transport);
    d->nexthop = xstrdup(nexthop);
    d->next = qd.dests;
    qd.dests = d;
    return d;
}

static void set_outcome(struct qmsg *q, size_t i, int status, const char *dsn, const char *reason,
                        const char *relay)
{
    struct outcome *o = &q->out[i];
    free(o->dsn);
    free(o->reason);
    free(o->relay);
    o->status = status;
    o->dsn = xstrdup(dsn);
    o->reason = xstrdup(reason);
    o->relay = xstrdup(relay ? relay : "");
}

static void finish_message(struct qmsg *q);
static void dispatch(struct dest *d);

/* ---- talking to a delivery agent ---- */

static void job_free(struct job *j)
{
    if (j->bev)
        bufferevent_free(j->bev);
    free(j->idx);
    free(j);
}

static void job_end(struct job *j, const char *why)
{
    /* Recipients the agent never answered for are tried again later. */
    for (size_t k = j->answered; k < j->n; k++)
        set_outcome(j->msg, j->idx[k], 4, "4.3.0", why, NULL);
    struct dest *d = j->dest;
    struct qmsg *q = j->msg;
    d->busy--;
    job_free(j);
    if (--q->jobs_left == 0)
        finish_message(q);
    dispatch(d);
}

static void send_request(struct job *j)
{
    struct strbuf out = STRBUF_INIT(0);
    struct attr_writer w;
    char path[64];
    snprintf(path, sizeof(path), "%s/%s", QDIR_ACTIVE, j->msg->id);
    attr_begin(&w, &out);
    attr_put_str(&w, "queue_id", j->msg->id);
    attr_put_str(&w, "queue_path", path);
    attr_put_str(&w, "transport", j->dest->transport);
    attr_put_str(&w, "nexthop", j->dest->nexthop);
    attr_put_str(&w, "sender", j->msg->m.sender);
    attr_put_int(&w, "flags", 0);
    attr_put_int(&w, "nrcpt", (long long)j->n);
    for (size_t k = 0; k < j->n; k++) {
        const struct qrcpt *r = &j->msg->m.rcpts[j->idx[k]];
        attr_put_str(&w, "rcpt", r->address);
        attr_put_str(&w, "orcpt", r->orcpt);
        attr_put_str(&w, "notify", r->notify);
        attr_put_int(&w, "offset", (long long)r->offset);
    }
    if (attr_end(&w) == 0)
        bufferevent_write(j->bev, out.data, out.len);
    sb_free(&out);
}

/* One frame from the agent: the greeting, a recipient result, or done. */
static int job_frame(struct job *j, const unsigned char *frame, size_t len)
{
    struct attr_reader r;
    if (attr_reader_init(&r, frame, len) < 0)
        return -1;
    const char *s;
    if (!j->hello_seen) {
        if (attr_get_str(&r, "protocol", &s) < 0 || strcmp(s, "delivery") != 0
            || attr_reader_done(&r) < 0)
            return -1;
        j->hello_seen = true;
        send_request(j);
        return 0;
    }
    char name[ATTR_NAME_MAX + 1];
    if (attr_peek_name(&r, name, sizeof(name)) && strcmp(name, "done") == 0)
        return 1;
    long long index, status, dc, dt;
    const char *dsn, *relay, *reason;
    if (attr_get_int(&r, "index", 0, (long long)j->n - 1, &index) < 0
        || attr_get_int(&r, "status", 2, 5, &status) < 0 || status == 3
        || attr_get_str(&r, "dsn", &dsn) < 0 || attr_get_str(&r, "relay", &relay) < 0
        || attr_get_str(&r, "reason", &reason) < 0
        || attr_get_int(&r, "delay_connect", 0, 1LL << 40, &dc) < 0
        || attr_get_int(&r, "delay_transfer", 0, 1LL << 40, &dt) < 0
        || attr_reader_done(&r) < 0 || (size_t)index != j->answered)
        return -1;
    set_outcome(j->msg, j->idx[index], (int)status, dsn, reason, relay);
    j->answered++;
    return 0;
}

static void job_read(struct bufferevent *bev, void *arg)
{
    struct job *j = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        unsigned char *data = evbuffer_pullup(in, avail < 4 ? -1 : 4);
        if (!data)
            return;
        ssize_t size = attr_frame_size(data, avail, AGENT_FRAME_LIMIT);
        if (size == 0)
            return;
        int rc = size < 0 ? -1 : job_frame(j, evbuffer_pullup(in, size), (size_t)size);
        if (size > 0)
            evbuffer_drain(in, (size_t)size);
        if (rc < 0) {
            msg_warn("%s: malformed reply from the %s delivery agent", j->msg->id, j->dest->transport);
            job_end(j, "delivery agent protocol error");
            return;
        }
        if (rc > 0) {
            job_end(j, "delivery agent gave no result");
            return;
        }
    }
}

static void job_event(struct bufferevent *bev, short what, void *arg)
{
    struct job *j = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (j->answered < j->n)
            msg_warn("%s: lost connection with the %s delivery agent", j->msg->id, j->dest->transport);
        job_end(j, "delivery agent died or timed out");
    }
}

static void job_start(struct job *j)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", QDIR_PRIVATE, j->dest->transport);
    int fd = unix_connect(path, 10);
    if (fd < 0) {
        msg_warn("%s: cannot connect to the %s delivery agent at %s: %m", j->msg->id,
                 j->dest->transport, path);
        j->dest->busy++;
        job_end(j, "mail transport unavailable");
        return;
    }
    set_nonblock(fd, true);
    j->bev = bufferevent_socket_new(qd.base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(j->bev, job_read, NULL, job_event, j);
    struct timeval tv = { AGENT_TIMEOUT, 0 };
    bufferevent_set_timeouts(j->bev, &tv, &tv);
    bufferevent_enable(j->bev, EV_READ | EV_WRITE);
    j->dest->busy++;
}

static void dispatch(struct dest *d)
{
    long limit = cfg_int(P_default_destination_concurrency_limit);
    while (d->head && (limit <= 0 || d->busy < limit)) {
        struct job *j = d->head;
        d->head = j->next;
        if (!d->head)
            d->tail = NULL;
        job_start(j);
    }
}

/* ---- messages ---- */

static void qmsg_free(struct qmsg *q)
{
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        free(q->out[i].dsn);
        free(q->out[i].reason);
        free(q->out[i].relay);
    }
    free(q->out);
    qmessage_free(&q->m);
    free(q);
    qd.in_memory--;
    if (qmgr_queue.active_count > 0)
        qmgr_queue.active_count--;
}

static void enqueue_job(struct qmsg *q, struct dest *d, size_t *idx, size_t n)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->msg = q;
    j->dest = d;
    j->idx = xmalloc(n * sizeof(size_t));
    memcpy(j->idx, idx, n * sizeof(size_t));
    j->n = n;
    q->jobs_left++;
    if (d->tail)
        d->tail->next = j;
    else
        d->head = j;
    d->tail = j;
}

void qmgr_deliver_add(const char *id)
{
    struct strbuf path = STRBUF_INIT(0), err = STRBUF_INIT(1024);
    sb_appendf(&path, "%s/%s", QDIR_ACTIVE, id);
    struct qmsg *q = xcalloc(1, sizeof(*q));
    str_copy(q->id, sizeof(q->id), id);
    qd.in_memory++;
    if (qmessage_load(path.data, &q->m, &err) < 0 || !q->m.complete) {
        msg_warn("%s: cannot read %s: %s", id, path.data, sb_str(&err));
        qmsg_free(q);
        goto out;
    }
    q->out = xcalloc(q->m.nrcpts ? q->m.nrcpts : 1, sizeof(*q->out));
    long per_job = cfg_int(P_default_destination_recipient_limit);
    if (per_job < 1)
        per_job = 1;
    size_t *idx = xmalloc((q->m.nrcpts + 1) * sizeof(size_t));
    bool *taken = xcalloc(q->m.nrcpts + 1, sizeof(bool));
    struct dest **touched = xcalloc(q->m.nrcpts + 1, sizeof(*touched));
    size_t ntouched = 0;
    /* Group recipients with the same route; unroutable ones bounce. */
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        if (q->m.rcpts[i].done || taken[i])
            continue;
        struct qmgr_route route;
        if (qmgr_resolve(q->m.rcpts[i].address, &route) < 0) {
            set_outcome(q, i, 5, "5.1.3", "bad address syntax", NULL);
            continue;
        }
        struct dest *d = dest_get(route.transport, route.nexthop);
        size_t n = 0;
        for (size_t k = i; k < q->m.nrcpts; k++) {
            if (q->m.rcpts[k].done || taken[k])
                continue;
            struct qmgr_route other;
            bool same = k == i;
            if (!same && qmgr_resolve(q->m.rcpts[k].address, &other) == 0) {
                same = strcmp(other.transport, route.transport) == 0
                       && strcmp(other.nexthop, route.nexthop) == 0;
                qmgr_route_free(&other);
            }
            if (!same)
                continue;
            taken[k] = true;
            idx[n++] = k;
            if ((long)n == per_job) {
                enqueue_job(q, d, idx, n);
                n = 0;
            }
        }
        if (n)
            enqueue_job(q, d, idx, n);
        touched[ntouched++] = d;
        qmgr_route_free(&route);
    }
    free(idx);
    free(taken);
    if (q->jobs_left == 0)
        finish_message(q);      /* nothing routable: bounces only */
    else
        for (size_t i = 0; i < ntouched; i++)
            dispatch(touched[i]);
    free(touched);
out:
    sb_free(&path);
    sb_free(&err);
}

/* ---- finishing: bounce, defer, remove ---- */

static void append_log(const char *dir, const char *id, const struct qrcpt *r,
                       const struct outcome *o)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, id);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        msg_warn("%s: cannot write %s: %m", id, path);
        return;
    }
    struct strbuf line = STRBUF_INIT(0);
    sb_appendf(&line, "time=%lld recipient=%s status=%s relay=%s reason=%s\n",
               now_usec() / 1000000, r->address, o->dsn, o->relay, o->reason);
    for (size_t i = 0; i + 1 < line.len; i++)     /* one line per recipient, always */
        if (line.data[i] == '\n' || line.data[i] == '\r')
            line.data[i] = ' ';
    if (write_all(fd, line.data, line.len) < 0)
        msg_warn("%s: cannot write %s: %m", id, path);
    close(fd);
    sb_free(&line);
}

static bool is_double_bounce_sender(const char *sender)
{
    const char *dbs = cfg_str(P_double_bounce_sender);
    size_t n = strlen(dbs);
    return strncasecmp(sender, dbs, n) == 0 && (sender[n] == '@' || sender[n] == 0);
}

static void send_notice(struct qmsg *q, enum dsn_action action, struct dsn_rcpt *rcpts, size_t n)
{
    const char *sender = q->m.sender;
    if (is_double_bounce_sender(sender)) {
        msg_info("%s: undeliverable postmaster notification discarded", q->id);
        return;
    }
    bool is_bounce_of_bounce = *sender == 0;
    const char *to = is_bounce_of_bounce ? cfg_str(P_bounce_notice_recipient) : sender;
    char from[512] = "";
    if (is_bounce_of_bounce)
        snprintf(from, sizeof(from), "%s@%s", cfg_str(P_double_bounce_sender), cfg_str(P_myorigin));
    const char *ret = qmessage_attr(&q->m, "ret");
    struct dsn_report rep = {
        .action = action, .queue_id = q->id, .sender = sender, .arrival_usec = q->m.arrival_usec,
        .envid = qmessage_attr(&q->m, "envid"),
        .headers_only = (ret && strcmp(ret, "HDRS") == 0)
                        || (long long)q->m.content_size > cfg_size(P_bounce_size_limit),
        .rcpts = rcpts, .nrcpts = n,
    };
    struct strbuf text = STRBUF_INIT(0), err = STRBUF_INIT(1024);
    char path[128], newid[QUEUE_ID_SIZE];
    snprintf(path, sizeof(path), "%s/%s", QDIR_ACTIVE, q->id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || dsn_compose(&text, &rep, fd, q->m.content_offset) < 0) {
        msg_warn("%s: cannot read the message for its notice: %m", q->id);
    } else {
        const char *rcpt_list[1] = { to };
        struct cleanup_submission sub = {
            .sender = from, .rcpts = rcpt_list, .nrcpt = 1,
            .content = text.data, .content_len = text.len,
        };
        if (cleanup_submit(".", cfg_str(P_cleanup_service_name), &sub, newid, &err) == 0)
            msg_info("%s: sender %s notification: %s", q->id,
                     action == DSN_FAILED ? "non-delivery" : action == DSN_DELAYED ? "delay"
                                                           : "delivery status", newid);
        else
            msg_warn("%s: cannot send the %s notice: %s", q->id,
                     action == DSN_FAILED ? "non-delivery" : "status", sb_str(&err));
    }
    if (fd >= 0)
        close(fd);
    sb_free(&text);
    sb_free(&err);
}

static bool expired(const struct qmsg *q)
{
    long life = cfg_time(*q->m.sender ? P_maximal_queue_lifetime : P_bounce_queue_lifetime);
    return now_usec() - q->m.arrival_usec > (long long)life * 1000000;
}

static void defer_message(struct qmsg *q)
{
    char from[300], to[300];
    snprintf(from, sizeof(from), "%s/%s", QDIR_ACTIVE, q->id);
    snprintf(to, sizeof(to), "%s/%s", QDIR_DEFERRED, q->id);
    /* Back-off grows with the message's age, between the two limits; the
     * file's mtime is when the next attempt is due. */
    long age = (long)((now_usec() - q->m.arrival_usec) / 1000000);
    long lo = cfg_time(P_minimal_backoff_time), hi = cfg_time(P_maximal_backoff_time);
    long delay = age < lo ? lo : age > hi ? hi : age;
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[1] = tv[0];
    tv[1].tv_sec += delay;
    if (utimes(from, tv) < 0 || rename(from, to) < 0)
        msg_warn("%s: cannot move to %s/: %m", q->id, QDIR_DEFERRED);
}

static void finish_message(struct qmsg *q)
{
    size_t nb = 0, nd = 0;
    struct dsn_rcpt *bounces = xcalloc(q->m.nrcpts + 1, sizeof(*bounces));
    bool expire = expired(q);
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        struct outcome *o = &q->out[i];
        const struct qrcpt *r = &q->m.rcpts[i];
        if (o->status == 4 && expire) {
            /* Out of time: the last temporary failure becomes final. */
            char why[1024];
            snprintf(why, sizeof(why), "message expired after queue lifetime: %s", o->reason);
            set_outcome(q, i, 5, o->dsn, why, o->relay);
            char path[128];
            snprintf(path, sizeof(path), "%s/%s", QDIR_ACTIVE, q->id);
            int fd = open(path, O_RDWR | O_CLOEXEC);
            if (fd >= 0) {
                qfile_mark_done(fd, r->offset);
                close(fd);
            }
            msg_info("%s: to=<%s>, relay=none, dsn=%s, status=expired, returned to sender",
                     q->id, r->address, o->dsn);
        }
        if (o->status == 4) {
            nd++;
            append_log(QDIR_DEFER_LOG, q->id, r, o);
        } else if (o->status == 5) {
            append_log(QDIR_BOUNCE_LOG, q->id, r, o);
            bounces[nb++] = (struct dsn_rcpt){ r->address, r->orcpt, o->dsn, o->reason,
                                              o->relay };
        }
    }
    if (nb)
        send_notice(q, DSN_FAILED, bounces, nb);
    free(bounces);
    if (nd) {
        defer_message(q);
    } else {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", QDIR_ACTIVE, q->id);
        if (unlink(path) == 0)
            msg_info("%s: removed", q->id);
        snprintf(path, sizeof(path), "%s/%s", QDIR_DEFER_LOG, q->id);
        unlink(path);
        snprintf(path, sizeof(path), "%s/%s", QDIR_BOUNCE_LOG, q->id);
        unlink(path);
    }
    qmsg_free(q);
}

void qmgr_deliver_scan_deferred(void)
{
    DIR *d = opendir(QDIR_DEFERRED);
    if (!d)
        return;
    time_t now = time(NULL);
    struct dirent *de;
    char from[300], to[300];
    while (qmgr_queue.active_count < qmgr_queue.active_limit && (de = readdir(d))) {
        if (!queue_id_valid(de->d_name))
            continue;
        snprintf(from, sizeof(from), "%s/%s", QDIR_DEFERRED, de->d_name);
        struct stat st;
        if (stat(from, &st) < 0 || st.st_mtime > now)
            continue;
        snprintf(to, sizeof(to), "%s/%s", QDIR_ACTIVE, de->d_name);
        if (rename(from, to) < 0) {
            msg_warn("%s: cannot move to %s/: %m", de->d_name, QDIR_ACTIVE);
            continue;
        }
        qmgr_queue.active_count++;
        qmgr_deliver_add(de->d_name);
    }
    closedir(d);
}
