/* cleanup.h: the parts of the cleanup daemon and what they share: the
 * envelope it is given, what it writes into the header section (pure
 * functions, unit tested), and the state of one submission as it becomes a queue file. */
#ifndef TERN_CLEANUP_H
#define TERN_CLEANUP_H

#include <stdbool.h>
#include <stddef.h>

#include "header_section.h"
#include "received_header.h"
#include "queue.h"
#include "strbuf.h"

struct attr_reader;
struct mime_state;

/* ---- the envelope frame (cleanup_envelope.c) ---- */

#define CLEANUP_FLAG_LOCAL 1        /* local submission: add missing Message-ID:, Date:, From: */
#define CLEANUP_FLAG_HOLD 2         /* smtpd's restrictions said HOLD: commit into hold/ */
#define CLEANUP_FLAG_NO_MAPPINGS 4  /* receive_override_options = no_address_mappings */
#define CLEANUP_FLAG_NO_CHECKS 8    /* receive_override_options = no_header_body_checks */
#define CLEANUP_FLAGS_KNOWN (CLEANUP_FLAG_LOCAL | CLEANUP_FLAG_HOLD | CLEANUP_FLAG_NO_MAPPINGS \
                             | CLEANUP_FLAG_NO_CHECKS)

#define CLEANUP_MAX_ATTRS 64        /* attributes in one envelope */
#define CLEANUP_MIN_RCPT_LIMIT 10000 /* recipients allowed at least (more when
                                      * smtpd_recipient_limit is higher) */
#define CLEANUP_ADDR_MAX 2048       /* sender and recipient addresses */
#define CLEANUP_ORCPT_MAX 1024      /* RFC 3461 ORCPT values */
#define CLEANUP_ATTR_VALUE_MAX 2048 /* attribute values (helo_name, ...) */

struct cleanup_envelope {
    long long flags;
    char *sender;
    size_t nattr;
    char **attr_names, **attr_values;
    size_t nrcpt;
    char **rcpts, **orcpts, **notifies;
    char preset_id[QUEUE_ID_SIZE];  /* the queue_id attribute: the ID smtpd chose, or "" */
};

/* Decode the envelope frame strictly (order, counts, sizes, characters).
 * 0 ok; -1 with *why saying what was wrong (a static string). */
int cleanup_envelope_read(struct attr_reader *r, struct cleanup_envelope *env,
                          size_t max_rcpts, const char **why);
const char *cleanup_env_attr(const struct cleanup_envelope *env, const char *name);
/* What smtpd's restrictions asked of the message (doc/PROTOCOLS.md):
 * HOLD (the flag) and FILTER (the filter attribute), applied as the same
 * actions of header_checks are. */
struct cleanup_state;
void cleanup_envelope_actions(struct cleanup_state *st);
void cleanup_envelope_free(struct cleanup_envelope *env);

/* ---- what cleanup writes (cleanup_headers.c; Received: from
 * lib/global/received_header.h); the header section itself is parsed by
 * lib/global/header_section.h ---- */

/* Copy s into out for a log line: control bytes become '?', at most max bytes. */
void cleanup_log_safe(struct strbuf *out, const char *s, size_t len, size_t max);

/* ---- one submission (cleanup_message.c, cleanup_queue.c) ---- */

struct cleanup_settings {
    const char *queue_dir;         /* "." once in the queue directory */
    const char *queue_dir_name;    /* queue_directory, for log messages */
    const char *myhostname, *mail_name, *myorigin;
    long hopcount_limit;
    size_t header_size_limit;
    unsigned long long message_size_limit;   /* 0: none */
    bool always_add_missing_headers;
    char **drop_headers;           /* message_drop_headers */
    size_t ndrop_headers;
    size_t max_rcpts;
    size_t line_length_limit;      /* body lines are inspected in pieces of this */
    unsigned long long body_checks_size_limit;
    int mime_nesting_limit;
    bool disable_mime_input_processing;
};
extern struct cleanup_settings cleanup_cfg;

