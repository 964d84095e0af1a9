/* pickup.c: the pickup daemon takes the local submissions tern-drop left
 * in maildrop/ and hands each to cleanup as a local submission, so that
 * cleanup adds Received: (from userid N) and the From:, Date: and
 * Message-ID: that are missing. It wakes when tern-drop pokes public/pickup
 * and on its master.cf timer, and runs as mail_owner with setgid_group as
 * a supplementary group, since maildrop files are mode 0640 with that
 * group. Every file is hostile input: one that is not a well-formed
 * maildrop file (lib/global/QUEUE.md) goes to corrupt/ with a log line. The
 * submitter is the file's owner, which the kernel set when tern-drop
 * created the file, and only root, mail_owner and trusted_users may choose
 * their envelope sender: this is decided here, where no user can get
 * around it. A file is removed only after cleanup confirmed its queue ID. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "chroot.h"
#include "cleanup_client.h"
#include "config.h"
#include "domains.h"
#include "log.h"
#include "maildrop.h"
#include "pickup_milter.h"
#include "rewrite.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

#define PICKUP_TEMP_MAX_AGE 3600    /* seconds a tern-drop may take to write a file */
#define PICKUP_PARTIAL_MIN_AGE 2    /* a newer unlocked file may be one being created */
#define PICKUP_CLEANUP_LOCAL 1      /* cleanup's local-submission flag (doc/PROTOCOLS.md) */
#define PICKUP_CLEANUP_HOLD 2       /* cleanup's hold flag */
#define PICKUP_CLEANUP_NO_MAPPINGS 4 /* receive_override_options = no_address_mappings */
#define PICKUP_CLEANUP_NO_CHECKS 8  /* receive_override_options = no_header_body_checks */

static struct {
    uid_t owner_uid;                /* mail_owner */
    uid_t *trusted;                 /* trusted_users */
    size_t ntrusted;
    const char *cleanup_service;
    unsigned long long file_limit;  /* largest maildrop file read, 0: none */
    int cleanup_flags;              /* what receive_override_options asks of cleanup */
    char *content_filter;           /* content_filter, or NULL */
} pickup_cfg;

/* ---- the sender rule ---- */

static bool uid_trusted(uid_t uid)
{
    if (uid == 0 || uid == pickup_cfg.owner_uid)
        return true;
    for (size_t i = 0; i < pickup_cfg.ntrusted; i++)
        if (pickup_cfg.trusted[i] == uid)
            return true;
    return false;
}

/* An address without a domain gets @myorigin, as Postfix's cleanup does. */
static char *qualify(const char *addr)
{
    struct address a;
    bool nodomain = false;
    if (*addr && address_parse(addr, strlen(addr), ADDR_ALLOW_BARE | ADDR_ALLOW_NODOMAIN
                               | ADDR_ALLOW_UTF8, &a, NULL) == ADDR_OK) {
        nodomain = a.flags & ADDR_F_NODOMAIN;
        address_free(&a);
    }
    if (!nodomain || !*domain_myorigin())
        return xstrdup(addr);
    struct strbuf out = STRBUF_INIT(0);
    sb_appendf(&out, "%s@%s", addr, domain_myorigin());
    return (char *)sb_str(&out);
}

/* The envelope sender of a file owned by uid: the one it names when uid
 * may choose, else the user's login name. *replaced: the sender asked
 * for, when it was not allowed (NULL otherwise). NULL when uid has no
 * account (*failed false) or the account database cannot be read now
 * (*failed true: try again later). Inside a chroot the lookup reads the
 * password file opened before it (lib/global/chroot.c). */
static char *choose_sender(uid_t uid, const char *asked, const char **replaced, bool *failed)
{
    *replaced = NULL;
    *failed = false;
    if (uid_trusted(uid))
        return qualify(asked);
    char buf[16384];
    struct passwd pw, *found = NULL;
    int rc = chroot_getpwuid_r(uid, &pw, buf, sizeof(buf), &found);
    if (rc != 0 && rc != ENOENT && rc != ESRCH && rc != EBADF && rc != EPERM) {
        msg_warn("cannot look up the account of uid %ld: %s", (long)uid, strerror(rc));
        *failed = true;
        return NULL;
    }
    if (!found)
        return NULL;
    char *login = qualify(pw.pw_name);
    if (strcmp(asked, pw.pw_name) != 0 && strcmp(asked, login) != 0)
        *replaced = asked;
    return login;
}

