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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pipe.h"
#include "pipe_command.h"
#include "server.h"
#include "util.h"

struct pipe_settings pipe_cfg;

/* The service's attributes from master.cf, then its account (an existing
 * user that is neither root nor mail_owner): 0, or -1 with why in err. */
static int read_service(struct strbuf *err)
{
    int nargs;
    char **args = server_args(&nargs);
    const struct pipe_attr *a = &pipe_cfg.attr;
    if (pipe_attr_parse(args, nargs, &pipe_cfg.attr, err) < 0 || pipe_expand_check(a, err) < 0)
        return -1;
    return pipe_command_account(a->user, a->group, &pipe_cfg.uid, &pipe_cfg.gid, err);
}

/* As root and before any chroot: the account database is read here. */
static void pipe_pre_init(void)
{
    struct strbuf err = STRBUF_INIT(1024);
    pipe_cfg.service = server_service_name();
    pipe_cfg.usable = read_service(&err) == 0;
    if (!pipe_cfg.usable) {
        pipe_cfg.refusal = xstrdup(sb_str(&err));
        msg_warn("pipe service %s refused: %s; its mail is deferred until master.cf is fixed",
                 pipe_cfg.service, pipe_cfg.refusal);
    }
    sb_free(&err);
    pipe_cfg.envp = pipe_command_environment();
    pipe_cfg.time_limit = pipe_command_time_limit(pipe_cfg.service);
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
