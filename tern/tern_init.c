/* tern_init.c: `tern init DIR` writes a complete self-contained instance
 * (configuration, queue, logs, mailboxes under DIR) that runs from any
 * directory, as root or as an ordinary user. */
#include <dirent.h>
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
#include "maps.h"
#include "strbuf.h"
#include "tern.h"
#include "util.h"

int tern_init_write_file(const char *dir, const char *name, const char *text)
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
    if (rc == 0)
        rc = chmod(path.data, mode);    /* the mode exactly, whatever the umask */
    if (rc < 0)
        fprintf(stderr, "tern: cannot create %s: %s\n", path.data, strerror(errno));
    sb_free(&path);
    return rc;
}

/* Anything in DIR means someone's files: refuse to mix an instance into them. */
static bool dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = false;
    closedir(d);
    return empty;
}

static void init_usage(FILE *fp)
{
    fprintf(fp, "usage: tern init DIR [--port N] [--metrics-port M] [--console-port C]\n"
                "                     [--daemon-directory D] [--hostname H] [--force]\n"
                "       tern init DIR --gateway --next-hop HOST:PORT --domain D [--domain D ...]\n"
                "                     [--internal-net CIDR] [--ldap-uri URI --ldap-base DN]\n"
                "                     [--listen SERVICE] [options above]\n"
                "  write a self-contained instance in DIR: main.cf and master.cf (smtpd on\n"
                "  127.0.0.1:N, default 2525; /metrics on http://127.0.0.1:M/metrics, default\n"
                "  N+20000, or N-20000 when that is beyond 65535; the web console on\n"
                "  http://127.0.0.1:C/, default M+1), queue/, data/, log/tern.log and mail/.\n"
                "  Run it with: tern -c DIR start\n"
                "  --gateway: a mail gateway in front of the internal server at --next-hop\n"
                "  for the --domain names (postscreen on --listen, default smtp); tern(1).\n");
}

struct init_options {
    long port;
    long metrics_port;          /* 0: derived from port */
    long console_port;          /* 0: metrics_port + 1 */
    const char *daemon_dir;
    const char *hostname;
    bool force;
    const char *dir;
    struct init_gateway gw;     /* --gateway and its options */
};

