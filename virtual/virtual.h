/* virtual.h: the virtual delivery agent's shared types: its settings from
 * main.cf, what the tables say about one recipient (mailbox, uid, gid),
 * and the delivery of one recipient in a child with that identity. */
#ifndef TERN_VIRTUAL_H
#define TERN_VIRTUAL_H

#include <stdbool.h>
#include <sys/types.h>

#include "mailbox.h"
#include "strbuf.h"

#define VIRTUAL_RCPT_MAX 10000     /* recipients in one delivery request */
#define VIRTUAL_KEY_MAX 2048       /* one lookup key: local part and domain */
#define VIRTUAL_PATH_MAX 4096      /* a mailbox path, virtual_mailbox_base included */

struct maplist;

struct virtual_settings {
    char *myhostname;             /* the host part of Maildir file names */
    char *base;                   /* virtual_mailbox_base */
    struct maplist *mailbox_maps, *uid_maps, *gid_maps;  /* NULL: empty */
    const char *recipient_delimiter;
    long long minimum_uid;
    long long mailbox_limit;      /* 0: no limit */
    unsigned lock;                /* MAILBOX_LOCK_* (virtual_mailbox_lock) */
    int lock_attempts;
    int lock_delay;
    long stale_lock_time;
    int time_limit;               /* one delivery, in its child */
    int ipc_timeout;
};
extern struct virtual_settings virtual_cfg;

/* ---- one recipient's mailbox (virtual_lookup.c) ---- */
struct virtual_mailbox {
    char path[VIRTUAL_PATH_MAX];  /* virtual_mailbox_base/VALUE */
    bool maildir;                 /* the value ended in '/' */
    uid_t uid;
    gid_t gid;
};

/* Look the recipient local@domain (local part unquoted, lower-cased;
 * domain lower-cased) up in virtual_mailbox_maps, virtual_uid_maps and
 * virtual_gid_maps as Postfix does: the full address, the address
 * without its extension (recipient_delimiter), then @domain. 0 with mb
 * filled; otherwise st says why: 5.1.1 unknown user (not in
 * virtual_mailbox_maps), 4.3.0 a table could not answer, 4.3.5 a
 * configuration error (no or a bad uid or gid, a uid below
 * virtual_minimum_uid, a mailbox path that leaves virtual_mailbox_base). */
int virtual_lookup(const struct virtual_settings *cfg, const char *local_lc, const char *domain,
                   struct virtual_mailbox *mb, struct delivery_status *st);

/* The path of a table's mailbox value under base: "base/value" with
 * maildir set for a trailing '/'. -1 (why set) for a value that is empty,
 * absolute after the base, has a ".." component or is too long. */
int virtual_mailbox_path(const char *base, const char *value, char *path, size_t size,
                         bool *maildir, struct strbuf *why);
/* A uid or gid as a table gives it: decimal digits only. -1 otherwise. */
int virtual_parse_id(const char *value, long long *id);

/* ---- the delivery (virtual_child.c) ---- */
struct virtual_delivery {
    struct mailbox_message msg;
    const char *delivered_to;     /* the recipient, for Delivered-To: */
    const char *address;          /* for reasons */
};
/* Write the message into mb's mailbox in a child process that has mb's
 * uid and gid and nothing else of root's; st gets the outcome. */
void virtual_deliver(const struct virtual_delivery *d, const struct virtual_mailbox *mb,
                     struct delivery_status *st);

/* virtual_request.c: serve one delivery request on fd */
void virtual_request_serve(int fd);

#endif
