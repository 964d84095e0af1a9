/* master_service.c: master's services: opening each listener itself,
 * spawning children with the descriptor contract of server.h, keeping each
 * pool between its limits, and reaping with back-off for failing services. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "queue.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

static const char *kind_name(enum service_kind k)
{
    switch (k) {
    case SVC_INET: return "inet";
    case SVC_UNIX: return "unix";
    case SVC_PASS: return "pass";
    default: return "fifo";
    }
}

char *master_service_key(const struct master_service *cfg)
{
    struct strbuf key = STRBUF_INIT(1024);
    sb_appendf(&key, "%s/%s", cfg->name, kind_name(cfg->kind));
    char *s = xstrdup(sb_str(&key));
    sb_free(&key);
    return s;
}

static int open_inet(const char *name, struct strbuf *err)
{
    char host[256], port[16];
    if (mastercf_inet_split(name, host, sizeof(host), port, sizeof(port)) < 0) {
        sb_appendf(err, "bad inet service address \"%s\"", name);
        return -1;
    }
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    const char *inet = cfg_str(P_inet_protocols);
    hints.ai_family = strcmp(inet, "ipv4") == 0 ? AF_INET : strcmp(inet, "ipv6") == 0 ? AF_INET6 : AF_UNSPEC;
    struct addrinfo *res;
    int gai = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (gai) {
        sb_appendf(err, "cannot resolve %s: %s", name, gai_strerror(gai));
        return -1;
    }
    /* Without a host, prefer one dual-stack IPv6 socket, else IPv4. */
    struct addrinfo *ai = res;
    for (struct addrinfo *p = res; !*host && p; p = p->ai_next)
        if (p->ai_family == AF_INET6 && hints.ai_family != AF_INET) {
            ai = p;
            break;
        }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1, off = 0;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (ai->ai_family == AF_INET6 && !*host)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        sb_appendf(err, "cannot listen on %s: %s", name, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int open_unix(const struct master_service *cfg, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT(sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    if (sb_appendf(&path, "%s/%s/%s", cfg_str(P_queue_directory),
                   cfg->private_ ? QDIR_PRIVATE : QDIR_PUBLIC, cfg->name) < 0) {
        sb_appendf(err, "socket path for service %s is too long", cfg->name);
        return -1;
    }
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    str_copy(sun.sun_path, sizeof(sun.sun_path), path.data);
    unlink(path.data);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 1024) < 0) {
        sb_appendf(err, "cannot listen on %s: %s", path.data, strerror(errno));
        if (fd >= 0)
            close(fd);
        sb_free(&path);
        return -1;
    }
    /* The directory (private/ 0700, public/ 0710) is the protection. */
    chmod(path.data, 0666);
    if (geteuid() == 0) {
        uid_t uid;
        gid_t gid;
        if (user_ids(cfg_str(P_mail_owner), &uid, &gid) == 0 && chown(path.data, uid, gid) < 0)
            msg_warn("cannot chown %s: %m", path.data);
    }
    sb_free(&path);
    return fd;
}

int master_open_listener(struct service *svc, struct strbuf *err)
{
    switch (svc->cfg.kind) {
    case SVC_INET:
        svc->listen_fd = open_inet(svc->cfg.name, err);
        break;
    case SVC_UNIX:
        svc->listen_fd = open_unix(&svc->cfg, err);
        break;
    default:
        sb_appendf(err, "master.cf:%d: service type %s is not supported yet",
                   svc->cfg.lineno, svc->cfg.kind == SVC_PASS ? "pass" : "fifo");
        svc->listen_fd = -1;
    }
    if (svc->listen_fd >= 0)
        set_nonblock(svc->listen_fd, true);
    return svc->listen_fd < 0 ? -1 : 0;
}

void master_close_listener(struct service *svc)
{
    if (svc->listen_fd >= 0)
        close(svc->listen_fd);
    svc->listen_fd = -1;
}

int master_load_services(struct service **out, size_t *n, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT(4096);
    sb_appendf(&path, "%s/master.cf", ms.confdir);
    struct master_service *cfgs;
    size_t count;
    int rc = mastercf_load(path.data, (int)cfg_int(P_default_process_limit), &cfgs, &count, err);
    sb_free(&path);
    if (rc < 0)
        return -1;
    struct service *svcs = xcalloc(count ? count : 1, sizeof(*svcs));
    for (size_t i = 0; i < count; i++) {
        svcs[i].cfg = cfgs[i];
        svcs[i].listen_fd = -1;
    }
    free(cfgs);   /* the strings now belong to svcs */
    *out = svcs;
    *n = count;
    return 0;
}

int master_count(const struct service *svc, int *avail)
{
    char *key = master_service_key(&svc->cfg);
    int total = 0, av = 0;
    for (size_t i = 0; i < ms.nchildren; i++) {
        const struct child *c = &ms.children[i];
        if (c->generation == ms.generation && strcmp(c->service_key, key) == 0) {
            total++;
            av += c->avail;
        }
    }
    free(key);
    if (avail)
        *avail = av;
    return total;
}

