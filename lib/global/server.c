/* server.c: the skeleton every daemon runs in (see server.h): options from
 * master, configuration, the root-only pre-init, chroot, the verified
 * privilege drop, and the serve loop in SINGLE (blocking, one client at a
 * time) or EVENT (libevent, many clients) mode, with busy/idle hints to master. */
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chroot.h"
#include "config.h"
#include "evframe.h"
#include "log.h"
#include "maps.h"
#include "metrics_client.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

#define SERVER_ACCEPT_BURST 64      /* accepts per readiness event */
#define SERVER_PASS_TIMEOUT_MS 5000 /* wait for a passed descriptor */
#define SERVER_MAX_OVERRIDES 256

enum listen_kind { LISTEN_STREAM, LISTEN_PASS, LISTEN_FIFO };

static struct {
    const struct server_ops *ops;
    const char *progname;
    const char *service;
    enum listen_kind listen_kind;
    int nlisten;                /* listening sockets at MASTER_LISTEN_FD and up (-s) */
    unsigned generation;
    bool keep_root, chroot_, standalone;
    int wakeup;                 /* seconds, 0 = none */
    const char *overrides[SERVER_MAX_OVERRIDES];
    int noverrides;
    char **args;                /* arguments after the options */
    int nargs;
    long max_use, max_idle, drain_time;
    int clients;                /* EVENT: sessions now */
    long served;                /* clients since start */
    bool draining;
    int reported;               /* last status sent to master, -1 none */
    struct event_base *base;
    struct event *listen_evs[MASTER_LISTEN_MAX];   /* EVENT: nlisten of them once serving */
    struct event *alive_ev, *idle_ev, *wakeup_ev, *term_ev, *drain_ev;
} srv = { .reported = -1, .nlisten = 1 };

static volatile sig_atomic_t srv_terminate;
static volatile sig_atomic_t srv_in_client;

const char *server_service_name(void) { return srv.service ? srv.service : "-"; }
struct event_base *server_event_base(void) { return srv.base; }

char **server_args(int *count)
{
    static char *none[1];
    if (count)
        *count = srv.nargs;
    return srv.args ? srv.args : none;
}

/* ---- privileges ---- */

