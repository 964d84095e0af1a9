/* master_chroot.c: the few files of /etc that the C library reads by path
 * at run time (name and service lookups for policy servers and milters
 * given by host name, c-ares's hosts file), copied into queue_directory/etc
 * when a service of master.cf runs chrooted, as Postfix's postfix-script
 * does on Debian. Done by master, as root, at start and at every reload.
 * What a daemon reads once (tables, time zone, password file, resolver
 * configuration, certificates) is opened before its chroot instead
 * (lib/global/chroot.c), so these copies are a convenience, never a requirement.
 *
 * Root works here only on descriptors: queue_directory belongs to root
 * and nobody else may write it (master_queue.c), etc/ inside it is made
 * and opened without following links and must belong to root, and every
 * copy is written under a new name (O_EXCL, O_NOFOLLOW) and renamed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "master.h"

#define CHROOT_ETC "etc"
#define CHROOT_FILE_LIMIT (4 * 1024 * 1024)

static const char *const chroot_etc_files[] = {
    "localtime", "hosts", "services", "resolv.conf", "nsswitch.conf", "host.conf",
};

static bool any_chroot(const struct service *svcs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (svcs[i].cfg.chroot_)
            return true;
    return false;
}

/* queue_directory/etc, a root-owned directory nobody else may write; -1
 * (with a warning) when it is anything else. */
static int open_etc(const char *queue_dir)
{
    int qfd = open(queue_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (qfd < 0) {
        msg_warn("cannot open queue_directory %s: %m", queue_dir);
        return -1;
    }
    if (mkdirat(qfd, CHROOT_ETC, 0755) < 0 && errno != EEXIST)
        msg_warn("cannot create %s/%s: %m", queue_dir, CHROOT_ETC);
    int fd = openat(qfd, CHROOT_ETC, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(qfd);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        msg_warn("cannot open %s/%s: %m", queue_dir, CHROOT_ETC);
    } else if (st.st_uid != 0) {
        msg_warn("%s/%s does not belong to root: not copying files for chrooted services into it; "
                 "remove it and reload", queue_dir, CHROOT_ETC);
    } else if ((st.st_mode & 07777) != 0755 && fchmod(fd, 0755) < 0) {
        msg_warn("cannot change the mode of %s/%s to 0755: %m", queue_dir, CHROOT_ETC);
    } else {
        return fd;
    }
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Whole content of src into dst; -1 on a read or write error. */
static int copy_content(int src, int dst)
{
    char buf[16384];
    ssize_t n;
    while ((n = read(src, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(dst, buf + off, (size_t)(n - off));
            if (w < 0 && errno != EINTR)
                return -1;
            off += w > 0 ? w : 0;
        }
    }
    return 0;
}

/* /etc/NAME to etc/NAME under a temporary name, then renamed. A file the
 * system does not have is skipped. */
static void copy_one(int etcfd, const char *queue_dir, const char *name)
{
    char src_path[256], tmp[256];
    snprintf(src_path, sizeof(src_path), "/etc/%s", name);
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    int src = open(src_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (src < 0 || fstat(src, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CHROOT_FILE_LIMIT) {
        if (src >= 0)
            close(src);
        return;
    }
    unlinkat(etcfd, tmp, 0);    /* a leftover of an interrupted copy */
    int dst = openat(etcfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (dst < 0 || copy_content(src, dst) < 0 || fchmod(dst, 0644) < 0 || close(dst) < 0
        || renameat(etcfd, tmp, etcfd, name) < 0) {
        msg_warn("cannot copy %s to %s/%s/%s for chrooted services: %m", src_path, queue_dir,
                 CHROOT_ETC, name);
        unlinkat(etcfd, tmp, 0);
    }
    close(src);
}

void master_chroot_files(const struct master_params *p, const struct service *svcs, size_t n)
{
    if (!p->root || !any_chroot(svcs, n))
        return;
    int etcfd = open_etc(p->queue_dir);
    if (etcfd < 0)
        return;
    for (size_t i = 0; i < sizeof(chroot_etc_files) / sizeof(chroot_etc_files[0]); i++)
        copy_one(etcfd, p->queue_dir, chroot_etc_files[i]);
    close(etcfd);
}
