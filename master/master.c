/* master.c: Tern's supervisor, the one process that stays root. It reads
 * main.cf and master.cf, opens every listener itself, starts each service's
 * daemons with the listener inherited, keeps the pools within their limits,
 * restarts crashed children with back-off, reloads on SIGHUP and stops on
 * SIGTERM. It never reads a byte from the network.
 *
 * usage: master [-c CONFDIR] [-d] [-t] [-v]
 *   -d  stay in the foreground    -t  check the configuration and exit
 *   -v  verbose logging, also passed to every daemon */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "autoconf.h"
#include "config.h"
#include "log.h"
#include "metrics_client.h"
#include "master.h"
#include "strbuf.h"
#include "util.h"

#define MASTER_MAX_WATCH 1024   /* listeners polled at once */

struct master_state ms = { .status_rfd = -1, .status_wfd = -1, .alive_rfd = -1, .alive_wfd = -1 };

static void __attribute__((noreturn)) usage(void)
{
    fprintf(stderr, "usage: master [-c CONFDIR] [-d] [-t] [-v]\n"
                    "  -d  stay in the foreground\n"
                    "  -t  check the configuration and exit (0 good, 1 bad)\n"
                    "  -v  verbose logging, also in every daemon\n");
    exit(2);
}

/* main.cf, then master.cf, each checked completely: all of this happens
 * while the caller can still see the errors. */
static void load_configuration(const char *confdir)
{
    struct strbuf err = STRBUF_INIT(65536);
    if (cfg_load(confdir, &err) < 0)
        msg_fatal("%s", sb_str(&err));
    char resolved[PATH_MAX];
    ms.confdir = xstrdup(realpath(cfg_confdir(), resolved) ? resolved : cfg_confdir());
    if (master_load_params(&ms.p, &err) < 0)
        msg_fatal("%s", sb_str(&err));
    cfg_log_configure();
    if (master_load_services(&ms.p, &ms.svcs, &ms.nsvcs, &err) < 0)
        msg_fatal("%s", sb_str(&err));
    if (master_check_services(&ms.p, ms.svcs, ms.nsvcs, &err) > 0)
        msg_fatal("%s", sb_str(&err));
    sb_free(&err);
}

/* Fork; the parent waits until the child says it runs (exit 0) or dies
 * (exit 1: the child has printed why on the shared stderr). */
static int detach(void)
{
    int ready[2];
    master_pipe(&ready[0], &ready[1], 0);
    pid_t pid = fork();
    if (pid < 0)
        msg_fatal("cannot fork: %m");
    if (pid > 0) {
        close(ready[1]);
        char byte;
        ssize_t n;
        while ((n = read(ready[0], &byte, 1)) < 0 && errno == EINTR)
            continue;
        _exit(n == 1 ? 0 : 1);
    }
    close(ready[0]);
    if (setsid() < 0)
        msg_fatal("setsid: %m");
    return ready[1];
}

/* Take the lock and open every listener; any failure is fatal. */
static void claim_resources(void)
{
    struct strbuf err = STRBUF_INIT(4096);
    if (master_lock(&ms.p, &err) < 0)
        msg_fatal("%s", sb_str(&err));
    for (size_t i = 0; i < ms.nsvcs; i++)
        if (master_open_listener(&ms.p, &ms.svcs[i], &err) < 0)
            msg_fatal("%s", sb_str(&err));
    sb_free(&err);
}

static void open_status_pipe(void)
{
    master_pipe(&ms.status_rfd, &ms.status_wfd, 0);
    /* A child must never block on a hint; a lost one is tolerated. */
    set_nonblock(ms.status_rfd, true);
    set_nonblock(ms.status_wfd, true);
}

/* From now on the log is the place to look. */
static void finish_detach(int ready_fd)
{
    int null = open("/dev/null", O_RDWR);
    if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
        msg_fatal("cannot redirect standard input and output to /dev/null: %m");
    if (null > 2)
        close(null);
    if (write(ready_fd, "", 1) != 1)
        msg_warn("cannot tell the starting process that master runs: %m");
    close(ready_fd);
}

/* A client for svc would have to wait: no child is available, and the
 * pool may grow. */
static bool needs_child(const struct service *svc)
{
    int avail;
    int total = master_count(svc, &avail, false);
    return avail == 0 && (svc->cfg.maxproc == 0 || total < svc->cfg.maxproc);
}

/* Services that must always run (wakeup > 0) are started here; the others
 * are watched for a client when none of their children is available. */
