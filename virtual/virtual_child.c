/* virtual_child.c: one virtual delivery in a child process with the
 * recipient's uid and gid from the tables (no supplementary groups, no way
 * back to root), so that every path under virtual_mailbox_base is opened
 * with that uid's rights only and the root parent never opens a mailbox.
 * A Maildir and its missing parents are created as that uid (0700); an
 * mbox file is created 0600 as that uid, never through a symbolic link,
 * and only a plain file of that uid with one link is appended to. The
 * child reports its outcome through a pipe as one attribute frame, which
 * the parent reads strictly. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attr.h"
#include "log.h"
#include "pipe_command.h"
#include "util.h"
#include "virtual.h"

#define CHILD_FRAME_LIMIT (DELIVERY_REASON_MAX + 256)

/* ---- the child ---- */

/* Every descriptor from 3 up but the queue file's content and the report
 * pipe: nothing of master's, the connection to qmgr, the read-write queue
 * file, nor any table's file or database connection reaches the uid. */
static void close_inherited(const struct virtual_delivery *d, int keep)
{
    const int keeps[2] = { d->msg.fd < keep ? d->msg.fd : keep, d->msg.fd < keep ? keep : d->msg.fd };
    unsigned from = 3;
    for (int i = 0; i < 2; i++) {
        if (keeps[i] < 3 || (unsigned)keeps[i] < from)
            continue;
        if ((unsigned)keeps[i] > from)
            pipe_command_close_span(from, (unsigned)keeps[i] - 1);
        from = (unsigned)keeps[i] + 1;
    }
    pipe_command_close_span(from, ~0U);
}

/* Open (creating when missing) without following a symbolic link, and
 * accept only a plain file of uid with one link. */
