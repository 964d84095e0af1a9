/* tern_setup.c: `tern setup`: what a system install needs before the first
 * start, done as root and idempotently: the mail_owner account and the
 * setgid_group, the configuration files (from the installed defaults), and
 * the queue directory tree with its owners and modes. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "queue.h"
#include "server.h"
#include "strbuf.h"
#include "tern.h"
#include "util.h"

#ifndef TERN_PKGDATADIR
#define TERN_PKGDATADIR "/usr/local/share/tern"
#endif

static bool group_exists(const char *name) { return getgrnam(name) != NULL; }
static bool user_exists(const char *name) { return getpwnam(name) != NULL; }

/* Run groupadd or useradd for name; a failure is fine when another tern
 * init made the account meanwhile. */
static int create_account(const char *const *args, const char *what, const char *name,
                          bool (*exists)(const char *))
{
    int rc = tern_run(args);
    if (rc != 0 && !exists(name)) {
        fprintf(stderr, "tern: cannot create %s %s (%s failed)\n", what, name, args[0]);
        return -1;
    }
    if (rc == 0)
        printf("tern: created %s %s\n", what, name);
    return 0;
}

int tern_ensure_group(const char *group)
{
    const char *args[] = { "groupadd", "--system", group, NULL };
    return group_exists(group) ? 0 : create_account(args, "group", group, group_exists);
}

