/* qmgr_agents.c: a transport's delivery agents, shared fairly among its
 * destinations. master runs at most maxproc processes of a transport
 * (master.cf, read at start-up; '-' is default_process_limit). qmgr
 * starts no more jobs than that at once: a job beyond it would only wait
 * in the socket's backlog, in arrival order, so that ten slow sites that
 * answer after a second each could hold every agent and the fast sites'
 * mail would queue behind theirs. Instead a destination that finds every
 * agent busy waits here, and each agent that comes free goes to the
 * waiting destination with the fewest jobs running (the longest waiting
 * of those): a slow destination keeps what it has, but the agents that
 * come free go to the others first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "mastercf.h"
#include "qmgr_sched.h"
#include "strbuf.h"
#include "util.h"

struct agents {
    char *transport;
    int limit;                  /* 0: no limit known */
    int busy;                   /* jobs running */
    struct dest *wait_head, *wait_tail;
    struct agents *next;
};

static struct {
    struct master_service *svcs;    /* master.cf's unix services, for their limits */
    size_t nsvcs;
    bool loaded;
    struct agents *all;
} ag;

void qmgr_agents_init(void)
{
    struct strbuf path = STRBUF_INIT(0), err = STRBUF_INIT(256);
    sb_appendf(&path, "%s/master.cf", cfg_confdir());
    if (mastercf_load(sb_str(&path), (int)cfg_int(P_default_process_limit), &ag.svcs, &ag.nsvcs,
                      &err) < 0)
        msg_warn("%s; the delivery agents' process limits are not known to the queue manager",
                 sb_str(&err));
    else
        ag.loaded = true;
    sb_free(&path);
    sb_free(&err);
}

struct agents *qmgr_agents_get(const char *transport)
{
    for (struct agents *a = ag.all; a; a = a->next)
        if (strcmp(a->transport, transport) == 0)
            return a;
    struct agents *a = xcalloc(1, sizeof(*a));
    a->transport = xstrdup(transport);
    a->limit = ag.loaded ? (int)cfg_int(P_default_process_limit) : 0;
    for (size_t i = 0; i < ag.nsvcs; i++)
        if (ag.svcs[i].kind == SVC_UNIX && strcmp(ag.svcs[i].name, transport) == 0)
            a->limit = ag.svcs[i].maxproc;
    a->next = ag.all;
    ag.all = a;
    return a;
}

bool qmgr_agents_available(const struct agents *a)
{
    return a->limit <= 0 || a->busy < a->limit;
}

void qmgr_agents_take(struct agents *a)
{
    a->busy++;
}

void qmgr_agents_give_back(struct agents *a)
{
    if (a->busy > 0)
        a->busy--;
}

void qmgr_agents_wait(struct agents *a, struct dest *d)
{
    if (d->waiting)
        return;
    d->waiting = true;
    d->wait_next = NULL;
    d->wait_prev = a->wait_tail;
    *(a->wait_tail ? &a->wait_tail->wait_next : &a->wait_head) = d;
    a->wait_tail = d;
}

void qmgr_agents_unwait(struct agents *a, struct dest *d)
{
    if (!d->waiting)
        return;
    *(d->wait_prev ? &d->wait_prev->wait_next : &a->wait_head) = d->wait_next;
    *(d->wait_next ? &d->wait_next->wait_prev : &a->wait_tail) = d->wait_prev;
    d->waiting = false;
    d->wait_next = d->wait_prev = NULL;
}

struct dest *qmgr_agents_next(struct agents *a)
{
    struct dest *best = NULL;
    for (struct dest *k = a->wait_head; k; k = k->wait_next)
        if (!best || k->busy < best->busy)
            best = k;
    return best;
}
