/* syscall_filter.c: builds and installs the per-daemon seccomp filters of
 * syscall_filter.h with libseccomp. System calls are named, not numbered,
 * so that libseccomp resolves them for the architecture the program is
 * built for (x86_64, arm64); a name that does not exist there is skipped. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "strbuf.h"
#include "syscall_filter.h"

#if defined(__has_feature)
# if __has_feature(address_sanitizer)
#  define TERN_SANITIZER_BUILD 1
# endif
#endif
#if defined(__SANITIZE_ADDRESS__)
# define TERN_SANITIZER_BUILD 1
#endif

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Every filtered daemon: the server skeleton (accept4 on the listener from
 * master, ppoll, busy/idle writes), logging (maillog_file, or syslog over
 * /dev/log), memory, futexes, time, signals, IPC with the other daemons
 * over UNIX sockets, DNS (c-ares and the C library's resolver) and table
 * lookups through NSS (getpwnam_r may load libnss_systemd, which walks
 * directories with O_PATH descriptors and readlinkat, and talks to
 * systemd over a UNIX socket with its own event loop). The set was taken
 * from strace of the daemons under the whole-instance tests; calls the
 * tests do not reach but that the same libraries make on other hosts
 * (statfs, timerfd, eventfd, getdents64) grant nothing new and are here so
 * that a host unlike the test machine does not kill a daemon for them.
 * Names of one architecture only (open, stat, poll, epoll_wait, ... exist
 * on x86_64, not on arm64, where the C library uses openat, newfstatat,
 * ppoll, epoll_pwait) are skipped where they do not exist. */
static const char *const base_calls[] = {
    /* descriptors and files */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "close",
    "lseek", "fstat", "newfstatat", "statx", "stat", "lstat", "fcntl",
    "openat", "open", "getdents64", "readlink", "readlinkat", "statfs",
    "fstatfs", "access", "faccessat", "faccessat2", "dup", "dup3", "pipe2",
    /* waiting */
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_wait", "epoll_pwait", "timerfd_create",
    "timerfd_settime", "timerfd_gettime", "eventfd2",
    /* memory */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
    /* threads (smtpd's AUTH helpers) and futexes */
    "futex", "set_robust_list", "rseq", "set_tid_address", "sched_yield",
    "sched_getaffinity",
    /* time */
    "clock_gettime", "clock_getres", "clock_nanosleep", "gettimeofday", "time",
    "nanosleep",
    /* signals */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
    "restart_syscall",
    /* identity and limits, read only; sysinfo: the C library's qsort asks
     * for the memory size before it sorts a large array (smtpd sorts the
     * correspondents when it evicts the oldest) */
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
    "getgroups", "uname", "getrlimit", "prlimit64", "sysinfo",
    /* randomness (OpenSSL, c-ares, queue ids) */
    "getrandom",
    /* sockets (socket and socketpair are added with their families) */
    "accept4", "connect", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg", "getsockopt", "setsockopt", "getsockname",
    "getpeername", "shutdown",
    /* the end */
    "exit", "exit_group",
};

/* smtp: smtp_bind_address binds the outgoing socket. Marking recipients
 * done in the queue file is pwrite64 (common). The MTA-STS policy cache
 * (smtp_mta_sts) replaces a domain's file by renaming a new one over it
 * inside its directory, and removes what it abandons. */
static const char *const smtp_calls[] = {
    "bind", "renameat", "renameat2", "rename", "unlinkat", "unlink",
};

/* smtpd: the users' lists and the correspondent allowlist
 * (lib/global/user_lists.c) are Berkeley DB files in its own folder of
 * data_directory, made before the filter applies (user_lists_prepare),
 * each read or written under an flock of its lock file; the library opens
 * by name, so smtpd changes into the folder's descriptor for that moment
 * (fchdir), and syncs a file it wrote on close. */
static const char *const smtpd_calls[] = {
    "flock", "fchdir", "fsync", "fdatasync", "ftruncate",
};

/* cleanup: creates, syncs and publishes queue files (renameat2 with
 * RENAME_NOREPLACE, else link and unlink; fsync of the file and the
 * directory), and removes what it abandons. A spare file taken from
 * spare/ is emptied and given the new file's mode and the present time
 * (ftruncate, fchmod, utimensat). */
static const char *const cleanup_calls[] = {
    "renameat2", "rename", "renameat", "link", "linkat", "unlink", "unlinkat",
    "fsync", "fdatasync", "ftruncate", "fchmod", "utimensat",
};

/* postscreen: saves its cache by writing a new file, syncing it and
 * renaming it over the old one inside data_directory/postscreen. */
static const char *const postscreen_calls[] = {
    "renameat", "renameat2", "rename", "fsync", "fdatasync",
};

#ifdef TERN_SANITIZER_BUILD
/* Sanitizer runtimes make calls of their own when they write a report
 * (the report file, /proc/self/maps, isatty through TCGETS, the abort
 * through tgkill) and when threads start (sigaltstack); prctl is allowed
 * whole. Only in such builds. */
