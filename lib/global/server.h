/* server.h: the one skeleton every Tern daemon is started through, so that a
 * daemon never knows how it was started. It owns option parsing, config
 * loading, the pre-init / chroot / drop-privileges / post-init order, the
 * listen socket inherited from master, busy/idle reports to master, max_use /
 * max_idle, and exiting when master goes away.
 *
 * Descriptor contract with master (see master/master.c):
 *   fd 3  MASTER_STATUS_FD   write end of a pipe to master; the child writes
 *                            struct master_status records (busy/idle hints).
 *   fd 4  MASTER_ALIVE_FD    read end of a pipe whose write end only master
 *                            holds; EOF here means master is gone: exit.
 *   fd 5  MASTER_LISTEN_FD   the service's listening socket (TCP or UNIX);
 *                            with -s N, N of them at fds 5 to 5+N-1 (an inet
 *                            service on several inet_interfaces addresses).
 *   environment TERN_MASTER_GENERATION=N identifies the master generation.
 * Command line from master.cf: PROGRAM -c CONFDIR -n SERVICE -t TYPE
 *   [-s N (listening sockets)] [-u (unpriv=n: keep root)] [-r (chroot)] [-w SECONDS (wakeup)] [-v]
 *   [-o name=value]...  followed by any other master.cf arguments.
 * TYPE inet and unix: fd 5 is a listening stream socket. pass: a listening
 *   UNIX socket whose clients each send one connected descriptor
 *   (SCM_RIGHTS); that descriptor is served as the client. fifo: a named
 *   pipe; whatever is written to it is a trigger that calls ops->wakeup.
 * Without TERN_MASTER_GENERATION a daemon refuses to start (it is not a
 * command), except with -S: serve one connection on stdin/stdout (tests). */
#ifndef TERN_SERVER_H
#define TERN_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include "syscall_filter.h"

struct event_base;

#define MASTER_STATUS_FD 3
#define MASTER_ALIVE_FD  4
#define MASTER_LISTEN_FD 5
#define MASTER_LISTEN_MAX 32   /* listening sockets of one service */

/* MASTER_STAT_SERVED, sent once when the first client is taken, changes
 * nothing in the availability: it tells master that the process did work,
 * so that one exiting soon after (max_use) is not taken for a loop. */
enum { MASTER_STAT_TAKEN = 0, MASTER_STAT_AVAIL = 1, MASTER_STAT_SERVED = 2 };
struct master_status {
    pid_t pid;
    unsigned generation;
    int avail;      /* MASTER_STAT_TAKEN, MASTER_STAT_AVAIL or MASTER_STAT_SERVED */
};

enum server_mode {
    SERVER_SINGLE,  /* one client at a time, blocking I/O (cleanup, delivery agents) */
    SERVER_EVENT,   /* many clients in one libevent loop (smtpd, qmgr) */
};

/* Each daemon's main() fills one of these and calls server_main(). The
 * tables are written one line per role: the mode and what it serves, then
 * its life-cycle hooks, then its limits and privileges; fields it does not
 * need stay zero. */
