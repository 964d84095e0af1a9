/* mailbox.h: writing a delivered message into a mailbox, for every agent
 * that delivers on this host (local, virtual): the copy itself (the "From "
 * line, Return-Path: and Delivered-To: in front, ">From " quoting, a hard
 * size bound), the two mailbox locks mail readers expect (a dot-lock file
 * and an fcntl() lock), appending to an open mbox file whole or not at all,
 * Maildir delivery (tmp/, fsync, rename into new/), and the Delivered-To:
 * headers a message already has, for mail loop detection.
 *
 * Nothing here changes identity: the caller runs these in a process that
 * already has the identity the mailbox belongs to (see local/local_child.c
 * and virtual/virtual_child.c), so every path is opened with that uid's
 * rights only. Outcomes come back as a struct delivery_status: 2 delivered,
 * 4 deferred, 5 bounced, with an enhanced status code and one line of
 * text; the agent applies soft_bounce and logs. */
#ifndef TERN_MAILBOX_H
#define TERN_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "delivery_status.h"
#include "strbuf.h"


/* What a copy is made of: the queue file's content and its envelope. */
struct mailbox_message {
    int fd;                       /* the queue file, readable */
    long long content_offset;
    unsigned long long content_size;
    const char *sender;
    const char *orig_to;          /* the recipient as received (X-Original-To:); NULL or "": none */
    unsigned long seq;            /* deliveries by this process (unique Maildir names) */
};

/* dsn class for an errno of a mailbox/file operation that failed:
 * 4.2.0 (locks, permissions), 4.3.0 (disk full, I/O), 5.2.2 (too large);
 * *status gets 4 or 5. */
const char *mailbox_dsn_for_errno(int err, int *status);

/* ---- copies ---- */
#define COPY_FROM_LINE 1          /* "From sender date" first */
#define COPY_QUOTE_FROM 2         /* ">From " for lines starting with "From " */
#define COPY_BLANK_LINE 4         /* an empty line after the message */
#define COPY_MBOX (COPY_FROM_LINE | COPY_QUOTE_FROM | COPY_BLANK_LINE)
/* The envelope lines written before the content, as Postfix's local and
 * virtual delivery write them: From line (when asked), Return-Path:,
 * X-Original-To: (the recipient as received, before address rewriting and
 * aliases; left out when orig_to is NULL or empty) and Delivered-To:. */
void mailbox_copy_prefix(struct strbuf *out, int flags, const char *sender, const char *orig_to,
                         const char *delivered_to, long long now_sec);
/* The parts of those lines the pipe agent writes too, with its own line
 * ends: the From line "From SENDER  DATE" without its end (the sender's
 * white space and control bytes as '_', so that readers split it right;
 * MAILER-DAEMON for the null sender; now_sec in local time), and an
 * envelope value in a header line (control bytes as '?'). */
void mailbox_from_line(struct strbuf *out, const char *sender, long long now_sec);
void mailbox_append_clean(struct strbuf *out, const char *s);
/* Write a copy of the message to fd. At most limit bytes (0: no limit):
 * beyond it the copy stops with errno EFBIG. 0 ok, -1 errno set. *written
 * gets the bytes written either way. */
int mailbox_copy_write(int fd, const struct mailbox_message *m, const char *delivered_to, int flags,
                       unsigned long long limit, unsigned long long *written);

/* Incremental ">From " quoting, usable on arbitrary chunk boundaries. */
struct mailbox_from_quote {
    bool at_line_start;
    size_t held;                  /* bytes of "From " matched and held back */
};
void mailbox_from_quote_init(struct mailbox_from_quote *q);
int mailbox_from_quote_feed(struct mailbox_from_quote *q, const char *data, size_t len,
                            struct strbuf *out);
int mailbox_from_quote_finish(struct mailbox_from_quote *q, struct strbuf *out);

/* ---- locks ---- */
/* A lock-style list as main.cf writes it ("fcntl, dotlock":
 * virtual_mailbox_lock) as MAILBOX_LOCK_* bits; -1 with the word that is
 * not a style Tern supports in why. */
#define MAILBOX_LOCK_FCNTL 1
#define MAILBOX_LOCK_DOT 2
int mailbox_lock_styles(const char *value, struct strbuf *why);
/* 0 locked; 1 locked after removing a lock older than stale_after (*found
 * gets its lstat); -1 errno set (EAGAIN: busy); -2 the lock file is
 * foreign (not a plain file of owner or root; *found gets its lstat). */
struct stat;
int mailbox_dotlock_acquire(const char *path, int attempts, int delay, long stale_after,
                            uid_t owner, struct stat *found);
void mailbox_dotlock_release(const char *path);
int mailbox_fcntl_lock(int fd, int attempts, int delay);

/* ---- mbox and Maildir ---- */
/* What a delivery into a mailbox is bounded by, and how it is named. */
struct mailbox_limit {
    long long size;               /* 0: no limit */
    const char *param;            /* its parameter, for the reason: "mailbox_size_limit" */
};

/* Append to an open, locked mbox file, truncating back on failure so a
 * reader never sees half a message. what names the mailbox in reasons
 * ("mailbox PATH for user NAME"); on success the reason is "delivered". */
void mailbox_mbox_append(const struct mailbox_message *m, const char *delivered_to, int fd,
                         const char *what, int flags, const struct mailbox_limit *limit,
                         struct delivery_status *st);

/* struct mailbox_maildir .flags */
#define MAILDIR_MAKE_PARENTS 1    /* create missing parents of dir too (0700) */
#define MAILDIR_NO_SYMLINK 2      /* dir, tmp, new and cur must not be symbolic links */

struct mailbox_maildir {
    const char *dir;              /* ends in '/' */
    const char *hostname;         /* the last part of the file names */
    int flags;                    /* MAILDIR_* */
    struct mailbox_limit limit;   /* per message */
};
/* Write the message into dir/tmp/ under a name no other delivery can use,
 * fsync it, and rename it into dir/new/; dir, tmp, new and cur are created
 * (0700) when missing. On success the reason is "delivered to maildir". */
void mailbox_maildir_write(const struct mailbox_message *m, const char *delivered_to,
                           const struct mailbox_maildir *md, struct delivery_status *st);

/* ---- Delivered-To: headers, for mail loop detection ---- */
#define MAILBOX_DELIVERED_MAX 1000          /* values remembered per message */
#define MAILBOX_HEADER_SCAN_MAX (1024 * 1024) /* header bytes read */
/* Collecting the Delivered-To: values (lower-cased) of a header section,
 * chunk by chunk; done once the empty line that ends it was seen. */
struct mailbox_delivered_scan {
    struct strbuf line;
    bool done;                    /* the header section has ended */
    size_t seen;                  /* header bytes looked at */
    char **values;
    size_t nvalues;
};
void mailbox_delivered_scan_init(struct mailbox_delivered_scan *s);
void mailbox_delivered_scan_feed(struct mailbox_delivered_scan *s, const char *data, size_t len);
void mailbox_delivered_scan_finish(struct mailbox_delivered_scan *s);
void mailbox_delivered_scan_free(struct mailbox_delivered_scan *s);
/* init, the header section of a delivery request's message, finish. */
struct deliver_request;
void mailbox_delivered_scan_request(struct mailbox_delivered_scan *s,
                                    const struct deliver_request *rq);
/* Whether delivered_to (lower-cased) is among the n values a scan found:
 * the message was delivered to that very address before, a mail loop. */
bool mailbox_delivered_seen(char *const *values, size_t n, const char *delivered_to);

#endif