static const char *const sanitizer_calls[] = {
    "prctl", "sched_getparam", "getcwd",
};
#endif

/* Refused with EPERM: code that tries them copes with the failure (the
 * sanitizers start a symbolizer this way, and its raw report is still a
 * report), and the refusal is what an attacker's attempt meets. */
static const char *const refused_calls[] = {
    "execve", "execveat", "fork", "vfork",
};

const char *syscall_profile_name(enum syscall_profile profile)
{
    switch (profile) {
    case SYSCALL_PROFILE_SMTPD: return "smtpd";
    case SYSCALL_PROFILE_SMTP: return "smtp";
    case SYSCALL_PROFILE_CLEANUP: return "cleanup";
    case SYSCALL_PROFILE_POSTSCREEN: return "postscreen";
    case SYSCALL_PROFILE_NONE: break;
    }
    return "none";
}

/* libseccomp returns a negative number for a name unknown on this
 * architecture (a pseudo number, or __NR_SCMP_ERROR): such a call cannot be
 * made here, so there is nothing to allow or refuse. */
static int resolve(const char *name)
{
    int nr = seccomp_syscall_resolve_name(name);
    return nr < 0 ? -1 : nr;
}

static int add_rules(scmp_filter_ctx ctx, uint32_t action, const char *const *names, size_t n,
                     struct strbuf *err)
{
    for (size_t i = 0; i < n; i++) {
        int nr = resolve(names[i]);
        if (nr < 0)
            continue;
        int rc = seccomp_rule_add(ctx, action, nr, 0);
        if (rc < 0) {
            sb_appendf(err, "cannot add a rule for %s: %s", names[i], strerror(-rc));
            return -1;
        }
    }
    return 0;
}

/* An argument comparison with every field set (libseccomp's SCMP_A0
 * macros leave datum_b out, which -Wextra reports). MASKED_EQ: a is the
 * mask, b the value. */
static struct scmp_arg_cmp arg_cmp(unsigned arg, enum scmp_compare op, scmp_datum_t a,
                                   scmp_datum_t b)
{
    struct scmp_arg_cmp c = { .arg = arg, .op = op, .datum_a = a, .datum_b = b };
    return c;
}

/* One rule with one argument comparison; a name unknown here is skipped. */
static int add_arg_rule(scmp_filter_ctx ctx, uint32_t action, const char *name,
                        struct scmp_arg_cmp cmp, struct strbuf *err)
{
    int nr = resolve(name);
    if (nr < 0)
        return 0;
    int rc = seccomp_rule_add(ctx, action, nr, 1, cmp);
    if (rc < 0) {
        sb_appendf(err, "cannot add a rule for %s: %s", name, strerror(-rc));
        return -1;
    }
    return 0;
}

/* Threads (smtpd's AUTH helpers) yes, processes no: clone is allowed with
 * CLONE_THREAD and refused without it. clone3 passes its flags in memory a
 * filter cannot read, so it answers ENOSYS and the C library falls back to
 * clone. */
static int add_clone_rules(scmp_filter_ctx ctx, struct strbuf *err)
{
    if (add_arg_rule(ctx, SCMP_ACT_ALLOW, "clone",
                     arg_cmp(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD), err) < 0
        || add_arg_rule(ctx, SCMP_ACT_ERRNO(EPERM), "clone",
                        arg_cmp(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0), err) < 0)
        return -1;
    static const char *const clone3[] = { "clone3" };
    return add_rules(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3, 1, err);
}

/* socket(): AF_UNIX, AF_INET and AF_INET6 only; every other family
 * (AF_PACKET, AF_NETLINK, ...) is refused with EPERM, which the C library
 * handles where it probes one (getaddrinfo's AF_NETLINK check of
 * AI_ADDRCONFIG). socketpair(): AF_UNIX only. */
static int add_socket_rules(scmp_filter_ctx ctx, struct strbuf *err)
{
    for (int family = 0; family < AF_MAX; family++) {
        bool ok = family == AF_UNIX || family == AF_INET || family == AF_INET6;
        if (add_arg_rule(ctx, ok ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EPERM), "socket",
                         arg_cmp(0, SCMP_CMP_EQ, (scmp_datum_t)family, 0), err) < 0)
            return -1;
    }
    if (add_arg_rule(ctx, SCMP_ACT_ERRNO(EPERM), "socket",
                     arg_cmp(0, SCMP_CMP_GE, (scmp_datum_t)AF_MAX, 0), err) < 0)
        return -1;
    return add_arg_rule(ctx, SCMP_ACT_ALLOW, "socketpair", arg_cmp(0, SCMP_CMP_EQ, AF_UNIX, 0), err);
}

/* Signals only to this process (raise, abort); ioctl only for the
 * requests the libraries make (libevent's FIONREAD, FIONBIO, the terminal
 * check TCGETS of stdio and the sanitizers); prctl only to read the
 * capability bounding set (libcap in libnss_systemd does at load). */