static int mbox_open(const char *path, const char *what, uid_t uid, struct delivery_status *st)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    struct stat sb;
    if (fd < 0 && errno == ELOOP && lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
        delivery_status_set(st, 4, "4.2.0", "cannot update %s: it is a symbolic link, which is "
                            "not followed; remove it", what);
        return -1;
    }
    if (fd < 0) {
        int status, err = errno;
        const char *dsn = mailbox_dsn_for_errno(err, &status);
        delivery_status_set(st, status, dsn, "cannot update %s: cannot open file: %s", what,
                            strerror(err));
        return -1;
    }
    const char *bad = fstat(fd, &sb) < 0 ? "cannot be examined"
                      : !S_ISREG(sb.st_mode) ? "is not a regular file"
                      : sb.st_nlink != 1 ? "has more than one hard link"
                      : sb.st_uid != uid ? "is not owned by the recipient's uid" : NULL;
    if (bad) {
        close(fd);
        delivery_status_set(st, 4, "4.2.0", "cannot update %s: the file %s", what, bad);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

static void mbox_deliver(const struct virtual_delivery *d, const struct virtual_mailbox *mb,
                         struct delivery_status *st)
{
    struct strbuf what = STRBUF_INIT(VIRTUAL_PATH_MAX + 1200);
    sb_appendf(&what, "mailbox %s for %s", mb->path, d->address);
    struct stat found;
    int locked = -1;
    if (virtual_cfg.lock & MAILBOX_LOCK_DOT) {
        locked = mailbox_dotlock_acquire(mb->path, virtual_cfg.lock_attempts, virtual_cfg.lock_delay,
                                         virtual_cfg.stale_lock_time, mb->uid, &found);
        if (locked == -2) {
            delivery_status_set(st, 4, "4.2.0", "cannot update %s: lock file %s.lock was not made "
                                "by the recipient's uid; remove it", sb_str(&what), mb->path);
            goto out;
        }
        if (locked == -1 && errno == EAGAIN) {
            delivery_status_set(st, 4, "4.2.0", "cannot update %s: unable to lock for exclusive "
                                "access (dot lock busy)", sb_str(&what));
            goto out;
        }
        /* any other failure (a directory the uid may not write): as Postfix,
         * the dot-lock may fail and the fcntl lock stands alone */
    }
    int fd = mbox_open(mb->path, sb_str(&what), mb->uid, st);
    if (fd < 0)
        goto unlock;
    if ((virtual_cfg.lock & MAILBOX_LOCK_FCNTL)
        && mailbox_fcntl_lock(fd, virtual_cfg.lock_attempts, virtual_cfg.lock_delay) < 0) {
        delivery_status_set(st, 4, "4.2.0", "cannot update %s: unable to lock for exclusive access "
                            "(fcntl lock: %s)", sb_str(&what), strerror(errno));
    } else {
        struct mailbox_limit limit = { virtual_cfg.mailbox_limit, "virtual_mailbox_limit" };
        mailbox_mbox_append(&d->msg, d->delivered_to, fd, sb_str(&what), COPY_MBOX, &limit, st);
        if (st->status == 2)
            delivery_status_set(st, 2, "2.0.0", "delivered to mailbox");
    }
    close(fd);                   /* releases the fcntl lock */
unlock:
    if (locked >= 0)
        mailbox_dotlock_release(mb->path);
out:
    sb_free(&what);
}

struct child_job {
    const struct virtual_delivery *d;
    const struct virtual_mailbox *mb;
};

static void __attribute__((noreturn)) child_main(void *ctx, int report)
{
    const struct child_job *job = ctx;
    const struct virtual_delivery *d = job->d;
    const struct virtual_mailbox *mb = job->mb;
    struct delivery_status st;
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    close_inherited(d, report);
    pipe_command_become(NULL, mb->uid, mb->gid, false);
    umask(077);
    delivery_status_set(&st, 4, "4.3.0", "delivery process reported nothing");
    if (mb->maildir) {
        struct mailbox_maildir md = {
            .dir = mb->path, .hostname = virtual_cfg.myhostname,
            .flags = MAILDIR_MAKE_PARENTS | MAILDIR_NO_SYMLINK,
            .limit = { virtual_cfg.mailbox_limit, "virtual_mailbox_limit" },
        };
        mailbox_maildir_write(&d->msg, d->delivered_to, &md, &st);
    } else {
        mbox_deliver(d, mb, &st);
    }
    struct strbuf out = STRBUF_INIT(CHILD_FRAME_LIMIT);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_int(&w, "status", st.status);
    attr_put_str(&w, "dsn", st.dsn);
    attr_put_str(&w, "reason", st.reason);
    int rc = attr_end(&w) == 0 ? attr_write(report, &out, 60) : -1;
    _exit(rc == 0 ? 0 : 1);
}

/* ---- the parent ---- */

static int decode_report(const struct strbuf *in, struct delivery_status *st)
{
    struct attr_reader r;
    long long status;
    const char *dsn, *reason;
    if (attr_reader_init(&r, in->data, in->len) < 0
        || attr_get_int(&r, "status", 2, 5, &status) < 0 || status == 3
        || attr_get_str(&r, "dsn", &dsn) < 0 || attr_get_str(&r, "reason", &reason) < 0
        || strlen(dsn) >= sizeof(st->dsn) || dsn[0] != (char)('0' + status)
        || attr_reader_done(&r) < 0)
        return -1;
    delivery_status_set(st, (int)status, dsn, "%s", reason);
    return 0;
}

void virtual_deliver(const struct virtual_delivery *d, const struct virtual_mailbox *mb,
                     struct delivery_status *st)
{
    struct child_job job = { d, mb };
    struct strbuf in = STRBUF_INIT(0);
    char why[DELIVERY_REASON_MAX];
    int wstatus;
    int rc = pipe_command_child(child_main, &job, CHILD_FRAME_LIMIT, virtual_cfg.time_limit, &in,
                                &wstatus, why, sizeof(why));
    if (rc < 0 && wstatus != -1 && WIFEXITED(wstatus)
        && WEXITSTATUS(wstatus) == PIPE_COMMAND_TEMPFAIL)
        delivery_status_set(st, 4, "4.3.0", "cannot switch to uid %ld gid %ld for the delivery",
                            (long)mb->uid, (long)mb->gid);
    else if (rc < 0)
        delivery_status_set(st, 4, "4.3.0", "%s", why);
    else if (decode_report(&in, st) < 0)
        delivery_status_set(st, 4, "4.3.0", "malformed result from the delivery process");
    sb_free(&in);
}
