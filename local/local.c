/* local.c: the local delivery agent: delivers mail for our own domains to
 * aliases, .forward files, Maildir and mbox mailboxes, files and commands.
 * master runs it with unpriv=n: it stays root only so that each delivery
 * can run in a child with the recipient's identity (local_child.c); the
 * root process itself never opens or parses a user's file. One delivery
 * request per connection, served by local_request.c. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "resolve.h"
#include "local.h"
#include "log.h"
#include "maps.h"
#include "server.h"
#include "util.h"

struct local_settings local_cfg;

/* allow_mail_to_commands / allow_mail_to_files: "alias, forward, include". */
static unsigned class_list(enum param_id id, const char *name)
{
    size_t n;
    char **words = cfg_list_split(cfg_str(id), &n);
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (str_ieq(words[i], "alias"))
            bits |= LOCAL_CLASS_ALIAS;
        else if (str_ieq(words[i], "forward"))
            bits |= LOCAL_CLASS_FORWARD;
        else if (str_ieq(words[i], "include"))
            bits |= LOCAL_CLASS_INCLUDE;
        else
            msg_fatal("%s: unknown class \"%s\" in main.cf (use alias, forward, include)",
                      name, words[i]);
    }
    cfg_list_free(words, n);
    return bits;
}

/* home_mailbox is relative to the home directory, as in Postfix. */
static void check_home_mailbox(const char *value)
{
    if (*value == '/' || strstr(value, ".."))
        msg_fatal("home_mailbox \"%s\" must be a name relative to the home directory "
                  "(\"Maildir/\" for Maildir, \"Mailbox\" for an mbox file)", value);
}

/* The address resolver reads this host's interface addresses here, as
 * root and before any chroot. */
static void local_pre_init(void)
{
    /* aliases become commands and files run as a user: never taken from
     * proxymap (a mail_owner process), as in Postfix */
    maps_proxy_direct();
    resolve_init();
}

static void local_post_init(struct event_base *base)
{
    local_cfg.queue_dir_name = xstrdup(cfg_str(P_queue_directory));
    local_cfg.myhostname = xstrdup(cfg_str(P_myhostname));
    local_cfg.alias_maps = xstrdup(cfg_str(P_alias_maps));
    local_cfg.home_mailbox = xstrdup(cfg_str(P_home_mailbox));
    local_cfg.mail_spool_directory = xstrdup(cfg_str(P_mail_spool_directory));
    /* as written: $HOME, $EXTENSION etc. are the command shell's to expand */
    const char *mc = cfg_get_raw_set("mailbox_command");
    local_cfg.mailbox_command = xstrdup(mc ? mc : cfg_str(P_mailbox_command));
    local_cfg.mailbox_transport = xstrdup(cfg_str(P_mailbox_transport));
    local_cfg.mailbox_size_limit = cfg_size(P_mailbox_size_limit);
    local_cfg.recipient_delimiter = xstrdup(cfg_str(P_recipient_delimiter));
    local_cfg.commands_allowed = class_list(P_allow_mail_to_commands, "allow_mail_to_commands");
    local_cfg.files_allowed = class_list(P_allow_mail_to_files, "allow_mail_to_files");
    local_cfg.default_privs = xstrdup(cfg_str(P_default_privs));
    local_cfg.cleanup_service = xstrdup(cfg_str(P_cleanup_service_name));
    local_cfg.command_time_limit = (int)cfg_time(P_command_time_limit);
    local_cfg.lock_attempts = (int)cfg_int(P_deliver_lock_attempts);
    local_cfg.lock_delay = (int)cfg_time(P_deliver_lock_delay);
    local_cfg.stale_lock_time = cfg_time(P_stale_lock_time);
    local_cfg.ipc_timeout = (int)cfg_time(P_ipc_timeout);
    if (local_cfg.lock_attempts < 1)
        local_cfg.lock_attempts = 1;
    if (local_cfg.command_time_limit < 1)
        local_cfg.command_time_limit = 1;
    check_home_mailbox(local_cfg.home_mailbox);
    if (!*local_cfg.myhostname)
        msg_fatal("myhostname is empty; set it in main.cf");
    resolve_init();
    if (geteuid() != 0)
        msg_warn("not running as root: can deliver only as uid %ld; set unpriv to n for the "
                 "local service in master.cf", (long)geteuid());
}

SERVER_MAIN("local", .mode = SERVER_SINGLE, .serve = local_request_serve,
            .pre_init = local_pre_init, .post_init = local_post_init)
