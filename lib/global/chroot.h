/* chroot.h: what a daemon needs to keep working after the skeleton chroots
 * it into queue_directory (master.cf chroot = y): entering the chroot with
 * the time zone, the log connection and the password file opened first,
 * and account lookups that read that file through its descriptor. The
 * rule is "open before the chroot": nothing has to be copied into the
 * queue directory for these (doc/SECURITY.md, "Chroot"). */
#ifndef TERN_CHROOT_H
#define TERN_CHROOT_H

#include <pwd.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PASSWD_FILE "/etc/passwd"

/* As root, after pre_init: load the time zone, open the log connection and
 * the password file, then chroot(dir) and chdir("/"). Fatal on failure. */
void chroot_enter(const char *dir);

/* Whether this process runs chrooted. */
bool chroot_active(void);

/* getpwnam_r and getpwuid_r with the C library's conventions (0 with
 * *found set or NULL; an error number otherwise, ERANGE when buf is too
 * small). Outside a chroot they are the C library's. Inside, they read the
 * password file opened before the chroot, so only its accounts are seen
 * (NSS sources such as LDAP or sssd cannot be reached from the chroot), as
 * they were when the process started. */
int chroot_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size,
                      struct passwd **found);
int chroot_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size,
                      struct passwd **found);

#endif
