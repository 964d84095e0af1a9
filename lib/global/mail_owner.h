/* mail_owner.h: the ids of mail_owner, the account that owns the queue,
 * and how a process that is still root reaches a socket there. */
#ifndef TERN_MAIL_OWNER_H
#define TERN_MAIL_OWNER_H

#include <sys/types.h>

/* Who must own queue files: mail_owner when running as root, else the
 * process's own ids. Looked up once; fatal when the account is missing. */
void mail_owner_ids(uid_t *uid, gid_t *gid);

/* unix_connect() to a socket in the queue (private/NAME, public/NAME,
 * relative to the queue directory). The queue's folders are mail_owner's,
 * so a process that is still root connects with mail_owner's effective
 * ids: a link planted there leads nowhere mail_owner could not go itself,
 * never to a root-only socket (doc/SECURITY.md, "Root and paths"). The
 * peer sees mail_owner's credentials. -1 with errno set when it cannot
 * connect. */
int mail_owner_connect(const char *path, int timeout);

#endif
