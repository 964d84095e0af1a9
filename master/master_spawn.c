/* master_spawn.c: starting one daemon for a service: fork, the descriptor
 * contract of server.h (fd 3 status pipe, fd 4 alive pipe, fd 5 listener),
 * a minimal environment, and the command line built from master.cf. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

#define SPAWN_FIRST_FREE_FD (MASTER_LISTEN_FD + MASTER_LISTEN_MAX)   /* above the contract */
#define SPAWN_FD_SCAN_LIMIT 65536

/* Sanitizer settings pass through when set, so that instrumented builds
 * report from every daemon; they are never set in production. */
static const char *const sanitizer_env[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" };

/* Put the contract descriptors at 3, 4 and 5 (and up, one per listening
 * socket). They are first moved above the contract so that none is
 * overwritten while another is still being moved. */
static int install_contract_fds(const struct service *svc)
{
    int src[2 + MASTER_LISTEN_MAX] = { ms.status_wfd, ms.alive_rfd };
    int tmp[2 + MASTER_LISTEN_MAX];
    int count = 2 + svc->nlisten;
    for (int k = 0; k < svc->nlisten; k++)
        src[2 + k] = svc->listen_fds[k];
    for (int i = 0; i < count; i++)
        if ((tmp[i] = fcntl(src[i], F_DUPFD, SPAWN_FIRST_FREE_FD)) < 0)
            return -1;
    for (int i = 0; i < count; i++)
        if (dup2(tmp[i], MASTER_STATUS_FD + i) < 0)
            return -1;
    int last = MASTER_STATUS_FD + count - 1;
    /* Everything else master holds (other listeners, pipes, the lock, the
     * log) stays out of the daemon. Closed at exec rather than now, so that
     * an exec failure can still be logged. */
    if (close_range((unsigned)last + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        for (int fd = last + 1; fd < SPAWN_FD_SCAN_LIMIT; fd++)
            close(fd);
    for (int fd = MASTER_STATUS_FD; fd <= last; fd++)
        if (set_cloexec(fd, false) < 0)
            return -1;
    return 0;
}

static void reset_signals(void)
{
    static const int sigs[] = { SIGHUP, SIGTERM, SIGINT, SIGCHLD, SIGPIPE };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* PATH, the generation, import_environment, and sanitizer settings. */
static char **child_environment(char *gen_buf, size_t gen_size)
{
    size_t max = ms.p.nenv + 3 + sizeof(sanitizer_env) / sizeof(sanitizer_env[0]);
    char **envp = xcalloc(max, sizeof(char *));
    size_t n = 0;
    snprintf(gen_buf, gen_size, "TERN_MASTER_GENERATION=%u", ms.generation);
    envp[n++] = gen_buf;
    envp[n++] = "PATH=/usr/bin:/bin";
    for (size_t i = 0; i < ms.p.nenv; i++)
        envp[n++] = ms.p.env[i];
    for (size_t i = 0; i < sizeof(sanitizer_env) / sizeof(sanitizer_env[0]); i++) {
        const char *v = getenv(sanitizer_env[i]);
        if (!v)
            continue;
        struct strbuf sb = STRBUF_INIT(0);
        sb_appendf(&sb, "%s=%s", sanitizer_env[i], v);
        envp[n++] = (char *)sb_str(&sb);   /* exec or _exit frees it */
    }
    envp[n] = NULL;
    return envp;
}

/* PROGRAM -c CONFDIR -n NAME -t TYPE [-s N] [-u] [-r] [-w N] [-v] master.cf-args... */
static char **child_arguments(const struct service *svc, char *wake_buf, size_t wake_size,
                              char *count_buf, size_t count_size)
{
    const struct master_service *c = &svc->cfg;
    char **argv = xcalloc((size_t)c->argc + 16, sizeof(char *));
    int n = 0;
    argv[n++] = c->command;
    argv[n++] = "-c";
    argv[n++] = ms.confdir;
    argv[n++] = "-n";
    argv[n++] = c->name;
    argv[n++] = "-t";
    argv[n++] = (char *)mastercf_kind_name(c->kind);
    if (svc->nlisten > 1) {
        snprintf(count_buf, count_size, "%d", svc->nlisten);
        argv[n++] = "-s";
        argv[n++] = count_buf;
    }
    if (!c->unpriv)
        argv[n++] = "-u";
    if (c->chroot_)
        argv[n++] = "-r";
    if (c->wakeup > 0) {
        snprintf(wake_buf, wake_size, "%d", c->wakeup);
        argv[n++] = "-w";
        argv[n++] = wake_buf;
    }
    if (ms.verbose)
        argv[n++] = "-v";
    for (int i = 0; i < c->argc; i++)
        argv[n++] = c->args[i];
    argv[n] = NULL;
    return argv;
}

/* In the child: never returns. */
static void __attribute__((noreturn)) exec_child(const struct service *svc, const char *path)
{
    char gen[64], wake[32], count[16];
    reset_signals();
    if (install_contract_fds(svc) < 0)
        _exit(126);
    char **envp = child_environment(gen, sizeof(gen));
    char **argv = child_arguments(svc, wake, sizeof(wake), count, sizeof(count));
    execve(path, argv, envp);
    msg_warn("cannot execute %s: %m", path);
    _exit(127);
}

void master_spawn(struct service *svc)
{
    struct strbuf path = STRBUF_INIT(0);
    sb_appendf(&path, "%s/%s", ms.p.daemon_dir, svc->cfg.command);
    pid_t pid = fork();
    if (pid < 0) {
        msg_warn("service %s: cannot fork: %m; trying again in 1 second", svc->cfg.name);
        svc->throttle_until = time(NULL) + 1;
        sb_free(&path);
        return;
    }
    if (pid == 0)
        exec_child(svc, path.data);
    master_add_child(pid, svc, path.data);
    msg_debug("service %s: started %s pid %ld", svc->key, path.data, (long)pid);
    sb_free(&path);
}
