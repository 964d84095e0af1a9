/* master.h: shared state of the master process: the settings it took from
 * main.cf, the services from master.cf with their listening sockets, and
 * the children that serve them. */
#ifndef TERN_MASTER_H
#define TERN_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "mastercf.h"
#include "server.h"

struct strbuf;

/* What master uses from main.cf, copied after each successful load so that
 * a reload that fails leaves master running on the settings it had. */
struct master_params {
    char *queue_dir;
    char *daemon_dir;
    char *data_dir;
    char *mail_owner;
    char *setgid_group;
    long throttle_time;     /* service_throttle_time, seconds */
    char **env;             /* "NAME=value" from import_environment */
    size_t nenv;
    bool root;              /* running as root: queue owners, privilege drops */
    uid_t owner_uid;        /* mail_owner (the invoking user when not root) */
    gid_t owner_gid;
    gid_t setgid_gid;
};

struct service {
    struct master_service cfg;
    char *key;              /* "name/type": identifies a service across reloads */
    char *listen_id;        /* what is listened on, e.g. "unix:/var/spool/tern/private/x" */
    int listen_fds[MASTER_LISTEN_MAX]; /* nlisten of them; 0 when not listening */
    int nlisten;
    int failures;           /* consecutive abnormal exits */
    int quick_exits;        /* consecutive clean exits right after start */
    time_t throttle_until;  /* no new children before this */
};

struct child {
    pid_t pid;
    unsigned generation;
    char *service_key;      /* its service's key */
    char *path;             /* daemon program, for log lines */
    bool avail;             /* last hint: can take a client */
    long long started_usec; /* now_usec() at fork */
    bool served;            /* said MASTER_STAT_SERVED: it took a client */
};

struct master_state {
    char *confdir;          /* absolute */
    bool verbose;           /* -v: passed on to the daemons */
    struct master_params p;
    unsigned generation;
    struct service *svcs;
    size_t nsvcs;
    struct child *children;
    size_t nchildren, capchildren;
    int status_rfd, status_wfd;   /* children -> master hints (fd 3 in children) */
    int alive_rfd, alive_wfd;     /* this generation's alive pipe (fd 4 in children) */
    bool stopping;
};

extern struct master_state ms;

/* master_config.c: main.cf settings and the service table */
int master_load_params(struct master_params *p, struct strbuf *err);
void master_free_params(struct master_params *p);
int master_load_services(const struct master_params *p, struct service **out, size_t *n,
                         struct strbuf *err);
void master_free_services(struct service *svcs, size_t n);
int master_check_services(const struct master_params *p, const struct service *svcs, size_t n,
                          struct strbuf *err);
void master_warn_unknown(void);

/* master_listen.c: the listening sockets master opens for its services */
int master_open_listener(const struct master_params *p, struct service *svc, struct strbuf *err);
void master_close_listener(struct service *svc, bool remove_file);

/* master_spawn.c: starting a child with the descriptor contract */
void master_spawn(struct service *svc);

/* master_pool.c: children, busy/idle hints, reaping, throttling */
struct child *master_add_child(pid_t pid, const struct service *svc, const char *path);
int master_count(const struct service *svc, int *avail, bool all_generations);
void master_read_status(void);
void master_reap(void);
void master_kill_all(int sig);
/* The process count of every service, and its report to the metrics
 * collector when due (lib/global/metrics_client.h). */
void master_metrics_counts(void);
void master_metrics_flush(void);
bool master_may_spawn(const struct service *svc, time_t now);

/* master_signals.c: signals through a self-pipe; reload and stop */
/* A close-on-exec pipe (flags may add O_NONBLOCK); master cannot work
 * without its pipes, so a failure is fatal. */
void master_pipe(int *rfd, int *wfd, int flags);
void master_signals_init(void);
int master_signal_fd(void);
void master_handle_signals(void);
void master_new_generation(void);

/* master_queue.c: the queue directory tree */
int master_prepare_queue(const struct master_params *p, struct strbuf *err);

/* master_chroot.c: copies of a few /etc files in queue_directory/etc when
 * a service runs chrooted (warnings only: nothing there is required) */
void master_chroot_files(const struct master_params *p, const struct service *svcs, size_t n);

/* master_privs.c: name operations in mail_owner's directories (private/,
 * public/, data_directory) run between these two with mail_owner's
 * effective uid, gid and groups; no-ops when master is not root. */
void master_owner_begin(const struct master_params *p);
void master_owner_end(const struct master_params *p);

/* master_lock.c: the pid/lock file */
pid_t master_lock_holder(const struct master_params *p);
int master_lock(const struct master_params *p, struct strbuf *err);
void master_unlock(void);

#endif
