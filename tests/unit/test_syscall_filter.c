/* test_syscall_filter.c: unit tests of the system call filters
 * (lib/global/syscall_filter.c). Each case forks a child that installs a daemon's
 * filter and then tries something: what the daemon needs works, execve,
 * fork and sockets of other families fail with EPERM, and calls outside
 * the set (ptrace, setuid, mount, a signal to another process) end the
 * child with SIGSYS. In a sanitizer build, a report made under the filter
 * is still written to its file. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "strbuf.h"
#include "syscall_filter.h"

#if defined(__has_feature)
# if __has_feature(address_sanitizer)
#  define TEST_ASAN 1
# endif
#endif
#if defined(__SANITIZE_ADDRESS__)
# define TEST_ASAN 1
#endif

#define CHILD_FILTER_FAILED 90
#define CHILD_WRONG 91

static enum syscall_profile child_profile;
static void (*child_prepare)(void);     /* run in the child before the filter */

/* Fork; the child installs child_profile's filter and exits with what fn
 * returns. Returns the wait status. */
static int in_filtered_child(int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        if (child_prepare)
            child_prepare();
        struct strbuf err = STRBUF_INIT(1024);
        if (syscall_filter_apply(child_profile, &err) < 0) {
            fprintf(stderr, "filter: %s\n", sb_str(&err));
            _exit(CHILD_FILTER_FAILED);
        }
        _exit(fn());
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            perror("waitpid");
            exit(2);
        }
    return status;
}

static bool exited_ok(int status)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    fprintf(stderr, "  child: %s %d\n", WIFEXITED(status) ? "exit" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return false;
}

static bool killed_by_sigsys(int status)
{
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
}

/* ---- what the daemons need ---- */

static void *thread_main(void *arg)
{
    return arg;
}

/* The status line of /proc/self/status that starts with key, as a number. */
static long proc_status(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, n) == 0)
            v = strtol(line + n, NULL, 10);
    fclose(f);
    return v;
}

static int allowed_calls(void)
{
    if (proc_status("Seccomp:") != 2 || proc_status("NoNewPrivs:") != 1)
        return 10;
    int p[2];
    char c = 0;
    if (pipe2(p, O_CLOEXEC) < 0 || write(p[1], "x", 1) != 1 || read(p[0], &c, 1) != 1 || c != 'x')
        return 11;
    close(p[0]);
    close(p[1]);
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0 || getpid() <= 0)
        return 12;
    void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || munmap(m, 1 << 20) < 0)
        return 13;
    char *big = malloc(8 << 20);    /* mmap-backed */
    if (!big)
        return 14;
    memset(big, 1, 8 << 20);
    free(big);
    pthread_t t;                    /* threads, as smtpd's AUTH helpers */
    void *res = NULL;
    if (pthread_create(&t, NULL, thread_main, &res) != 0 || pthread_join(t, &res) != 0)
        return 15;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 16;
    close(fd);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return 17;
    close(sv[0]);
    close(sv[1]);
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 18;
    close(fd);
    return 0;
}

static int inet_sockets(void)
{
    int fd4 = socket(AF_INET, SOCK_STREAM, 0), fd6 = socket(AF_INET6, SOCK_DGRAM, 0);
    if (fd4 < 0 || (fd6 < 0 && errno != EAFNOSUPPORT))
        return 20;
    close(fd4);
    if (fd6 >= 0)
        close(fd6);
    return 0;
}

/* ---- refused with EPERM ---- */

static int try_execve(void)
{
    char *argv[] = { (char *)"/bin/true", NULL };
    char *envp[] = { NULL };
    execve("/bin/true", argv, envp);
    return errno == EPERM ? 0 : CHILD_WRONG;
}

static int try_fork(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);           /* the fork worked: the parent sees the wrong answer */
    return pid < 0 && errno == EPERM ? 0 : CHILD_WRONG;
}

static int try_packet_socket(void)
{
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd >= 0 || errno != EPERM)
        return CHILD_WRONG;
    fd = socket(AF_NETLINK, SOCK_RAW, 0);
    if (fd >= 0 || errno != EPERM)
        return CHILD_WRONG;
    fd = socket(AF_MAX + 5, SOCK_RAW, 0);
    return fd < 0 && errno == EPERM ? 0 : CHILD_WRONG;
}

/* ---- outside the set: SIGSYS ---- */

static int try_ptrace(void)
{
    ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    return CHILD_WRONG;
}