/* ---- one maildrop file ---- */

static void path_of(struct strbuf *out, const char *sub, const char *name)
{
    sb_reset(out);
    sb_appendf(out, "%s/%s", sub, name);
}

/* Never deleted: moved to corrupt/ for the administrator, with the reason. */
static void set_aside(const char *name, const char *why)
{
    struct strbuf from = STRBUF_INIT(0), to = STRBUF_INIT(0);
    path_of(&from, QDIR_MAILDROP, name);
    path_of(&to, QDIR_CORRUPT, name);
    if (rename(sb_str(&from), sb_str(&to)) == 0)
        msg_warn("maildrop file %s: %s; moved to %s/", name, why, QDIR_CORRUPT);
    else if (errno != ENOENT)
        msg_warn("maildrop file %s: %s; cannot move it to %s/: %m", name, why, QDIR_CORRUPT);
    sb_free(&from);
    sb_free(&to);
}

/* What goes to cleanup besides sender and content. */
struct pickup_envelope {
    const char *names[6], *values[6];
    size_t nattr;
    char **rcpts;
    const char **notifies;
    size_t nrcpt;
    char uid[24];
};

static void envelope_build(struct pickup_envelope *e, const struct qmessage *m,
                           const struct maildrop_info *info)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->uid, sizeof(e->uid), "%lld", info->uid);
    /* filter: the content_filter; cleanup's FILTER actions win over it */
    const char *names[] = { "uid", "full_name", "ret", "envid", "filter" };
    const char *values[] = { e->uid, info->full_name, info->ret, info->envid,
                             pickup_cfg.content_filter };
    for (size_t i = 0; i < 5; i++)
        if (values[i]) {
            e->names[e->nattr] = names[i];
            e->values[e->nattr++] = values[i];
        }
    e->nrcpt = m->nrcpts;
    e->rcpts = xcalloc(m->nrcpts, sizeof(char *));
    e->notifies = xcalloc(m->nrcpts, sizeof(char *));
    for (size_t i = 0; i < m->nrcpts; i++) {
        e->rcpts[i] = qualify(m->rcpts[i].address);
        e->notifies[i] = m->rcpts[i].notify;
    }
}

static void envelope_free(struct pickup_envelope *e)
{
    for (size_t i = 0; i < e->nrcpt; i++)
        free(e->rcpts[i]);
    free(e->rcpts);
    free(e->notifies);
}

/* The milters' edited message, read from its spool file in pieces. */
static int render_content(void *ctx, int (*send)(const char *data, size_t len, void *arg), void *arg)
{
    return milter_msg_render(ctx, send, arg);
}

/* Hand a checked file to cleanup. 0 done (submitted or set aside), -1
 * cleanup could not take it now: try again later. */
