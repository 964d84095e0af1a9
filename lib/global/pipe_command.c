/* pipe_command.c: one run of an external command for a delivery agent
 * (pipe_command.h): the command child and the feeding child, both as the
 * user, the bounded output, the time limit over the whole process group;
 * or a command connected to spawn's client; and the user=, environment and
 * time limit of the services that run them. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "pipe_command.h"
#include "util.h"

void pipe_command_become(const char *name, uid_t uid, gid_t gid, bool supplementary)
{
    if (geteuid() != 0 && getuid() != 0) {
        if (getuid() == uid)
            return;                 /* tests running unprivileged */
        if (name)
            msg_warn("cannot switch to user %s: not running as root", name);
        _exit(PIPE_COMMAND_TEMPFAIL);
    }
    int grc = name && supplementary ? initgroups(name, gid) : -1;
    if ((grc < 0 && setgroups(1, &gid) < 0) || setgid(gid) < 0 || setuid(uid) < 0) {
        if (name)
            msg_warn("cannot switch to user %s (uid %ld): %m", name, (long)uid);
        _exit(PIPE_COMMAND_TEMPFAIL);
    }
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid
        || (uid != 0 && setuid(0) == 0)) {
        if (name)
            msg_warn("switch to user %s incomplete", name);
        _exit(PIPE_COMMAND_TEMPFAIL);
    }
}

