/* log.c: one line per event to syslog (facility mail) or to maillog_file,
 * tagged "syslog_name/program[pid]" so that Postfix log tools read it.
 * Control characters from hostile input are replaced before anything is written.
 *
 * maillog_file holds senders, recipients, client addresses and SASL user
 * names: it is created maillog_file_permissions (0640) with the owner
 * mail_owner (so the daemons can reopen it) and the group
 * maillog_file_group (adm, as Debian's mail.log). Only root creates it, and
 * only in a directory no other uid can write; every open is O_NOFOLLOW and
 * checked (a plain file with one link). Every writer notices rotation: at
 * most once a second it compares the path's inode with its descriptor's
 * and reopens the new file. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LOG_LINE_MAX 4096

int msg_verbose;

static char log_progname[64] = "tern";
static char log_tag[128] = "tern";
static char log_hostname[256] = "localhost";
static char log_file_path[1024];
static int log_fd = -1;
static dev_t log_fd_dev;                /* what log_fd is, to notice rotation */
static ino_t log_fd_ino;
static time_t log_checked;              /* the last rotation check */
static pid_t log_checked_pid;           /* by this process (a child checks anew) */
static mode_t log_file_mode = 0640;
static uid_t log_file_uid = (uid_t)-1;  /* mail_owner; -1: keep */
static gid_t log_file_gid = (gid_t)-1;  /* maillog_file_group; -1: keep */
static int log_stderr;
static void (*log_stderr_hook)(void);
static int log_facility = LOG_MAIL;
static int syslog_opened;