static int submit(const char *name, int fd, const struct qmessage *m,
                  const struct maildrop_info *info, uid_t uid)
{
    const char *replaced;
    bool failed;
    char *sender = choose_sender(uid, m->sender, &replaced, &failed);
    if (!sender && failed)
        return -1;
    if (!sender) {
        set_aside(name, "no account has the submitter's uid, so there is no sender address");
        return 0;
    }
    struct pickup_envelope e;
    envelope_build(&e, m, info);
    struct cleanup_submission sub = {
        .flags = PICKUP_CLEANUP_LOCAL | pickup_cfg.cleanup_flags, .sender = sender,
        .attr_names = e.names, .attr_values = e.values, .nattr = e.nattr,
        .rcpts = (const char *const *)e.rcpts, .notifies = e.notifies, .nrcpt = e.nrcpt,
        .content_fd = fd, .content_offset = m->content_offset,
    };
    struct strbuf err = STRBUF_INIT(4096), path = STRBUF_INIT(0);
    char qid[QUEUE_ID_SIZE];
    int status, rc = 0;
    /* non_smtpd_milters see the message first; cleanup gets their result */
    struct pickup_milter_result pm;
    pickup_milter_filter(name, fd, m->content_offset, sender, (const char *const *)e.rcpts,
                         e.notifies, e.nrcpt, &pm);
    if (pm.verdict == PM_DEFER) {
        msg_warn("maildrop file %s: milter: %s; trying again later", name, pm.text);
        rc = -1;
        goto out;
    } else if (pm.verdict == PM_REJECT) {
        msg_info("%s: milter-reject: %s; from=<%s>", name, pm.text, sender);
        set_aside(name, "refused by a milter");
        goto out;
    } else if (pm.verdict == PM_DISCARD) {
        msg_info("%s: milter-discard: %s; from=<%s>", name, pm.text, sender);
        path_of(&path, QDIR_MAILDROP, name);
        if (unlink(sb_str(&path)) < 0)
            msg_warn("cannot remove %s: %m", sb_str(&path));
        goto out;
    } else if (pm.verdict == PM_PASS) {
        sub.sender = pm.sender;
        sub.rcpts = (const char *const *)pm.rcpts;
        sub.notifies = (const char *const *)pm.notifies;
        sub.nrcpt = pm.nrcpt;
        sub.content_fn = render_content;
        sub.content_ctx = &pm.msg;
        sub.content_offset = 0;
        if (pm.hold_reason) {
            sub.flags |= PICKUP_CLEANUP_HOLD;
            e.names[e.nattr] = "hold_reason";
            e.values[e.nattr++] = pm.hold_reason;
            sub.nattr = e.nattr;
        }
    }
    if (cleanup_submit_status(".", pickup_cfg.cleanup_service, &sub, qid, &err, &status) == 0) {
        msg_info("%s: uid=%lld from=<%s>", qid, info->uid, sub.sender);
        if (replaced)
            msg_info("%s: sender <%s> replaced by <%s>: uid %lld may not choose its sender "
                     "(not root, mail_owner or in trusted_users)", qid, replaced, sender,
                     info->uid);
        if (pm.hold_reason)
            msg_info("%s: milter-hold: END-OF-MESSAGE from localhost[127.0.0.1]: %s; from=<%s>",
                     qid, pm.hold_reason + strlen("milter: "), sub.sender);
        msg_debug("%s: from maildrop file %s", qid, name);
        path_of(&path, QDIR_MAILDROP, name);
        if (unlink(sb_str(&path)) < 0)
            msg_warn("%s: cannot remove %s after submitting it: %m; it may be delivered twice",
                     qid, sb_str(&path));
    } else if (status >= 500) {
        set_aside(name, sb_str(&err));
    } else {
        msg_warn("maildrop file %s: %s; trying again later", name, sb_str(&err));
        rc = -1;
    }
out:
    pickup_milter_result_free(&pm);
    envelope_free(&e);
    free(sender);
    sb_free(&err);
    sb_free(&path);
    return rc;
}

/* Open, check and submit one file; see submit() for the result. */
static int pickup_file(const char *name)
{
    struct strbuf path = STRBUF_INIT(0), err = STRBUF_INIT(4096);
    struct qmessage m;
    struct maildrop_info info;
    struct stat st;
    const char *why = NULL;
    char text[160];
    int rc = 0;
    path_of(&path, QDIR_MAILDROP, name);
    /* never block on a fifo, never follow a link put in its place */
    int fd = open(sb_str(&path), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    memset(&m, 0, sizeof(m));
    if (fd < 0) {
        if (errno != ENOENT) {
            snprintf(text, sizeof(text), "cannot open it: %s", strerror(errno));
            why = text;
        }
    } else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        why = "not a plain file with one link";
    } else if (pickup_cfg.file_limit && (unsigned long long)st.st_size > pickup_cfg.file_limit) {
        why = "larger than message_size_limit allows";
    } else if (qmessage_load_fd(fd, name, &m, &err) < 0) {
        why = sb_str(&err);
    } else if (maildrop_check(&m, &info, &why) < 0) {
        ;
    } else if (info.uid != (long long)st.st_uid) {
        snprintf(text, sizeof(text), "its uid attribute %lld is not its owner's %ld", info.uid,
                 (long)st.st_uid);
        why = text;
    } else {
        rc = submit(name, fd, &m, &info, st.st_uid);
    }
    if (why)
        set_aside(name, why);
    if (fd >= 0)
        close(fd);
    qmessage_free(&m);
    sb_free(&path);
    sb_free(&err);
    return rc;
}

/* An unfinished file (.ID) or a tern-drop's slot name for one (.uUID.K):
 * tern-drop holds an flock() on it for as long as it runs. A file nobody
 * holds was left by a tern-drop that died (killed with SIGKILL, or a crash):
 * removed at once, and logged with its owner's uid, which tern-drop cannot
 * choose. One still held is removed after PICKUP_TEMP_MAX_AGE: a
 * submission that never ends must not keep its disk space. The age guard
 * covers the moment between tern-drop's open() and its flock(). */
