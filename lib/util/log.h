/* log.h: Tern's logging: one line per event, shaped like Postfix's
 * ("tern/smtpd[PID]: QUEUEID: text"), to syslog (facility mail) or to
 * maillog_file. Commands may also echo to stderr. */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stdarg.h>

/* progname is the daemon's short name ("smtpd"); the tag becomes
 * "<syslog_name>/<progname>" with syslog_name "tern" until log_configure. */
void log_open(const char *progname);

/* Apply configuration: syslog_name, syslog_facility, maillog_file (""= syslog).
 * Called after the configuration is loaded (and again after overrides). */
void log_configure(const char *syslog_name, const char *facility, const char *maillog_file);

/* How a new maillog_file is made: maillog_file_permissions ("0600",
 * "0640" or "0644"), mail_owner, maillog_file_group (""/missing: the
 * owner's group). Call before log_configure. */
void log_file_settings(const char *perm, const char *owner, const char *group);

/* Echo messages to stderr as well (for commands run by a person). */
void log_to_stderr(int on);
/* fn is called before a message is echoed to stderr (a progress bar,
 * lib/util/progress.c, wipes itself); NULL for none. */
void log_before_stderr(void (*fn)(void));

/* Reopen maillog_file (after rotation or privilege changes). */
void log_reopen(void);

/* Before a chroot: connect to syslog now (its socket, /dev/log, is not
 * there afterwards); maillog_file is already open. */
void log_open_before_chroot(void);

void msg_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void msg_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void msg_vlog(int prio, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Verbose debugging, on when -v was given. */
extern int msg_verbose;
#define msg_debug(...) do { if (msg_verbose) msg_info(__VA_ARGS__); } while (0)

#endif
