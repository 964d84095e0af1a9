/* qmgr_sched.h: the scheduler's shared types. A message in memory (qmsg)
 * has one outcome per recipient for the current round; its pending
 * recipients are split into jobs, one per (transport, next hop) destination
 * and at most that transport's recipient limit each. qmgr_dest.c runs the
 * jobs of each destination within its concurrency window and suspends a
 * destination that keeps failing; qmgr_message.c loads, routes and finishes
 * messages. */
#ifndef TERN_QMGR_SCHED_H
#define TERN_QMGR_SCHED_H

#include <stdbool.h>
#include <stddef.h>

#include "queue.h"

struct event;
struct event_base;
struct bufferevent;

struct outcome {                    /* a recipient's result in this round */
    int status;                     /* 0 none yet, 2, 4, 5 */
    char *dsn, *reason, *relay;
    char *action;                   /* for 2: "delivered", "relayed" or "notified"
                                     * (the next server took the DSN over) */
    bool logged;                    /* the delivery agent logged it; qmgr logs the rest */
    char *transport;                /* where it was routed (NULL: nowhere), for the metrics */
};

enum qmsg_admin {                   /* what `tern` asked for, done when the message's jobs end */
    QMSG_ADMIN_NONE, QMSG_ADMIN_DELETE, QMSG_ADMIN_HOLD, QMSG_ADMIN_REQUEUE,
};

struct qmsg {
    char id[QUEUE_ID_SIZE];
    struct qmessage m;
    struct outcome *out;            /* per recipient of m */
    int jobs_left;
    struct job *jobs;               /* its jobs not yet over (waiting or running) */
    enum qmsg_admin admin;
    struct qmsg *hash_next;         /* messages in memory by ID */
};

struct dest {
    char *transport, *nexthop;
    int busy;                       /* jobs running */
    int window;                     /* jobs allowed to run at once now */
    int limit;                      /* TRANSPORT_destination_concurrency_limit, 0: none */
    int failures;                   /* site failures in a row */
    bool suspended;                 /* after too many failures, for minimal_backoff_time */
    char *suspend_reason;
    char suspend_dsn[16];
    struct event *resume_ev;
    struct job *head, *tail;        /* waiting jobs */
    struct dest *hash_next;
    struct agents *agents;          /* its transport's delivery agents */
    bool waiting;                   /* for an agent (qmgr_agents.c) */
    struct dest *wait_next, *wait_prev;
};

struct job {
    struct qmsg *msg;
    struct dest *dest;
    size_t *idx;                    /* recipients of msg->m */
    size_t n, answered;
    struct bufferevent *bev;
    bool hello_seen;
    bool site_failed;               /* the agent could not reach the destination */
    struct job *next;               /* in the destination's waiting list */
    struct job *msg_next;           /* in msg->jobs */
};

/* ---- qmgr_agents.c: a transport's delivery agents, shared fairly ---- */
struct agents;
/* As root, before any chroot: master.cf's process limits. */
void qmgr_agents_init(void);
struct agents *qmgr_agents_get(const char *transport);
/* Whether a job may start now (fewer running than master.cf's maxproc). */
bool qmgr_agents_available(const struct agents *a);
void qmgr_agents_take(struct agents *a);
void qmgr_agents_give_back(struct agents *a);
/* A destination with jobs to start waits for an agent, in turn. */
void qmgr_agents_wait(struct agents *a, struct dest *d);
void qmgr_agents_unwait(struct agents *a, struct dest *d);
/* The waiting destination the next free agent goes to (NULL: none). */
struct dest *qmgr_agents_next(struct agents *a);

/* ---- qmgr_dest.c ---- */
void qmgr_dest_init(struct event_base *base);
struct dest *qmgr_dest_get(const char *transport, const char *nexthop);
/* Queue a job for recipients idx[0..n-1] of q (copied) at d. */
void qmgr_dest_enqueue(struct dest *d, struct qmsg *q, const size_t *idx, size_t n);
/* Start waiting jobs within the window (or defer them all while suspended). */
void qmgr_dest_dispatch(struct dest *d);
/* End the jobs of q that have not started (q may be finished and freed). */
void qmgr_dest_cancel_waiting(struct qmsg *q);
/* Lift every suspension now (a flush). */
void qmgr_dest_resume_all(void);
/* A per-transport parameter ("smtp_destination_recipient_limit"), else the default. */
long qmgr_transport_param(const char *transport, const char *suffix, long fallback);

/* ---- qmgr_message.c ---- */
void qmgr_message_set_outcome(struct qmsg *q, size_t i, int status, const char *dsn,
                              const char *reason, const char *relay, const char *action,
                              bool logged);
/* One job of q is over; the last one finishes the message. */
void qmgr_message_job_over(struct qmsg *q);
/* The address an address verification probe is for, or NULL when the
 * message is not a probe (its agents get DELIVER_FLAG_VERIFY). */
const char *qmgr_message_probe(const struct qmsg *q);

#endif