struct server_ops {
    enum server_mode mode;
    /* As root (when started as root), after the configuration is loaded and
     * before chroot and the privilege drop: open files that need privilege.
     * The working directory is already queue_directory. */
    void (*pre_init)(void);
    /* After the privilege drop. base is the event loop (EVENT mode; NULL in SINGLE). */
    void (*post_init)(struct event_base *base);
    /* SINGLE: serve one accepted connection; return when finished. The
     * skeleton closes fd afterwards. */
    void (*serve)(int fd);
    /* EVENT: a new accepted connection; the daemon owns fd and must call
     * server_client_done() when the session ends. */
    void (*accept_event)(int fd, struct event_base *base);
    /* EVENT: most sessions at once in this process (0: no limit). When reached
     * the process stops accepting and tells master it is busy. */
    int (*client_limit)(void);
    /* Wakeup timer (master.cf wakeup column), both modes, may be NULL. */
    void (*wakeup)(void);
    /* SINGLE, both optional: while the process waits for its next client,
     * idle_deadline_usec says when the daemon next needs to be woken (a
     * now_usec() time; 0: not at all), and idle_deadline is called once
     * that time has passed. Asked again after every client and every call,
     * so a daemon can keep something open between clients (the smtp
     * client's cached session) and close it in time. */
    long long (*idle_deadline_usec)(void);
    void (*idle_deadline)(void);
    /* Called before exit (master gone, max_idle, max_use, SIGTERM); may be
     * NULL. A SINGLE-mode process that gets SIGTERM while serving a client
     * exits at once without it (it must not wait for a blocked client). */
    void (*pre_exit)(void);
    /* true for daemons that must keep running (qmgr): no max_idle/max_use exit. */
    bool long_running;
    /* Keep setgid_group as the one supplementary group after the drop to
     * mail_owner (pickup: maildrop files are readable by that group only). */
    bool keep_setgid_group;
    /* The metrics collector itself: the skeleton does not start the
     * metrics client (lib/global/metrics_client.h) in it. */
    bool metrics_collector;
    /* The system call filter this daemon runs under once post_init is done
     * (lib/global/syscall_filter.h), unless syscall_filter = no. */
    enum syscall_profile syscall_filter;
};

/* Parse arguments, load configuration, set up logging, enter
 * queue_directory (the working directory from then on), run pre_init, chroot,
 * drop privileges, run post_init, then serve until exit. Never returns. */
void server_main(int argc, char **argv, const char *progname,
                 const struct server_ops *ops) __attribute__((noreturn));

/* A daemon's main(): server_main with the daemon's name and its server_ops,
 * given as designated initializers:
 *     SERVER_MAIN("qmgr", .mode = SERVER_EVENT, .accept_event = qmgr_accept, ...)
 * (one line per daemon; a daemon that must do more first writes main()
 * itself, as smtp does). */
#define SERVER_MAIN(progname, ...)                                  \
    int main(int argc, char **argv)                                 \
    {                                                               \
        static const struct server_ops server_main_ops = { __VA_ARGS__ }; \
        server_main(argc, argv, progname, &server_main_ops);        \
    }

/* EVENT mode: a session ended (updates counts, busy/idle, max_use, max_idle). */
void server_client_done(void);

/* EVENT mode: a bufferevent (bufferevent_socket_new options) for the
 * client connection fd that accept_event was given; NULL after a warning,
 * with fd closed and the session counted as ended, so that the caller only
 * frees what it allocated and returns. */
struct bufferevent;
struct bufferevent *server_client_bufferevent(int fd, struct event_base *base, int options);
/* A client of a frame service (lib/util/evframe.h: anvil's, proxymap's,
 * the metrics collector's) served on fd with ctx; NULL ctx needs no
 * clean-up, and server_frames_closed as svc->closed ends the session. */
struct evframe_service;
void server_serve_frames(int fd, struct event_base *base, const struct evframe_service *svc,
                         void *ctx);
void server_frames_closed(void *ctx);

/* Stop accepting, finish current sessions, then exit (used on fatal paths). */
void server_drain(void);

/* Service name (-n) and the event base (EVENT mode). */
const char *server_service_name(void);
struct event_base *server_event_base(void);

/* master.cf arguments after the skeleton's own options (from the first one
 * that is not an option), for daemons that take arguments of their own;
 * NULL-terminated, *count set when count is not NULL. */
char **server_args(int *count);

/* Drop privileges to mail_owner (setgroups, setgid, setuid) and verify the
 * change cannot be undone; fatal on any failure. No-op when not root.
 * Also used by the tern command. */
void drop_privileges(const char *user);
/* Look up uid/gid of a user name; 0 ok, -1 unknown. */
int user_ids(const char *user, uid_t *uid, gid_t *gid);

#endif
