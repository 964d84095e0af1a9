/* util.c: checked allocation, bounded copies, strict number parsing and
 * small descriptor helpers shared by every program. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        msg_fatal("out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        msg_fatal("out of memory allocating %zu x %zu bytes", n, m);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        msg_fatal("out of memory reallocating %zu bytes", n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

void str_array_free(char **list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        free(list[i]);
    free(list);
}

void free_all(void *const *pointers, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(pointers[i]);
}

int std_fds_open(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int got = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (got != fd) {
            if (got >= 0)
                close(got);
            return -1;
        }
    }
    return 0;
}

void command_start(const char *name, int fail_status)
{
    if (std_fds_open() < 0)
        _exit(fail_status);
    log_open(name);
    log_to_stderr(1);
}

size_t str_copy(char *dst, size_t dstsz, const char *src)
{
    size_t len = strlen(src);
    if (dstsz) {
        size_t n = len < dstsz - 1 ? len : dstsz - 1;
        memcpy(dst, src, n);
        dst[n] = 0;
    }
    return len;
}

int parse_long(const char *s, long min, long max, long *out)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

char *str_lower(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return s;
}

char *str_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

bool str_printable(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c < 32 || c == 127 || n >= max)
            return false;
    }
    return true;
}

char *str_sanitize(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    return s;
}

int hostport_split(const char *hostport, char *host, size_t hostsz, const char **port)
{
    if (hostport[0] == '[') {
        const char *close = strchr(hostport, ']');
        if (!close || close[1] != ':' || (size_t)(close - hostport - 1) >= hostsz)
            return -1;
        memcpy(host, hostport + 1, (size_t)(close - hostport - 1));
        host[close - hostport - 1] = 0;
        *port = close + 2;
    } else {
        const char *colon = strrchr(hostport, ':');
        if (!colon || (size_t)(colon - hostport) >= hostsz)
            return -1;
        memcpy(host, hostport, (size_t)(colon - hostport));
        host[colon - hostport] = 0;
        *port = colon + 1;
    }
    return 0;
}

bool str_ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

int name_code(const struct name_code *table, const char *name)
{
    for (; table->name; table++)
        if (strcmp(table->name, name) == 0)
            break;
    return table->code;
}

const char *strv_value(char *const *names, char *const *values, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return values[i];
    return NULL;
}

ssize_t write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    size_t left = n;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    return (ssize_t)n;
}

int pread_all(int fd, void *buf, size_t n, off_t off)
{
    char *p = buf;
    while (n) {
        ssize_t got = pread(fd, p, n, off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = EIO;
            return -1;
        }
        p += got;
        n -= (size_t)got;
        off += got;
    }
    return 0;
}

/* Turn one bit of a descriptor's flags on or off: get with get_cmd, set with
 * set_cmd (F_GETFL/F_SETFL for status flags, F_GETFD/F_SETFD for FD_CLOEXEC). */
static int fcntl_flag(int fd, int get_cmd, int set_cmd, int bit, bool on)
{
    int fl = fcntl(fd, get_cmd);
    if (fl < 0)
        return -1;
    fl = on ? (fl | bit) : (fl & ~bit);
    return fcntl(fd, set_cmd, fl);
}

int set_nonblock(int fd, bool on)
{
    return fcntl_flag(fd, F_GETFL, F_SETFL, O_NONBLOCK, on);
}

int set_cloexec(int fd, bool on)
{
    return fcntl_flag(fd, F_GETFD, F_SETFD, FD_CLOEXEC, on);
}

int temp_file_open(const char *dir)
{
#ifdef O_TMPFILE
    int fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
#endif
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/spool.XXXXXX", dir) >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int tfd = mkostemp(path, O_CLOEXEC);
    if (tfd >= 0 && unlink(path) < 0) {
        int saved = errno;
        close(tfd);
        errno = saved;
        return -1;
    }
    return tfd;
}

int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

long long now_usec(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000000LL + tv.tv_usec;
}

void format_rfc5322_date(long long usec, char *buf, size_t size)
{
    static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t t = (time_t)(usec / 1000000);
    struct tm tm;
    if (!localtime_r(&t, &tm))
        gmtime_r(&t, &tm);
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    int n = snprintf(buf, size, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld (%s)",
                     days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 60, off % 60,
                     tm.tm_zone && *tm.tm_zone ? tm.tm_zone : "UTC");
    if (n < 0 && size > 0)
        buf[0] = 0;
}

pid_t lock_holder_pid(const char *path)
{
    /* The file lies in a directory mail_owner can write: never follow a
     * link, never wait on a fifo, and believe only a plain file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return 0;
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    struct stat st;
    pid_t pid = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1
        && fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
        pid = fl.l_pid;
    close(fd);
    return pid;
}

void format_delay(char *buf, size_t size, long long usec)
{
    double s = usec > 0 ? (double)usec / 1e6 : 0;
    snprintf(buf, size, "%.*f", s >= 100 ? 0 : s >= 10 ? 1 : 2, s);
    char *dot = strchr(buf, '.');
    if (dot) {
        char *end = buf + strlen(buf) - 1;
        while (end > dot && *end == '0')
            *end-- = 0;
        if (end == dot)
            *end = 0;
    }
}
