/* syscall_filter.h: the seccomp system call filters that smtpd, smtp,
 * cleanup and postscreen put on themselves after the privilege drop, so that a process
 * taken over through its network input cannot exec a program, trace
 * another process, fork, or open kinds of sockets it never needs. The
 * allowed sets and the reasons for them are in doc/SECURITY.md, "System
 * call filters". */
#ifndef TERN_SYSCALL_FILTER_H
#define TERN_SYSCALL_FILTER_H

struct strbuf;

/* Which daemon's set of system calls a filter allows. */
enum syscall_profile {
    SYSCALL_PROFILE_NONE = 0,   /* no filter (daemons that do not ask for one) */
    SYSCALL_PROFILE_SMTPD,
    SYSCALL_PROFILE_SMTP,
    SYSCALL_PROFILE_CLEANUP,
    SYSCALL_PROFILE_POSTSCREEN,
};

/* The daemon name of a profile ("smtpd"), "none" for SYSCALL_PROFILE_NONE. */
const char *syscall_profile_name(enum syscall_profile profile);

/* Whether this kernel and libseccomp can install the filters (seccomp
 * filters with the kill-process action, Linux 4.14 and later): 0 yes, -1
 * no with the reason in why. For `tern check`. */
int syscall_filter_supported(struct strbuf *why);

/* Install the filter of profile on every thread of this process, for good
 * (it also sets no_new_privs). A call outside the allowed set ends the
 * process with SIGSYS; execve, execveat, fork, vfork, clone without
 * CLONE_THREAD and socket() of a family other than AF_UNIX, AF_INET and
 * AF_INET6 fail with EPERM instead. Returns 0, or -1 with the reason in err
 * (the kernel or libseccomp refused the filter). */
int syscall_filter_apply(enum syscall_profile profile, struct strbuf *err);

#endif
