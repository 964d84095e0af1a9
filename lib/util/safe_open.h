/* safe_open.h: how a privileged process uses a name in a directory an
 * unprivileged uid can write (the queue, data_directory) so that nothing
 * planted there can redirect it: no symbolic link is followed, no FIFO or
 * device is waited on, what was opened is checked before anything is read
 * from or written to it, and what must be done by name is done with the
 * unprivileged uid's effective ids (doc/SECURITY.md, "Root and paths"). */
#ifndef TERN_SAFE_OPEN_H
#define TERN_SAFE_OPEN_H

#include <sys/stat.h>
#include <sys/types.h>

struct strbuf;

#define SAFE_ANY_OWNER ((uid_t)-1)

/* open(path, flags, mode) with O_NOFOLLOW, O_NONBLOCK, O_NOCTTY and
 * O_CLOEXEC added, then accepted only when it is a regular file with
 * exactly one link and, unless owner is SAFE_ANY_OWNER, owned by owner.
 * O_TRUNC is refused (EINVAL): truncate with ftruncate() once the
 * descriptor is known good. Returns a blocking descriptor (st filled in
 * when not NULL), or -1 with errno set (ELOOP a symbolic link, EINVAL not
 * a regular file, EMLINK more than one link, EPERM another owner) and,
 * when err is not NULL, "PATH: what is wrong" appended. */
int safe_open(const char *path, int flags, mode_t mode, uid_t owner, struct stat *st,
              struct strbuf *err);

/* The checks of safe_open on a descriptor already open: 0 when fd is a
 * regular file with one link (and owner's, unless SAFE_ANY_OWNER), else -1
 * with errno and err as above (path only names the file in err). */
int safe_check_fd(int fd, const char *path, uid_t owner, struct stat *st, struct strbuf *err);

/* A second descriptor of the very file fd is open on, with other access
 * flags (O_RDONLY for readers that must not write), made through
 * /proc/self/fd: no name in the directory is looked up again. -1 with
 * errno (and err) when it cannot be made or is not the same file. */
int safe_reopen(int fd, int flags, struct strbuf *err);

/* For a process that must stay root but has to use a name in such a
 * directory (connect to a socket there, create or remove a name):
 * ids_assume() takes uid and gid (gid the one group) as its effective ids,
 * so a link planted there gets that uid's rights and no more;
 * ids_restore() goes back. Not nested. Both no-ops (0) when the effective
 * uid is not root; -1 with errno on failure (ids_assume then changed
 * nothing; after a failed ids_restore the caller must exit). */
int ids_assume(uid_t uid, gid_t gid);
int ids_restore(void);

#endif