void pipe_command_close_span(unsigned from, unsigned to)
{
    if (close_range(from, to, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);   /* kernels before close_range() */
    if (max < 0 || max > 65536)
        max = 65536;
    for (long fd = from; fd < max && (unsigned long)fd <= to; fd++)
        close((int)fd);
}

void pipe_command_close_from(int lowfd)
{
    pipe_command_close_span((unsigned)lowfd, ~0U);
}

int pipe_command_reap(pid_t pid, int grace)
{
    int wstatus = 0;
    for (int waited_ms = 0;; waited_ms += 10) {
        pid_t got = waitpid(pid, &wstatus, WNOHANG);
        if (got == pid || (got < 0 && errno != EINTR))
            return wstatus;
        if (waited_ms >= grace * 1000) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
                ;
            return wstatus;
        }
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

int pipe_command_child(void (*child)(void *ctx, int fd), void *ctx, size_t limit, int timeout,
                       struct strbuf *frame, int *wstatus, char *why, size_t why_size)
{
    int p[2];
    *wstatus = -1;
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(why, why_size, "cannot create a pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(p[0]);
        close(p[1]);
        snprintf(why, why_size, "cannot fork a delivery process: %s", strerror(saved));
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        child(ctx, p[1]);
        _exit(PIPE_COMMAND_TEMPFAIL);   /* child() ends the process itself */
    }
    close(p[1]);
    int rc = attr_read(p[0], frame, limit, timeout);
    int saved = errno;
    close(p[0]);
    bool timed_out = rc < 0 && saved == ETIMEDOUT;
    int ws = pipe_command_reap(pid, timed_out ? 0 : 10);
    if (rc == 0)
        return 0;
    if (timed_out)
        snprintf(why, why_size, "delivery process timed out after %d seconds", timeout);
    else if (WIFSIGNALED(ws))
        snprintf(why, why_size, "delivery process killed by signal %d", WTERMSIG(ws));
    else
        snprintf(why, why_size, "delivery process exited with status %d without a result",
                 WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
    *wstatus = timed_out ? -1 : ws;
    return -1;
}

void pipe_command_first_line(const struct strbuf *output, char *line, size_t size)
{
    const char *s = sb_str(output);
    size_t n = strcspn(s, "\n");
    if (n >= size)
        n = size - 1;
    memcpy(line, s, n);
    line[n] = 0;
    str_sanitize(line);
}

/* ---- the children ---- */

static void __attribute__((noreturn)) run_command(const struct pipe_command *c, int in, int out)
{
    if (c->child_setup)
        c->child_setup(c->ctx, -1);
    setsid();                   /* a process group to kill at the time limit */
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        _exit(PIPE_COMMAND_TEMPFAIL);
    pipe_command_close_from(3); /* the queue file above all */
    pipe_command_become(c->user_name, c->uid, c->gid, c->supplementary_groups);
    if (c->cwd && chdir(c->cwd) < 0 && chdir("/") < 0)
        _exit(PIPE_COMMAND_TEMPFAIL);
    execve(c->path, c->argv, c->envp);
    /* the reason goes where the agent reads the command's output */
    char text[512];
    int n = snprintf(text, sizeof(text), "cannot execute %s: %s\n", c->path, strerror(errno));
    if (n > 0 && write(2, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1) < 0)
        _exit(PIPE_COMMAND_TEMPFAIL);
    _exit(PIPE_COMMAND_TEMPFAIL);
}

static void __attribute__((noreturn)) feed_message(const struct pipe_command *c, int in)
{
    if (c->child_setup)
        c->child_setup(c->ctx, in);
    pipe_command_become(c->user_name, c->uid, c->gid, c->supplementary_groups);
    signal(SIGPIPE, SIG_IGN);   /* a command that stops reading is no error here */
    _exit(c->feed(c->ctx, in) == 0 ? 0 : 1);
}

/* ---- the agent's side ---- */

/* Collect the command's output (the first limit bytes) until it closes it
 * or the deadline passes. 0 at EOF, -1 on timeout. */
static int collect_output(int fd, long long deadline_ms, size_t limit, struct strbuf *keep)
{
    char buf[8192];
    for (;;) {
        long long left = deadline_ms - now_usec() / 1000;
        if (left <= 0)
            return -1;
        struct pollfd p = { fd, POLLIN, 0 };
        int rc = poll(&p, 1, left > 1000 ? 1000 : (int)left);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        size_t room = limit > keep->len ? limit - keep->len : 0;
        sb_append(keep, buf, (size_t)n < room ? (size_t)n : room);
    }
}

/* Wait for the command until the deadline; kill its process group then. */
static int wait_command(pid_t pid, long long deadline_ms, bool *timed_out)
{
    int wstatus = 0;
    for (;;) {
        pid_t got = waitpid(pid, &wstatus, WNOHANG);
        if (got == pid || (got < 0 && errno != EINTR))
            return wstatus;
        if (now_usec() / 1000 >= deadline_ms) {
            *timed_out = true;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
                ;
            return wstatus;
        }
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

int pipe_command_run(const struct pipe_command *c, struct strbuf *output,
                     struct pipe_command_status *st)
{
    int in[2], out[2];
    st->wstatus = 0;
    st->timed_out = false;
    if (pipe2(in, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(out, O_CLOEXEC) < 0) {
        int saved = errno;
        close(in[0]);
        close(in[1]);
        errno = saved;
        return -1;
    }
    int limit = c->time_limit < 1 ? 1 : c->time_limit;
    long long deadline = now_usec() / 1000 + (long long)limit * 1000;
    pid_t cmd = fork();
    if (cmd == 0)
        run_command(c, in[0], out[1]);
    close(in[0]);
    close(out[1]);
    pid_t feeder = cmd > 0 ? fork() : -1;
    if (feeder == 0) {
        close(out[0]);
        feed_message(c, in[1]);
    }
    int saved = errno;
    close(in[1]);
    if (cmd < 0 || feeder < 0) {
        if (cmd > 0) {
            kill(-cmd, SIGKILL);
            pipe_command_reap(cmd, 0);
        }
        close(out[0]);
        errno = saved;
        return -1;
    }
    bool timed_out = collect_output(out[0], deadline, c->output_limit, output) < 0;
    close(out[0]);
    st->wstatus = wait_command(cmd, timed_out ? 0 : deadline, &timed_out);
    st->timed_out = timed_out;
    pipe_command_reap(feeder, 5);
    return 0;
}

/* Wait for the command until the deadline, asleep in sigtimedwait() (a
 * policy server may run for an hour: no polling), killing its process group
 * then. SIGCHLD is blocked by the caller from before the fork. */
static int wait_connected(pid_t pid, const sigset_t *chld, long long deadline_ms, bool *timed_out)
{
    int wstatus = 0;
    for (;;) {
        pid_t got = waitpid(pid, &wstatus, WNOHANG);
        if (got == pid || (got < 0 && errno != EINTR))
            return wstatus;
        long long left = deadline_ms - now_usec() / 1000;
        if (left <= 0) {
            *timed_out = true;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
                ;
            return wstatus;
        }
        if (left > 60000)
            left = 60000;
        struct timespec ts = { (time_t)(left / 1000), (long)(left % 1000) * 1000000L };
        sigtimedwait(chld, NULL, &ts);
    }
}

int pipe_command_connect(const struct pipe_command *c, int fd, struct pipe_command_status *st)
{
    st->wstatus = 0;
    st->timed_out = false;
    int limit = c->time_limit < 1 ? 1 : c->time_limit;
    long long deadline = now_usec() / 1000 + (long long)limit * 1000;
    struct pipe_command run = *c;
    if (!run.cwd)
        run.cwd = "/";
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    pid_t cmd = fork();
    if (cmd < 0) {
        int saved = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        errno = saved;
        return -1;
    }
    if (cmd == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        run_command(&run, fd, fd);
    }
    bool timed_out = false;
    st->wstatus = wait_connected(cmd, &chld, deadline, &timed_out);
    st->timed_out = timed_out;
    sigprocmask(SIG_SETMASK, &old, NULL);
    return 0;
}

/* ---- the settings of a service that runs commands ---- */

int pipe_command_account(const char *user, const char *group, uid_t *uid, gid_t *gid,
                         struct strbuf *why)
{
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        sb_appendf(why, "user=%s: no such user", user);
        return -1;
    }
    /* copied now: the next lookup reuses getpwnam's storage */
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    if (*uid == 0) {
        sb_appendf(why, "user=%s: refusing to run commands as root; name an unprivileged account",
                   user);
        return -1;
    }
    const char *owner = cfg_str(P_mail_owner);
    struct passwd *opw = getpwnam(owner);
    if (opw && opw->pw_uid == *uid) {
        sb_appendf(why, "user=%s: refusing to run commands as mail_owner (%s); name an account of "
                   "their own", user, owner);
        return -1;
    }
    if (group) {
        struct group *gr = getgrnam(group);
        if (!gr) {
            sb_appendf(why, "user=%s:%s: no such group", user, group);
            return -1;
        }
        *gid = gr->gr_gid;
    }
    if (*gid == 0) {
        sb_appendf(why, "user=%s: refusing to run commands with group root", user);
        return -1;
    }
    return 0;
}

char **pipe_command_environment(void)
{
    size_t n;
    char **names = cfg_list_split(cfg_str(P_export_environment), &n);
    char **envp = xcalloc(n + 2, sizeof(char *));
    size_t k = 0;
    envp[k++] = xstrdup("PATH=/usr/bin:/bin");
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(names[i]);
        if (!v || strchr(names[i], '=') || strcmp(names[i], "PATH") == 0)
            continue;
        struct strbuf e = STRBUF_INIT(8192);
        if (sb_appendf(&e, "%s=%s", names[i], v) == 0)
            envp[k++] = xstrdup(sb_str(&e));
        sb_free(&e);
    }
    envp[k] = NULL;
    cfg_list_free(names, n);
    return envp;
}

int pipe_command_time_limit(const char *service)
{
    struct strbuf name = STRBUF_INIT(512);
    sb_appendf(&name, "%s_time_limit", service);
    const char *v = cfg_get(sb_str(&name));
    long t = v ? parse_time_value(v, 's') : -1;
    if (v && t < 0)
        msg_warn("%s = %s: not a time; using command_time_limit", sb_str(&name), v);
    if (t < 0)
        t = cfg_time(P_command_time_limit);
    sb_free(&name);
    return t < 1 ? 1 : t > 86400L * 7 ? 86400 * 7 : (int)t;
}

int pipe_command_parse_user(const char *value, char **user, char **group, struct strbuf *err)
{
    const char *colon = strchr(value, ':');
    if (!*value || colon == value || (colon && !colon[1])) {
        sb_appendf(err, "user=%s: expected user=USER or user=USER:GROUP", value);
        return -1;
    }
    free(*user);
    free(*group);
    *user = colon ? xstrndup(value, (size_t)(colon - value)) : xstrdup(value);
    *group = colon ? xstrdup(colon + 1) : NULL;
    return 0;
}

int pipe_command_parse_argv(char **words, int nwords, int i, size_t max, char ***argv,
                            size_t *argc, struct strbuf *err)
{
    const char *v = words[i] + strlen("argv=");
    if (!*v) {
        sb_appends(err, "argv= names no command");
        return -1;
    }
    if (*v != '/') {
        sb_appendf(err, "argv=%s: the command must be an absolute path (it is executed "
                   "directly, without a shell or a PATH search)", v);
        return -1;
    }
    if ((size_t)(nwords - i) > max) {
        sb_appendf(err, "argv=%s: more than %zu words", v, max);
        return -1;
    }
    *argc = (size_t)(nwords - i);
    *argv = xcalloc(*argc + 1, sizeof(char *));
    (*argv)[0] = xstrdup(v);
    for (int j = i + 1; j < nwords; j++)
        (*argv)[j - i] = xstrdup(words[j]);
    return 0;
}

int pipe_command_parse_end(char *const *argv, const char *user, struct strbuf *err)
{
    if (!argv)
        sb_appends(err, "argv= is required: name the command to run, as the last attribute "
                   "(argv=/path/to/command arguments...)");
    else if (!user)
        sb_appends(err, "user= is required: name the unprivileged account the command runs as");
    return argv && user ? 0 : -1;
}
