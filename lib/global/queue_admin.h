/* queue_admin.h: the changes to the queue that `tern delete|hold|release|
 * requeue` and the quarantine (quarantine.h) both make (queue_admin.c):
 * asking qmgr to act on a message it is delivering (doc/PROTOCOLS.md),
 * making a message due in deferred/, and removing its delivery logs. The
 * caller's working directory is queue_directory, its effective uid
 * mail_owner (lib/global/QUEUE.md, "Administration"). */
#ifndef TERN_QUEUE_ADMIN_H
#define TERN_QUEUE_ADMIN_H

struct strbuf;

/* {admin=op, id=id} to qmgr over public/qmgr: a QMGR_ADMIN_* status
 * (queue.h), or -1 when qmgr cannot be reached (a few tries). */
int queue_admin_ask_qmgr(const char *op, const char *id);
/* Move the queue file from (outside active/) to to, due now (into
 * deferred/, whose mtime is the next attempt). 0, or -1 with errno
 * (ENOENT: it has gone, look again); err says why when the file itself
 * was refused (not a queue file of Tern's). */
int queue_admin_move_due(const char *from, const char *to, struct strbuf *err);
/* Remove defer/ID and bounce/ID (after the message itself). */
void queue_admin_remove_logs(const char *id);

#endif
