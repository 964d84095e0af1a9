/* master.c: Tern's supervisor, the one process that stays root. It reads
 * main.cf and master.cf, opens every listener itself, starts each service's
 * daemons with the listener inherited, keeps the pools within their limits,
 * restarts crashed children with back-off, reloads on SIGHUP and stops on
 * SIGTERM. It never reads a byte from the network. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "autoconf.h"
#include "config.h"
#include "log.h"
#include "master.h"
#include "strbuf.h"
#include "util.h"

struct master_state ms;

static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    unsigned char c = (unsigned char)sig;
    int saved = errno;
    (void)!write(sig_pipe[1], &c, 1);
    errno = saved;
}

static void make_pipe(int fds[2], bool nonblock_read)
{
    if (pipe2(fds, O_CLOEXEC) < 0)
        msg_fatal("pipe: %m");
    if (nonblock_read)
        set_nonblock(fds[0], true);
}

static void load_config_or_die(void)
{
    struct strbuf err = STRBUF_INIT(4096);
    if (cfg_load(ms.confdir, &err) < 0)
        msg_fatal("%s", sb_str(&err));
    sb_free(&err);
    free(ms.daemon_dir);
    ms.daemon_dir = xstrdup(cfg_str(P_daemon_directory));
    log_configure(cfg_str(P_syslog_name), cfg_str(P_syslog_facility), cfg_str(P_maillog_file));
}

static void open_all_listeners(void)
{
    struct strbuf err = STRBUF_INIT(4096);
    for (size_t i = 0; i < ms.nsvcs; i++)
        if (ms.svcs[i].listen_fd < 0 && master_open_listener(&ms.svcs[i], &err) < 0)
            msg_fatal("%s", sb_str(&err));
    sb_free(&err);
}

static void new_generation(void)
{
    if (ms.alive_wfd >= 0) {
        close(ms.alive_wfd);       /* old children see EOF and finish up */
        close(ms.alive_rfd);
    }
    int fds[2];
    make_pipe(fds, false);
    ms.alive_rfd = fds[0];
    ms.alive_wfd = fds[1];
    ms.generation++;
}

static void free_services(struct service *svcs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct master_service *c = &svcs[i].cfg;
        free(c->name);
        free(c->command);
        for (int j = 0; j < c->argc; j++)
            free(c->args[j]);
        free(c->args);
    }
    free(svcs);
}

