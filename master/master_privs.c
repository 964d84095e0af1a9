/* master_privs.c: master working as mail_owner for a moment. private/,
 * public/ and data_directory belong to mail_owner, so anything master does
 * there by name (create a socket or fifo, remove a stale one, remove its
 * pid file) it does with mail_owner's effective ids: a link that mail_owner
 * put in place of a name then gets mail_owner's rights, never root's
 * (doc/SECURITY.md, "Root and paths"). Without root, nothing changes. */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "util.h"

static gid_t *root_groups;
static int root_ngroups;
static gid_t root_egid;
static int depth;            /* nested begin/end pairs */

void master_owner_begin(const struct master_params *p)
{
    if (!p->root || depth++ > 0)
        return;
    int n = getgroups(0, NULL);
    if (n < 0)
        msg_fatal("getgroups: %m");
    free(root_groups);
    root_groups = xcalloc((size_t)n + 1, sizeof(gid_t));
    root_ngroups = getgroups(n, root_groups);
    root_egid = getegid();
    if (root_ngroups < 0)
        msg_fatal("getgroups: %m");
    if (setgroups(1, &p->owner_gid) < 0 || setegid(p->owner_gid) < 0
        || seteuid(p->owner_uid) < 0)
        msg_fatal("cannot take the identity of mail_owner %s (uid %ld): %m", p->mail_owner,
                  (long)p->owner_uid);
}

void master_owner_end(const struct master_params *p)
{
    if (!p->root || --depth > 0)
        return;
    if (seteuid(0) < 0 || setegid(root_egid) < 0 || setgroups((size_t)root_ngroups, root_groups) < 0)
        msg_fatal("cannot return to root after working as mail_owner: %m");
}
