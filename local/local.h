/* local.h: the local delivery agent's shared types: its settings from
 * main.cf, the message being delivered, the destinations an alias, .forward
 * or :include: file expands to, identities to deliver as, and results. */
#ifndef TERN_LOCAL_H
#define TERN_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mailbox.h"
#include "strbuf.h"

/* Bounds on everything that comes from a user file, a map or the queue. */
#define LOCAL_ITEM_MAX 4096         /* one destination in a list */
#define LOCAL_DEST_MAX 1000         /* destinations in one list */
#define LOCAL_LEAF_MAX 1000         /* deliveries for one recipient, all levels */
#define LOCAL_DEPTH_MAX 20          /* nesting of aliases, .forward and :include: */
#define LOCAL_FILE_MAX (1024 * 1024) /* size of a .forward or :include: file */
#define LOCAL_RCPT_MAX 10000        /* recipients in one delivery request */

/* Where a destination was found: decides privileges and allow_mail_to_*. */
enum local_class {
    LOCAL_CLASS_NONE = 0,        /* the recipient's own mailbox */
    LOCAL_CLASS_ALIAS = 1,
    LOCAL_CLASS_FORWARD = 2,
    LOCAL_CLASS_INCLUDE = 4,
};

struct local_settings {
    char *queue_dir_name;        /* for messages only; the process works in it */
    char *myhostname;
    char *alias_maps;
    char *home_mailbox;
    char *mail_spool_directory;
    char *mailbox_command;
    char *mailbox_transport;      /* "": deliver mailboxes here */
    long long mailbox_size_limit; /* 0: no limit */
    char *recipient_delimiter;    /* "" = extensions off */
    char *forward_path;           /* raw: $home etc. are expanded per user */
    unsigned commands_allowed;    /* LOCAL_CLASS_* bits */
    unsigned files_allowed;
    char *default_privs;
    char *cleanup_service;
    int command_time_limit;
    int lock_attempts;
    int lock_delay;
    long stale_lock_time;
    int ipc_timeout;
};
extern struct local_settings local_cfg;

/* ---- identities ---- */
struct local_user {
    char *name;
    uid_t uid;
    gid_t gid;
    char *home;
    char *shell;
};
int local_user_by_name(const char *name, struct local_user *u);   /* 0 ok, -1 unknown */
int local_user_by_uid(uid_t uid, struct local_user *u);
void local_user_copy(struct local_user *dst, const struct local_user *src);
void local_user_free(struct local_user *u);
/* setgroups/setgid/setuid to u, verified; _exit on failure (children only). */
void local_become_user(const struct local_user *u);

/* ---- destination lists (local_expand.c) ---- */
enum local_dest_kind { DEST_ADDRESS, DEST_FILE, DEST_COMMAND, DEST_INCLUDE };
struct local_dest {
    enum local_dest_kind kind;
    char *value;                  /* address, path, command, or include path */
    bool direct;                  /* "\user": the mailbox, no alias or .forward */
};
struct dest_list {
    struct local_dest *items;
    size_t n, cap;
};
#define LOCAL_PARSE_FILE 1        /* lines starting with '#' are comments */
/* Parse an alias value, a .forward or an :include: file: destinations
 * separated by commas or newlines, with "..." quoting. 0 ok; -1 with err. */
int local_expand_parse(const char *text, size_t len, int flags, struct dest_list *out,
                       struct strbuf *err);
void local_dest_list_add(struct dest_list *l, enum local_dest_kind kind, const char *value, bool direct);
void local_dest_list_free(struct dest_list *l);
const char *local_dest_kind_name(enum local_dest_kind kind);

/* ---- the message (local_request.c) ---- */
struct local_message {
    char id[24];
    const char *queue_path;       /* the request's (active/ID), for mailbox_transport */
    bool passed;                  /* the request was passed on by an agent, not qmgr's */
    bool probe;                   /* an address verification probe: find out, write nothing */
    int fd;                       /* O_RDONLY: content; children inherit it */
    int mark_fd;                  /* O_RDWR: marking recipients; parent only
                                     (the delivery request's, not closed here) */
    char *sender;
    long long arrival_usec;
    long long request_usec;       /* when the request arrived */
    long long content_offset;
    unsigned long long content_size;
    bool requiretls;              /* MAIL FROM ... REQUIRETLS: kept on what is forwarded */
    char **delivered_to;          /* lower-cased Delivered-To: values */
    size_t ndelivered;
    unsigned long seq;            /* deliveries by this process, for unique names */
};

/* ---- one delivery: what every leaf needs to write a copy ---- */
struct local_delivery {
    const struct local_message *msg;
    const char *delivered_to;     /* the top-level recipient, lower-cased */
    const char *orig_to;          /* the original recipient, as received */
    const char *address;          /* the address this destination belongs to */
    const char *local;            /* its local part, lower-cased */
    const char *extension;        /* "" when none */
    const char *domain;
};

