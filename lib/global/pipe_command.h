/* pipe_command.h: running an external command for a delivery agent (local's
 * "|command" destinations and mailbox_command, the pipe service's argv=),
 * shared so that both do it the same way: the command runs as an
 * unprivileged user in a process group of its own, with nothing of the
 * agent's open but its standard input, output and error; a second child,
 * also as that user, writes the message to the command's standard input;
 * the agent keeps a bounded part of the output and kills the whole group
 * when the time limit passes. The agent itself (root, so that it can take
 * the user's identity) never runs anything but these two children. */
#ifndef TERN_PIPE_COMMAND_H
#define TERN_PIPE_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "strbuf.h"

/* sysexits.h's EX_TEMPFAIL: what a child exits with when it cannot even
 * start the command, so that the delivery is tried again. */
#define PIPE_COMMAND_TEMPFAIL 75

struct pipe_command {
    const char *path;             /* the program, executed directly (no PATH search) */
    char *const *argv;            /* NULL-terminated */
    char *const *envp;            /* NULL-terminated: the command's whole environment */
    /* the identity both children take (user_name is for the group list) */
    const char *user_name;
    uid_t uid;
    gid_t gid;
    bool supplementary_groups;    /* true: user_name's groups too (initgroups); false: gid only */
    const char *cwd;              /* working directory, "/" when it cannot be entered; NULL: stay */
    int time_limit;               /* seconds for the whole run, at least 1 */
    size_t output_limit;          /* bytes of output kept */
    /* In each child first, before anything else: restore signals and close
     * what the agent holds that a child must not keep, except keep_fd
     * (-1: none). May be NULL. */
    void (*child_setup)(void *ctx, int keep_fd);
    /* In the feeding child, as the user, with SIGPIPE ignored: write the
     * message to fd. 0 ok. */
    int (*feed)(void *ctx, int fd);
    void *ctx;
};

struct pipe_command_status {
    int wstatus;                  /* the command's wait status */
    bool timed_out;               /* killed at the time limit */
};

/* Run the command with the message on its standard input, collecting its
 * output (standard output and error, the first output_limit bytes) in
 * output. 0 when the command ran (st says how it ended); -1 with errno set
 * when no pipe or process could be made. A command that cannot be executed
 * writes "cannot execute PATH: ERROR" as its output and exits with
 * PIPE_COMMAND_TEMPFAIL. */
int pipe_command_run(const struct pipe_command *c, struct strbuf *output,
                     struct pipe_command_status *st);

/* In a child: setgroups (the user's groups with supplementary, else gid
 * alone), setgid, setuid, verified, and that root cannot be had back;
 * _exit(PIPE_COMMAND_TEMPFAIL) after a warning on any failure. Not root
 * and already uid: nothing to do (tests running unprivileged). name NULL:
 * an identity that is only numbers (virtual's tables): gid alone, and no
 * warning, as the parent reports the failure from the exit status. */
void pipe_command_become(const char *name, uid_t uid, gid_t gid, bool supplementary);

/* In a child: close the descriptors from..to (to ~0U: every one from up). */
void pipe_command_close_span(unsigned from, unsigned to);
/* In a child before exec: close every descriptor from lowfd up. */
void pipe_command_close_from(int lowfd);

/* Reap pid, killing it when it has not exited within grace seconds;
 * returns its wait status. */
int pipe_command_reap(pid_t pid, int grace);

/* One step of a delivery that runs as a user in a process of its own
 * (local's mailboxes, files, .forward and :include:, virtual's mailboxes),
 * so that the root parent never opens the user's files: child(ctx, fd)
 * runs in a new process and must end it, having written its report on fd
 * as one attribute frame; the parent reads that frame (at most limit
 * bytes, within timeout seconds) into frame and reaps the child. 0 with
 * the frame; -1 with why (the text of a 4.3.0 deferral) and *wstatus the
 * child's wait status, -1 when it did not run or was killed at the time
 * limit. */
int pipe_command_child(void (*child)(void *ctx, int fd), void *ctx, size_t limit, int timeout,
                       struct strbuf *frame, int *wstatus, char *why, size_t why_size);

/* Run the command with the connected socket fd as its standard input,
 * output and error (spawn(8): a policy server that talks to the client
 * itself) and wait for it, killing its process group at the time limit;
 * output_limit, feed and cwd NULL are not used ("/" is the working
 * directory). 0 when it ran (st says how it ended); -1 with errno set when
 * no process could be made. */
int pipe_command_connect(const struct pipe_command *c, int fd, struct pipe_command_status *st);

/* ---- the settings of a master.cf service that runs commands (pipe, spawn) ---- */

/* The value of user=USER[:GROUP] into *user and *group (NULL: the
 * user's), replacing what they held: 0, or -1 with the reason in err. */
int pipe_command_parse_user(const char *value, char **user, char **group, struct strbuf *err);
/* argv=VALUE, the word words[i], and the words after it: the command (an
 * absolute path, run without a shell) and its arguments, at most max
 * words, into *argv (NULL-terminated) and *argc. 0, or -1 with err. */
int pipe_command_parse_argv(char **words, int nwords, int i, size_t max, char ***argv,
                            size_t *argc, struct strbuf *err);

/* The end of a service's attributes: argv= and user= were both given.
 * 0, or -1 with the one missing in err. */
int pipe_command_parse_end(char *const *argv, const char *user, struct strbuf *err);

/* user=USER[:GROUP] (group NULL: the user's): an existing account that is
 * neither root nor mail_owner, and a group other than root. 0 with *uid
 * and *gid; -1 with the reason (for "refused: ...") in why. */
int pipe_command_account(const char *user, const char *group, uid_t *uid, gid_t *gid,
                         struct strbuf *why);
/* The commands' whole environment: PATH=/usr/bin:/bin, then each variable
 * of export_environment this process has. NULL-terminated, allocated once. */
char **pipe_command_environment(void);
/* SERVICE_time_limit, else command_time_limit (Postfix's
 * transport_time_limit), in seconds from 1 to a week. */
int pipe_command_time_limit(const char *service);

/* The first line of output, at most size-1 bytes, control bytes as '?'. */
void pipe_command_first_line(const struct strbuf *output, char *line, size_t size);

#endif
