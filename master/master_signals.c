/* master_signals.c: master's signals, delivered through a self-pipe to the
 * main loop: SIGCHLD reaps, SIGHUP reloads main.cf and master.cf (keeping
 * the listeners of unchanged services), SIGTERM and SIGINT stop everything. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "autoconf.h"
#include "config.h"
#include "log.h"
#include "master.h"
#include "strbuf.h"
#include "util.h"

#define STOP_GRACE_SECONDS 10    /* SIGTERM, then SIGKILL */
#define KILL_WAIT_SECONDS 5

static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    (void)!write(sig_pipe[1], &c, 1);
    errno = saved;
}

void master_pipe(int *rfd, int *wfd, int flags)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | flags) < 0)
        msg_fatal("cannot create a pipe: %m");
    *rfd = fds[0];
    *wfd = fds[1];
}

void master_signals_init(void)
{
    master_pipe(&sig_pipe[0], &sig_pipe[1], O_NONBLOCK);
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int master_signal_fd(void)
{
    return sig_pipe[0];
}

/* Closing the old alive pipe tells the previous generation's children to
 * finish their clients and exit; new children get a new pipe. */
void master_new_generation(void)
{
    if (ms.alive_wfd >= 0) {
        close(ms.alive_wfd);
        close(ms.alive_rfd);
    }
    master_pipe(&ms.alive_rfd, &ms.alive_wfd, 0);
    ms.generation++;
}

/* The new configuration, loaded and checked completely before anything of
 * the running one is given up. -1 with the reason in err. */
static int load_new_config(struct master_params *np, struct service **svcs, size_t *n,
                           struct strbuf *err)
{
    if (cfg_load(ms.confdir, err) < 0 || master_load_params(np, err) < 0)
        return -1;
    if (master_load_services(np, svcs, n, err) < 0) {
        master_free_params(np);
        return -1;
    }
    if (master_check_services(np, *svcs, *n, err) > 0 || master_prepare_queue(np, err) < 0) {
        master_free_services(*svcs, *n);
        master_free_params(np);
        return -1;
    }
    master_chroot_files(np, *svcs, *n);
    return 0;
}

/* Listeners whose address is unchanged move to the new table; the others
 * are closed (before new ones are opened, which may reuse a file name). */
static void move_listeners(struct service *svcs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < ms.nsvcs; j++)
            if (ms.svcs[j].nlisten > 0 && strcmp(svcs[i].listen_id, ms.svcs[j].listen_id) == 0) {
                memcpy(svcs[i].listen_fds, ms.svcs[j].listen_fds, sizeof(svcs[i].listen_fds));
                svcs[i].nlisten = ms.svcs[j].nlisten;
                ms.svcs[j].nlisten = 0;
            }
    for (size_t j = 0; j < ms.nsvcs; j++)
        master_close_listener(&ms.svcs[j], true);
}

static void master_reload(void)
{
    struct strbuf err = STRBUF_INIT(65536);
    struct master_params np;
    struct service *svcs;
    size_t n;
    if (load_new_config(&np, &svcs, &n, &err) < 0) {
        msg_warn("reload failed, still running the previous configuration: %s", sb_str(&err));
        sb_free(&err);
        return;
    }
    cfg_log_configure();
    master_warn_unknown();
    move_listeners(svcs, n);
    master_free_services(ms.svcs, ms.nsvcs);
    master_free_params(&ms.p);
    ms.p = np;
    ms.svcs = svcs;
    ms.nsvcs = n;
    for (size_t i = 0; i < ms.nsvcs; i++) {
        sb_reset(&err);
        if (ms.svcs[i].nlisten == 0 && master_open_listener(&ms.p, &ms.svcs[i], &err) < 0)
            msg_warn("service %s is not running: %s", ms.svcs[i].cfg.name, sb_str(&err));
    }
    sb_free(&err);
    master_new_generation();
    msg_info("reload -- version %s, configuration %s", PACKAGE_VERSION, ms.confdir);
}

/* Reap for up to seconds; true when no child is left. */
static bool wait_children(int seconds)
{
    long long deadline = now_usec() + seconds * 1000000LL;
    for (;;) {
        master_reap();
        if (ms.nchildren == 0)
            return true;
        if (now_usec() >= deadline)
            return false;
        usleep(20000);
    }
}

static void __attribute__((noreturn)) master_stop(int sig)
{
    msg_info("terminating on signal %d", sig);
    ms.stopping = true;
    for (size_t i = 0; i < ms.nsvcs; i++)
        master_close_listener(&ms.svcs[i], false);
    master_kill_all(SIGTERM);
    if (!wait_children(STOP_GRACE_SECONDS)) {
        msg_warn("%zu process(es) still running %d seconds after SIGTERM; sending SIGKILL",
                 ms.nchildren, STOP_GRACE_SECONDS);
        master_kill_all(SIGKILL);
        wait_children(KILL_WAIT_SECONDS);
    }
    master_unlock();
    exit(0);
}

/* Everything the pipe holds: reap first, so a reload or stop sees the
 * children as they are; a stop wins over a reload. */
void master_handle_signals(void)
{
    unsigned char sigs[64];
    bool chld = false, hup = false;
    int stop = 0;
    ssize_t got;
    while ((got = read(sig_pipe[0], sigs, sizeof(sigs))) > 0)
        for (ssize_t i = 0; i < got; i++) {
            if (sigs[i] == SIGCHLD)
                chld = true;
            else if (sigs[i] == SIGHUP)
                hup = true;
            else if (sigs[i] == SIGTERM || sigs[i] == SIGINT)
                stop = sigs[i];
        }
    if (stop)
        ms.stopping = true;     /* children hit by the same signal are no news */
    if (chld)
        master_reap();
    if (stop)
        master_stop(stop);
    if (hup)
        master_reload();
}