/* SIGHUP: new configuration; listeners of unchanged services are kept. */
static void master_reload(void)
{
    struct strbuf err = STRBUF_INIT(4096);
    if (cfg_load(ms.confdir, &err) < 0) {
        msg_warn("reload failed, keeping the running configuration: %s", sb_str(&err));
        sb_free(&err);
        cfg_load(ms.confdir, &err);
        return;
    }
    struct service *svcs;
    size_t n;
    if (master_load_services(&svcs, &n, &err) < 0) {
        msg_warn("reload failed, keeping the running services: %s", sb_str(&err));
        sb_free(&err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char *key = master_service_key(&svcs[i].cfg);
        for (size_t j = 0; j < ms.nsvcs; j++) {
            char *old = master_service_key(&ms.svcs[j].cfg);
            if (strcmp(key, old) == 0 && ms.svcs[j].listen_fd >= 0) {
                svcs[i].listen_fd = ms.svcs[j].listen_fd;
                ms.svcs[j].listen_fd = -1;
            }
            free(old);
        }
        free(key);
    }
    for (size_t j = 0; j < ms.nsvcs; j++)
        master_close_listener(&ms.svcs[j]);
    free_services(ms.svcs, ms.nsvcs);
    ms.svcs = svcs;
    ms.nsvcs = n;
    free(ms.daemon_dir);
    ms.daemon_dir = xstrdup(cfg_str(P_daemon_directory));
    log_configure(cfg_str(P_syslog_name), cfg_str(P_syslog_facility), cfg_str(P_maillog_file));
    for (size_t i = 0; i < ms.nsvcs; i++)
        if (ms.svcs[i].listen_fd < 0 && master_open_listener(&ms.svcs[i], &err) < 0) {
            msg_warn("%s", sb_str(&err));
            sb_reset(&err);
        }
    new_generation();
    msg_info("reload -- version %s, configuration %s", PACKAGE_VERSION, ms.confdir);
    sb_free(&err);
}

static void master_stop(int sig)
{
    msg_info("terminating on signal %d", sig);
    for (size_t i = 0; i < ms.nsvcs; i++)
        master_close_listener(&ms.svcs[i]);
    master_kill_all(SIGTERM);
    for (int i = 0; i < 100 && ms.nchildren > 0; i++) {
        master_reap();
        if (ms.nchildren)
            usleep(100000);
    }
    if (ms.nchildren) {
        master_kill_all(SIGKILL);
        for (int i = 0; i < 50 && ms.nchildren > 0; i++) {
            master_reap();
            usleep(20000);
        }
    }
    master_unlock();
    exit(0);
}

/* One pass of pool upkeep; fills pfds with the listeners to watch. */
static int plan_services(struct pollfd *pfds, int *svc_index, int max)
{
    int n = 0;
    time_t now = time(NULL);
    for (size_t i = 0; i < ms.nsvcs; i++) {
        struct service *svc = &ms.svcs[i];
        if (svc->listen_fd < 0 || now < svc->throttle_until)
            continue;
        int avail;
        int total = master_count(svc, &avail);
        if (svc->cfg.wakeup > 0 && total == 0) {
            master_spawn(svc);     /* long-running services (qmgr) always run */
            continue;
        }
        bool room = svc->cfg.maxproc == 0 || total < svc->cfg.maxproc;
        if (avail == 0 && room && n < max) {
            pfds[n].fd = svc->listen_fd;
            pfds[n].events = POLLIN;
            svc_index[n++] = (int)i;
        }
    }
    return n;
}

static void master_loop(void)
{
    enum { MAX_WATCH = 256 };
    struct pollfd pfds[MAX_WATCH + 2];
    int svc_index[MAX_WATCH];
    for (;;) {
        int n = plan_services(pfds + 2, svc_index, MAX_WATCH);
        pfds[0] = (struct pollfd){ sig_pipe[0], POLLIN, 0 };
        pfds[1] = (struct pollfd){ ms.status_rfd, POLLIN, 0 };
        int rc = poll(pfds, (nfds_t)n + 2, 1000);
        if (rc < 0 && errno != EINTR)
            msg_fatal("poll: %m");
        if (rc <= 0)
            continue;
        if (pfds[0].revents & POLLIN) {
            unsigned char sigs[64];
            ssize_t got = read(sig_pipe[0], sigs, sizeof(sigs));
            for (ssize_t i = 0; i < got; i++) {
                if (sigs[i] == SIGCHLD)
                    master_reap();
                else if (sigs[i] == SIGHUP)
                    master_reload();
                else if (sigs[i] == SIGTERM || sigs[i] == SIGINT)
                    master_stop(sigs[i]);
            }
            continue;   /* the service table may have changed */
        }
        if (pfds[1].revents & POLLIN)
            master_read_status();
        for (int i = 0; i < n; i++)
            if (pfds[i + 2].revents & POLLIN)
                master_spawn(&ms.svcs[svc_index[i]]);
    }
}

/* Detach, but let the caller see every error that happens before we run:
 * the parent waits for one byte (0 = ok) or an error text from the child. */
static int detach(void)
{
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        msg_fatal("pipe: %m");
    pid_t pid = fork();
    if (pid < 0)
        msg_fatal("fork: %m");
    if (pid > 0) {
        close(ready[1]);
        char buf[1024];
        ssize_t n = read(ready[0], buf, sizeof(buf) - 1);
        if (n == 1 && buf[0] == 0)
            _exit(0);
        if (n > 0) {
            buf[n] = 0;
            fprintf(stderr, "master: fatal: %s\n", buf);
        } else {
            fprintf(stderr, "master: fatal: the master process exited during start-up\n");
        }
        _exit(1);
    }
    close(ready[0]);
    setsid();
    return ready[1];
}

static void startup_failed(int ready_fd, const char *text)
{
    if (ready_fd >= 0)
        (void)!write(ready_fd, text, strlen(text));
    msg_fatal("%s", text);
}

int main(int argc, char **argv)
{
    bool foreground = false, test_only = false;
    int c;
    ms.alive_wfd = ms.alive_rfd = -1;
    log_open("master");
    while ((c = getopt(argc, argv, "c:dtv")) != -1) {
        switch (c) {
        case 'c': ms.confdir = optarg; break;
        case 'd': foreground = true; break;
        case 't': test_only = true; break;
        case 'v': ms.verbose = true; msg_verbose++; break;
        default:
            fprintf(stderr, "usage: master [-c CONFDIR] [-d] [-t] [-v]\n");
            return 2;
        }
    }
    log_to_stderr(1);
    load_config_or_die();
    ms.confdir = xstrdup(cfg_confdir());
    struct strbuf err = STRBUF_INIT(4096);
    if (master_load_services(&ms.svcs, &ms.nsvcs, &err) < 0)
        msg_fatal("%s", sb_str(&err));
    if (test_only)
        return 0;

    int ready_fd = foreground ? -1 : detach();
    master_prepare_queue();
    if (master_lock(&err) < 0)
        startup_failed(ready_fd, sb_str(&err));
    for (size_t i = 0; i < ms.nsvcs; i++)
        if (master_open_listener(&ms.svcs[i], &err) < 0)
            startup_failed(ready_fd, sb_str(&err));
    sb_free(&err);

    make_pipe(sig_pipe, true);
    set_nonblock(sig_pipe[1], true);
    int status_fds[2];
    make_pipe(status_fds, true);
    ms.status_rfd = status_fds[0];
    ms.status_wfd = status_fds[1];
    new_generation();
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    msg_info("daemon started -- version %s, configuration %s", PACKAGE_VERSION, ms.confdir);
    if (!foreground) {
        log_to_stderr(0);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
            if (null > 2)
                close(null);
        }
        (void)!write(ready_fd, "", 1);
        close(ready_fd);
    }
    open_all_listeners();
    master_loop();
    return 0;
}
