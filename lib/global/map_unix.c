/* map_unix.c: the unix: table type, as Postfix names it: the system's user
 * database seen as a table. unix:passwd.byname maps a login name to its
 * passwd entry ("name:*:uid:gid:gecos:home:shell"); it is what
 * local_recipient_maps uses by default, so that smtpd refuses mail for a
 * local user who does not exist instead of accepting it and bouncing it
 * later (backscatter). Lookups go through getpwnam_r, so NSS sources
 * (files, LDAP, ...) count; a failing source is a lookup error (-1), not
 * "no such user". In a chrooted daemon (smtpd with chroot = y) the
 * lookups read the password file opened before the chroot (lib/global/chroot.c),
 * and maps.c watches that file, so a new account is seen after the
 * restart that a change of the file causes. */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chroot.h"
#include "maps_impl.h"
#include "strbuf.h"
#include "util.h"

#define PW_BUFFER_LIMIT (1024 * 1024)
#define LOGIN_NAME_LIMIT 256

static int passwd_lookup(struct map *m, const char *key, struct strbuf *result)
{
    (void)m;
    /* not a login name: no NSS round trip for addresses or junk */
    size_t len = strlen(key);
    if (len == 0 || len > LOGIN_NAME_LIMIT || strpbrk(key, "@:/ \t\r\n"))
        return 0;
    long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
    size_t size = hint > 0 ? (size_t)hint : 4096;
    for (;;) {
        char *buf = xmalloc(size);
        struct passwd pw, *found = NULL;
        int rc = chroot_getpwnam_r(key, &pw, buf, size, &found);
        if (rc == ERANGE && size < PW_BUFFER_LIMIT) {
            free(buf);
            size *= 2;
            continue;
        }
        if (rc == 0 && found)
            sb_appendf(result, "%s:*:%lu:%lu:%s:%s:%s", pw.pw_name, (unsigned long)pw.pw_uid,
                       (unsigned long)pw.pw_gid, pw.pw_gecos ? pw.pw_gecos : "",
                       pw.pw_dir ? pw.pw_dir : "", pw.pw_shell ? pw.pw_shell : "");
        free(buf);
        /* getpwnam_r reports "not found" as 0 with found == NULL, or as
         * ENOENT/ESRCH/EBADF/EPERM depending on the source */
        if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
            return found ? 1 : 0;
        return -1;
    }
}

int map_unix_open(struct map *m, struct strbuf *err)
{
    if (strcmp(m->name, "passwd.byname") != 0) {
        sb_appendf(err, "unsupported unix: table \"%.100s\" (unix:passwd.byname)", m->spec);
        return -1;
    }
    m->lookup = passwd_lookup;
    return 0;
}
