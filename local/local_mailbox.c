/* local_mailbox.c: delivery to the recipient's own mailbox (home_mailbox:
 * a Maildir or an mbox file in the home directory, mailbox_command, or an
 * mbox file in mail_spool_directory) and to "/file" destinations. Each runs
 * in a child with the recipient's identity; in a spool directory without
 * the sticky bit (root:mail 2775 as on Debian) only creating and locking the
 * mailbox is done as root, and the message is written as the recipient. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local.h"
#include "util.h"

struct mbox_job {
    const struct local_delivery *d;
    const struct local_user *owner;  /* whose mailbox or file it is */
    const char *path;
    const char *what;                /* "mailbox PATH for user NAME", for reasons */
    const char *done_text;           /* reason on success */
    bool root_assisted;              /* the child is still root: create/lock as root */
    bool dotlock;
    bool owner_must_match;
};

/* Open (creating when missing) without following symlinks, and accept only
 * a plain file with one link that belongs to the owner. */
static int mbox_open(const struct mbox_job *job, struct local_result *res)
{
    int flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 2; tries++) {
        fd = open(job->path, flags);
        if (fd >= 0 || errno != ENOENT)
            break;
        fd = open(job->path, flags | O_CREAT | O_EXCL, 0600);
        if (fd >= 0 && job->root_assisted && fchown(fd, job->owner->uid, job->owner->gid) < 0) {
            int err = errno;
            close(fd);
            unlink(job->path);
            errno = err;
            fd = -1;
            break;
        }
        if (fd < 0 && errno != EEXIST)
            break;               /* EEXIST: someone created it meanwhile: open that */
    }
    if (fd < 0) {
        int status, err = errno;
        const char *dsn = result_dsn_for_errno(err, &status);
        result_set(res, status, dsn, "cannot update %s: cannot open file: %s", job->what,
                   strerror(err));
        return -1;
    }
    struct stat st;
    const char *bad = fstat(fd, &st) < 0 ? strerror(errno)
                      : !S_ISREG(st.st_mode) ? "not a regular file"
                      : st.st_nlink != 1 ? "file has more than one hard link"
                      : job->owner_must_match && st.st_uid != job->owner->uid
                        ? "file is not owned by the recipient" : NULL;
    if (bad) {
        close(fd);
        result_set(res, 4, "4.2.0", "cannot update %s: %s", job->what, bad);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

static void lock_failed(const struct mbox_job *job, const char *which, struct local_result *res)
{
    if (errno == EAGAIN)
        result_set(res, 4, "4.2.0", "cannot update %s: unable to lock for exclusive access "
                   "(%s lock busy)", job->what, which);
    else
        result_set(res, 4, "4.2.0", "cannot update %s: unable to create %s lock: %s",
                   job->what, which, strerror(errno));
}

/* Write as the owner from here on; the saved root uid lets the child take
 * root back for removing the dot-lock in the spool directory. */
static int assume_owner(const struct mbox_job *job, bool on)
{
    if (!job->root_assisted)
        return 0;
    if (on)
        return setegid(job->owner->gid) < 0 || seteuid(job->owner->uid) < 0 ? -1 : 0;
    return seteuid(0) < 0 || setegid(0) < 0 ? -1 : 0;
}

static void mbox_child(void *ctx, struct local_result *res, struct dest_list *dests)
{
    const struct mbox_job *job = ctx;
    if (job->dotlock && local_dotlock_acquire(job->path, local_cfg.lock_attempts,
                                              local_cfg.lock_delay, local_cfg.stale_lock_time) < 0) {
        lock_failed(job, "dot", res);
        return;
    }
    int fd = mbox_open(job, res);
    if (fd >= 0 && local_fcntl_lock(fd, local_cfg.lock_attempts, local_cfg.lock_delay) < 0)
        lock_failed(job, "fcntl", res);
    else if (fd >= 0 && assume_owner(job, true) < 0)
        result_set(res, 4, "4.3.0", "cannot update %s: cannot switch to the recipient's "
                   "identity: %s", job->what, strerror(errno));
    else if (fd >= 0) {
        local_mbox_append(job->d, fd, job->what, COPY_MBOX, res);
        if (res->status == 2)
            result_set(res, 2, "2.0.0", "%s", job->done_text);
        if (assume_owner(job, false) < 0)
            _exit(1);           /* cannot remove the dot-lock: stale_lock_time will */
    }
    if (fd >= 0)
        close(fd);              /* releases the fcntl lock */
    if (job->dotlock)
        local_dotlock_release(job->path);
}

static void maildir_child(void *ctx, struct local_result *res, struct dest_list *dests)
{
    const struct mbox_job *job = ctx;
    local_maildir_write(job->d, job->path, res);
}

static bool ends_with_slash(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[n - 1] == '/';
}

/* A spool directory users cannot create files in: Postfix's rule is the
 * sticky bit (1777 means every user creates their own mailbox). */
static bool spool_needs_root(const char *dir)
{
    struct stat st;
    return stat(dir, &st) < 0 || !(st.st_mode & S_ISVTX);
}

void local_mailbox_deliver(const struct local_delivery *d, const struct local_user *user,
                           struct local_result *res, const char **what)
{
    struct strbuf path = STRBUF_INIT(8192), desc = STRBUF_INIT(8192);
    struct mbox_job job = { .d = d, .owner = user, .owner_must_match = true,
                            .done_text = "delivered to mailbox", .dotlock = true };
    *what = "mailbox";
    if (*local_cfg.mailbox_command) {
        /* a command never runs as root, not even for root's mail */
        struct local_user as = { 0 };
        *what = "command";
        if (user->uid != 0)
            local_user_copy(&as, user);
        if (user->uid != 0 || local_default_privs(&as, res) == 0)
            local_pipe_deliver(d, local_cfg.mailbox_command, &as, res);
        local_user_free(&as);
        goto out;
    }
    if (*local_cfg.home_mailbox)
        sb_appendf(&path, "%s/%s", user->home, local_cfg.home_mailbox);
    else
        sb_appendf(&path, "%s/%s", local_cfg.mail_spool_directory, user->name);
    job.path = sb_str(&path);
    sb_appendf(&desc, "mailbox %s for user %s", job.path, user->name);
    job.what = sb_str(&desc);
    if (*local_cfg.home_mailbox && ends_with_slash(local_cfg.home_mailbox)) {
        *what = "maildir";
        local_child_run(d->msg, user, local_cfg.command_time_limit, maildir_child, &job, res, NULL);
        goto out;
    }
    job.root_assisted = !*local_cfg.home_mailbox && spool_needs_root(local_cfg.mail_spool_directory);
    local_child_run(d->msg, job.root_assisted ? NULL : user, local_cfg.command_time_limit,
                    mbox_child, &job, res, NULL);
out:
    sb_free(&path);
    sb_free(&desc);
}

void local_file_deliver(const struct local_delivery *d, const char *path,
                        const struct local_user *as, struct local_result *res)
{
    struct strbuf desc = STRBUF_INIT(8192), done = STRBUF_INIT(8192);
    struct mbox_job job = { .d = d, .owner = as, .path = path };
    if (strcmp(path, "/dev/null") == 0) {
        result_set(res, 2, "2.0.0", "delivered to file: /dev/null");
        return;
    }
    sb_appendf(&desc, "file %s", path);
    sb_appendf(&done, "delivered to file: %s", path);
    job.what = sb_str(&desc);
    job.done_text = sb_str(&done);
    if (ends_with_slash(path))
        local_child_run(d->msg, as, local_cfg.command_time_limit, maildir_child, &job, res, NULL);
    else
        local_child_run(d->msg, as, local_cfg.command_time_limit, mbox_child, &job, res, NULL);
    sb_free(&desc);
    sb_free(&done);
}