int user_ids(const char *user, uid_t *uid, gid_t *gid)
{
    struct passwd *pw = getpwnam(user);
    if (!pw)
        return -1;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

/* The drop must be complete (all ids and the group list) and irreversible.
 * extra: the one supplementary group the daemon asked to keep, else gid. */
static void verify_dropped(const char *user, uid_t uid, gid_t gid, gid_t extra)
{
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
        msg_fatal("privilege drop to %s incomplete: uid %ld/%ld gid %ld/%ld", user,
                  (long)getuid(), (long)geteuid(), (long)getgid(), (long)getegid());
    gid_t groups[3];
    int ng = getgroups(3, groups);
    for (int i = 0; i < ng; i++)
        if (groups[i] != gid && groups[i] != extra)
            ng = -1;
    if (ng < 0 || ng > 2)
        msg_fatal("privilege drop to %s left supplementary groups", user);
    if (setuid(0) == 0 || seteuid(0) == 0)
        msg_fatal("privilege drop to %s can be undone; refusing to run", user);
}

/* The account is looked up before a chroot, where /etc/passwd is gone. */
static void lookup_unprivileged(const char *user, uid_t *uid, gid_t *gid)
{
    if (user_ids(user, uid, gid) < 0)
        msg_fatal("mail_owner account \"%s\" does not exist; run `tern setup` to create it", user);
    if (*uid == 0 || *gid == 0)
        msg_fatal("mail_owner \"%s\" has uid or gid 0; it must be an unprivileged account "
                  "of its own", user);
}

/* The setgid_group, looked up before a chroot like the account. */
static gid_t setgid_group_id(void)
{
    const char *name = cfg_str(P_setgid_group);
    struct group *gr = getgrnam(name);
    if (!gr)
        msg_fatal("setgid_group \"%s\" does not exist; run `tern setup` to create it", name);
    if (gr->gr_gid == 0)
        msg_fatal("setgid_group \"%s\" has gid 0; it must be a group of its own", name);
    return gr->gr_gid;
}

static void drop_to_ids(const char *user, uid_t uid, gid_t gid, gid_t extra)
{
    gid_t groups[2] = { gid, extra };
    if (setgroups(extra == gid ? 1 : 2, groups) < 0)
        msg_fatal("cannot drop privileges to %s: setgroups: %m", user);
    if (setgid(gid) < 0)
        msg_fatal("cannot drop privileges to %s: setgid(%ld): %m", user, (long)gid);
    if (setuid(uid) < 0)
        msg_fatal("cannot drop privileges to %s: setuid(%ld): %m", user, (long)uid);
    verify_dropped(user, uid, gid, extra);
}

void drop_privileges(const char *user)
{
    if (getuid() != 0 && geteuid() != 0)
        return;
    uid_t uid;
    gid_t gid;
    lookup_unprivileged(user, &uid, &gid);
    drop_to_ids(user, uid, gid, gid);
}

/* ---- talking to master ---- */

/* Busy/idle hint; only changes are sent. A hint that does not fit in a
 * full pipe is tried again at the next report (master never trusts them
 * blindly anyway). */
static void report(int avail)
{
    if (srv.standalone || srv.reported == avail)
        return;
    struct master_status st = { getpid(), srv.generation, avail };
    if (write(MASTER_STATUS_FD, &st, sizeof(st)) == (ssize_t)sizeof(st))
        srv.reported = avail;
    else
        msg_debug("status report to master failed: %m");
}

/* Once, at the first client (a hint like the others). */
static void report_served(void)
{
    static bool sent;
    struct master_status st = { getpid(), srv.generation, MASTER_STAT_SERVED };
    if (sent || srv.standalone)
        return;
    sent = write(MASTER_STATUS_FD, &st, sizeof(st)) == (ssize_t)sizeof(st);
}

static void __attribute__((noreturn)) server_exit(void)
{
    static bool exiting;
    if (!exiting) {
        exiting = true;
        if (srv.ops->pre_exit)
            srv.ops->pre_exit();
        metrics_flush();
    }
    exit(0);
}

/* ---- options ---- */

static void __attribute__((noreturn)) usage_fatal(const char *why)
{
    msg_fatal("%s; usage: %s -c CONFDIR -n SERVICE -t TYPE [-u] [-r] [-w SECONDS] [-v] "
              "[-o name=value]... (daemons are started by master)", why, srv.progname);
}

static void set_listen_kind(const char *type)
{
    static const struct name_code kinds[] = {
        { "inet", LISTEN_STREAM }, { "unix", LISTEN_STREAM },
        { "pass", LISTEN_PASS }, { "fifo", LISTEN_FIFO }, { NULL, -1 },
    };
    int kind = name_code(kinds, type);
    if (kind < 0)
        usage_fatal("unknown service type after -t");
    srv.listen_kind = (enum listen_kind)kind;
}

static void add_override(const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        usage_fatal("-o needs name=value");
    if (srv.noverrides >= SERVER_MAX_OVERRIDES)
        usage_fatal("too many -o options");
    srv.overrides[srv.noverrides++] = arg;
}

/* '+': stop at the first non-option, so that a daemon's own arguments
 * (and anything after them) are left for it in server_args(). */
static void parse_args(int argc, char **argv, const char **confdir)
{
    int c;
    long v;
    opterr = 0;
    while ((c = getopt(argc, argv, "+c:n:t:s:urw:vo:S")) != -1) {
        switch (c) {
        case 'c': *confdir = optarg; break;
        case 'n': srv.service = optarg; break;
        case 't': set_listen_kind(optarg); break;
        case 's':
            if (parse_long(optarg, 1, MASTER_LISTEN_MAX, &v) < 0)
                usage_fatal("bad -s value");
            srv.nlisten = (int)v;
            break;
        case 'u': srv.keep_root = true; break;
        case 'r': srv.chroot_ = true; break;
        case 'w':
            if (parse_long(optarg, 0, 86400L * 7, &v) < 0)
                usage_fatal("bad -w value");
            srv.wakeup = (int)v;
            break;
        case 'v': msg_verbose++; break;
        case 'o': add_override(optarg); break;
        case 'S': srv.standalone = true; break;
        default: usage_fatal("unknown option or missing option value");
        }
    }
    srv.args = argv + optind;
    srv.nargs = argc - optind;
}

/* In master.cf order, after main.cf: a later -o for a name wins. */
static void apply_overrides(void)
{
    for (int i = 0; i < srv.noverrides; i++) {
        const char *arg = srv.overrides[i];
        const char *eq = strchr(arg, '=');
        char *name = xstrndup(arg, (size_t)(eq - arg));
        cfg_override(name, eq + 1);
        free(name);
    }
}

static unsigned parse_generation(const char *gen)
{
    long v;
    if (parse_long(gen, 0, 0x7fffffffL, &v) < 0)
        msg_fatal("bad TERN_MASTER_GENERATION value \"%.40s\"", gen);
    return (unsigned)v;
}

/* Without these descriptors the process was not started by master. */
static void check_master_fds(void)
{
    for (int fd = MASTER_STATUS_FD; fd < MASTER_LISTEN_FD + srv.nlisten; fd++)
        if (fcntl(fd, F_GETFD) < 0) {
            fprintf(stderr, "%s: descriptor %d from master is missing; this is a Tern daemon "
                    "started by master, not a command\n", srv.progname, fd);
            exit(1);
        }
}

/* ---- accepting clients ---- */

/* The descriptor a "pass" client sends over its connection. */
static int receive_passed_fd(int conn)
{
    struct pollfd pfd = { conn, POLLIN, 0 };
    if (poll(&pfd, 1, SERVER_PASS_TIMEOUT_MS) <= 0)
        return -1;
    char byte;
    struct iovec iov = { &byte, 1 };
    union {
        struct cmsghdr hdr;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
    if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) <= 0)
        return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS
        || cm->cmsg_len != CMSG_LEN(sizeof(int)) || (msg.msg_flags & MSG_CTRUNC))
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
    return fd;
}

