/* chroot.c: entering queue_directory as a daemon's root (master.cf chroot
 * = y) with what the C library would otherwise look for by path in /etc
 * opened beforehand, and the account lookups that keep working inside. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chroot.h"
#include "log.h"

static bool chrooted;
static int passwd_fd = -1;

bool chroot_active(void)
{
    return chrooted;
}

/* The time zone: glibc reads /etc/localtime (or $TZ's zoneinfo file) once
 * and keeps it while $TZ does not change, so log time stamps stay local. */
static void load_time_zone(void)
{
    time_t now = time(NULL);
    struct tm tm;
    tzset();
    localtime_r(&now, &tm);
}

void chroot_enter(const char *dir)
{
    load_time_zone();
    log_open_before_chroot();
    passwd_fd = open(PASSWD_FILE, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (passwd_fd < 0)
        msg_warn("cannot open %s before the chroot: %m; account lookups will fail", PASSWD_FILE);
    if (chroot(dir) < 0 || chdir("/") < 0)
        msg_fatal("cannot chroot to queue_directory %s: %m", dir);
    chrooted = true;
}

/* One pass over the password file kept open; by name when name is not
 * NULL, else by uid. */
static int passwd_scan(const char *name, uid_t uid, struct passwd *pw, char *buf, size_t size,
                       struct passwd **found)
{
    static bool warned;
    *found = NULL;
    int fd = passwd_fd >= 0 ? dup(passwd_fd) : -1;
    FILE *fp = fd >= 0 && lseek(fd, 0, SEEK_SET) == 0 ? fdopen(fd, "r") : NULL;
    if (!fp) {
        if (!warned)
            msg_warn("cannot read %s inside the chroot: %s; account lookups fail (temporary "
                     "errors) until this service runs without chroot or can open it",
                     PASSWD_FILE, passwd_fd < 0 ? "it was not opened before the chroot"
                                                : strerror(errno));
        warned = true;
        if (fd >= 0)
            close(fd);
        return EIO;
    }
    int rc;
    struct passwd *ent;
    while ((rc = fgetpwent_r(fp, pw, buf, size, &ent)) == 0)
        if (name ? strcmp(ent->pw_name, name) == 0 : ent->pw_uid == uid) {
            *found = ent;
            break;
        }
    fclose(fp);
    return rc == ENOENT ? 0 : rc;
}

int chroot_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t size,
                      struct passwd **found)
{
    if (!chrooted)
        return getpwnam_r(name, pw, buf, size, found);
    return passwd_scan(name, 0, pw, buf, size, found);
}

int chroot_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t size,
                      struct passwd **found)
{
    if (!chrooted)
        return getpwuid_r(uid, pw, buf, size, found);
    return passwd_scan(NULL, uid, pw, buf, size, found);
}
