/* mastercf.h: reads master.cf (Postfix syntax: one service per logical line,
 * columns service type private unpriv chroot wakeup maxproc command+args,
 * continuation lines start with white space, '#' comments, '-' = default). */
#ifndef TERN_MASTERCF_H
#define TERN_MASTERCF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;

enum service_kind { SVC_INET, SVC_UNIX, SVC_PASS, SVC_FIFO };

/* The word of the type column for kind: "inet", "unix", "pass", "fifo". */
const char *mastercf_kind_name(enum service_kind kind);

struct master_service {
    char *name;           /* "smtp", "127.0.0.1:2525", "cleanup" */
    enum service_kind kind;
    bool private_;        /* unix: private/ (y) or public/ (n) */
    bool unpriv;          /* y: drop to mail_owner; n: stay root (local) */
    bool chroot_;         /* chroot to queue_directory */
    int wakeup;           /* seconds, 0 = none */
    int maxproc;          /* 0 = unlimited; '-' gives default_process_limit */
    char *command;        /* program name, relative to daemon_directory */
    char **args;          /* argv after the command (including -o pairs), NULL-terminated */
    int argc;
    int lineno;           /* where it was defined */
};

/* Parse path; 0 on success (*out and *n set), -1 with "master.cf:LINE: ..." in err.
 * default_maxproc fills '-' in the maxproc column. */
int mastercf_load(const char *path, int default_maxproc,
                  struct master_service **out, size_t *n, struct strbuf *err);
void mastercf_free(struct master_service *svcs, size_t n);

/* Split an inet service name "host:port" or "port" into host (may be "" for
 * all addresses) and port; service names like "smtp" resolve via getservbyname.
 * 0 ok, -1 invalid. */
int mastercf_inet_split(const char *name, char *host, size_t hostsz, char *port, size_t portsz);

#endif