/* Next client from the listener, or -1 (nothing there, or a failed pass). */
static int server_accept(int lfd, bool nonblock)
{
    int flags = SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0);
    int fd = accept4(lfd, NULL, NULL, srv.listen_kind == LISTEN_PASS ? SOCK_CLOEXEC : flags);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            msg_warn("accept on service %s: %m", server_service_name());
        return -1;
    }
    if (srv.listen_kind != LISTEN_PASS)
        return fd;
    int client = receive_passed_fd(fd);
    close(fd);
    if (client < 0) {
        msg_warn("service %s: a connection passed no descriptor", server_service_name());
        return -1;
    }
    set_nonblock(client, nonblock);
    return client;
}

/* A fifo trigger: empty the pipe, then run the daemon's wakeup action. */
static void fifo_trigger(int fd)
{
    char buf[1024];
    for (int i = 0; i < 64 && read(fd, buf, sizeof(buf)) > 0; i++)
        continue;
    if (srv.ops->wakeup)
        srv.ops->wakeup();
}

/* ---- SINGLE mode ---- */

/* poll timeout in ms until the nearest of the wakeup and idle deadlines
 * and the daemon's own (usec, 0: none). */
static int single_timeout(time_t now, time_t next_wakeup, time_t idle_deadline,
                          long long daemon_deadline)
{
    time_t next = now + 60;
    if (next_wakeup && next_wakeup < next)
        next = next_wakeup;
    if (idle_deadline && idle_deadline < next)
        next = idle_deadline;
    int ms = next <= now ? 0 : (int)(next - now) * 1000;
    if (daemon_deadline) {
        long long left = (daemon_deadline - now_usec() + 999) / 1000;
        if (left < ms)
            ms = left < 0 ? 0 : (int)left;
    }
    return ms;
}

/* The daemon's idle deadline (0: none). */
static long long single_daemon_deadline(void)
{
    return srv.ops->idle_deadline_usec && srv.ops->idle_deadline ? srv.ops->idle_deadline_usec() : 0;
}

/* The earlier of two deadlines (0: none). */
static long long earlier_deadline(long long a, long long b)
{
    return !a ? b : !b ? a : a < b ? a : b;
}

/* One accepted client, start to finish. SIGTERM, blocked elsewhere in the
 * loop, is let through here and exits at once. */
static void single_serve_one(int fd, const sigset_t *term_only)
{
    report(MASTER_STAT_TAKEN);
    report_served();
    srv_in_client = 1;
    sigprocmask(SIG_UNBLOCK, term_only, NULL);
    srv.ops->serve(fd);
    sigprocmask(SIG_BLOCK, term_only, NULL);
    srv_in_client = 0;
    close(fd);
    srv.served++;
}

/* SIGTERM stays blocked except inside ppoll() and while serving, so that
 * one arriving between the check and the wait cannot be missed. */
static void single_block_term(sigset_t *term_only, sigset_t *wait_mask)
{
    sigemptyset(term_only);
    sigaddset(term_only, SIGTERM);
    sigprocmask(SIG_BLOCK, term_only, wait_mask);
    sigdelset(wait_mask, SIGTERM);
}

