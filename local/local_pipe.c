/* local_pipe.c: delivery to "|command": /bin/sh -c COMMAND as the user the
 * destination belongs to, in its own process group, with an environment
 * like Postfix's (SENDER, RECIPIENT, USER, HOME, LOCAL, DOMAIN, EXTENSION,
 * ...), the message on standard input and its output kept for the reason.
 * Exit status 0 is delivered, EX_TEMPFAIL (75) is a deferral, anything else
 * returns the mail; command_time_limit bounds the whole run. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "local.h"
#include "log.h"
#include "util.h"

#define PIPE_OUTPUT_KEEP 4096
#define PIPE_REASON_OUTPUT 200
#define EX_TEMPFAIL_STATUS 75

struct pipe_env {
    char *vars[16];
    size_t n;
};

static void env_put(struct pipe_env *e, const char *name, const char *value)
{
    if (e->n + 1 >= sizeof(e->vars) / sizeof(e->vars[0]))
        return;
    struct strbuf v = STRBUF_INIT(LOCAL_ITEM_MAX * 2);
    if (sb_appendf(&v, "%s=%s", name, value ? value : "") == 0)
        e->vars[e->n++] = xstrdup(sb_str(&v));
    sb_free(&v);
    e->vars[e->n] = NULL;
}

static void env_build(struct pipe_env *e, const struct local_delivery *d,
                      const struct local_user *as)
{
    e->n = 0;
    const char *tz = getenv("TZ");
    env_put(e, "PATH", "/usr/bin:/bin");
    env_put(e, "LANG", "C");
    if (tz)
        env_put(e, "TZ", tz);
    env_put(e, "HOME", as->home);
    env_put(e, "USER", as->name);
    env_put(e, "LOGNAME", as->name);
    env_put(e, "SHELL", as->shell);
    env_put(e, "SENDER", d->msg->sender);
    env_put(e, "RECIPIENT", d->address);
    env_put(e, "LOCAL", d->local);
    env_put(e, "DOMAIN", d->domain);
    env_put(e, "EXTENSION", d->extension);
    env_put(e, "ORIGINAL_RECIPIENT", d->delivered_to);
}

static void __attribute__((noreturn)) run_command(const struct local_delivery *d, const char *command,
                                                  const struct local_user *as, int in, int out)
{
    local_child_setup(d->msg, NULL, -1);
    setsid();                   /* a process group to kill on timeout */
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        _exit(EX_TEMPFAIL_STATUS);
    local_close_from(3);        /* the queue file above all */
    local_become_user(as);
    if (chdir(as->home) < 0 && chdir("/") < 0)
        _exit(EX_TEMPFAIL_STATUS);
    struct pipe_env env;
    env_build(&env, d, as);
    char *argv[] = { "sh", "-c", (char *)command, NULL };
    execve("/bin/sh", argv, env.vars);
    _exit(EX_TEMPFAIL_STATUS);
}

static void __attribute__((noreturn)) feed_message(const struct local_delivery *d,
                                                   const struct local_user *as, int in)
{
    local_child_setup(d->msg, as, in);
    signal(SIGPIPE, SIG_IGN);   /* a command that stops reading is no error here */
    unsigned long long written;
    _exit(local_copy_write(in, d, COPY_FROM_LINE, 0, &written) == 0 ? 0 : 1);
}

/* Collect the command's output (the first PIPE_OUTPUT_KEEP bytes) until it
 * closes it or the deadline passes. 0 at EOF, -1 on timeout. */
static int collect_output(int fd, long long deadline_ms, struct strbuf *keep)
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
        size_t room = PIPE_OUTPUT_KEEP > keep->len ? PIPE_OUTPUT_KEEP - keep->len : 0;
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

static void first_line(const struct strbuf *out, char *line, size_t size)
{
    const char *s = sb_str(out);
    size_t n = strcspn(s, "\n");
    if (n >= size)
        n = size - 1;
    memcpy(line, s, n);
    line[n] = 0;
    local_printable(line);
}

static void command_result(int wstatus, bool timed_out, const char *command,
                           const struct strbuf *out, struct local_result *res)
{
    char cmd[256], line[PIPE_REASON_OUTPUT + 1];
    str_copy(cmd, sizeof(cmd), command);
    local_printable(cmd);
    first_line(out, line, sizeof(line));
    const char *sep = *line ? ". Command output: " : "";
    if (timed_out)
        local_result_set(res, 5, "5.3.0", "command time limit exceeded: \"%s\"%s%s", cmd, sep, line);
    else if (WIFSIGNALED(wstatus))
        local_result_set(res, 5, "5.3.0", "Command died with signal %d: \"%s\"%s%s",
                   WTERMSIG(wstatus), cmd, sep, line);
    else if (WEXITSTATUS(wstatus) == 0)
        local_result_set(res, 2, "2.0.0", "delivered to command: %s", cmd);
    else if (WEXITSTATUS(wstatus) == EX_TEMPFAIL_STATUS)
        local_result_set(res, 4, "4.3.0", "temporary failure of command \"%s\"%s%s", cmd, sep, line);
    else
        local_result_set(res, 5, "5.3.0", "Command died with status %d: \"%s\"%s%s",
                   WEXITSTATUS(wstatus), cmd, sep, line);
}

void local_pipe_deliver(const struct local_delivery *d, const char *command,
                        const struct local_user *as, struct local_result *res)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0) {
        local_result_set(res, 4, "4.3.0", "cannot create a pipe: %s", strerror(errno));
        return;
    }
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        local_result_set(res, 4, "4.3.0", "cannot create a pipe: %s", strerror(errno));
        return;
    }
    long long deadline = now_usec() / 1000 + (long long)local_cfg.command_time_limit * 1000;
    pid_t cmd = fork();
    if (cmd == 0)
        run_command(d, command, as, in[0], out[1]);
    close(in[0]);
    close(out[1]);
    pid_t feeder = cmd > 0 ? fork() : -1;
    if (feeder == 0) {
        close(out[0]);
        feed_message(d, as, in[1]);
    }
    close(in[1]);
    if (cmd < 0 || feeder < 0) {
        if (cmd > 0) {
            kill(-cmd, SIGKILL);
            local_reap(cmd, 0);
        }
        close(out[0]);
        local_result_set(res, 4, "4.3.0", "cannot fork: %s", strerror(errno));
        return;
    }
    struct strbuf output = STRBUF_INIT(PIPE_OUTPUT_KEEP);
    bool timed_out = collect_output(out[0], deadline, &output) < 0;
    close(out[0]);
    int wstatus = wait_command(cmd, timed_out ? 0 : deadline, &timed_out);
    local_reap(feeder, 5);
    command_result(wstatus, timed_out, command, &output, res);
    sb_free(&output);
}