static void remove_partial(const char *name, time_t now, bool slot)
{
    struct strbuf path = STRBUF_INIT(0);
    struct stat st;
    path_of(&path, QDIR_MAILDROP, name);
    int fd = open(sb_str(&path), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || now - st.st_mtime < PICKUP_PARTIAL_MIN_AGE)
        goto out;
    bool abandoned = S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (!abandoned && now - st.st_mtime <= PICKUP_TEMP_MAX_AGE)
        goto out;
    if (unlink(sb_str(&path)) < 0) {
        if (errno != ENOENT)
            msg_warn("maildrop: cannot remove partial file %s: %m", sb_str(&path));
    } else if (!slot) {
        msg_warn("maildrop: partial file %s from uid %ld (%lld bytes) removed: %s",
                 sb_str(&path), (long)st.st_uid, (long long)st.st_size,
                 abandoned ? "its tern-drop ended without finishing it"
                           : "still unfinished after an hour");
    }
out:
    if (fd >= 0)
        close(fd);
    sb_free(&path);
}

/* Every file in maildrop/; stop when cleanup cannot take one. */
static void pickup_scan(void)
{
    DIR *d = opendir(QDIR_MAILDROP);
    struct dirent *de;
    time_t now = time(NULL);
    if (!d) {
        msg_warn("cannot open %s/: %m", QDIR_MAILDROP);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (queue_id_valid(de->d_name)) {
            if (pickup_file(de->d_name) < 0)
                break;
        } else if (de->d_name[0] == '.' && queue_id_valid(de->d_name + 1)) {
            remove_partial(de->d_name, now, false);
        } else if (de->d_name[0] == '.' && de->d_name[1] == 'u') {
            remove_partial(de->d_name, now, true);
        }
    }
    closedir(d);
}

/* ---- the daemon ---- */

/* trusted_users: account names or numeric uids; unknown names are reported. */
static void read_trusted_users(void)
{
    size_t n;
    char **words = cfg_list_split(cfg_str(P_trusted_users), &n);
    pickup_cfg.trusted = xcalloc(n + 1, sizeof(uid_t));
    for (size_t i = 0; i < n; i++) {
        struct passwd *pw = getpwnam(words[i]);
        long v;
        if (pw)
            pickup_cfg.trusted[pickup_cfg.ntrusted++] = pw->pw_uid;
        else if (parse_long(words[i], 0, 0x7fffffffL, &v) == 0)
            pickup_cfg.trusted[pickup_cfg.ntrusted++] = (uid_t)v;
        else
            msg_warn("trusted_users: no account \"%s\"; ignored", words[i]);
    }
    cfg_list_free(words, n);
}

/* As root, before the privilege drop and any chroot: look accounts up
 * while /etc is still there, and open the domain lists (whose tables may
 * be readable only now). */
static void pickup_pre_init(void)
{
    domains_init();
    gid_t gid;
    if (user_ids(cfg_str(P_mail_owner), &pickup_cfg.owner_uid, &gid) < 0)
        pickup_cfg.owner_uid = getuid();
    read_trusted_users();
}

static void pickup_post_init(struct event_base *base)
{
    pickup_cfg.cleanup_service = xstrdup(cfg_str(P_cleanup_service_name));
    unsigned long long limit = (unsigned long long)cfg_size(P_message_size_limit);
    pickup_cfg.file_limit = limit ? limit + 2ULL * MAILDROP_ENVELOPE_MAX : 0;
    unsigned ro = rewrite_receive_overrides(cfg_str(P_receive_override_options));
    pickup_cfg.cleanup_flags = (ro & RECEIVE_NO_MAPPINGS ? PICKUP_CLEANUP_NO_MAPPINGS : 0)
                               | (ro & RECEIVE_NO_CHECKS ? PICKUP_CLEANUP_NO_CHECKS : 0);
    pickup_cfg.content_filter = rewrite_content_filter();
    pickup_milter_init();
    pickup_scan();                  /* what waited while Tern was stopped */
}

/* master.cf type unix: a connection is a poke like a write to the fifo. */
static void pickup_serve(int fd)
{
    pickup_scan();
}

SERVER_MAIN("pickup", .mode = SERVER_SINGLE, .serve = pickup_serve, .wakeup = pickup_scan,
            .pre_init = pickup_pre_init, .post_init = pickup_post_init, .keep_setgid_group = true)