static void serve_single(void)
{
    bool may_exit = !srv.ops->long_running;
    time_t now = time(NULL);
    time_t next_wakeup = srv.wakeup ? now + srv.wakeup : 0;
    time_t idle_since = now;
    sigset_t term_only, wait_mask;
    single_block_term(&term_only, &wait_mask);
    report(MASTER_STAT_AVAIL);
    for (;;) {
        if (srv_terminate)
            server_exit();
        time_t idle_deadline = may_exit && srv.max_idle > 0 ? idle_since + srv.max_idle : 0;
        long long daemon_deadline = single_daemon_deadline();
        /* pfd[0]: master's pipe; then the listening sockets */
        struct pollfd pfd[1 + MASTER_LISTEN_MAX] = { { MASTER_ALIVE_FD, POLLIN, 0 } };
        for (int i = 0; i < srv.nlisten; i++)
            pfd[1 + i] = (struct pollfd){ MASTER_LISTEN_FD + i, POLLIN, 0 };
        int wait_ms = single_timeout(now, next_wakeup, idle_deadline,
                                     earlier_deadline(daemon_deadline, metrics_flush_deadline()));
        struct timespec ts = { wait_ms / 1000, (wait_ms % 1000) * 1000000L };
        int rc = ppoll(pfd, (nfds_t)(1 + srv.nlisten), &ts, &wait_mask);
        if (rc < 0 && errno != EINTR)
            msg_fatal("poll: %m");
        now = time(NULL);
        if (rc > 0 && pfd[0].revents)
            server_exit();      /* master is gone or reloaded: no new clients */
        if (next_wakeup && now >= next_wakeup) {
            if (srv.ops->wakeup)
                srv.ops->wakeup();
            next_wakeup = now + srv.wakeup;
        }
        if (daemon_deadline && now_usec() >= daemon_deadline)
            srv.ops->idle_deadline();
        metrics_flush_due();
        /* one client per turn, the sockets taken in turn so that a busy one
         * cannot starve the others */
        static int first;
        int ready = -1;
        for (int k = 0; rc > 0 && ready < 0 && k < srv.nlisten; k++) {
            int i = (first + k) % srv.nlisten;
            if (pfd[1 + i].revents & POLLIN) {
                ready = MASTER_LISTEN_FD + i;
                first = (i + 1) % srv.nlisten;
            }
        }
        if (ready >= 0) {
            if (srv.listen_kind == LISTEN_FIFO) {
                fifo_trigger(ready);
            } else {
                int fd = server_accept(ready, false);
                if (fd < 0)
                    continue;
                single_serve_one(fd, &term_only);
                if (srv_terminate || srv.draining
                    || (may_exit && srv.max_use > 0 && srv.served >= srv.max_use)
                    || (may_exit && maps_changed()))
                    server_exit();
                report(MASTER_STAT_AVAIL);
            }
            now = idle_since = time(NULL);
            continue;
        }
        if (idle_deadline && now >= idle_deadline)
            server_exit();
    }
}

/* ---- EVENT mode ---- */

static bool event_full(void)
{
    int limit = srv.ops->client_limit ? srv.ops->client_limit() : 0;
    return limit > 0 && srv.clients >= limit;
}

/* Accept or not, tell master, and run the idle timer only with no sessions. */
static void event_update_listen(void)
{
    bool accepting = !srv.draining && !event_full();
    for (int i = 0; i < srv.nlisten; i++) {
        if (accepting)
            event_add(srv.listen_evs[i], NULL);
        else
            event_del(srv.listen_evs[i]);
    }
    report(accepting ? MASTER_STAT_AVAIL : MASTER_STAT_TAKEN);
    bool may_idle_exit = !srv.ops->long_running && srv.max_idle > 0 && !srv.draining;
    if (srv.clients == 0 && may_idle_exit) {
        if (!evtimer_pending(srv.idle_ev, NULL)) {
            struct timeval tv = { srv.max_idle, 0 };
            evtimer_add(srv.idle_ev, &tv);
        }
    } else {
        evtimer_del(srv.idle_ev);
    }
}

static void event_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    if (srv.listen_kind == LISTEN_FIFO) {
        fifo_trigger(lfd);
        return;
    }
    /* a rebuilt table: the sessions running finish, a fresh process reads it
     * (not before the first client: a process always gets some work done) */
    if (!srv.ops->long_running && !srv.draining && srv.served > 0 && maps_changed()) {
        server_drain();
        return;
    }
    for (int i = 0; i < SERVER_ACCEPT_BURST && !srv.draining && !event_full(); i++) {
        int fd = server_accept(lfd, true);
        if (fd < 0)
            break;
        srv.clients++;
        srv.served++;
        report_served();
        if (!srv.ops->long_running && srv.max_use > 0 && srv.served >= srv.max_use)
            srv.draining = true;    /* this was the last one; a fresh process follows */
        srv.ops->accept_event(fd, srv.base);
    }
    event_update_listen();
}

