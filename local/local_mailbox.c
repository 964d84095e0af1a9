/* local_mailbox.c: delivery to the recipient's own mailbox (home_mailbox:
 * a Maildir or an mbox file in the home directory, mailbox_command, or an
 * mbox file in mail_spool_directory) and to "/file" destinations. Each runs
 * in a child with the recipient's identity. In the spool directory the
 * child follows Postfix's rule: a world-writable spool (1777) is written as
 * the recipient; a group-writable one (root:mail 2775 as on Debian) gets
 * the dot-lock and a missing mailbox created as the recipient with the
 * spool's group; any other as root, with the new mailbox given to the
 * recipient by descriptor. The message itself is always written as the
 * recipient. A file someone else planted (a mailbox or lock of another
 * uid, a symlink, a hard link) is reported in the log and in the reason,
 * at once, and the delivery is deferred. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local.h"
#include "log.h"
#include "util.h"

struct mbox_job {
    const struct local_delivery *d;
    const struct local_user *owner;  /* whose mailbox or file it is */
    const char *path;
    const char *what;                /* "mailbox PATH for user NAME", for reasons */
    const char *done_text;           /* reason on success */
    bool root_assisted;              /* the child is still root: create/lock as spool ids */
    uid_t spool_uid;                 /* root_assisted: effective ids for lock and create */
    gid_t spool_gid;
    bool dotlock;
    bool owner_must_match;
};

/* "uid N (name)" for a file's owner, for reasons and warnings. */
static void owner_text(char *buf, size_t size, uid_t uid)
{
    struct passwd *pw = getpwuid(uid);
    snprintf(buf, size, "uid %ld (%s)", (long)uid, pw ? pw->pw_name : "no such user");
}

/* A file the recipient did not make: deferred with a reason that names it
 * and its owner; aux carries the owner so the parent logs a warning. */
static void foreign_file(const struct mbox_job *job, struct delivery_status *res, const char *file,
                         const char *what, uid_t uid)
{
    char who[160];
    owner_text(who, sizeof(who), uid);
    delivery_status_set(res, 4, "4.2.0",
                        "cannot update %s: %s %s, owned by %s, was not made by the "
                        "recipient; remove it (and keep the spool directory from being writable by "
                        "users: root:mail 2775)", job->what, file, what, who);
    res->aux = (long long)uid;
}

/* Open (creating when missing) without following symlinks, and accept only
 * a plain file with one link that belongs to the owner. */