/* ---- child processes (local_child.c) ---- */
/* Run fn in a child process. With as != NULL the child becomes that user
 * first; with NULL it stays root and fn must change identity itself. fn
 * fills the result and may add destinations; the parent gets both back
 * through a pipe. Returns with res always set (a dead or silent child is a
 * deferral). */
typedef void (*local_child_fn)(void *ctx, struct delivery_status *res, struct dest_list *dests);
void local_child_run(const struct local_message *msg, const struct local_user *as, int timeout,
                     local_child_fn fn, void *ctx, struct delivery_status *res,
                     struct dest_list *dests);
/* In any child: default signals, none of the parent's descriptors but the
 * queue file's content and keep_fd, then (as != NULL) the identity of as. */
void local_child_setup(const struct local_message *msg, const struct local_user *as, int keep_fd);
/* The connection being served, which no child may keep. */
void local_child_set_client(int fd);

/* ---- message copies (local_copy.c; the writer is lib/global/mailbox.h) ---- */
/* The message of a delivery as the mailbox writer sees it. */
void local_mailbox_message(const struct local_delivery *d, struct mailbox_message *m);
/* Write a copy of the message to fd (mailbox_copy_write with d's
 * Delivered-To:). 0 ok, -1 errno set (EFBIG: beyond limit). */
int local_copy_write(int fd, const struct local_delivery *d, int flags, unsigned long long limit,
                     unsigned long long *written);

/* ---- deliveries ---- */
/* local_mailbox.c: the user's mailbox (home_mailbox, mailbox_command or
 * mail_spool_directory), a /file destination. */
void local_mailbox_deliver(const struct local_delivery *d, const struct local_user *user,
                           struct delivery_status *res, const char **what);
void local_file_deliver(const struct local_delivery *d, const char *path,
                        const struct local_user *as, struct delivery_status *res);
/* Also local_mailbox.c, through lib/global/mailbox.h with
 * mailbox_size_limit and myhostname: a Maildir (dir ends in '/'), and
 * appending to an open, locked mbox file, truncated back on failure. */
void local_maildir_write(const struct local_delivery *d, const char *dir,
                         struct delivery_status *res);
void local_mbox_append(const struct local_delivery *d, int fd, const char *what,
                       int flags, struct delivery_status *res);
/* local_pipe.c */
void local_pipe_deliver(const struct local_delivery *d, const char *command,
                        const struct local_user *as, struct delivery_status *res);
/* local_forward.c: the user's .forward; 1 found (dests filled), 0 none,
 * -1 error (res set). */
int local_forward_read(const struct local_delivery *d, const struct local_user *user,
                       struct dest_list *dests, struct delivery_status *res);
/* Expand $home, $user, $local, $extension, $domain, $recipient_delimiter and
 * ${name?text} / ${name:text} in one forward_path element. */
int local_forward_expand(const char *pattern, const struct local_delivery *d,
                         const struct local_user *user, struct strbuf *out);
/* local_alias.c */
struct local_aliases;
struct local_aliases *local_aliases_open(void);
/* 1 found (value and the identity for its commands/files set), 0 not found,
 * -1 error (res set). */
int local_alias_lookup(struct local_aliases *a, const char *name, struct strbuf *value,
                       struct local_user *owner, struct delivery_status *res);
void local_aliases_close(struct local_aliases *a);
/* Read an :include: file as user `as`: 0 ok (dests, owner for what it
 * names), -1 error (res set). */
int local_include_read(const struct local_message *msg, const char *path,
                       const struct local_user *as, struct dest_list *dests,
                       struct local_user *owner, struct delivery_status *res);
/* The identity for commands and files when the owner would be root. */
int local_default_privs(struct local_user *u, struct delivery_status *res);

/* local_recipient.c: deliver one request recipient; res is the combined
 * outcome, every delivery is logged. */
struct deliver_rcpt;
void local_recipient_deliver(const struct local_message *msg, const struct deliver_rcpt *r,
                             void *dup_filter, struct delivery_status *res);
void *local_dup_filter_new(void);
void local_dup_filter_free(void *f);

/* local_request.c: serve one delivery request on fd; the log line of one delivery */
void local_request_serve(int fd);
void local_log_delivery(const struct local_message *msg, const char *to, const char *orig_to,
                        const struct delivery_status *res);

/* local_resubmit.c: send a copy to addresses that are not local */
int local_resubmit(const struct local_message *msg, const char *delivered_to,
                   const char *const *rcpts, size_t nrcpt, char queue_id[24], struct strbuf *err);

#endif