static const struct { const char *name; int value; } log_facilities[] = {
    { "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "user", LOG_USER },
    { "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
    { "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
    { "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

static void log_set_tag(const char *syslog_name)
{
    snprintf(log_tag, sizeof(log_tag), "%s/%s", syslog_name, log_progname);
    /* "tern/submission/smtpd" style names are kept as they are given. */
}

void log_open(const char *progname)
{
    const char *base = strrchr(progname, '/');
    str_copy(log_progname, sizeof(log_progname), base ? base + 1 : progname);
    log_set_tag("tern");
    if (gethostname(log_hostname, sizeof(log_hostname) - 1) == 0) {
        log_hostname[sizeof(log_hostname) - 1] = 0;
        char *dot = strchr(log_hostname, '.');
        if (dot)
            *dot = 0;
    }
}

/* The owner, group and mode a new log file gets (from main.cf). */
void log_file_settings(const char *perm, const char *owner, const char *group)
{
    log_file_mode = strcmp(perm, "0600") == 0 ? 0600 : strcmp(perm, "0644") == 0 ? 0644 : 0640;
    if (strcmp(perm, "0600") != 0 && strcmp(perm, "0640") != 0 && strcmp(perm, "0644") != 0)
        fprintf(stderr, "%s: maillog_file_permissions = %s: expected 0600, 0640 or 0644; "
                "using 0640\n", log_tag, perm);
    struct passwd *pw = getpwnam(owner);
    struct group *gr = *group ? getgrnam(group) : NULL;
    log_file_uid = pw ? pw->pw_uid : (uid_t)-1;
    log_file_gid = gr ? gr->gr_gid : pw ? pw->pw_gid : (gid_t)-1;
}

/* Root may create files by path only where no other uid can write. */
static bool log_dir_is_roots(const char *path)
{
    char copy[sizeof(log_file_path)];
    struct stat st;
    str_copy(copy, sizeof(copy), path);
    return stat(dirname(copy), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0
           && !(st.st_mode & (S_IWGRP | S_IWOTH));
}

/* Open maillog_file; create it when allowed. Returns the descriptor or -1
 * with *why set. */
static int log_file_open(bool create, const char **why)
{
    int flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC;
    bool root = geteuid() == 0;
    int fd = open(log_file_path, flags);
    bool made = false;
    if (fd < 0 && errno == ENOENT && create && (!root || log_dir_is_roots(log_file_path))) {
        fd = open(log_file_path, flags | O_CREAT | O_EXCL, log_file_mode);
        made = fd >= 0;
        if (fd < 0 && errno == EEXIST)
            fd = open(log_file_path, flags);
    }
    if (fd < 0) {
        *why = errno == ENOENT && create && root
               ? "it does not exist, and root creates it only in a directory that no other "
                 "user can write: create it (owner mail_owner, group maillog_file_group, mode "
                 "maillog_file_permissions) or choose another directory"
               : strerror(errno);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        *why = "not a plain file with one link";
        close(fd);
        return -1;
    }
    /* root writes only to a file of root or mail_owner: one that a user
     * made would give that user the log */
    if (root && !made && st.st_uid != 0 && st.st_uid != log_file_uid) {
        *why = "it belongs to a user other than root and mail_owner";
        close(fd);
        return -1;
    }
    /* On the descriptor, never the path: the file as created, or one that
     * mail_owner or root owns (an older Tern made it 0644). */
    if (root) {
        if ((log_file_uid != (uid_t)-1 || log_file_gid != (gid_t)-1)
            && (st.st_uid != log_file_uid || st.st_gid != log_file_gid))
            (void)!fchown(fd, log_file_uid, log_file_gid);
        if ((st.st_mode & 07777) != log_file_mode)
            (void)!fchmod(fd, log_file_mode);
    } else if (made && (st.st_mode & 07777) != log_file_mode) {
        (void)!fchmod(fd, log_file_mode);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    log_fd_dev = st.st_dev;
    log_fd_ino = st.st_ino;
    return fd;
}

void log_configure(const char *syslog_name, const char *facility, const char *maillog_file)
{
    if (syslog_name && *syslog_name)
        log_set_tag(syslog_name);
    for (size_t i = 0; facility && i < sizeof(log_facilities) / sizeof(log_facilities[0]); i++)
        if (strcmp(facility, log_facilities[i].name) == 0)
            log_facility = log_facilities[i].value;
    if (syslog_opened) {
        closelog();
        syslog_opened = 0;
    }
    str_copy(log_file_path, sizeof(log_file_path), maillog_file ? maillog_file : "");
    log_reopen();
}

void log_reopen(void)
{
    if (log_fd >= 0) {
        close(log_fd);
        log_fd = -1;
    }
    if (log_file_path[0]) {
        const char *why = NULL;
        log_fd = log_file_open(true, &why);
        if (log_fd < 0)
            fprintf(stderr, "%s: cannot open maillog_file %s: %s\n", log_tag, log_file_path, why);
        log_checked = time(NULL);
        log_checked_pid = getpid();
    }
}

/* logrotate renamed the file (and maybe made a new one): at most once a
 * second, compare the path with the descriptor and move to the new file.
 * Only root creates a missing one; the others wait for it. */
static void log_check_rotation(void)
{
    time_t now = time(NULL);
    pid_t pid = getpid();
    if (now == log_checked && pid == log_checked_pid)
        return;
    log_checked = now;
    log_checked_pid = pid;
    struct stat st;
    /* a process that closed its descriptors (local's children) may have
     * another file under this number now: never write there */
    if (fstat(log_fd, &st) < 0 || st.st_dev != log_fd_dev || st.st_ino != log_fd_ino) {
        log_fd = -1;
        return;
    }
    int there = lstat(log_file_path, &st) == 0;
    if (there && st.st_dev == log_fd_dev && st.st_ino == log_fd_ino)
        return;
    if (!there && geteuid() != 0)
        return;                         /* not there yet: keep the old file */
    const char *why = NULL;
    dev_t dev = log_fd_dev;
    ino_t ino = log_fd_ino;
    int fd = log_file_open(geteuid() == 0, &why);
    if (fd < 0) {
        log_fd_dev = dev;
        log_fd_ino = ino;
        return;                         /* keep writing where we can */
    }
    /* the same descriptor number, for whoever keeps it */
    if (dup3(fd, log_fd, O_CLOEXEC) < 0) {
        close(log_fd);
        log_fd = fd;
    } else {
        close(fd);
    }
}

void log_open_before_chroot(void)
{
    if (log_fd < 0 && !log_file_path[0] && !syslog_opened) {
        openlog(log_tag, LOG_PID | LOG_NDELAY, log_facility);
        syslog_opened = 1;
    }
}

void log_to_stderr(int on)
{
    log_stderr = on;
}

void log_before_stderr(void (*fn)(void))
{
    log_stderr_hook = fn;
}

static void log_write_file(const char *text)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
    char line[LOG_LINE_MAX + 512];
    int n = snprintf(line, sizeof(line), "%s %s %s[%ld]: %s\n",
                     stamp, log_hostname, log_tag, (long)getpid(), text);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    /* One write with O_APPEND keeps lines from several processes whole. */
    (void)!write(log_fd, line, (size_t)n);
}

void msg_vlog(int prio, const char *fmt, va_list ap)
{
    int saved_errno = errno;
    char text[LOG_LINE_MAX];
    const char *prefix = prio == LOG_WARNING ? "warning: "
                       : prio == LOG_ERR ? "error: "
                       : prio == LOG_CRIT ? "fatal: "
                       : prio == LOG_ALERT ? "panic: " : "";
    size_t plen = strlen(prefix);
    memcpy(text, prefix, plen + 1);
    errno = saved_errno;   /* so %m works */
    vsnprintf(text + plen, sizeof(text) - plen, fmt, ap);
    str_sanitize(text);   /* nothing may forge a log line or confuse a terminal */

    if (log_fd >= 0) {
        log_check_rotation();
        if (log_fd >= 0)
            log_write_file(text);
    } else if (!log_file_path[0]) {
        if (!syslog_opened) {
            openlog(log_tag, LOG_PID | LOG_NDELAY, log_facility);
            syslog_opened = 1;
        }
        syslog(prio, "%s", text);
    }
    if (log_stderr) {
        if (log_stderr_hook)
            log_stderr_hook();    /* a progress bar leaves the line to the message */
        fprintf(stderr, "%s: %s\n", log_progname, text);
    }
    errno = saved_errno;
}

#define LOG_WRAPPER(fn, prio) \
    void fn(const char *fmt, ...) \
    { \
        va_list ap; \
        va_start(ap, fmt); \
        msg_vlog(prio, fmt, ap); \
        va_end(ap); \
    }

LOG_WRAPPER(msg_info, LOG_INFO)
LOG_WRAPPER(msg_warn, LOG_WARNING)
LOG_WRAPPER(msg_error, LOG_ERR)

void msg_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg_vlog(LOG_CRIT, fmt, ap);
    va_end(ap);
    exit(1);
}

void msg_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msg_vlog(LOG_ALERT, fmt, ap);
    va_end(ap);
    abort();
}
