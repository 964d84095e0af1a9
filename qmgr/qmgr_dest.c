/* qmgr_dest.c: destinations and the jobs sent to their delivery agents.
 * A destination is a (transport, next hop) pair. Its jobs run at most
 * `window` at a time: the window starts at initial_destination_concurrency
 * and grows by one with each delivery that reached the site, up to the
 * transport's destination concurrency limit; a site failure (the agent
 * reports that no server of the next hop could be reached, or none would
 * talk) shrinks it by one. After destination_concurrency_failed_cohort_limit
 * failures in a row the destination is suspended for minimal_backoff_time:
 * its waiting and new jobs are deferred at once, without a connection, as
 * Postfix does with a "dead" destination. Each job is one connection to
 * private/TRANSPORT speaking the delivery protocol (doc/PROTOCOLS.md), and
 * no more run at once than the transport has agents (qmgr_agents.c). */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attr.h"
#include "config.h"
#include "deliver_request.h"
#include "log.h"
#include "qmgr_sched.h"
#include "queue.h"
#include "strbuf.h"
#include "util.h"

#define AGENT_FRAME_LIMIT 65536
#define AGENT_TIMEOUT 3600          /* a delivery agent has its own, shorter, timeouts */
#define DEST_BUCKETS 1024

static struct {
    struct event_base *base;
    struct dest *bucket[DEST_BUCKETS];
} dq;

void qmgr_dest_init(struct event_base *base)
{
    dq.base = base;
}

long qmgr_transport_param(const char *transport, const char *suffix, long fallback)
{
    char name[256];
    snprintf(name, sizeof(name), "%s_%s", transport, suffix);
    const char *value = cfg_get(name);
    long n;
    if (!value)
        return fallback;
    if (parse_long(value, 0, 1000000, &n) < 0) {
        msg_warn("%s = %s: not a number (main.cf); using %ld", name, value, fallback);
        return fallback;
    }
    return n;
}

static unsigned dest_hash(const char *transport, const char *nexthop)
{
    unsigned h = 2166136261u;
    for (const char *p = transport; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0) * 16777619u;
    for (const char *p = nexthop; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % DEST_BUCKETS;
}

struct dest *qmgr_dest_get(const char *transport, const char *nexthop)
{
    unsigned h = dest_hash(transport, nexthop);
    for (struct dest *d = dq.bucket[h]; d; d = d->hash_next)
        if (strcmp(d->transport, transport) == 0 && strcmp(d->nexthop, nexthop) == 0)
            return d;
    struct dest *d = xcalloc(1, sizeof(*d));
    d->transport = xstrdup(transport);
    d->nexthop = xstrdup(nexthop);
    d->limit = (int)qmgr_transport_param(transport, "destination_concurrency_limit",
                                    cfg_int(P_default_destination_concurrency_limit));
    long initial = qmgr_transport_param(transport, "initial_destination_concurrency",
                                   cfg_int(P_initial_destination_concurrency));
    d->window = initial < 1 ? 1 : (int)initial;
    if (d->limit > 0 && d->window > d->limit)
        d->window = d->limit;
    d->agents = qmgr_agents_get(transport);
    d->hash_next = dq.bucket[h];
    dq.bucket[h] = d;
    return d;
}

/* A destination with nothing to do and nothing to remember is forgotten,
 * so that mail to many domains does not grow qmgr without bound. */
static void dest_release_if_idle(struct dest *d)
{
    if (d->busy || d->head || d->suspended)
        return;
    qmgr_agents_unwait(d->agents, d);
    unsigned h = dest_hash(d->transport, d->nexthop);
    for (struct dest **p = &dq.bucket[h]; *p; p = &(*p)->hash_next)
        if (*p == d) {
            *p = d->hash_next;
            break;
        }
    if (d->resume_ev)
        event_free(d->resume_ev);
    free(d->suspend_reason);
    free(d->transport);
    free(d->nexthop);
    free(d);
}

void qmgr_dest_enqueue(struct dest *d, struct qmsg *q, const size_t *idx, size_t n)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->msg = q;
    j->dest = d;
    j->idx = xmalloc(n * sizeof(size_t));
    memcpy(j->idx, idx, n * sizeof(size_t));
    j->n = n;
    j->msg_next = q->jobs;
    q->jobs = j;
    q->jobs_left++;
    if (d->tail)
        d->tail->next = j;
    else
        d->head = j;
    d->tail = j;
}

static void dest_start_one(struct dest *w);