struct cleanup_state {
    struct cleanup_envelope env;
    struct qfile_writer qf;
    bool qf_open;                  /* incoming/.ID exists and is ours */
    struct header_state hdr;
    struct strbuf out;             /* content not yet written as records */
    unsigned long long content_in; /* bytes received */
    bool held_cr;                  /* the last chunk ended in CR (cleanup_message.c) */
    long long arrival_usec;
    int status;                    /* 0, or the SMTP code of the rejection */
    const char *reason;            /* text after the code */
    char *reason_buf;              /* owns reason when a check table wrote it */
    /* header and body checks (cleanup_checks.c) */
    bool inspect;                  /* checks still apply to this message */
    bool hold, discard;            /* HOLD: commit into hold/; DISCARD: do not commit */
    char *hold_reason;             /* "header_checks: TEXT" of a check's HOLD, for the quarantine */
    char *filter, *redirect;       /* FILTER transport:nexthop; REDIRECT address */
    bool rcpts_after_content;      /* R records are written after X (checks may change them) */
    char **bcc;                    /* BCC addresses, added as recipients */
    size_t nbcc;
    struct mime_state *mime;       /* the body's MIME structure, while inspected */
    /* address rewriting (cleanup_rewrite.c) */
    bool rewrite;                  /* canonical, virtual aliases... apply */
    char *received_for;            /* the recipient the client gave, for Received: */
};

void cleanup_state_init(struct cleanup_state *st);
void cleanup_state_free(struct cleanup_state *st);
/* Record a rejection; the first one wins. */
void cleanup_reject(struct cleanup_state *st, int code, const char *reason);

/* Content handling: header section, additions, body (cleanup_message.c). */
void cleanup_content(struct cleanup_state *st, const char *data, size_t len);
void cleanup_content_end(struct cleanup_state *st);

/* Header and body checks (cleanup_checks.c), header_checks(5). The tables
 * are opened once per process; a table that cannot be opened or looked up
 * makes every submission it would inspect fail with 451 4.3.0. */
void cleanup_checks_open(void);
/* Start on a submission: decides whether it is inspected (mail from smtpd
 * and local submissions are; notices and forwarded copies that Tern makes
 * itself are not). */
void cleanup_checks_begin(struct cleanup_state *st);
/* The primary header section is complete: inspect and rebuild it; our own
 * Received: header (complete lines) is inspected first, as Postfix sees
 * the one its smtpd wrote, and may be changed or emptied. */
void cleanup_checks_headers(struct cleanup_state *st, struct strbuf *received);
/* Whether body content goes through cleanup_checks_body. */
bool cleanup_checks_body_wanted(const struct cleanup_state *st);
/* Body bytes: inspected, and written (as the checks leave them) to st->out. */
void cleanup_checks_body(struct cleanup_state *st, const char *data, size_t len);
void cleanup_checks_end(struct cleanup_state *st);
void cleanup_checks_free(struct cleanup_state *st);

/* Address rewriting (cleanup_rewrite.c, lib/global/rewrite.h): tables
 * opened once per process (as root); the envelope is rewritten before its
 * records are written, the address headers once the header checks are done.
 * A lookup failure refuses the message with 451. */
void cleanup_rewrite_open(void);
void cleanup_rewrite_envelope(struct cleanup_state *st);
void cleanup_rewrite_headers(struct cleanup_state *st);

/* The queue file (cleanup_queue.c). Errors are kept in st->qf.error and
 * turned into a 451 rejection. */
int cleanup_queue_open(struct cleanup_state *st);
void cleanup_queue_flush(struct cleanup_state *st, bool all);
int cleanup_queue_commit(struct cleanup_state *st);
void cleanup_queue_abort(struct cleanup_state *st);
void cleanup_wake_qmgr(const char *queue_id);

#define CLEANUP_WRITE_ERROR "4.3.0 Error: queue file write error"

#endif
