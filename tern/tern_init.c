/* tern_init.c: `tern init DIR` writes a complete self-contained instance
 * (configuration, queue, logs, mailboxes under DIR), and `tern setup`
 * creates the accounts a system install needs. Both are idempotent. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "strbuf.h"
#include "tern.h"
#include "util.h"

#define DEFAULT_OWNER "tern"
#define DEFAULT_GROUP "terndrop"

int tern_ensure_accounts(const char *owner, const char *group)
{
    if (!getgrnam(group)) {
        const char *args[] = { "groupadd", "--system", group, NULL };
        if (tern_run(args) != 0) {
            fprintf(stderr, "tern: cannot create group %s\n", group);
            return -1;
        }
        printf("tern: created group %s\n", group);
    }
    if (!getpwnam(owner)) {
        const char *args[] = { "useradd", "--system", "--user-group", "--no-create-home",
                               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                               "--comment", "Tern mail system", owner, NULL };
        if (tern_run(args) != 0) {
            fprintf(stderr, "tern: cannot create user %s\n", owner);
            return -1;
        }
        printf("tern: created user %s\n", owner);
    }
    return 0;
}

static int write_file(const char *dir, const char *name, const char *text)
{
    struct strbuf path = STRBUF_INIT(PATH_MAX);
    sb_appendf(&path, "%s/%s", dir, name);
    FILE *fp = fopen(path.data, "w");
    int rc = -1;
    if (fp) {
        rc = fputs(text, fp) < 0 ? -1 : 0;
        if (fclose(fp) != 0)
            rc = -1;
    }
    if (rc < 0)
        fprintf(stderr, "tern: cannot write %s: %s\n", path.data, strerror(errno));
    sb_free(&path);
    return rc;
}

static int make_dir(const char *dir, const char *sub, mode_t mode)
{
    struct strbuf path = STRBUF_INIT(PATH_MAX);
    sb_appendf(&path, "%s/%s", dir, sub);
    int rc = mkdir(path.data, mode);
    if (rc < 0 && errno == EEXIST)
        rc = 0;
    if (rc < 0)
        fprintf(stderr, "tern: cannot create %s: %s\n", path.data, strerror(errno));
    sb_free(&path);
    return rc;
}

static bool dir_is_empty(const char *dir)
{
    struct strbuf path = STRBUF_INIT(PATH_MAX);
    sb_appendf(&path, "%s/main.cf", dir);
    bool empty = access(path.data, F_OK) < 0;
    sb_free(&path);
    return empty;
}

static void init_usage(FILE *fp)
{
    fprintf(fp, "usage: tern init DIR [--port N] [--daemon-directory D] [--hostname H] [--force]\n"
                "  write a self-contained instance in DIR: main.cf and master.cf (smtpd on\n"
                "  127.0.0.1:N, default 2525), queue/, data/, log/tern.log and mail/.\n"
                "  Run it with: tern -c DIR start\n");
}

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        { "port", required_argument, NULL, 'p' },
        { "daemon-directory", required_argument, NULL, 'd' },
        { "hostname", required_argument, NULL, 'H' },
        { "force", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    long port = 2525;
    const char *daemon_dir = TERN_LIBEXECDIR, *hostname = NULL;
    bool force = false;
    int c;
    optind = 0;   /* 0 makes glibc restart its scan (permuting options after DIR) */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (parse_long(optarg, 1, 65535, &port) < 0) {
                fprintf(stderr, "tern: bad port \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'd': daemon_dir = optarg; break;
        case 'H': hostname = optarg; break;
        case 'f': force = true; break;
        case 'h': init_usage(stdout); return 0;
        default: init_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        init_usage(stderr);
        return 2;
    }
    char dir[PATH_MAX];
    if (mkdir(argv[optind], 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "tern: cannot create %s: %s\n", argv[optind], strerror(errno));
        return 1;
    }
    if (!realpath(argv[optind], dir)) {
        fprintf(stderr, "tern: %s: %s\n", argv[optind], strerror(errno));
        return 1;
    }
    if (!force && !dir_is_empty(dir)) {
        fprintf(stderr, "tern: %s already holds an instance (main.cf exists); use --force to "
                "overwrite its configuration\n", dir);
        return 1;
    }
    char host[256] = "localhost";
    if (!hostname && gethostname(host, sizeof(host) - 1) == 0)
        host[sizeof(host) - 1] = 0;
    const char *owner = DEFAULT_OWNER, *group = DEFAULT_GROUP;
    char owner_buf[256], group_buf[256];
    if (geteuid() != 0) {
        struct passwd *pw = getpwuid(geteuid());
        struct group *gr = getgrgid(getegid());
        if (!pw || !gr) {
            fprintf(stderr, "tern: cannot find the name of uid %ld or gid %ld\n",
                    (long)geteuid(), (long)getegid());
            return 1;
        }
        str_copy(owner_buf, sizeof(owner_buf), pw->pw_name);
        str_copy(group_buf, sizeof(group_buf), gr->gr_name);
        owner = owner_buf;
        group = group_buf;
    } else if (tern_ensure_accounts(owner, group) < 0) {
        return 1;
    }

    struct strbuf main_cf = STRBUF_INIT(0), master_cf = STRBUF_INIT(0);
    sb_appendf(&main_cf,
        "# main.cf of a self-contained Tern instance, written by `tern init`.\n"
        "# Parameter names and syntax are Postfix's; `tern -c %s check` reports mistakes.\n"
        "queue_directory = %s/queue\n"
        "data_directory = %s/data\n"
        "daemon_directory = %s\n"
        "maillog_file = %s/log/tern.log\n"
        "myhostname = %s\n"
        "mydestination = $myhostname, localhost\n"
        "mynetworks = 127.0.0.0/8 [::1]/128\n"
        "relay_domains =\n"
        "# the account the daemons run as after start-up, and the submission group\n"
        "mail_owner = %s\n"
        "setgid_group = %s\n",
        dir, dir, dir, daemon_dir, dir, hostname ? hostname : host, owner, group);
    sb_appendf(&master_cf,
        "# master.cf: the services master runs (Postfix syntax).\n"
        "# service        type  private unpriv  chroot  wakeup  maxproc command + args\n"
        "#                      (yes)   (yes)   (no)    (never) (100)\n"
        "127.0.0.1:%ld   inet  n       -       n       -       -       smtpd\n"
        "cleanup          unix  -       -       n       -       0       cleanup\n"
        "qmgr             unix  n       -       n       300     1       qmgr\n",
        port);
    int rc = 0;
    rc |= write_file(dir, "main.cf", main_cf.data);
    rc |= write_file(dir, "master.cf", master_cf.data);
    rc |= make_dir(dir, "queue", 0755);
    rc |= make_dir(dir, "data", 0755);
    rc |= make_dir(dir, "log", 0755);
    rc |= make_dir(dir, "mail", 01777);
    sb_free(&main_cf);
    sb_free(&master_cf);
    if (rc)
        return 1;
    printf("tern: instance created in %s; start it with: tern -c %s start\n", dir, dir);
    return 0;
}

int cmd_setup(int argc, char **argv)
{
    if (tern_wants_help(argc, argv)) {
        printf("usage: tern [-c CONFDIR] setup\n  as root: create the mail_owner account, the "
               "setgid_group and the queue directory if missing (idempotent)\n");
        return 0;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "tern: setup must run as root\n");
        return 1;
    }
    struct strbuf err = STRBUF_INIT(4096);
    const char *owner = DEFAULT_OWNER, *group = DEFAULT_GROUP;
    if (cfg_load(tern_confdir, &err) == 0) {
        owner = cfg_str(P_mail_owner);
        group = cfg_str(P_setgid_group);
        if (mkdir(cfg_str(P_queue_directory), 0755) < 0 && errno != EEXIST) {
            fprintf(stderr, "tern: cannot create %s: %s\n", cfg_str(P_queue_directory),
                    strerror(errno));
            return 1;
        }
    }
    sb_free(&err);
    if (tern_ensure_accounts(owner, group) < 0)
        return 1;
    printf("tern: setup complete (mail_owner %s, setgid_group %s)\n", owner, group);
    return 0;
}