static int add_restricted_rules(scmp_filter_ctx ctx, struct strbuf *err)
{
    scmp_datum_t self = (scmp_datum_t)getpid();
    if (add_arg_rule(ctx, SCMP_ACT_ALLOW, "kill", arg_cmp(0, SCMP_CMP_EQ, self, 0), err) < 0
        || add_arg_rule(ctx, SCMP_ACT_ALLOW, "tgkill", arg_cmp(0, SCMP_CMP_EQ, self, 0), err) < 0)
        return -1;
    static const unsigned long ioctls[] = { FIONREAD, FIONBIO, TCGETS };
    for (size_t i = 0; i < COUNT(ioctls); i++)
        if (add_arg_rule(ctx, SCMP_ACT_ALLOW, "ioctl",
                         arg_cmp(1, SCMP_CMP_EQ, (scmp_datum_t)ioctls[i], 0), err) < 0)
            return -1;
#ifndef TERN_SANITIZER_BUILD
    if (add_arg_rule(ctx, SCMP_ACT_ALLOW, "prctl", arg_cmp(0, SCMP_CMP_EQ, PR_CAPBSET_READ, 0),
                     err) < 0)
        return -1;
#endif
    return 0;
}

static int add_profile_rules(scmp_filter_ctx ctx, enum syscall_profile profile,
                             struct strbuf *err)
{
    if (add_rules(ctx, SCMP_ACT_ALLOW, base_calls, COUNT(base_calls), err) < 0
        || add_rules(ctx, SCMP_ACT_ERRNO(EPERM), refused_calls, COUNT(refused_calls), err) < 0
        || add_clone_rules(ctx, err) < 0 || add_socket_rules(ctx, err) < 0
        || add_restricted_rules(ctx, err) < 0)
        return -1;
#ifdef TERN_SANITIZER_BUILD
    if (add_rules(ctx, SCMP_ACT_ALLOW, sanitizer_calls, COUNT(sanitizer_calls), err) < 0)
        return -1;
#endif
    switch (profile) {
    case SYSCALL_PROFILE_SMTPD:
        /* Its clients (anvil, cleanup, policy servers, milters, Dovecot
         * auth, DNS) are all connect()ed sockets; on disk it writes only
         * the user lists' files (smtpd_calls). */
        return add_rules(ctx, SCMP_ACT_ALLOW, smtpd_calls, COUNT(smtpd_calls), err);
    case SYSCALL_PROFILE_SMTP:
        return add_rules(ctx, SCMP_ACT_ALLOW, smtp_calls, COUNT(smtp_calls), err);
    case SYSCALL_PROFILE_CLEANUP:
        return add_rules(ctx, SCMP_ACT_ALLOW, cleanup_calls, COUNT(cleanup_calls), err);
    case SYSCALL_PROFILE_POSTSCREEN:
        return add_rules(ctx, SCMP_ACT_ALLOW, postscreen_calls, COUNT(postscreen_calls), err);
    case SYSCALL_PROFILE_NONE:
        break;
    }
    return 0;
}

int syscall_filter_supported(struct strbuf *why)
{
    /* API level 3: the kernel has seccomp(2) and SECCOMP_RET_KILL_PROCESS */
    unsigned level = seccomp_api_get();
    if (level >= 3)
        return 0;
    sb_appendf(why, "this kernel or libseccomp offers seccomp API level %u, the filters need 3 "
               "(Linux 4.14 or later with CONFIG_SECCOMP_FILTER)", level);
    return -1;
}

int syscall_filter_apply(enum syscall_profile profile, struct strbuf *err)
{
    if (profile == SYSCALL_PROFILE_NONE)
        return 0;
#ifdef TERN_SYSCALL_FILTER_TRACE
    /* A build with -DTERN_SYSCALL_FILTER_TRACE lets calls outside the set
     * through and has the kernel log them (audit type 1326): for checking
     * the sets against a new library or host without killing daemons. */
    uint32_t deflt = SCMP_ACT_LOG;
#else
    /* Anything else ends the whole process (all its threads) with SIGSYS:
     * master logs it as a crash. */
    uint32_t deflt = SCMP_ACT_KILL_PROCESS;
#endif
    scmp_filter_ctx ctx = seccomp_init(deflt);
    if (!ctx) {
        sb_appends(err, "libseccomp cannot create a filter (kernel without seccomp?)");
        return -1;
    }
    int rc;
    /* every thread, including any a library started before this point */
    if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0
        || (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1)) < 0) {
        sb_appendf(err, "cannot set filter attributes: %s", strerror(-rc));
        seccomp_release(ctx);
        return -1;
    }
    if (add_profile_rules(ctx, profile, err) < 0) {
        seccomp_release(ctx);
        return -1;
    }
    rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0) {
        sb_appendf(err, "the kernel refused the %s system call filter: %s",
                   syscall_profile_name(profile), strerror(-rc));
        return -1;
    }
    return 0;
}