static int mbox_open(const struct mbox_job *job, struct delivery_status *res)
{
    int flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 2; tries++) {
        fd = open(job->path, flags);
        if (fd >= 0 || errno != ENOENT)
            break;
        fd = open(job->path, flags | O_CREAT | O_EXCL, 0600);
        if (fd >= 0 && job->root_assisted && job->spool_uid == 0
            && fchown(fd, job->owner->uid, job->owner->gid) < 0) {
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
    struct stat st;
    if (fd < 0 && errno == ELOOP && lstat(job->path, &st) == 0 && S_ISLNK(st.st_mode)) {
        foreign_file(job, res, job->path, "is a symbolic link", st.st_uid);
        return -1;
    }
    if (fd < 0 && errno == EACCES && job->owner_must_match && lstat(job->path, &st) == 0
        && st.st_uid != job->owner->uid) {
        foreign_file(job, res, job->path, "is not owned by the recipient", st.st_uid);
        return -1;
    }
    if (fd < 0) {
        int status, err = errno;
        const char *dsn = mailbox_dsn_for_errno(err, &status);
        delivery_status_set(res, status, dsn, "cannot update %s: cannot open file: %s", job->what,
                            strerror(err));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        delivery_status_set(res, 4, "4.2.0", "cannot update %s: %s", job->what, strerror(errno));
        close(fd);
        return -1;
    }
    const char *bad = !S_ISREG(st.st_mode) ? "is not a regular file"
                      : st.st_nlink != 1 ? "has more than one hard link"
                      : job->owner_must_match && st.st_uid != job->owner->uid
                        ? "is not owned by the recipient" : NULL;
    if (bad) {
        close(fd);
        if (job->owner_must_match)
            foreign_file(job, res, job->path, bad, st.st_uid);
        else
            delivery_status_set(res, 4, "4.2.0", "cannot update %s: file %s", job->what, bad);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

static void lock_failed(const struct mbox_job *job, const char *which, struct delivery_status *res)
{
    if (errno == EAGAIN)
        delivery_status_set(res, 4, "4.2.0",
                            "cannot update %s: unable to lock for exclusive access "
                            "(%s lock busy)", job->what, which);
    else
        delivery_status_set(res, 4, "4.2.0", "cannot update %s: unable to create %s lock: %s",
                            job->what, which, strerror(errno));
}

/* Effective ids for the next step; the saved root uid lets the child
 * switch between the spool's ids (lock, create, unlock) and the owner's
 * (write). */
static int set_effective(uid_t uid, gid_t gid)
{
    return seteuid(0) < 0 || setegid(gid) < 0 || seteuid(uid) < 0 ? -1 : 0;
}

static int assume_owner(const struct mbox_job *job, bool on)
{
    if (!job->root_assisted)
        return 0;
    if (on)
        return set_effective(job->owner->uid, job->owner->gid);
    return set_effective(job->spool_uid, job->spool_gid);
}

/* A root child gives up root's groups before it touches the spool. */
static int enter_spool_ids(const struct mbox_job *job)
{
    if (!job->root_assisted)
        return 0;
    gid_t groups[1] = { job->owner->gid };
    return setgroups(1, groups) < 0 ? -1 : set_effective(job->spool_uid, job->spool_gid);
}

/* Maildir and mbox through lib/global/mailbox.h, bounded by mailbox_size_limit. */

void local_maildir_write(const struct local_delivery *d, const char *dir,
                         struct delivery_status *res)
{
    struct mailbox_message m;
    struct delivery_status st;
    struct mailbox_maildir md = {
        .dir = dir, .hostname = local_cfg.myhostname, .flags = 0,
        .limit = { local_cfg.mailbox_size_limit, "mailbox_size_limit" },
    };
    local_mailbox_message(d, &m);
    mailbox_maildir_write(&m, d->delivered_to, &md, &st);
    *res = st;
}

void local_mbox_append(const struct local_delivery *d, int fd, const char *what,
                       int flags, struct delivery_status *res)
{
    struct mailbox_message m;
    struct delivery_status st;
    struct mailbox_limit limit = { local_cfg.mailbox_size_limit, "mailbox_size_limit" };
    local_mailbox_message(d, &m);
    mailbox_mbox_append(&m, d->delivered_to, fd, what, flags, &limit, &st);
    *res = st;
}

static void mbox_child(void *ctx, struct delivery_status *res, struct dest_list *dests)
{
    const struct mbox_job *job = ctx;
    struct stat found;
    if (enter_spool_ids(job) < 0) {
        delivery_status_set(res, 4, "4.3.0",
                            "cannot update %s: cannot switch to the spool directory's "
                            "identity: %s", job->what, strerror(errno));
        return;
    }
    int locked = job->dotlock ? mailbox_dotlock_acquire(job->path, local_cfg.lock_attempts,
                                                      local_cfg.lock_delay,
                                                      local_cfg.stale_lock_time,
                                                      job->owner->uid, &found) : 0;
    if (locked == -2) {
        struct strbuf lock = STRBUF_INIT(8192);
        sb_appendf(&lock, "lock file %s.lock", job->path);
        foreign_file(job, res, sb_str(&lock), S_ISREG(found.st_mode) ? "exists"
                     : "exists and is not a regular file", found.st_uid);
        sb_free(&lock);
        return;
    }
    if (locked < 0) {
        lock_failed(job, "dot", res);
        return;
    }
    int fd = mbox_open(job, res);
    if (fd >= 0 && mailbox_fcntl_lock(fd, local_cfg.lock_attempts, local_cfg.lock_delay) < 0)
        lock_failed(job, "fcntl", res);
    else if (fd >= 0 && assume_owner(job, true) < 0)
        delivery_status_set(res, 4, "4.3.0", "cannot update %s: cannot switch to the recipient's "
                            "identity: %s", job->what, strerror(errno));
    else if (fd >= 0) {
        local_mbox_append(job->d, fd, job->what, COPY_MBOX, res);
        if (res->status == 2)
            delivery_status_set(res, 2, "2.0.0", "%s", job->done_text);
        if (res->status == 2 && locked == 1)
            res->aux = (long long)found.st_uid;   /* the parent reports the stale lock */
        if (assume_owner(job, false) < 0)
            _exit(1);           /* cannot remove the dot-lock: stale_lock_time will */
    }
    if (fd >= 0)
        close(fd);              /* releases the fcntl lock */
    if (job->dotlock)
        mailbox_dotlock_release(job->path);
}

static void maildir_child(void *ctx, struct delivery_status *res, struct dest_list *dests)
{
    const struct mbox_job *job = ctx;
    local_maildir_write(job->d, job->path, res);
}

static bool ends_with_slash(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[n - 1] == '/';
}

/* Postfix's rule: a world-writable spool is written as the recipient
 * (false); a group-writable one as the recipient with the spool's group;
 * any other as root. A spool that cannot be examined is left to root,
 * which then fails to create a mailbox there with a clear reason. */
static bool spool_ids(const char *dir, const struct local_user *user, uid_t *uid, gid_t *gid)
{
    struct stat st;
    if (stat(dir, &st) == 0 && (st.st_mode & S_IWOTH))
        return false;
    if (stat(dir, &st) == 0 && (st.st_mode & S_IWGRP)) {
        *uid = user->uid;
        *gid = st.st_gid;
    } else {
        *uid = 0;
        *gid = 0;
    }
    return true;
}

/* The child cannot log (it has none of the parent's descriptors): a file
 * someone planted is reported here, with its owner, from the reason; after
 * a delivery, aux is the owner of a stale dot-lock the child removed. */
static void warn_foreign(const struct mbox_job *job, const struct delivery_status *res)
{
    char who[160];
    if (res->aux < 0)
        return;
    if (res->status != 2) {
        msg_warn("%s", res->reason);
        return;
    }
    owner_text(who, sizeof(who), (uid_t)res->aux);
    msg_warn("%s: removed the lock file %s.lock of %s: older than stale_lock_time (%lds)",
             job->what, job->path, who, local_cfg.stale_lock_time);
}

void local_mailbox_deliver(const struct local_delivery *d, const struct local_user *user,
                           struct delivery_status *res, const char **what)
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
    job.root_assisted = !*local_cfg.home_mailbox && getuid() == 0
                        && spool_ids(local_cfg.mail_spool_directory, user, &job.spool_uid,
                                     &job.spool_gid);
    local_child_run(d->msg, job.root_assisted ? NULL : user, local_cfg.command_time_limit,
                    mbox_child, &job, res, NULL);
    warn_foreign(&job, res);
out:
    sb_free(&path);
    sb_free(&desc);
}

void local_file_deliver(const struct local_delivery *d, const char *path,
                        const struct local_user *as, struct delivery_status *res)
{
    struct strbuf desc = STRBUF_INIT(8192), done = STRBUF_INIT(8192);
    struct mbox_job job = { .d = d, .owner = as, .path = path };
    if (strcmp(path, "/dev/null") == 0) {
        delivery_status_set(res, 2, "2.0.0", "delivered to file: /dev/null");
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