static void job_free(struct job *j)
{
    for (struct job **p = &j->msg->jobs; *p; p = &(*p)->msg_next)
        if (*p == j) {
            *p = j->msg_next;
            break;
        }
    if (j->bev)
        bufferevent_free(j->bev);
    free(j->idx);
    free(j);
}

/* ---- feedback: window, failures, suspension ---- */

static void dest_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dest *d = arg;
    if (d->resume_ev)
        event_del(d->resume_ev);
    d->suspended = false;
    d->failures = 0;
    msg_info("%s: delivery to %s resumed", d->transport, d->nexthop);
    qmgr_dest_dispatch(d);
}

static void dest_suspend(struct dest *d, const char *dsn, const char *reason)
{
    if (d->suspended)
        return;
    d->suspended = true;
    free(d->suspend_reason);
    d->suspend_reason = xstrdup(reason);
    str_copy(d->suspend_dsn, sizeof(d->suspend_dsn), dsn);
    long seconds = cfg_time(P_minimal_backoff_time);
    msg_info("%s: delivery to %s suspended for %lds: %s", d->transport, d->nexthop, seconds, reason);
    if (!d->resume_ev)
        d->resume_ev = event_new(dq.base, -1, 0, dest_resume, d);
    struct timeval tv = { seconds, 0 };
    if (d->resume_ev)
        event_add(d->resume_ev, &tv);
}

static void dest_feedback(struct dest *d, const struct job *j)
{
    if (j->answered == 0)
        return;         /* the agent itself failed; says nothing about the site */
    if (!j->site_failed) {
        d->failures = 0;
        if (d->limit <= 0 || d->window < d->limit)
            d->window++;
        return;
    }
    d->failures++;
    if (d->window > 1)
        d->window--;
    long cohorts = qmgr_transport_param(d->transport, "destination_concurrency_failed_cohort_limit",
                                   cfg_int(P_destination_concurrency_failed_cohort_limit));
    if (cohorts > 0 && d->failures >= cohorts) {
        const struct outcome *o = &j->msg->out[j->idx[0]];
        dest_suspend(d, o->dsn && *o->dsn == '4' ? o->dsn : "4.4.1",
                     o->reason ? o->reason : "destination unreachable");
    }
}

/* ---- talking to a delivery agent ---- */

/* A job is over: recipients the agent did not answer for are tried again
 * later. Then the next jobs start, unless the caller is already starting them. */
static void job_finish(struct job *j, const char *why, bool start_next)
{
    for (size_t k = j->answered; k < j->n; k++)
        qmgr_message_set_outcome(j->msg, j->idx[k], 4, "4.3.0", why, NULL, NULL, false);
    struct dest *d = j->dest;
    struct qmsg *q = j->msg;
    d->busy--;
    qmgr_agents_give_back(d->agents);
    dest_feedback(d, j);
    job_free(j);
    qmgr_message_job_over(q);
    if (!start_next)
        return;
    /* the agent that came free goes to a waiting destination first */
    struct dest *w = qmgr_agents_next(d->agents);
    if (w && w != d)
        dest_start_one(w);
    qmgr_dest_dispatch(d);
}

