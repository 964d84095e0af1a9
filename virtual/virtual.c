/* virtual.c: the virtual delivery agent (Postfix's virtual(8)): delivers
 * mail for virtual_mailbox_domains into Maildir and mbox mailboxes under
 * virtual_mailbox_base, as the uid and gid the tables give each recipient,
 * without Unix accounts. master runs it with unpriv=n: it stays root only
 * so that each delivery can run in a child with the recipient's identity
 * (virtual_child.c); the root process itself opens only its tables and the
 * queue file. One delivery request per connection, served by
 * virtual_request.c. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "maps.h"
#include "server.h"
#include "util.h"
#include "virtual.h"

struct virtual_settings virtual_cfg;

/* The tables are opened as root, before the first delivery: a table file
 * only root may read stays readable. */
static void virtual_pre_init(void)
{
    virtual_cfg.mailbox_maps = maplist_open_param(P_virtual_mailbox_maps);
    virtual_cfg.uid_maps = maplist_open_param(P_virtual_uid_maps);
    virtual_cfg.gid_maps = maplist_open_param(P_virtual_gid_maps);
}

static void virtual_post_init(struct event_base *base)
{
    struct strbuf why = STRBUF_INIT(256);
    virtual_cfg.myhostname = xstrdup(cfg_str(P_myhostname));
    virtual_cfg.base = xstrdup(cfg_str(P_virtual_mailbox_base));
    virtual_cfg.recipient_delimiter = xstrdup(cfg_str(P_recipient_delimiter));
    virtual_cfg.minimum_uid = cfg_int(P_virtual_minimum_uid);
    virtual_cfg.mailbox_limit = cfg_size(P_virtual_mailbox_limit);
    int lock = mailbox_lock_styles(cfg_str(P_virtual_mailbox_lock), &why);
    if (lock < 0)
        msg_fatal("virtual_mailbox_lock: unknown lock style \"%s\" in main.cf (use fcntl, "
                  "dotlock or both)", sb_str(&why));
    virtual_cfg.lock = (unsigned)lock;
    virtual_cfg.lock_attempts = (int)cfg_int(P_deliver_lock_attempts);
    virtual_cfg.lock_delay = (int)cfg_time(P_deliver_lock_delay);
    virtual_cfg.stale_lock_time = cfg_time(P_stale_lock_time);
    virtual_cfg.time_limit = (int)cfg_time(P_command_time_limit);
    virtual_cfg.ipc_timeout = (int)cfg_time(P_ipc_timeout);
    if (virtual_cfg.lock_attempts < 1)
        virtual_cfg.lock_attempts = 1;
    if (virtual_cfg.time_limit < 1)
        virtual_cfg.time_limit = 1;
    if (!*virtual_cfg.myhostname)
        msg_fatal("myhostname is empty; set it in main.cf");
    if (virtual_cfg.minimum_uid < 1)
        msg_fatal("virtual_minimum_uid = %lld in main.cf: it must be 1 or more (mail is never "
                  "delivered as root)", virtual_cfg.minimum_uid);
    if (geteuid() != 0)
        msg_warn("not running as root: can deliver only as uid %ld; set unpriv to n for the "
                 "virtual service in master.cf", (long)geteuid());
    sb_free(&why);
}

SERVER_MAIN("virtual", .mode = SERVER_SINGLE, .serve = virtual_request_serve,
            .pre_init = virtual_pre_init, .post_init = virtual_post_init)
