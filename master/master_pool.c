/* master_pool.c: master's table of children: how many each service has and
 * how many say they can take a client, the busy/idle hints read from the
 * status pipe, reaping with the log line for abnormal exits, and the
 * throttle that stops a service whose children keep dying. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "metrics_client.h"
#include "master.h"
#include "server.h"
#include "util.h"

#define STATUS_READ_BATCH 64

struct child *master_add_child(pid_t pid, const struct service *svc, const char *path)
{
    if (ms.nchildren == ms.capchildren) {
        ms.capchildren = ms.capchildren ? ms.capchildren * 2 : 32;
        ms.children = xrealloc(ms.children, ms.capchildren * sizeof(*ms.children));
    }
    struct child *c = &ms.children[ms.nchildren++];
    c->pid = pid;
    c->generation = ms.generation;
    c->service_key = xstrdup(svc->key);
    c->path = xstrdup(path);
    c->avail = true;   /* a new child goes straight to accepting */
    c->started_usec = now_usec();
    c->served = false;
    master_metrics_counts();
    return c;
}

void master_metrics_counts(void)
{
    for (size_t i = 0; i < ms.nsvcs; i++)
        metrics_set(M_MASTER_PROCESSES, master_count(&ms.svcs[i], NULL, true),
                    METRICS_LABELS(ms.svcs[i].key));
}

void master_metrics_flush(void)
{
    long long due = metrics_flush_deadline();
    if (!due || now_usec() < due)
        return;
    /* a new connection to private/metrics is made as mail_owner, as master
     * does everything by name in that directory (master_privs.c) */
    master_owner_begin(&ms.p);
    metrics_flush();
    master_owner_end(&ms.p);
}

/* Children of svc in this generation (or in any, for services that must
 * never run twice at once), and how many of them are available. */
int master_count(const struct service *svc, int *avail, bool all_generations)
{
    int total = 0, av = 0;
    for (size_t i = 0; i < ms.nchildren; i++) {
        const struct child *c = &ms.children[i];
        if ((all_generations || c->generation == ms.generation)
            && strcmp(c->service_key, svc->key) == 0) {
            total++;
            av += c->avail;
        }
    }
    if (avail)
        *avail = av;
    return total;
}

bool master_may_spawn(const struct service *svc, time_t now)
{
    return !ms.stopping && svc->nlisten > 0 && now >= svc->throttle_until;
}

/* Hints only: a record counts when it names a child of the generation it
 * claims; its state is forgotten anyway when the child exits. */
void master_read_status(void)
{
    struct master_status st[STATUS_READ_BATCH];
    for (int round = 0; round < 16; round++) {
        ssize_t n = read(ms.status_rfd, st, sizeof(st));
        if (n <= 0)
            return;
        for (size_t k = 0; k < (size_t)n / sizeof(st[0]); k++)
            for (size_t j = 0; j < ms.nchildren; j++)
                if (ms.children[j].pid == st[k].pid
                    && ms.children[j].generation == st[k].generation) {
                    if (st[k].avail == MASTER_STAT_SERVED)
                        ms.children[j].served = true;
                    else
                        ms.children[j].avail = st[k].avail == MASTER_STAT_AVAIL;
                }
        if ((size_t)n < sizeof(st))
            return;
    }
}

static struct service *current_service(const struct child *c)
{
    if (c->generation != ms.generation)
        return NULL;
    for (size_t i = 0; i < ms.nsvcs; i++)
        if (strcmp(ms.svcs[i].key, c->service_key) == 0)
            return &ms.svcs[i];
    return NULL;
}

/* Consecutive failures: the first restarts at once, then 1 s, 2 s, 4 s...
 * up to service_throttle_time. */
static void throttle(struct service *svc, int *count, const char *why)
{
    if (++*count < 2)
        return;
    long delay = ms.p.throttle_time;
    if (*count - 2 < 30 && (1L << (*count - 2)) < delay)
        delay = 1L << (*count - 2);
    svc->throttle_until = time(NULL) + delay;
    msg_warn("service %s: throttling for %ld seconds after %s", svc->cfg.name, delay, why);
}

/* A child that exits cleanly this soon after its start without having
 * served a client (it did not say MASTER_STAT_SERVED) did not do the work
 * it was started for; many in a row are a loop (a daemon that keeps
 * deciding to restart), held back like crashes so that master never forks
 * thousands of times a minute. Busy children that reach max_use quickly
 * served their clients and do not count. */
#define QUICK_EXIT_USEC 1000000LL
#define QUICK_EXITS_ALLOWED 20

static void child_exited(const struct child *c, int status)
{
    bool signaled = WIFSIGNALED(status);
    bool abnormal = signaled || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
    /* While stopping, the signals are master's own doing. */
    bool expected = ms.stopping && signaled
        && (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGKILL
            || WTERMSIG(status) == SIGINT);
    if (signaled && !expected)
        msg_warn("process %s pid %ld killed by signal %d", c->path, (long)c->pid,
                 WTERMSIG(status));
    else if (abnormal && !signaled)
        msg_warn("process %s pid %ld exit status %d", c->path, (long)c->pid,
                 WEXITSTATUS(status));
    struct service *svc = current_service(c);
    if (!svc || ms.stopping)
        return;
    if (abnormal) {
        metrics_add(M_MASTER_RESTARTS, 1, METRICS_LABELS(svc->key));
        throttle(svc, &svc->failures, "repeated failures");
        return;
    }
    svc->failures = 0;
    if (c->served || now_usec() - c->started_usec >= QUICK_EXIT_USEC) {
        svc->quick_exits = 0;
    } else if (svc->quick_exits + 1 >= QUICK_EXITS_ALLOWED) {
        int over = svc->quick_exits + 2 - QUICK_EXITS_ALLOWED;   /* 1, 2, 3... */
        svc->quick_exits++;
        throttle(svc, &over, "its processes kept exiting right after they started");
    } else {
        svc->quick_exits++;
    }
}

void master_reap(void)
{
    int status;
    pid_t pid;
    master_read_status();   /* a child's last records come before its exit */
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < ms.nchildren; i++) {
            struct child *c = &ms.children[i];
            if (c->pid != pid)
                continue;
            child_exited(c, status);
            free(c->service_key);
            free(c->path);
            ms.children[i] = ms.children[--ms.nchildren];
            break;
        }
    }
    master_metrics_counts();
}

void master_kill_all(int sig)
{
    for (size_t i = 0; i < ms.nchildren; i++)
        if (kill(ms.children[i].pid, sig) < 0 && errno != ESRCH)
            msg_warn("cannot signal pid %ld: %m", (long)ms.children[i].pid);
}
