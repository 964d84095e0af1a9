/* master_privs.c: master working as mail_owner for a moment. private/,
 * public/ and data_directory belong to mail_owner, so anything master does
 * there by name (create a socket or fifo, remove a stale one, remove its
 * pid file) it does with mail_owner's effective ids (lib/util/safe_open.c): a
 * link that mail_owner put in place of a name then gets mail_owner's
 * rights, never root's (doc/SECURITY.md, "Root and paths"). Without root,
 * nothing changes. */
#include "log.h"
#include "master.h"
#include "safe_open.h"

void master_owner_begin(const struct master_params *p)
{
    if (p->root && ids_assume(p->owner_uid, p->owner_gid) < 0)
        msg_fatal("cannot take the identity of mail_owner %s (uid %ld): %m", p->mail_owner,
                  (long)p->owner_uid);
}

void master_owner_end(const struct master_params *p)
{
    if (p->root && ids_restore() < 0)
        msg_fatal("cannot return to root after working as mail_owner: %m");
}
