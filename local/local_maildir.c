/* local_maildir.c: Maildir delivery (as the recipient, in a child): the
 * message is written to tmp/ under a name no other delivery can use,
 * fsynced, and only then renamed into new/, so a reader sees a complete
 * message or none. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local.h"
#include "log.h"
#include "util.h"

/* dir, dir/tmp, dir/new and dir/cur, created when missing. */
static int maildir_make(const char *dir, struct strbuf *path)
{
    static const char *const subs[] = { "", "tmp", "new", "cur" };
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        sb_reset(path);
        if (sb_appendf(path, "%s%s", dir, subs[i]) < 0) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (mkdir(sb_str(path), 0700) < 0 && errno != EEXIST)
            return -1;
    }
    return 0;
}

/* time.MusecPpid_seq.host: unique across processes (pid), within one
 * process (seq) and across a pid being reused (time to the microsecond).
 * '/' and ':' in the host name are written as octal escapes, as Maildir
 * readers expect. */
static void maildir_name(struct strbuf *out, const struct local_delivery *d)
{
    long long now = now_usec();
    sb_appendf(out, "%lld.M%06lldP%ld_%lu.", now / 1000000, now % 1000000, (long)getpid(),
               d->msg->seq);
    for (const char *h = local_cfg.myhostname; *h; h++) {
        if (*h == '/')
            sb_appends(out, "\\057");
        else if (*h == ':')
            sb_appends(out, "\\072");
        else
            sb_appendc(out, (unsigned char)*h < 0x21 ? '_' : *h);
    }
}

static void maildir_fail(struct local_result *res, const char *what, const char *path, int err)
{
    int status;
    const char *dsn = local_result_dsn_for_errno(err, &status);
    if (err == EFBIG)
        local_result_set(res, 5, dsn, "maildir delivery failed: the message would exceed "
                   "mailbox_size_limit (%lld bytes)", local_cfg.mailbox_size_limit);
    else
        local_result_set(res, status, dsn, "maildir delivery failed: %s %s: %s", what, path,
                   strerror(err));
}

void local_maildir_write(const struct local_delivery *d, const char *dir, struct local_result *res)
{
    struct strbuf path = STRBUF_INIT(8192), name = STRBUF_INIT(1024);
    struct strbuf tmp = STRBUF_INIT(8192), fin = STRBUF_INIT(8192);
    if (maildir_make(dir, &path) < 0) {
        maildir_fail(res, "create maildir directory", sb_str(&path), errno);
        goto out;
    }
    maildir_name(&name, d);
    sb_appendf(&tmp, "%stmp/%s", dir, sb_str(&name));
    sb_appendf(&fin, "%snew/%s", dir, sb_str(&name));
    int fd = open(sb_str(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        maildir_fail(res, "create maildir file", sb_str(&tmp), errno);
        goto out;
    }
    unsigned long long limit = local_cfg.mailbox_size_limit > 0
                               ? (unsigned long long)local_cfg.mailbox_size_limit : 0;
    unsigned long long written;
    int rc = local_copy_write(fd, d, 0, limit, &written);
    if (rc == 0)
        rc = fsync(fd);
    int err = errno;
    if (close(fd) < 0 && rc == 0) {
        rc = -1;
        err = errno;
    }
    if (rc == 0 && rename(sb_str(&tmp), sb_str(&fin)) < 0) {
        rc = -1;
        err = errno;
    }
    if (rc < 0) {
        unlink(sb_str(&tmp));
        maildir_fail(res, "write maildir file", sb_str(&tmp), err);
        goto out;
    }
    sb_reset(&path);
    sb_appendf(&path, "%snew", dir);
    /* The rename is done and a reader may already have the message: a
     * deferral now would only deliver it twice. */
    if (fsync_dir(sb_str(&path)) < 0)
        msg_warn("maildir %s: fsync: %m", sb_str(&path));
    local_result_set(res, 2, "2.0.0", "delivered to maildir");
out:
    sb_free(&path);
    sb_free(&name);
    sb_free(&tmp);
    sb_free(&fin);
}