static void job_end(struct job *j, const char *why)
{
    job_finish(j, why, true);
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
    attr_put_int(&w, "flags", qmgr_message_probe(j->msg) ? DELIVER_FLAG_VERIFY : 0);
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

/* The closing frame: {done=N[, site_failed=0|1]}. */
static int job_done_frame(struct job *j, struct attr_reader *r)
{
    long long n, failed = 0;
    char name[ATTR_NAME_MAX + 1];
    if (attr_get_int(r, "done", 0, (long long)j->n, &n) < 0)
        return -1;
    if (attr_peek_name(r, name, sizeof(name)) && strcmp(name, "site_failed") == 0
        && attr_get_int(r, "site_failed", 0, 1, &failed) < 0)
        return -1;
    j->site_failed = failed != 0;
    return 1;
}

/* One frame from the agent: the greeting, a recipient result, or done.
 * -1 malformed, 0 go on, 1 done. */
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
        return job_done_frame(j, &r);
    long long index, status, dc, dt;
    const char *dsn, *relay, *reason, *action = NULL;
    if (attr_get_int(&r, "index", 0, (long long)j->n - 1, &index) < 0
        || attr_get_int(&r, "status", 2, 5, &status) < 0 || status == 3
        || attr_get_str(&r, "dsn", &dsn) < 0 || attr_get_str(&r, "relay", &relay) < 0
        || attr_get_str(&r, "reason", &reason) < 0
        || attr_get_int(&r, "delay_connect", 0, 1LL << 40, &dc) < 0
        || attr_get_int(&r, "delay_transfer", 0, 1LL << 40, &dt) < 0
        || (attr_peek_name(&r, name, sizeof(name)) && strcmp(name, "action") == 0
            && attr_get_str(&r, "action", &action) < 0)
        || attr_reader_done(&r) < 0 || (size_t)index != j->answered)
        return -1;
    if (action && strcmp(action, "delivered") != 0 && strcmp(action, "relayed") != 0
        && strcmp(action, "notified") != 0)
        return -1;
    qmgr_message_set_outcome(j->msg, j->idx[index], (int)status, dsn, reason, relay, action, true);
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
    (void)bev;
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
    j->dest->busy++;
    qmgr_agents_take(j->dest->agents);
    int fd = unix_connect(path, 10);
    if (fd < 0) {
        msg_warn("%s: cannot connect to the %s delivery agent at %s: %m", j->msg->id,
                 j->dest->transport, path);
        job_finish(j, "mail transport unavailable", false);
        return;
    }
    set_nonblock(fd, true);
    j->bev = bufferevent_socket_new(dq.base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(j->bev, job_read, NULL, job_event, j);
    struct timeval tv = { AGENT_TIMEOUT, 0 };
    bufferevent_set_timeouts(j->bev, &tv, &tv);
    bufferevent_enable(j->bev, EV_READ | EV_WRITE);
}

/* While suspended: every waiting job is deferred with the reason. */
static void dest_defer_waiting(struct dest *d)
{
    char why[1024];
    snprintf(why, sizeof(why), "delivery temporarily suspended: %s", d->suspend_reason);
    while (d->head) {
        struct job *j = d->head;
        d->head = j->next;
        if (!d->head)
            d->tail = NULL;
        for (size_t k = 0; k < j->n; k++)
            qmgr_message_set_outcome(j->msg, j->idx[k], 4, d->suspend_dsn, why, NULL, NULL, false);
        struct qmsg *q = j->msg;
        job_free(j);
        qmgr_message_job_over(q);
    }
}

/* The next waiting job of d, off its list. */
static struct job *dest_pop(struct dest *d)
{
    struct job *j = d->head;
    d->head = j->next;
    if (!d->head)
        d->tail = NULL;
    return j;
}

void qmgr_dest_dispatch(struct dest *d)
{
    if (d->suspended) {
        qmgr_agents_unwait(d->agents, d);
        dest_defer_waiting(d);
    } else {
        while (d->head && d->busy < d->window && qmgr_agents_available(d->agents))
            job_start(dest_pop(d));
        /* jobs its window allows, but every agent is busy: wait in turn */
        if (d->head && d->busy < d->window)
            qmgr_agents_wait(d->agents, d);
        else
            qmgr_agents_unwait(d->agents, d);
    }
    dest_release_if_idle(d);
}

/* A free agent for the waiting destination w: one job, then w waits again
 * (at the end of the line) if it has more. */
static void dest_start_one(struct dest *w)
{
    qmgr_agents_unwait(w->agents, w);
    if (!w->suspended && w->head && w->busy < w->window)
        job_start(dest_pop(w));
    qmgr_dest_dispatch(w);
}

/* Take a waiting job off its destination's list. */
static void dest_unlink_waiting(struct dest *d, struct job *j)
{
    struct job *prev = NULL;
    for (struct job *k = d->head; k; prev = k, k = k->next)
        if (k == j) {
            if (prev)
                prev->next = j->next;
            else
                d->head = j->next;
            if (d->tail == j)
                d->tail = prev;
            return;
        }
}

void qmgr_dest_cancel_waiting(struct qmsg *q)
{
    /* Count first: the last qmgr_message_job_over finishes and frees q. */
    size_t n = 0;
    for (struct job *j = q->jobs; j; j = j->msg_next)
        if (!j->bev)
            n++;
    while (n-- > 0) {
        struct job *j = q->jobs;
        while (j && j->bev)
            j = j->msg_next;
        if (!j)
            break;
        struct dest *d = j->dest;
        dest_unlink_waiting(d, j);
        job_free(j);
        qmgr_message_job_over(q);
        dest_release_if_idle(d);
    }
}

void qmgr_dest_resume_all(void)
{
    for (size_t b = 0; b < DEST_BUCKETS; b++) {
        struct dest *next;
        for (struct dest *d = dq.bucket[b]; d; d = next) {
            next = d->hash_next;          /* d may be released by dest_resume */
            if (d->suspended)
                dest_resume(-1, 0, d);
        }
    }
}
