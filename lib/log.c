/* log.c: one line per event to syslog (facility mail) or to maillog_file,
 * tagged "syslog_name/program[pid]" so that Postfix log tools read it.
 * Control characters from hostile input are replaced before anything is written. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
static int log_stderr;
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
        log_fd = open(log_file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (log_fd < 0)
            fprintf(stderr, "%s: cannot open maillog_file %s: %s\n",
                    log_tag, log_file_path, strerror(errno));
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

/* Replace bytes that could forge log lines or confuse terminals. */
static void log_sanitize(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
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
    log_sanitize(text);

    if (log_fd >= 0) {
        log_write_file(text);
    } else if (!log_file_path[0]) {
        if (!syslog_opened) {
            openlog(log_tag, LOG_PID | LOG_NDELAY, log_facility);
            syslog_opened = 1;
        }
        syslog(prio, "%s", text);
    }
    if (log_stderr)
        fprintf(stderr, "%s: %s\n", log_progname, text);
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
