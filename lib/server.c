/* server.c: the skeleton every daemon runs in (see server.h): options from
 * master, configuration, the root-only pre-init, chroot, the verified
 * privilege drop, and the serve loop in SINGLE (blocking, one client at a
 * time) or EVENT (libevent, many clients) mode, with busy/idle hints to master. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

static struct {
    const struct server_ops *ops;
    const char *service;
    const char *type;
    unsigned generation;
    bool keep_root, chroot_, standalone;
    int wakeup;
    int clients;          /* EVENT: sessions now */
    long served;          /* sessions since start */
    bool draining;
    bool reported_avail;
    struct event_base *base;
    struct event *listen_ev, *alive_ev, *idle_ev, *wakeup_ev, *term_ev;
} srv;

static volatile sig_atomic_t srv_terminate;

const char *server_service_name(void) { return srv.service ? srv.service : "-"; }
struct event_base *server_event_base(void) { return srv.base; }

int user_ids(const char *user, uid_t *uid, gid_t *gid)
{
    struct passwd *pw = getpwnam(user);
    if (!pw)
        return -1;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

void drop_privileges(const char *user)
{
    if (getuid() != 0 && geteuid() != 0)
        return;
    uid_t uid;
    gid_t gid;
    if (user_ids(user, &uid, &gid) < 0)
        msg_fatal("mail_owner account \"%s\" does not exist; run `tern setup` to create it", user);
    if (uid == 0)
        msg_fatal("mail_owner \"%s\" has uid 0; it must be an unprivileged account", user);
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        msg_fatal("cannot drop privileges to %s (uid %ld): %m", user, (long)uid);
    /* Verify: the change must be complete and irreversible. */
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
        msg_fatal("privilege drop to %s incomplete", user);
    if (setuid(0) == 0 || seteuid(0) == 0)
        msg_fatal("privilege drop to %s can be undone; refusing to run", user);
}

static void report(int avail)
{
    if (srv.standalone || srv.reported_avail == (avail != 0))
        return;
    srv.reported_avail = avail != 0;
    struct master_status st = { getpid(), srv.generation, avail };
    if (write(MASTER_STATUS_FD, &st, sizeof(st)) != (ssize_t)sizeof(st) && errno != EAGAIN)
        msg_debug("status report to master failed: %m");
}

static void __attribute__((noreturn)) server_exit(void)
{
    if (srv.ops->pre_exit)
        srv.ops->pre_exit();
    exit(0);
}

static void usage_fatal(void)
{
    msg_fatal("usage: DAEMON -c CONFDIR -n SERVICE -t TYPE [-u] [-r] [-w SECONDS] [-v] "
              "[-o name=value]... (started by master)");
}

static void parse_args(int argc, char **argv, const char **confdir)
{
    int c;
    opterr = 0;
    while ((c = getopt(argc, argv, "c:n:t:urw:vo:S")) != -1) {
        switch (c) {
        case 'c': *confdir = optarg; break;
        case 'n': srv.service = optarg; break;
        case 't': srv.type = optarg; break;
        case 'u': srv.keep_root = true; break;
        case 'r': srv.chroot_ = true; break;
        case 'w': {
            long v;
            if (parse_long(optarg, 1, 86400 * 7, &v) < 0)
                usage_fatal();
            srv.wakeup = (int)v;
            break;
        }
        case 'v': msg_verbose++; break;
        case 'o': break;   /* applied after cfg_load, in order */
        case 'S': srv.standalone = true; break;
        default: usage_fatal();
        }
    }
}

static void apply_overrides(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "-o") != 0)
            continue;
        char *eq = strchr(argv[i + 1], '=');
        if (!eq)
            msg_fatal("bad -o argument \"%s\": expected name=value", argv[i + 1]);
        char *name = xstrndup(argv[i + 1], (size_t)(eq - argv[i + 1]));
        cfg_override(name, eq + 1);
        free(name);
        i++;
    }
}

