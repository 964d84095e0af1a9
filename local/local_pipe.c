/* local_pipe.c: delivery to "|command": /bin/sh -c COMMAND as the user the
 * destination belongs to, in its own process group, with an environment
 * like Postfix's (SENDER, RECIPIENT, USER, HOME, LOCAL, DOMAIN, EXTENSION,
 * ...), the message on standard input and its output kept for the reason.
 * Exit status 0 is delivered, EX_TEMPFAIL (75) is a deferral, anything else
 * returns the mail; command_time_limit bounds the whole run. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "local.h"
#include "log.h"
#include "pipe_command.h"
#include "util.h"

#define PIPE_OUTPUT_KEEP 4096
#define PIPE_REASON_OUTPUT 200
#define EX_TEMPFAIL_STATUS PIPE_COMMAND_TEMPFAIL

struct pipe_env {
    char *vars[16];
    size_t n;
};

struct pipe_job {
    const struct local_delivery *d;
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

static void env_free(struct pipe_env *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->vars[i]);
    e->n = 0;
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

/* What the command's children must not keep: the connection to qmgr, the
 * marking descriptor; the queue file's content only for the feeder. */
static void child_setup(void *ctx, int keep_fd)
{
    const struct local_delivery *d = ((const struct pipe_job *)ctx)->d;
    local_child_setup(d->msg, NULL, keep_fd);
}

static int feed_message(void *ctx, int fd)
{
    const struct local_delivery *d = ((const struct pipe_job *)ctx)->d;
    unsigned long long written;
    return local_copy_write(fd, d, COPY_FROM_LINE, 0, &written);
}

static void command_result(int wstatus, bool timed_out, const char *command,
                           const struct strbuf *out, struct delivery_status *res)
{
    char cmd[256], line[PIPE_REASON_OUTPUT + 1];
    str_copy(cmd, sizeof(cmd), command);
    str_sanitize(cmd);
    pipe_command_first_line(out, line, sizeof(line));
    const char *sep = *line ? ". Command output: " : "";
    if (timed_out)
        delivery_status_set(res, 5, "5.3.0", "command time limit exceeded: \"%s\"%s%s", cmd, sep,
                            line);
    else if (WIFSIGNALED(wstatus))
        delivery_status_set(res, 5, "5.3.0", "Command died with signal %d: \"%s\"%s%s",
                            WTERMSIG(wstatus), cmd, sep, line);
    else if (WEXITSTATUS(wstatus) == 0)
        delivery_status_set(res, 2, "2.0.0", "delivered to command: %s", cmd);
    else if (WEXITSTATUS(wstatus) == EX_TEMPFAIL_STATUS)
        delivery_status_set(res, 4, "4.3.0", "temporary failure of command \"%s\"%s%s", cmd, sep,
                            line);
    else
        delivery_status_set(res, 5, "5.3.0", "Command died with status %d: \"%s\"%s%s",
                            WEXITSTATUS(wstatus), cmd, sep, line);
}

void local_pipe_deliver(const struct local_delivery *d, const char *command,
                        const struct local_user *as, struct delivery_status *res)
{
    struct pipe_env env;
    env_build(&env, d, as);
    char *argv[] = { "sh", "-c", (char *)command, NULL };
    struct pipe_job job = { d };
    struct pipe_command c = {
        .path = "/bin/sh", .argv = argv, .envp = env.vars,
        .user_name = as->name, .uid = as->uid, .gid = as->gid, .supplementary_groups = true,
        .cwd = as->home, .time_limit = local_cfg.command_time_limit,
        .output_limit = PIPE_OUTPUT_KEEP,
        .child_setup = child_setup, .feed = feed_message, .ctx = &job,
    };
    struct strbuf output = STRBUF_INIT(PIPE_OUTPUT_KEEP);
    struct pipe_command_status st;
    if (pipe_command_run(&c, &output, &st) < 0)
        delivery_status_set(res, 4, "4.3.0", "cannot %s: %s", errno == EMFILE || errno == ENFILE
                            ? "create a pipe" : "fork", strerror(errno));
    else
        command_result(st.wstatus, st.timed_out, command, &output, res);
    sb_free(&output);
    env_free(&env);
}