int tern_ensure_accounts(const char *owner, const char *group)
{
    if (tern_ensure_group(group) < 0)
        return -1;
    const char *args[] = { "useradd", "--system", "--user-group", "--no-create-home",
                           "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                           "--comment", "Tern mail system", owner, NULL };
    return user_exists(owner) ? 0 : create_account(args, "user", owner, user_exists);
}

/* Copy a default configuration file unless the administrator has one. */
static int install_default(const char *confdir, const char *name)
{
    struct strbuf src = STRBUF_INIT(PATH_MAX), dst = STRBUF_INIT(PATH_MAX);
    sb_appendf(&src, "%s/%s", TERN_PKGDATADIR, name);
    sb_appendf(&dst, "%s/%s", confdir, name);
    int rc = 0;
    if (access(dst.data, F_OK) == 0)
        goto out;
    int in = open(src.data, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        fprintf(stderr, "tern: %s is missing and its default %s cannot be read: %s\n",
                dst.data, src.data, strerror(errno));
        rc = -1;
        goto out;
    }
    int outfd = open(dst.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    char buf[8192];
    ssize_t n = 0;
    while (outfd >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
        if (write_all(outfd, buf, (size_t)n) < 0)
            break;
    if (outfd < 0 || n != 0 || close(outfd) < 0) {
        fprintf(stderr, "tern: cannot write %s: %s\n", dst.data, strerror(errno));
        rc = -1;
    } else {
        printf("tern: installed the default %s\n", dst.data);
    }
    close(in);
out:
    sb_free(&src);
    sb_free(&dst);
    return rc;
}

/* mkdir when missing, then the owner and mode the queue contract wants. */
static int fix_dir(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
    struct stat st;
    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        fprintf(stderr, "tern: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "tern: %s is not a directory; move it away and run tern setup again\n",
                path);
        return -1;
    }
    if ((st.st_uid != uid || st.st_gid != gid) && chown(path, uid, gid) < 0) {
        fprintf(stderr, "tern: cannot chown %s: %s\n", path, strerror(errno));
        return -1;
    }
    if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0) {
        fprintf(stderr, "tern: cannot chmod %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The queue tree exactly as master would make it (lib/global/QUEUE.md). */
static int setup_queue(const char *owner, const char *group)
{
    uid_t uid;
    gid_t gid;
    struct group *gr = getgrnam(group);
    if (user_ids(owner, &uid, &gid) < 0 || !gr) {
        fprintf(stderr, "tern: mail_owner %s or setgid_group %s does not exist\n", owner, group);
        return -1;
    }
    gid_t setgid_gid = gr->gr_gid;
    const char *qdir = cfg_str(P_queue_directory);
    if (fix_dir(qdir, 0755, 0, 0) < 0)
        return -1;
    struct strbuf path = STRBUF_INIT(PATH_MAX);
    int rc = 0;
    for (size_t i = 0; i < queue_dirs_count && rc == 0; i++) {
        sb_reset(&path);
        sb_appendf(&path, "%s/%s", qdir, queue_dirs[i].name);
        rc = fix_dir(path.data, queue_dirs[i].mode, uid,
                     queue_dirs[i].group_is_setgid ? setgid_gid : gid);
    }
    sb_free(&path);
    if (rc == 0)
        rc = fix_dir(cfg_str(P_data_directory), 0700, uid, gid);
    return rc;
}

/* tern-drop writes into maildrop/ (0730 mail_owner:setgid_group) and
 * tern-mailq reaches public/showq (0710 root:setgid_group) for any user:
 * both must be set-group-ID setgid_group and belong to root. */
static int setup_setgid_program(const char *name, const char *group, const char *what)
{
    struct strbuf path = STRBUF_INIT(PATH_MAX);
    struct stat st;
    struct group *gr = getgrnam(group);
    int rc = 0;
    sb_appendf(&path, "%s/%s", cfg_str(P_daemon_directory), name);
    if (lstat(path.data, &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "tern: %s is missing or not a plain file; %s will not work until it "
                "is installed\n", path.data, what);
    } else if (!gr || chown(path.data, 0, gr->gr_gid) < 0 || chmod(path.data, 02755) < 0) {
        fprintf(stderr, "tern: cannot make %s set-group-ID %s: %s\n", path.data, group,
                gr ? strerror(errno) : "no such group");
        rc = -1;
    }
    sb_free(&path);
    return rc;
}

/* The mail spool as Debian has it: root:mail 2775, so no user can create
 * or lock another's mailbox (local creates them; doc/SECURITY.md). A spool
 * that already exists is the administrator's: it is only reported when
 * every user can write it. */
int tern_setup_spool(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode) && (st.st_mode & S_IWOTH))
            fprintf(stderr, "tern: warning: mail_spool_directory %s is world-writable (mode "
                    "%04o): any user can block another's mail with a planted mailbox or lock "
                    "file; use chown root:%s %s; chmod 2775 %s\n", dir,
                    (unsigned)(st.st_mode & 07777), TERN_SPOOL_GROUP, dir, dir);
        return 0;
    }
    struct group *gr;
    if (tern_ensure_group(TERN_SPOOL_GROUP) < 0 || !(gr = getgrnam(TERN_SPOOL_GROUP)))
        return -1;
    return fix_dir(dir, 02775, 0, gr->gr_gid);
}

static const char *setup_confdir(void)
{
    if (tern_confdir)
        return tern_confdir;
    const char *env = cfg_env_confdir();
    return env ? env : TERN_SYSCONFDIR;
}

int tern_cmd_setup(int argc, char **argv)
{
    static const char usage[] =
        "usage: tern [-c CONFDIR] setup\n  as root: create the mail_owner account and "
        "the setgid_group, install the default\n  main.cf and master.cf where missing, "
        "and create the queue directory tree with\n  its owners and modes "
        "(idempotent)\n";
    tern_no_arguments(argc, argv, usage, "");
    if (geteuid() != 0) {
        fprintf(stderr, "tern: setup must run as root (it creates accounts and sets owners)\n");
        return 1;
    }
    const char *confdir = setup_confdir();
    if (mkdir(confdir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "tern: cannot create %s: %s\n", confdir, strerror(errno));
        return 1;
    }
    if (install_default(confdir, "main.cf") < 0 || install_default(confdir, "master.cf") < 0)
        return 1;
    tern_load_config();
    const char *owner = cfg_str(P_mail_owner), *group = cfg_str(P_setgid_group);
    if (tern_ensure_accounts(owner, group) < 0 || setup_queue(owner, group) < 0
        || setup_setgid_program("tern-drop", group, "local submission (sendmail)") < 0
        || setup_setgid_program("tern-mailq", group, "mailq for users other than root") < 0)
        return 1;
    if (!*cfg_str(P_home_mailbox) && tern_setup_spool(cfg_str(P_mail_spool_directory)) < 0)
        return 1;
    printf("tern: setup complete (mail_owner %s, setgid_group %s, queue_directory %s)\n",
           owner, group, cfg_str(P_queue_directory));
    return 0;
}