/* ---- SINGLE mode ---- */

static void serve_single(void)
{
    time_t idle_since = time(NULL);
    time_t next_wakeup = srv.wakeup ? time(NULL) + srv.wakeup : 0;
    long max_use = cfg_int(P_max_use);
    long max_idle = cfg_time(P_max_idle);
    report(MASTER_STAT_AVAIL);
    for (;;) {
        if (srv_terminate)
            server_exit();
        struct pollfd pfd[2] = { { MASTER_LISTEN_FD, POLLIN, 0 }, { MASTER_ALIVE_FD, POLLIN, 0 } };
        int rc = poll(pfd, 2, 1000);
        time_t now = time(NULL);
        if (next_wakeup && now >= next_wakeup) {
            if (srv.ops->wakeup)
                srv.ops->wakeup();
            next_wakeup = now + srv.wakeup;
        }
        if (rc < 0 && errno != EINTR)
            msg_fatal("poll: %m");
        if (rc > 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
            server_exit();                 /* master is gone or reloaded */
        if (rc > 0 && (pfd[0].revents & POLLIN)) {
            int fd = accept4(MASTER_LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                    msg_warn("accept: %m");
                continue;
            }
            set_nonblock(fd, false);
            report(MASTER_STAT_TAKEN);
            srv.ops->serve(fd);
            close(fd);
            srv.served++;
            if (!srv.ops->long_running && max_use > 0 && srv.served >= max_use)
                server_exit();
            report(MASTER_STAT_AVAIL);
            idle_since = time(NULL);
            continue;
        }
        if (!srv.ops->long_running && max_idle > 0 && now - idle_since >= max_idle)
            server_exit();
    }
}

/* ---- EVENT mode ---- */

static void event_update_listen(void)
{
    int limit = srv.ops->client_limit ? srv.ops->client_limit() : 0;
    bool full = limit > 0 && srv.clients >= limit;
    if (srv.draining || full) {
        event_del(srv.listen_ev);
        report(MASTER_STAT_TAKEN);
    } else {
        event_add(srv.listen_ev, NULL);
        report(MASTER_STAT_AVAIL);
    }
    if (srv.idle_ev) {
        if (srv.clients == 0 && !srv.ops->long_running) {
            struct timeval tv = { cfg_time(P_max_idle), 0 };
            if (tv.tv_sec > 0)
                event_add(srv.idle_ev, &tv);
        } else {
            event_del(srv.idle_ev);
        }
    }
}

static void event_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    for (int i = 0; i < 64 && !srv.draining; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                msg_warn("accept: %m");
            break;
        }
        srv.clients++;
        srv.served++;
        long max_use = cfg_int(P_max_use);
        if (!srv.ops->long_running && max_use > 0 && srv.served >= max_use)
            srv.draining = true;
        srv.ops->accept_event(fd, srv.base);
        int limit = srv.ops->client_limit ? srv.ops->client_limit() : 0;
        if (limit > 0 && srv.clients >= limit)
            break;
    }
    event_update_listen();
}

void server_client_done(void)
{
    if (srv.clients > 0)
        srv.clients--;
    if (srv.draining && srv.clients == 0) {
        if (srv.base)
            event_base_loopexit(srv.base, NULL);
        else
            server_exit();
        return;
    }
    if (srv.base && srv.listen_ev)
        event_update_listen();
}

void server_drain(void)
{
    srv.draining = true;
    if (srv.listen_ev)
        event_del(srv.listen_ev);
    if (srv.clients == 0 && srv.base)
        event_base_loopexit(srv.base, NULL);
}

static void event_on_alive(evutil_socket_t fd, short what, void *arg)
{
    char c;
    if (read(fd, &c, 1) <= 0) {
        event_del(srv.alive_ev);
        server_drain();
        /* Do not wait forever for sessions of a generation that is gone. */
        struct timeval tv = { 60, 0 };
        event_base_loopexit(srv.base, &tv);
    }
}

