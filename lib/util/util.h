/* util.h: small helpers every program needs: checked allocation, bounded
 * string copies, and parsing of numbers without silent overflow. */
#ifndef TERN_UTIL_H
#define TERN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

void *xmalloc(size_t n);            /* never NULL: msg_fatal on exhaustion */
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Free count strings and the array that holds them (list may be NULL). */
void str_array_free(char **list, size_t count);
/* free() every pointer given, any of which may be NULL, for the structures
 * that own a row of strings:  FREE_ALL(r->local, r->domain, r->nexthop); */
#define FREE_ALL(...) \
    free_all((void *[]){ __VA_ARGS__ }, sizeof((void *[]){ __VA_ARGS__ }) / sizeof(void *))
void free_all(void *const *pointers, size_t count);

/* Make sure descriptors 0, 1 and 2 are open, on /dev/null where one is
 * closed, so that no file opened later becomes standard input, output or
 * error by accident: what the program prints could otherwise land in a
 * queue file or a socket. Every program that runs with privileges it was
 * not started with (master, the set-group-ID programs) calls it first.
 * 0 ok, -1 when /dev/null cannot be opened. */
int std_fds_open(void);

/* What every command-line program does first: std_fds_open() (exiting with
 * fail_status when it cannot), then its log named name, also on standard
 * error. */
void command_start(const char *name, int fail_status);

/* strlcpy semantics: always terminates (dstsz > 0), returns strlen(src);
 * truncation happened when the result >= dstsz. */
size_t str_copy(char *dst, size_t dstsz, const char *src);

/* Parse a whole decimal string into [min,max]; 0 ok, -1 on any junk or overflow. */
int parse_long(const char *s, long min, long max, long *out);

/* Lower-case ASCII in place; returns s. */
char *str_lower(char *s);

/* Strip ASCII white space from both ends in place; returns the first
 * byte that is not white space. */
char *str_trim(char *s);

/* Printable or 8-bit (SMTPUTF8) text of at most max bytes: no control characters,
 * for strings that end up in headers and log lines. */
bool str_printable(const char *s, size_t max);
/* Replace the control bytes of s (below 0x20, and DEL; 8-bit is kept) with
 * '?' in place, so that a text cannot forge a log line or break a reply or
 * a header; returns s. */
char *str_sanitize(char *s);

/* Split "host:port" or "[host]:port" (brackets around an IPv6 address):
 * the host is copied into host (hostsz bytes), *port points into hostport
 * after the colon. -1 when there is no colon, a bracket is not closed just
 * before one, or the host does not fit. */
int hostport_split(const char *hostport, char *host, size_t hostsz, const char **port);

/* Case-insensitive ASCII comparison helpers. */
bool str_ieq(const char *a, const char *b);

/* A word and the code it stands for, in a table ended by an entry with a
 * NULL name whose code is the answer for any other word (Postfix's
 * name_code): the values a setting or option may take. */
struct name_code {
    const char *name;
    int code;
};
int name_code(const struct name_code *table, const char *name);

/* The value paired with name in two parallel arrays of n names and values
 * (attributes of a message), or NULL when name is not among them. */
const char *strv_value(char *const *names, char *const *values, size_t n, const char *name);

/* Write/read all bytes, retrying on EINTR and short counts; -1 on error/EOF. */
ssize_t write_all(int fd, const void *buf, size_t n);
/* Read exactly n bytes at offset off; -1 on an error or a short file (EIO):
 * a file that ends early has changed under the reader. */
int pread_all(int fd, void *buf, size_t n, off_t off);

/* Set O_NONBLOCK / FD_CLOEXEC; 0 ok, -1 error. */
int set_nonblock(int fd, bool on);
int set_cloexec(int fd, bool on);

/* A new file with no name in directory dir (O_TMPFILE, or created with a
 * random name and unlinked at once where the file system lacks it), open
 * for reading and writing, mode 0600: spool space that disappears with
 * the descriptor, even after a crash. -1 with errno on failure. */
int temp_file_open(const char *dir);

/* fsync the directory that contains path (or the directory itself). */
int fsync_dir(const char *dir);

/* Current time in microseconds since the epoch. */
long long now_usec(void);

/* RFC 5322 date of usec in local time, for Date: and Received: headers:
 * "Sun, 22 Nov 2026 23:43:36 +0000 (UTC)". */
void format_rfc5322_date(long long usec, char *buf, size_t size);
/* A duration for the delay=/delays= fields of delivery log lines, in
 * Postfix's format: two decimals below 10 s, fewer above, no trailing zeros. */
void format_delay(char *buf, size_t size, long long usec);

/* PID of the process holding a write lock (fcntl) on path; 0 when none does
 * (how `tern` and master find a running master through master.pid). */
pid_t lock_holder_pid(const char *path);

#endif
