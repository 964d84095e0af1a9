/* pipe.h: the pipe delivery agent's shared types: the command attributes
 * of its master.cf service (flags=, user=, size=, eol=, null_sender=,
 * directory=, argv=), the macros of argv, the message copy written to the
 * command, and the mapping of the command's exit status to a result. */
#ifndef TERN_PIPE_H
#define TERN_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "delivery_status.h"
#include "strbuf.h"

#define PIPE_OUTPUT_KEEP 4096         /* command output bytes kept */
#define PIPE_OUTPUT_REASON 200        /* of which at most this goes into a reason */
#define PIPE_ARG_MAX 65536            /* one expanded argument */
#define PIPE_ARGS_MAX 4096            /* arguments after expansion */
#define PIPE_RCPT_MAX 10000           /* recipients in one delivery request */
#define PIPE_HEADER_SCAN_MAX (1024 * 1024) /* header bytes read for loop detection */

/* flags= letters, as in Postfix's pipe(8) */
#define PIPE_FLAG_BLANK     (1 << 0)  /* B: a blank line after the message */
#define PIPE_FLAG_DELIVERED (1 << 1)  /* D: Delivered-To: (and loop detection) */
#define PIPE_FLAG_FROM      (1 << 2)  /* F: "From sender date" first */
#define PIPE_FLAG_ORIG      (1 << 3)  /* O: X-Original-To: */
#define PIPE_FLAG_RETURN    (1 << 4)  /* R: Return-Path: */
#define PIPE_FLAG_FINAL     (1 << 5)  /* X: final delivery (DSN "delivered", not "relayed") */
#define PIPE_FLAG_FOLD_HOST (1 << 6)  /* h: domains in lower case */
#define PIPE_FLAG_QUOTE     (1 << 7)  /* q: quote address local parts (RFC 822) */
#define PIPE_FLAG_FOLD_USER (1 << 8)  /* u: local parts in lower case */
#define PIPE_FLAG_DOT       (1 << 9)  /* .: "." before lines that start with "." */
#define PIPE_FLAG_QUOTE_FROM (1 << 10) /* >: ">" before lines that start with "From " */

/* The service's command attributes (pipe_attr.c). */
struct pipe_attr {
    unsigned flags;               /* PIPE_FLAG_* */
    char *user, *group;           /* user=user[:group]; group NULL: the user's */
    unsigned long long size_limit; /* size=, 0: none */
    char *eol;                    /* eol=, escapes decoded; "\n" by default */
    char *null_sender;            /* null_sender=, "MAILER-DAEMON" by default */
    char *directory;              /* directory=, NULL: queue_directory */
    char **argv;                  /* argv=: command and arguments, NULL-terminated */
    size_t argc;
};

/* Parse the attributes master.cf gives the service (the words after
 * "pipe"). 0 ok; -1 with the reason in err. */
int pipe_attr_parse(char **words, int nwords, struct pipe_attr *a, struct strbuf *err);
void pipe_attr_free(struct pipe_attr *a);
/* Decode eol='s backslash escapes (\n \r \t \a \b \f \v \\ \ddd); -1 when bad. */
int pipe_attr_unescape(const char *in, struct strbuf *out);

/* ---- argv macros (pipe_expand.c) ---- */

/* One recipient as the macros see it. */
struct pipe_rcpt {
    const char *address;          /* as qmgr sent it */
    const char *original;         /* before rewriting (= address when none) */
};

/* What the macros expand to for one request. */
struct pipe_macros {
    const char *sender;           /* "" for the null sender */
    const char *nexthop, *queue_id;
    /* The message's queue attribute of that name (client_addr, helo_name,
     * sasl_username, ...) or NULL; the client macros come from it. */
    const char *(*client_attr)(const char *name, const void *context);
    const void *context;
    unsigned long long size;
    const struct pipe_rcpt *rcpts;
    size_t nrcpt;
};

/* Check that argv uses only known macros with good syntax: 0 ok, -1 with
 * the reason in err. */
int pipe_expand_check(const struct pipe_attr *a, struct strbuf *err);
/* Expand the service's argv for a request: an argument with a recipient
 * macro (recipient, original_recipient, user, extension, mailbox, domain)
 * becomes one argument per recipient. 0 with *out (NULL-terminated, free
 * with pipe_expand_free); -1 with the reason in err. */
int pipe_expand_argv(const struct pipe_attr *a, const struct pipe_macros *m,
                     const char *recipient_delimiter, char ***out, struct strbuf *err);
void pipe_expand_free(char **argv);
/* An address with the h, q and u flags applied, for argv and headers. */
void pipe_expand_address(const char *address, unsigned flags, struct strbuf *out);

/* ---- the copy on the command's standard input (pipe_copy.c) ---- */

/* Incremental rewriting of the content: eol for every LF, "." and ">"
 * quoting at line starts, on chunks cut anywhere. */
struct pipe_copy {
    unsigned flags;
    const char *eol;
    bool at_line_start;
    char held[5];                 /* start of a line held until "From " is decided */
    size_t nheld;
    char last;                    /* last content byte, for B */
};
void pipe_copy_init(struct pipe_copy *c, unsigned flags, const char *eol);
/* The lines before the content: From_, Return-Path:, Delivered-To:,
 * X-Original-To: as the flags ask. sender is the replaced null sender. */
void pipe_copy_prefix(struct strbuf *out, unsigned flags, const char *eol, const char *sender,
                      const char *delivered_to, const char *original_to, long long now_sec);
int pipe_copy_feed(struct pipe_copy *c, const char *data, size_t len, struct strbuf *out);
/* The end: held bytes, a final eol when the content did not end in LF, B's line. */
int pipe_copy_finish(struct pipe_copy *c, struct strbuf *out);

/* ---- the command's outcome (pipe_status.c) ---- */
/* From the wait status, the time limit and the first line of output, as
 * Postfix: 0 sent; a leading X.Y.Z of 4 or 5 in the output decides; then
 * the sysexits.h code; a signal or the time limit defers; any other status
 * returns the mail. service names the transport in the success text. */
void pipe_status_map(int wstatus, bool timed_out, const char *output_line, const char *service,
                     const char *command, struct delivery_status *o);

/* ---- the agent (pipe.c, pipe_request.c) ---- */
struct pipe_settings {
    const char *service;
    struct pipe_attr attr;
    bool usable;                  /* attributes and user= are fine */
    char *refusal;                /* else why (logged, and mail is deferred) */
    uid_t uid;
    gid_t gid;
    char **envp;                  /* the commands' environment */
    int time_limit;
    char *recipient_delimiter;
    int ipc_timeout;
};
extern struct pipe_settings pipe_cfg;

void pipe_request_serve(int fd);

#endif