static int plan_services(struct pollfd *pfds, int *svc_index, int max, int *timeout_ms)
{
    int n = 0;
    time_t now = time(NULL);
    *timeout_ms = -1;
    for (size_t i = 0; i < ms.nsvcs; i++) {
        struct service *svc = &ms.svcs[i];
        if (!master_may_spawn(svc, now)) {
            if (svc->nlisten > 0 && svc->throttle_until > now) {
                long ms_left = (long)(svc->throttle_until - now) * 1000;
                if (*timeout_ms < 0 || ms_left < *timeout_ms)
                    *timeout_ms = (int)ms_left;
            }
            continue;
        }
        if (svc->cfg.wakeup > 0 && master_count(svc, NULL, true) == 0) {
            master_spawn(svc);   /* never two at once, not even across a reload */
            continue;
        }
        for (int k = 0; needs_child(svc) && k < svc->nlisten && n < max; k++) {
            pfds[n] = (struct pollfd){ svc->listen_fds[k], POLLIN, 0 };
            svc_index[n++] = (int)i;
        }
    }
    return n;
}

static void __attribute__((noreturn)) master_loop(void)
{
    static struct pollfd pfds[MASTER_MAX_WATCH + 2];
    static int svc_index[MASTER_MAX_WATCH];
    for (;;) {
        int timeout;
        int n = plan_services(pfds + 2, svc_index, MASTER_MAX_WATCH, &timeout);
        pfds[0] = (struct pollfd){ master_signal_fd(), POLLIN, 0 };
        pfds[1] = (struct pollfd){ ms.status_rfd, POLLIN, 0 };
        long long report = metrics_flush_deadline();
        if (report) {
            long long left = (report - now_usec()) / 1000 + 1;
            if (timeout < 0 || left < timeout)
                timeout = left < 0 ? 0 : (int)left;
        }
        int rc = poll(pfds, (nfds_t)n + 2, timeout);
        if (rc < 0 && errno != EINTR)
            msg_fatal("poll: %m");
        master_metrics_flush();
        if (rc <= 0)
            continue;
        if (pfds[0].revents) {
            master_handle_signals();
            continue;       /* children or the service table changed: plan again */
        }
        if (pfds[1].revents)
            master_read_status();   /* may have made a child available again */
        /* At most one child per service and pass, however many of its
         * sockets are ready (they are next to each other in pfds). */
        int last = -1;
        for (int i = 0; i < n; i++) {
            if (!pfds[i + 2].revents || svc_index[i] == last)
                continue;
            last = svc_index[i];
            struct service *svc = &ms.svcs[last];
            if (needs_child(svc))
                master_spawn(svc);
        }
    }
}

int main(int argc, char **argv)
{
    bool foreground = false, test_only = false;
    const char *confdir = NULL;
    int c;
    command_start("master", 1);
    umask(022);
    while ((c = getopt(argc, argv, "c:dtv")) != -1) {
        switch (c) {
        case 'c': confdir = optarg; break;
        case 'd': foreground = true; break;
        case 't': test_only = true; break;
        case 'v': ms.verbose = true; msg_verbose++; break;
        default: usage();
        }
    }
    if (optind < argc)
        usage();
    load_configuration(confdir);
    if (test_only)
        return 0;
    master_warn_unknown();

    struct strbuf err = STRBUF_INIT(4096);
    if (master_prepare_queue(&ms.p, &err) < 0)
        msg_fatal("%s", sb_str(&err));
    sb_free(&err);
    master_chroot_files(&ms.p, ms.svcs, ms.nsvcs);
    pid_t running = master_lock_holder(&ms.p);
    if (running)
        msg_fatal("the Tern mail system is already running (master pid %ld)", (long)running);
    int ready_fd = foreground ? -1 : detach();
    claim_resources();
    if (chdir(ms.p.queue_dir) < 0)
        msg_fatal("cannot change directory to %s: %m", ms.p.queue_dir);

    open_status_pipe();
    master_signals_init();
    master_new_generation();
    metrics_client_start(NULL, NULL);   /* private/metrics, below the queue directory */
    if (ready_fd >= 0)
        log_to_stderr(0);   /* the caller has its answer: the exit status */
    msg_info("daemon started -- version %s, configuration %s", PACKAGE_VERSION, ms.confdir);
    if (ready_fd >= 0)
        finish_detach(ready_fd);
    log_to_stderr(0);
    master_loop();
}