struct bufferevent *server_client_bufferevent(int fd, struct event_base *base, int options)
{
    struct bufferevent *bev = bufferevent_socket_new(base, fd, options);
    if (!bev) {
        msg_warn("cannot set up a session for a new connection: %s", strerror(errno));
        close(fd);
        server_client_done();
    }
    return bev;
}

void server_serve_frames(int fd, struct event_base *base, const struct evframe_service *svc,
                         void *ctx)
{
    struct bufferevent *bev =
        server_client_bufferevent(fd, base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (bev)
        evframe_serve_client(bev, svc, ctx);
}

void server_frames_closed(void *ctx)
{
    (void)ctx;
    server_client_done();
}

void server_client_done(void)
{
    if (srv.clients > 0)
        srv.clients--;
    if (!srv.base)
        return;
    if (srv.draining && srv.clients == 0) {
        event_base_loopexit(srv.base, NULL);
        return;
    }
    if (srv.listen_evs[0])
        event_update_listen();
}

void server_drain(void)
{
    srv.draining = true;
    if (!srv.base) {
        if (!srv_in_client)
            server_exit();
        return;     /* SINGLE: exit once the current client is done */
    }
    if (srv.listen_evs[0])
        event_update_listen();
    if (srv.clients == 0)
        event_base_loopexit(srv.base, NULL);
}

static void event_on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    msg_info("exiting with %d session(s) still open, %ld s after master stopped or reloaded",
             srv.clients, srv.drain_time);
    event_base_loopexit(srv.base, NULL);
}

