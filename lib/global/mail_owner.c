/* mail_owner.c: mail_owner's ids, and connecting to a socket in the queue
 * with them from a process that is still root (mail_owner.h). */
#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "mail_owner.h"
#include "safe_open.h"

void mail_owner_ids(uid_t *uid, gid_t *gid)
{
    static uid_t owner_uid;
    static gid_t owner_gid;
    static bool known;
    if (!known) {
        owner_uid = geteuid();
        owner_gid = getegid();
        if (owner_uid == 0) {
            const struct passwd *pw = getpwnam(cfg_str(P_mail_owner));
            if (!pw)
                msg_fatal("mail_owner account \"%s\" does not exist", cfg_str(P_mail_owner));
            owner_uid = pw->pw_uid;
            owner_gid = pw->pw_gid;
        }
        known = true;
    }
    *uid = owner_uid;
    *gid = owner_gid;
}

int mail_owner_connect(const char *path, int timeout)
{
    uid_t owner;
    gid_t group;
    mail_owner_ids(&owner, &group);
    if (ids_assume(owner, group) < 0)
        return -1;
    int fd = unix_connect(path, timeout);
    int saved = errno;
    if (ids_restore() < 0)
        msg_fatal("cannot return to root after connecting to %s as mail_owner: %m", path);
    errno = saved;
    return fd;
}
