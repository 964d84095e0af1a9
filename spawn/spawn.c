/* spawn.c: the spawn daemon, as Postfix's spawn(8): for each connection
 * master hands it on its service's socket (UNIX or TCP), it runs the
 * service's command with the connection as the command's standard input,
 * output and error, as the unprivileged user= of the service, and waits for
 * it. This is how a policy server that speaks on stdin/stdout (Debian's
 * policyd-spf) serves check_policy_service:
 *
 *   policyd-spf unix - n n - 0 spawn user=nobody argv=/usr/bin/policyd-spf
 *
 * master runs it with unpriv=n: it stays root only so that the command can
 * take user='s identity (group list, gid, uid, verified); it never runs
 * anything as root, and refuses a user= of root or of mail_owner. The
 * command gets an environment of PATH and export_environment only, no
 * descriptor of Tern's but the connection, "/" as its working directory and
 * a process group of its own, killed when SERVICE_time_limit (else
 * command_time_limit) passes. One command at a time per process; master's
 * process limit for the service bounds how many run at once. A service
 * whose attributes are wrong stays up and closes each connection after a
 * warning that says what to fix. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pipe_command.h"
#include "server.h"
#include "spawn.h"
#include "util.h"

static struct {
    const char *service;
    struct spawn_attr attr;
    bool usable;                   /* the attributes and the account are right */
    char *refusal;                 /* else why */
    uid_t uid;
    gid_t gid;
    char **envp;
    int time_limit;
} spawn_cfg;

static void refuse(const char *why)
{
    spawn_cfg.usable = false;
    free(spawn_cfg.refusal);
    spawn_cfg.refusal = xstrdup(why);
}

/* In the child, before the command: the signal state of a new process
 * (SIG_IGN and the mask would survive exec), and nothing of the daemon's
 * open but the connection (run_command closes from 3 up once it is on 0-2). */
static void child_setup(void *ctx, int keep_fd)
{
    (void)ctx;
    (void)keep_fd;
    static const int sigs[] = { SIGPIPE, SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGCHLD, SIGALRM };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void spawn_serve(int fd)
{
    const struct spawn_attr *a = &spawn_cfg.attr;
    if (!spawn_cfg.usable) {
        msg_warn("spawn service %s refused: %s; connection closed", spawn_cfg.service,
                 spawn_cfg.refusal);
        return;
    }
    struct pipe_command c = {
        .path = a->argv[0], .argv = a->argv, .envp = spawn_cfg.envp,
        .user_name = a->user, .uid = spawn_cfg.uid, .gid = spawn_cfg.gid,
        .supplementary_groups = false, .cwd = "/", .time_limit = spawn_cfg.time_limit,
        .child_setup = child_setup,
    };
    struct pipe_command_status st;
    if (pipe_command_connect(&c, fd, &st) < 0) {
        msg_warn("spawn service %s: cannot run %s: %s", spawn_cfg.service, a->argv[0],
                 strerror(errno));
        return;
    }
    if (st.timed_out)
        msg_warn("command %s: killed after the time limit of %d seconds (%s_time_limit)",
                 a->argv[0], spawn_cfg.time_limit, spawn_cfg.service);
    else if (WIFSIGNALED(st.wstatus))
        msg_warn("command %s: killed by signal %d", a->argv[0], WTERMSIG(st.wstatus));
    else if (WIFEXITED(st.wstatus) && WEXITSTATUS(st.wstatus) == PIPE_COMMAND_TEMPFAIL)
        msg_warn("command %s: exit status %d (it could not be started, or failed temporarily)",
                 a->argv[0], WEXITSTATUS(st.wstatus));
    else if (WIFEXITED(st.wstatus) && WEXITSTATUS(st.wstatus) != 0)
        msg_warn("command %s: exit status %d", a->argv[0], WEXITSTATUS(st.wstatus));
}

/* As root and before any chroot: the account database is read here. */
static void spawn_pre_init(void)
{
    int nargs;
    char **args = server_args(&nargs);
    struct strbuf err = STRBUF_INIT(1024);
    spawn_cfg.service = server_service_name();
    spawn_cfg.usable = true;
    if (spawn_attr_parse(args, nargs, &spawn_cfg.attr, &err) < 0
        || pipe_command_account(spawn_cfg.attr.user, spawn_cfg.attr.group, &spawn_cfg.uid,
                                &spawn_cfg.gid, &err) < 0)
        refuse(sb_str(&err));
    sb_free(&err);
    if (!spawn_cfg.usable)
        msg_warn("spawn service %s refused: %s; its connections are closed until master.cf is "
                 "fixed", spawn_cfg.service, spawn_cfg.refusal);
    spawn_cfg.envp = pipe_command_environment();
    spawn_cfg.time_limit = pipe_command_time_limit(spawn_cfg.service);
}

static void spawn_post_init(struct event_base *base)
{
    (void)base;
    if (geteuid() != 0 && spawn_cfg.usable && geteuid() != spawn_cfg.uid)
        msg_warn("not running as root: cannot run commands as %s; set unpriv to n for the %s "
                 "service in master.cf", spawn_cfg.attr.user, spawn_cfg.service);
}

SERVER_MAIN("spawn", .mode = SERVER_SINGLE, .serve = spawn_serve, .pre_init = spawn_pre_init,
            .post_init = spawn_post_init)