static int try_setuid(void)
{
    syscall(SYS_setuid, 0);
    return CHILD_WRONG;
}

static int try_mount(void)
{
    syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL);
    return CHILD_WRONG;
}

static int try_kill_parent(void)
{
    kill(getppid(), 0);
    return CHILD_WRONG;
}

static int try_chroot(void)
{
    syscall(SYS_chroot, "/");
    return CHILD_WRONG;
}

/* prctl: reading the capability bounding set (libnss_systemd) only */
static int try_prctl_read(void)
{
    return prctl(PR_CAPBSET_READ, 0, 0, 0, 0) >= 0 ? 0 : CHILD_WRONG;
}

#ifndef TEST_ASAN
static int try_prctl_ptracer(void)
{
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    return CHILD_WRONG;
}
#endif

/* What a daemon's own code does: sort a large array (the C library's
 * qsort asks the system for its memory size first, with sysinfo; smtpd
 * sorts its correspondents when it evicts the oldest). */
static int by_value(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int sort_large_array(void)
{
    enum { N = 200000 };
    int *v = malloc(N * sizeof(*v));
    if (!v)
        return CHILD_WRONG;
    for (int i = 0; i < N; i++)
        v[i] = (i * 7919) % N;
    qsort(v, N, sizeof(*v), by_value);
    int ok = v[0] == 0 && v[N - 1] == N - 1;
    free(v);
    return ok ? 0 : CHILD_WRONG;
}

static void check_profile(enum syscall_profile profile)
{
    child_profile = profile;
    fprintf(stderr, "profile %s\n", syscall_profile_name(profile));
    CHECK(exited_ok(in_filtered_child(allowed_calls)));
    CHECK(exited_ok(in_filtered_child(sort_large_array)));
    CHECK(exited_ok(in_filtered_child(inet_sockets)));
    CHECK(exited_ok(in_filtered_child(try_execve)));
    CHECK(exited_ok(in_filtered_child(try_fork)));
    CHECK(exited_ok(in_filtered_child(try_packet_socket)));
    CHECK(killed_by_sigsys(in_filtered_child(try_ptrace)));
    CHECK(killed_by_sigsys(in_filtered_child(try_setuid)));
    CHECK(killed_by_sigsys(in_filtered_child(try_mount)));
    CHECK(killed_by_sigsys(in_filtered_child(try_kill_parent)));
    CHECK(killed_by_sigsys(in_filtered_child(try_chroot)));
    CHECK(exited_ok(in_filtered_child(try_prctl_read)));
#ifndef TEST_ASAN
    /* (sanitizer builds allow prctl whole, for their runtime) */
    CHECK(killed_by_sigsys(in_filtered_child(try_prctl_ptracer)));
#endif
}

#ifdef TEST_ASAN
void __sanitizer_set_report_path(const char *path);

static char report_base[64];

/* As ASAN_OPTIONS=log_path does at start-up (it creates the directory). */
static void set_report_path(void)
{
    __sanitizer_set_report_path(report_base);
}

/* A heap overflow under the filter: the report must still reach its file
 * (the symbolizer cannot be started, the raw report is enough). */
static int sanitizer_report(void)
{
    volatile char *p = malloc(16);
    p[16] = 1;
    free((void *)p);
    return 0;
}

static void check_sanitizer_report(void)
{
    char dir[] = "/tmp/test_syscall_filter.XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    snprintf(report_base, sizeof(report_base), "%s/asan", dir);
    child_profile = SYSCALL_PROFILE_SMTPD;
    child_prepare = set_report_path;
    int status = in_filtered_child(sanitizer_report);
    child_prepare = NULL;
    CHECK(!killed_by_sigsys(status));
    CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "grep -l AddressSanitizer %s/asan.* >/dev/null", dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}
#endif

int main(void)
{
    struct strbuf why = STRBUF_INIT(512);
    CHECK(syscall_filter_supported(&why) == 0);     /* the tests need a kernel that filters */
    sb_free(&why);
    check_profile(SYSCALL_PROFILE_SMTPD);
    check_profile(SYSCALL_PROFILE_SMTP);
    check_profile(SYSCALL_PROFILE_CLEANUP);
    CHECK_STR(syscall_profile_name(SYSCALL_PROFILE_NONE), "none");
    child_profile = SYSCALL_PROFILE_NONE;       /* no filter at all */
    CHECK(WIFEXITED(in_filtered_child(try_fork)));
#ifdef TEST_ASAN
    check_sanitizer_report();
#endif
    return check_summary();
}