/* EOF (or anything) on the alive pipe: master is gone or has reloaded. */
static void event_on_alive(evutil_socket_t fd, short what, void *arg)
{
    event_del(srv.alive_ev);
    server_drain();
    if (srv.clients > 0) {
        srv.drain_ev = evtimer_new(srv.base, event_on_drain_timeout, NULL);
        struct timeval tv = { srv.drain_time, 0 };
        evtimer_add(srv.drain_ev, &tv);
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

static struct event *event_or_die(struct event *ev)
{
    if (!ev)
        msg_fatal("cannot create an event: out of memory");
    return ev;
}

static void serve_event(void)
{
    struct event_base *b = srv.base;
    for (int i = 0; i < srv.nlisten; i++) {
        set_nonblock(MASTER_LISTEN_FD + i, true);
        srv.listen_evs[i] = event_or_die(event_new(b, MASTER_LISTEN_FD + i, EV_READ | EV_PERSIST,
                                                   event_on_accept, NULL));
    }
    srv.alive_ev = event_or_die(event_new(b, MASTER_ALIVE_FD, EV_READ, event_on_alive, NULL));
    event_add(srv.alive_ev, NULL);
    srv.idle_ev = event_or_die(evtimer_new(b, event_on_idle, NULL));
    if (srv.wakeup) {
        srv.wakeup_ev = event_or_die(event_new(b, -1, EV_PERSIST, event_on_wakeup, NULL));
        struct timeval tv = { srv.wakeup, 0 };
        event_add(srv.wakeup_ev, &tv);
    }
    event_update_listen();
    event_base_dispatch(b);
    server_exit();
}

/* ---- start-up ---- */

static void on_sigterm(int sig)
{
    /* A client may block for minutes; master wants us gone now. */
    if (srv_in_client)
        _exit(0);
    srv_terminate = 1;
}

static void install_signals(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_sigterm };   /* no SA_RESTART: wake poll() */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
}

static void load_configuration(const char *confdir)
{
    struct strbuf err = STRBUF_INIT(4096);
    if (cfg_load(confdir, &err) < 0)
        msg_fatal("%s", sb_str(&err));
    sb_free(&err);
    apply_overrides();
    cfg_log_configure();
    /* master checked main.cf; a master.cf -o value is seen first here, and
     * a bad one stops the daemon at once, not at its first use */
    struct strbuf bad = STRBUF_INIT(4096);
    if (cfg_validate(&bad) > 0) {
        while (bad.len && bad.data[bad.len - 1] == '\n')
            sb_truncate(&bad, bad.len - 1);
        msg_fatal("%s", sb_str(&bad));
    }
    sb_free(&bad);
    srv.max_use = cfg_int(P_max_use);
    srv.max_idle = cfg_time(P_max_idle);
    srv.drain_time = cfg_time(P_daemon_drain_time);
}

/* Every daemon works relative to queue_directory, so that the same paths
 * (private/cleanup, active/ID) hold inside and outside a chroot: entered
 * here, once, as root and before pre_init; chroot_enter() then makes that
 * directory "/" and the working directory stays in it. */
static void enter_queue_directory(void)
{
    const char *qdir = cfg_str(P_queue_directory);
    if (chdir(qdir) < 0)
        msg_fatal("cannot enter queue_directory %s: %m", qdir);
}

/* The queue directory, pre_init as root, then chroot and the drop to
 * mail_owner. */
static void enter_sandbox(void)
{
    bool root = getuid() == 0 || geteuid() == 0;
    const char *user = cfg_str(P_mail_owner);
    uid_t uid = 0;
    gid_t gid = 0, extra = 0;
    if (root && !srv.keep_root) {
        lookup_unprivileged(user, &uid, &gid);
        extra = srv.ops->keep_setgid_group ? setgid_group_id() : gid;
    }
    enter_queue_directory();
    if (srv.ops->pre_init)
        srv.ops->pre_init();
    if (srv.chroot_ && root)
        chroot_enter(cfg_str(P_queue_directory));
    if (root && !srv.keep_root)
        drop_to_ids(user, uid, gid, extra);
}

/* The daemon's system call filter, last before serving: after pre_init,
 * any chroot, the privilege drop and post_init, which open what they need. */
static void enter_syscall_filter(void)
{
    enum syscall_profile profile = srv.ops->syscall_filter;
    if (profile == SYSCALL_PROFILE_NONE || !cfg_bool(P_syscall_filter))
        return;
    struct strbuf err = STRBUF_INIT(1024);
    if (syscall_filter_apply(profile, &err) < 0)
        msg_fatal("%s; set syscall_filter = no to run without one", sb_str(&err));
    sb_free(&err);
    msg_debug("%s system call filter installed", syscall_profile_name(profile));
}

/* -S: one connection on stdin, served in this process, then exit. */
static void __attribute__((noreturn)) serve_standalone(void)
{
    if (srv.ops->mode == SERVER_SINGLE) {
        srv_in_client = 1;
        srv.ops->serve(0);
        srv_in_client = 0;
        server_exit();
    }
    srv.clients = 1;
    srv.draining = true;
    set_nonblock(0, true);
    srv.ops->accept_event(0, srv.base);
    if (srv.clients > 0)
        event_base_dispatch(srv.base);
    server_exit();
}

void server_main(int argc, char **argv, const char *progname, const struct server_ops *ops)
{
    const char *confdir = NULL;
    srv.ops = ops;
    srv.progname = progname;
    log_open(progname);
    parse_args(argc, argv, &confdir);
    const char *gen = getenv("TERN_MASTER_GENERATION");
    if (!gen && !srv.standalone) {
        fprintf(stderr, "%s: this is a Tern daemon started by master, not a command\n", progname);
        exit(1);
    }
    if (!srv.standalone)
        check_master_fds();
    srv.generation = gen ? parse_generation(gen) : 0;
    load_configuration(confdir);
    install_signals();
    enter_sandbox();
    if (ops->mode == SERVER_EVENT) {
        srv.base = event_base_new();
        if (!srv.base)
            msg_fatal("cannot create the event loop");
        srv.term_ev = event_or_die(evsignal_new(srv.base, SIGTERM, event_on_term, NULL));
        event_add(srv.term_ev, NULL);
    }
    if (ops->post_init)
        ops->post_init(srv.base);
    if (srv_terminate)
        server_exit();
    enter_syscall_filter();
    if (srv.standalone)
        serve_standalone();
    /* A daemon that keeps root (local, virtual, pipe) never connects to
     * private/metrics: root works by name in no directory mail_owner writes. */
    if (!ops->metrics_collector && geteuid() != 0)
        metrics_client_start(srv.base, NULL);
    /* What start-up freed (the configuration's parsing; libseccomp builds
     * the filter in well over 100 kB of heap) would stay in the process
     * as dirty pages, in each of the hundreds of cleanup and smtp
     * processes a busy instance runs: hand the free pages back. */
    malloc_trim(0);
    msg_debug("service %s ready (generation %u)", server_service_name(), srv.generation);
    if (ops->mode == SERVER_SINGLE)
        serve_single();
    else
        serve_event();
    server_exit();
}
