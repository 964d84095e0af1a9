/* pipe.c: the pipe delivery agent, as Postfix's pipe(8): hands each
 * delivery request of its master.cf service to an external command (the
 * service's argv=, executed directly, no shell), with the message on the
 * command's standard input, as the unprivileged user= of the service.
 *
 *   dovecot unix - n n - - pipe flags=DRhu user=vmail:vmail
 *     argv=/usr/lib/dovecot/dovecot-lda -f ${sender} -d ${recipient}
 *
 * master runs it with unpriv=n: it stays root only so that the command and
 * the child that feeds it the message can take user='s identity; it never
 * runs anything as root and refuses a user= of root (or of mail_owner).
 * A service whose attributes are wrong stays up and defers its mail with a
 * warning that says what to fix, so nothing is lost while master.cf is
 * corrected. One delivery request per connection (pipe_request.c). */
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pipe.h"
#include "server.h"
#include "util.h"

struct pipe_settings pipe_cfg;

static void refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void refuse(const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    pipe_cfg.usable = false;
    free(pipe_cfg.refusal);
    pipe_cfg.refusal = xstrdup(why);
}

/* user=USER[:GROUP]: an existing account that is neither root nor mail_owner. */
static void check_user(void)
{
    const struct pipe_attr *a = &pipe_cfg.attr;
    struct passwd *pw = getpwnam(a->user);
    if (!pw) {
        refuse("user=%s: no such user", a->user);
        return;
    }
    /* copied now: the next lookup reuses getpwnam's storage */
    pipe_cfg.uid = pw->pw_uid;
    pipe_cfg.gid = pw->pw_gid;
    if (pipe_cfg.uid == 0) {
        refuse("user=%s: refusing to run commands as root; name an unprivileged account",
               a->user);
        return;
    }
    uid_t owner_uid;
    gid_t owner_gid;
    if (user_ids(cfg_str(P_mail_owner), &owner_uid, &owner_gid) == 0 && owner_uid == pipe_cfg.uid) {
        refuse("user=%s: refusing to run commands as mail_owner (%s); name an account of "
               "their own", a->user, cfg_str(P_mail_owner));
        return;
    }
    if (a->group) {
        struct group *gr = getgrnam(a->group);
        if (!gr) {
            refuse("user=%s:%s: no such group", a->user, a->group);
            return;
        }
        pipe_cfg.gid = gr->gr_gid;
    }
    if (pipe_cfg.gid == 0)
        refuse("user=%s: refusing to run commands with group root", a->user);
}

/* PATH, then the variables of export_environment this process has. */
static void build_environment(void)
{
    size_t n;
    char **names = cfg_list_split(cfg_str(P_export_environment), &n);
    pipe_cfg.envp = xcalloc(n + 2, sizeof(char *));
    size_t k = 0;
    pipe_cfg.envp[k++] = xstrdup("PATH=/usr/bin:/bin");
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(names[i]);
        if (!v || strchr(names[i], '=') || strcmp(names[i], "PATH") == 0)
            continue;
        struct strbuf e = STRBUF_INIT(8192);
        if (sb_appendf(&e, "%s=%s", names[i], v) == 0)
            pipe_cfg.envp[k++] = xstrdup(sb_str(&e));
        sb_free(&e);
    }
    pipe_cfg.envp[k] = NULL;
    cfg_list_free(names, n);
}

/* SERVICE_time_limit, else command_time_limit (Postfix's transport_time_limit). */
static int time_limit(const char *service)
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

/* As root and before any chroot: the account database is read here. */
static void pipe_pre_init(void)
{
    int nargs;
    char **args = server_args(&nargs);
    struct strbuf err = STRBUF_INIT(1024);
    pipe_cfg.service = server_service_name();
    pipe_cfg.usable = true;
    if (pipe_attr_parse(args, nargs, &pipe_cfg.attr, &err) < 0
        || pipe_expand_check(&pipe_cfg.attr, &err) < 0) {
        refuse("%s", sb_str(&err));
    } else {
        check_user();
    }
    sb_free(&err);
    if (!pipe_cfg.usable)
        msg_warn("pipe service %s refused: %s; its mail is deferred until master.cf is fixed",
                 pipe_cfg.service, pipe_cfg.refusal);
    build_environment();
    pipe_cfg.time_limit = time_limit(pipe_cfg.service);
    pipe_cfg.recipient_delimiter = xstrdup(cfg_str(P_recipient_delimiter));
    pipe_cfg.ipc_timeout = (int)cfg_time(P_ipc_timeout);
}

static void pipe_post_init(struct event_base *base)
{
    if (geteuid() != 0 && pipe_cfg.usable && geteuid() != pipe_cfg.uid)
        msg_warn("not running as root: cannot run commands as %s; set unpriv to n for the %s "
                 "service in master.cf", pipe_cfg.attr.user, pipe_cfg.service);
}

SERVER_MAIN("pipe", .mode = SERVER_SINGLE, .serve = pipe_request_serve, .pre_init = pipe_pre_init,
            .post_init = pipe_post_init)