static void event_on_idle(evutil_socket_t fd, short what, void *arg)
{
    if (srv.clients == 0)
        event_base_loopexit(srv.base, NULL);
}

static void event_on_wakeup(evutil_socket_t fd, short what, void *arg)
{
    if (srv.ops->wakeup)
        srv.ops->wakeup();
}

static void event_on_term(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopexit(srv.base, NULL);
}

static void serve_event(void)
{
    set_nonblock(MASTER_LISTEN_FD, true);
    srv.listen_ev = event_new(srv.base, MASTER_LISTEN_FD, EV_READ | EV_PERSIST, event_on_accept, NULL);
    if (!srv.standalone) {
        srv.alive_ev = event_new(srv.base, MASTER_ALIVE_FD, EV_READ | EV_PERSIST, event_on_alive, NULL);
        event_add(srv.alive_ev, NULL);
    }
    srv.idle_ev = evtimer_new(srv.base, event_on_idle, NULL);
    if (srv.wakeup) {
        srv.wakeup_ev = event_new(srv.base, -1, EV_PERSIST, event_on_wakeup, NULL);
        struct timeval tv = { srv.wakeup, 0 };
        event_add(srv.wakeup_ev, &tv);
    }
    srv.term_ev = evsignal_new(srv.base, SIGTERM, event_on_term, NULL);
    event_add(srv.term_ev, NULL);
    srv.reported_avail = false;
    event_update_listen();
    event_base_dispatch(srv.base);
    server_exit();
}

static void on_sigterm(int sig)
{
    srv_terminate = 1;
}

void server_main(int argc, char **argv, const char *progname, const struct server_ops *ops)
{
    const char *confdir = NULL;
    srv.ops = ops;
    log_open(progname);
    parse_args(argc, argv, &confdir);
    const char *gen = getenv("TERN_MASTER_GENERATION");
    if (!gen && !srv.standalone) {
        fprintf(stderr, "%s: this is a Tern daemon started by master, not a command\n", progname);
        exit(1);
    }
    srv.generation = gen ? (unsigned)strtoul(gen, NULL, 10) : 0;
    struct strbuf err = STRBUF_INIT(4096);
    if (cfg_load(confdir, &err) < 0)
        msg_fatal("%s", sb_str(&err));
    sb_free(&err);
    apply_overrides(argc, argv);
    log_configure(cfg_str(P_syslog_name), cfg_str(P_syslog_facility), cfg_str(P_maillog_file));
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_sigterm };
    sigaction(SIGTERM, &sa, NULL);
    if (srv.standalone && dup2(0, MASTER_LISTEN_FD) < 0)
        msg_fatal("dup2: %m");

    if (ops->pre_init)
        ops->pre_init();
    if (srv.chroot_ && (getuid() == 0 || geteuid() == 0)) {
        const char *qdir = cfg_str(P_queue_directory);
        if (chroot(qdir) < 0 || chdir("/") < 0)
            msg_fatal("chroot to %s: %m", qdir);
    }
    if (!srv.keep_root)
        drop_privileges(cfg_str(P_mail_owner));

    if (ops->mode == SERVER_EVENT) {
        srv.base = event_base_new();
        if (!srv.base)
            msg_fatal("cannot create event loop");
    }
    if (ops->post_init)
        ops->post_init(srv.base);

    if (srv.standalone && ops->mode == SERVER_SINGLE) {
        ops->serve(MASTER_LISTEN_FD);
        server_exit();
    }
    if (srv.standalone && ops->mode == SERVER_EVENT) {
        /* One connection given on stdin: serve it, exit when it ends. */
        srv.clients = 1;
        srv.draining = true;
        set_nonblock(0, true);
        ops->accept_event(0, srv.base);
        event_base_dispatch(srv.base);
        server_exit();
    }
    if (ops->mode == SERVER_SINGLE)
        serve_single();
    else
        serve_event();
    server_exit();
}