/* Child side of fork: the descriptor contract, then exec. Never returns. */
static void exec_child(const struct service *svc)
{
    if (dup2(ms.status_wfd, MASTER_STATUS_FD) < 0 || dup2(ms.alive_rfd, MASTER_ALIVE_FD) < 0
        || dup2(svc->listen_fd, MASTER_LISTEN_FD) < 0)
        _exit(127);
    for (int fd = MASTER_LISTEN_FD + 1; fd < 1024; fd++)
        close(fd);
    set_cloexec(MASTER_STATUS_FD, false);
    set_cloexec(MASTER_ALIVE_FD, false);
    set_cloexec(MASTER_LISTEN_FD, false);
    set_nonblock(MASTER_LISTEN_FD, true);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);

    char gen[64], wake[32];
    snprintf(gen, sizeof(gen), "TERN_MASTER_GENERATION=%u", ms.generation);
    char *envp[32];
    int ne = 0;
    envp[ne++] = gen;
    envp[ne++] = "PATH=/usr/bin:/bin:/usr/sbin:/sbin";
    static const char *passed[] = { "TZ", "LANG", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" };
    for (size_t i = 0; i < sizeof(passed) / sizeof(passed[0]) && ne < 30; i++) {
        const char *v = getenv(passed[i]);
        if (v) {
            struct strbuf e = STRBUF_INIT(4096);
            if (sb_appendf(&e, "%s=%s", passed[i], v) == 0)
                envp[ne++] = (char *)sb_str(&e);   /* the exec frees everything */
        }
    }
    envp[ne] = NULL;

    const char *argv[MASTER_LISTEN_FD + 300];
    int na = 0;
    argv[na++] = svc->cfg.command;
    argv[na++] = "-c";
    argv[na++] = ms.confdir;
    argv[na++] = "-n";
    argv[na++] = svc->cfg.name;
    argv[na++] = "-t";
    argv[na++] = svc->cfg.kind == SVC_INET ? "inet" : "unix";
    if (!svc->cfg.unpriv)
        argv[na++] = "-u";
    if (svc->cfg.chroot_)
        argv[na++] = "-r";
    if (svc->cfg.wakeup) {
        snprintf(wake, sizeof(wake), "%d", svc->cfg.wakeup);
        argv[na++] = "-w";
        argv[na++] = wake;
    }
    if (ms.verbose)
        argv[na++] = "-v";
    for (int i = 0; i < svc->cfg.argc && na < (int)(sizeof(argv) / sizeof(argv[0])) - 1; i++)
        argv[na++] = svc->cfg.args[i];
    argv[na] = NULL;

    struct strbuf path = STRBUF_INIT(4096);
    sb_appendf(&path, "%s/%s", ms.daemon_dir, svc->cfg.command);
    execve(path.data, (char **)argv, envp);
    msg_warn("cannot execute %s: %m", path.data);
    _exit(127);
}

void master_spawn(struct service *svc)
{
    pid_t pid = fork();
    if (pid < 0) {
        msg_warn("fork: %m");
        return;
    }
    if (pid == 0)
        exec_child(svc);
    if (ms.nchildren == ms.capchildren) {
        ms.capchildren = ms.capchildren ? ms.capchildren * 2 : 32;
        ms.children = xrealloc(ms.children, ms.capchildren * sizeof(*ms.children));
    }
    struct child *c = &ms.children[ms.nchildren++];
    c->pid = pid;
    c->generation = ms.generation;
    c->service_key = master_service_key(&svc->cfg);
    c->avail = true;   /* until it says otherwise: it will accept */
    msg_debug("spawned %s pid %ld", c->service_key, (long)pid);
}

static struct service *service_by_key(const char *key)
{
    for (size_t i = 0; i < ms.nsvcs; i++) {
        char *k = master_service_key(&ms.svcs[i].cfg);
        bool same = strcmp(k, key) == 0;
        free(k);
        if (same)
            return &ms.svcs[i];
    }
    return NULL;
}

static void child_exited(struct child *c, int status)
{
    struct service *svc = c->generation == ms.generation ? service_by_key(c->service_key) : NULL;
    bool abnormal = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
    if (WIFSIGNALED(status))
        msg_warn("process %s/%s pid %ld killed by signal %d", ms.daemon_dir,
                 svc ? svc->cfg.command : c->service_key, (long)c->pid, WTERMSIG(status));
    else if (abnormal)
        msg_warn("process %s/%s pid %ld exit status %d", ms.daemon_dir,
                 svc ? svc->cfg.command : c->service_key, (long)c->pid, WEXITSTATUS(status));
    if (!svc)
        return;
    if (!abnormal) {
        svc->failures = 0;
        return;
    }
    /* The first failure restarts at once; repeated ones back off, doubling. */
    if (svc->failures++ > 0) {
        long limit = cfg_time(P_service_throttle_time);
        long delay = svc->failures >= 8 ? limit : (1L << (svc->failures - 2));
        if (delay > limit)
            delay = limit;
        svc->throttle_until = time(NULL) + delay;
        msg_warn("service %s: throttling for %ld seconds after repeated failures",
                 svc->cfg.name, delay);
    }
}

void master_reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < ms.nchildren; i++) {
            if (ms.children[i].pid != pid)
                continue;
            child_exited(&ms.children[i], status);
            free(ms.children[i].service_key);
            ms.children[i] = ms.children[--ms.nchildren];
            break;
        }
    }
}

void master_read_status(void)
{
    struct master_status st;
    for (int i = 0; i < 1000; i++) {
        ssize_t n = read(ms.status_rfd, &st, sizeof(st));
        if (n != (ssize_t)sizeof(st))
            return;
        for (size_t j = 0; j < ms.nchildren; j++)
            if (ms.children[j].pid == st.pid && ms.children[j].generation == st.generation)
                ms.children[j].avail = st.avail == MASTER_STAT_AVAIL;
    }
}

void master_kill_all(int sig)
{
    for (size_t i = 0; i < ms.nchildren; i++)
        kill(ms.children[i].pid, sig);
}
