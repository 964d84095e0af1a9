/* maildrop.h: the rules of a local submission waiting in maildrop/: what
 * tern-drop writes there and what pickup accepts. A maildrop file is a
 * queue file (queue.h) with a narrower grammar, written down in
 * lib/global/QUEUE.md, "Maildrop files"; pickup reads it as hostile input. */
#ifndef TERN_MAILDROP_H
#define TERN_MAILDROP_H

#include <stdbool.h>
#include <stddef.h>

#include "queue.h"

#define MAILDROP_RCPT_MAX 10000        /* recipients of one submission */
#define MAILDROP_ADDR_MAX 2048         /* sender and recipient addresses (as cleanup) */
#define MAILDROP_FULL_NAME_MAX 256     /* -F full name */
#define MAILDROP_ENVID_MAX 100         /* RFC 3461 ENVID */
#define MAILDROP_NOTIFY_MAX 64         /* "SUCCESS,DELAY,FAILURE" and a NUL */
/* Envelope bytes (sender, attributes, recipients) tern-drop accepts, and
 * what pickup allows on top of message_size_limit for them. */
#define MAILDROP_ENVELOPE_MAX (4 * 1024 * 1024)

/* What a checked maildrop file says besides sender and recipients; the
 * strings point into the qmessage (NULL when absent). */
struct maildrop_info {
    long long uid;                 /* submitting user, recorded by tern-drop */
    const char *full_name;         /* sendmail -F */
    const char *ret;               /* FULL or HDRS (sendmail -R) */
    const char *envid;             /* sendmail -V */
};

/* Check a maildrop file loaded with qmessage_load_fd: complete, the
 * attributes uid (exactly once) and at most one each of full_name, ret and
 * envid, 1..MAILDROP_RCPT_MAX pending recipients without ORCPT, every
 * string within its bound and free of control characters, every NOTIFY in
 * its canonical form. 0 with *info filled, -1 with *why (static text). */
int maildrop_check(const struct qmessage *m, struct maildrop_info *info, const char **why);

/* Printable (or 8-bit) text of at most max bytes: no control characters,
 * since these strings end up in headers and log lines. */
bool maildrop_text_ok(const char *s, size_t max);

/* A DSN NOTIFY list as sendmail -N takes it ("never", or a comma list of
 * success, delay and failure, in any case) in the canonical form of queue
 * files ("NEVER", "SUCCESS,DELAY"): upper case, no blanks, no repeats.
 * 0 ok, -1 malformed. */
int maildrop_notify_canon(const char *in, char *out, size_t size);

#endif