/* 0 ok, 1 = exit 0 (help shown), 2 = usage error. */
static int parse_init_options(int argc, char **argv, struct init_options *o)
{
    /* the four that take a value, then the two switches */
    static const struct option opts[] = {
        { "port", required_argument, NULL, 'p' }, { "hostname", required_argument, NULL, 'H' },
        { "daemon-directory", required_argument, NULL, 'd' },
        { "metrics-port", required_argument, NULL, 'm' },
        { "console-port", required_argument, NULL, 'C' },
        { "force", no_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' },
        INIT_GW_LONG_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    *o = (struct init_options){ .port = 2525, .daemon_dir = TERN_LIBEXECDIR };
    int c;
    optind = 0;   /* 0 makes glibc restart its scan (permuting options after DIR) */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (parse_long(optarg, 1, 65535, &o->port) < 0) {
                fprintf(stderr, "tern: bad port \"%s\" (expected 1..65535)\n", optarg);
                return 2;
            }
            break;
        case 'm':
            if (parse_long(optarg, 1, 65535, &o->metrics_port) < 0) {
                fprintf(stderr, "tern: bad metrics port \"%s\" (expected 1..65535)\n", optarg);
                return 2;
            }
            break;
        case 'C':
            if (parse_long(optarg, 1, 65535, &o->console_port) < 0) {
                fprintf(stderr, "tern: bad console port \"%s\" (expected 1..65535)\n", optarg);
                return 2;
            }
            break;
        case 'd': o->daemon_dir = optarg; break;
        case 'H': o->hostname = optarg; break;
        case 'f': o->force = true; break;
        case 'h': init_usage(stdout); return 1;
        default:
            if (c >= INIT_GW_OPT_GATEWAY && c <= INIT_GW_OPT_LISTEN) {
                if (tern_init_gateway_option(&o->gw, c, optarg) < 0)
                    return 2;
                break;
            }
            init_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        init_usage(stderr);
        return 2;
    }
    o->dir = argv[optind];
    if (tern_init_gateway_check(&o->gw) < 0)
        return 2;
    /* beside the SMTP port, so that instances side by side do not collide */
    if (!o->metrics_port)
        o->metrics_port = o->port + 20000 <= 65535 ? o->port + 20000 : o->port - 20000;
    if (!o->console_port)
        o->console_port = o->metrics_port < 65535 ? o->metrics_port + 1 : o->metrics_port - 1;
    return 0;
}

/* As root the daemons run as the dedicated accounts (created when missing);
 * as an ordinary user the instance runs as that user, who owns everything. */
static int choose_accounts(char *owner, size_t ownersz, char *group, size_t groupsz)
{
    if (geteuid() == 0) {
        str_copy(owner, ownersz, TERN_DEFAULT_OWNER);
        str_copy(group, groupsz, TERN_DEFAULT_GROUP);
        return tern_ensure_accounts(owner, group);
    }
    struct passwd *pw = getpwuid(geteuid());
    struct group *gr = getgrgid(getegid());
    if (!pw || !gr) {
        fprintf(stderr, "tern: cannot find the name of uid %ld or gid %ld\n",
                (long)geteuid(), (long)getegid());
        return -1;
    }
    if (str_copy(owner, ownersz, pw->pw_name) >= ownersz
        || str_copy(group, groupsz, gr->gr_name) >= groupsz) {
        fprintf(stderr, "tern: user or group name too long\n");
        return -1;
    }
    return 0;
}

static void format_main_cf(struct strbuf *out, const struct init_options *o, const char *dir,
                           const char *host, const char *owner, const char *group)
{
    sb_appendf(out,
        "# main.cf of a self-contained Tern instance, written by `tern init`.\n"
        "# Parameter names and syntax are Postfix's; `tern -c %s check`\n"
        "# reports mistakes and `tern -c %s start` runs it.\n"
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
        "setgid_group = %s\n"
        "# local delivery: mailboxes of this instance, and its aliases\n"
        "mail_spool_directory = %s/mail\n"
        "alias_maps = hash:%s/aliases\n"
        "# the tables `tern aliases` rebuilds\n"
        "alias_database = hash:%s/aliases\n",
        dir, dir, dir, dir, o->daemon_dir, dir, host, owner, group, dir, dir, dir);
}

static void format_master_cf(struct strbuf *out, long port, long metrics_port, long console_port)
{
    sb_appendf(out,
        "# master.cf: the services master runs, one per line (Postfix syntax).\n"
        "# service: inet \"host:port\" or \"port\"; unix: the socket name\n"
        "# type:    inet (TCP), unix (socket under queue_directory) or fifo\n"
        "# private: y = socket in private/ (Tern's daemons only), n = public/\n"
        "# unpriv:  y = run as mail_owner, n = keep root (local, virtual and pipe delivery only)\n"
        "# chroot:  y = chroot to queue_directory\n"
        "# wakeup:  seconds between wake-up events (- = none)\n"
        "# maxproc: process limit (- = default_process_limit, 0 = no limit)\n"
        "# command: program in daemon_directory; -o name=value overrides main.cf\n"
        "# ==========================================================================\n"
        "# service      type  private unpriv  chroot  wakeup  maxproc command + args\n"
        "#                    (yes)   (yes)   (no)    (never) (100)\n"
        "# ==========================================================================\n"
        "127.0.0.1:%-5ld inet  n       -       n       -       -       smtpd\n"
        "pickup         fifo  n       -       n       60      1       pickup\n"
        "cleanup        unix  -       -       n       -       0       cleanup\n"
        "qmgr           unix  n       -       n       300     1       qmgr\n"
        "local          unix  -       n       n       -       -       local\n"
        "virtual        unix  -       n       n       -       -       virtual\n"
        "smtp           unix  -       -       n       -       -       smtp\n"
        "relay          unix  -       -       n       -       -       smtp\n"
        "lmtp           unix  -       -       n       -       -       lmtp\n"
        "discard        unix  -       -       n       -       -       discard\n"
        "# Delivery with Dovecot's LDA, as the vmail account (main.cf then needs\n"
        "# dovecot_destination_recipient_limit = 1, for the D flag's Delivered-To:):\n"
        "#dovecot       unix  -       n       n       -       -       pipe\n"
        "#  flags=DRhu user=vmail:vmail argv=/usr/lib/dovecot/dovecot-lda -f ${sender} -d ${recipient}\n"
        "anvil          unix  -       -       n       -       1       anvil\n"
        "showq          unix  n       -       n       -       -       showq\n"
        "flush          unix  -       -       n       -       0       flush\n"
        "verify         unix  -       -       n       -       1       verify\n"
        "proxymap       unix  -       -       n       -       -       proxymap\n"
        "# Metrics: the collector, and /metrics for Prometheus on loopback\n"
        "metrics        unix  -       -       n       -       1       metrics\n"
        "127.0.0.1:%-5ld inet  n       -       n       -       2       metrics\n"
        "# The web console (http://127.0.0.1:%ld/), one process; logins are checked\n"
        "# against smtpd_sasl_password_maps, administrators listed in console_admins\n"
        "127.0.0.1:%-5ld inet  n       -       n       -       1       console\n",
        port, metrics_port, console_port, console_port);
}

/* Write the files and directories of the instance into dir. */
static int write_instance(const struct init_options *o, const char *dir)
{
    char host[256] = "localhost";
    if (!o->hostname && gethostname(host, sizeof(host) - 1) == 0)
        host[sizeof(host) - 1] = 0;
    char owner[256], group[256];
    if (choose_accounts(owner, sizeof(owner), group, sizeof(group)) < 0)
        return -1;
    struct strbuf main_cf = STRBUF_INIT(0), master_cf = STRBUF_INIT(0);
    format_main_cf(&main_cf, o, dir, o->hostname ? o->hostname : host, owner, group);
    format_master_cf(&master_cf, o->port, o->metrics_port, o->console_port);
    int rc = 0;
    if (o->gw.enabled)
        rc |= tern_init_gateway_write(&o->gw, dir, &main_cf, &master_cf);
    rc |= tern_init_write_file(dir, "main.cf", main_cf.data);
    rc |= tern_init_write_file(dir, "master.cf", master_cf.data);
    /* postmaster must be deliverable: to root on a system instance, to the
     * instance's owner in development */
    struct strbuf aliases = STRBUF_INIT(0);
    sb_appendf(&aliases, "# aliases(5) of this instance; `tern init` compiled it into aliases.db,\n"
                         "# and `tern -c %s aliases` rebuilds it after a change\n"
                         "postmaster: %s\nabuse: postmaster\nMAILER-DAEMON: postmaster\n",
               dir, geteuid() == 0 ? "root" : owner);
    rc |= tern_init_write_file(dir, "aliases", aliases.data);
    sb_free(&aliases);
    struct strbuf spec = STRBUF_INIT(0), err = STRBUF_INIT(1024);
    sb_appendf(&spec, "hash:%s/aliases", dir);
    if (rc == 0 && map_build(spec.data, MAP_BUILD_ALIASES, &err) < 0) {
        fprintf(stderr, "tern: %s\n", sb_str(&err));
        rc = -1;
    }
    sb_free(&spec);
    sb_free(&err);
    rc |= make_dir(dir, "queue", 0755);
    rc |= make_dir(dir, "data", 0755);
    rc |= make_dir(dir, "log", 0755);
    /* Like Debian's /var/mail: root:mail 2775, so that no user can plant a
     * mailbox or a lock file for another; local creates them. An
     * instance of an ordinary user is that user's alone. */
    if (geteuid() == 0) {
        struct strbuf spool = STRBUF_INIT(PATH_MAX);
        sb_appendf(&spool, "%s/mail", dir);
        rc |= tern_setup_spool(spool.data);
        sb_free(&spool);
    } else {
        rc |= make_dir(dir, "mail", 0755);
    }
    sb_free(&main_cf);
    sb_free(&master_cf);
    return rc;
}

int tern_cmd_init(int argc, char **argv)
{
    struct init_options o;
    int rc = parse_init_options(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    char dir[PATH_MAX];
    if (mkdir(o.dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "tern: cannot create %s: %s\n", o.dir, strerror(errno));
        return 1;
    }
    if (!realpath(o.dir, dir)) {
        fprintf(stderr, "tern: %s: %s\n", o.dir, strerror(errno));
        return 1;
    }
    /* As root every file below is written by name: another user who could
     * write DIR could first put links there to files of root's. */
    struct stat st;
    if (geteuid() == 0 && (stat(dir, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022))) {
        fprintf(stderr, "tern: %s must belong to root and be writable by root only when "
                "tern init runs as root\n", dir);
        return 1;
    }
    if (!o.force && !dir_is_empty(dir)) {
        fprintf(stderr, "tern: %s is not empty; choose a new directory, or use --force to "
                "write the instance's files into it\n", dir);
        return 1;
    }
    if (write_instance(&o, dir) < 0)
        return 1;
    printf("tern: instance created in %s; start it with: tern -c %s start\n", dir, dir);
    return 0;
}
