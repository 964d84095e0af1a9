/* master.h: shared state of the master process: the services from master.cf
 * with their listening sockets, and the children that serve them. */
#ifndef TERN_MASTER_H
#define TERN_MASTER_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "mastercf.h"

struct service {
    struct master_service cfg;
    int listen_fd;          /* -1 for none */
    int failures;           /* consecutive abnormal exits */
    time_t throttle_until;
};

struct child {
    pid_t pid;
    unsigned generation;
    char *service_key;      /* "name/type" of the service it serves */
    bool avail;
};

struct master_state {
    const char *confdir;
    char *daemon_dir;
    unsigned generation;
    struct service *svcs;
    size_t nsvcs;
    struct child *children;
    size_t nchildren, capchildren;
    int status_rfd, status_wfd;   /* children -> master hints */
    int alive_rfd, alive_wfd;     /* current generation's alive pipe */
    bool verbose;
};

extern struct master_state ms;

/* master_service.c */
int master_open_listener(struct service *svc, struct strbuf *err);
void master_close_listener(struct service *svc);
char *master_service_key(const struct master_service *cfg);
void master_spawn(struct service *svc);
void master_reap(void);
int master_count(const struct service *svc, int *avail);
void master_read_status(void);
void master_kill_all(int sig);
int master_load_services(struct service **out, size_t *n, struct strbuf *err);

/* master_setup.c */
void master_prepare_queue(void);
int master_lock(struct strbuf *err);
void master_unlock(void);

#endif
