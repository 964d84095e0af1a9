/* sendmail.h: the parts of the sendmail command (also mailq and newaliases)
 * and what they share: the options, the recipient list, reading the message
 * from standard input, the hand-over to tern-drop, and the SMTP dialog of
 * -bs. sendmail runs with the invoking user's privileges only; everything
 * it decides is checked again by tern-drop and pickup. */
#ifndef TERN_SENDMAIL_H
#define TERN_SENDMAIL_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "maildrop.h"
#include "strbuf.h"

/* sysexits(3) values, as every sendmail exits with */
#define SM_EX_USAGE 64
#define SM_EX_DATAERR 65
#define SM_EX_UNAVAILABLE 69
#define SM_EX_SOFTWARE 70
#define SM_EX_TEMPFAIL 75
#define SM_EX_CONFIG 78

#define SM_PIECE 65536           /* content is read and handed on in pieces of about this */

struct sm_options {
    const char *confdir;         /* the configuration directory in use */
    const char *sender;          /* -f / -r; NULL: the login name (tern-drop sets it) */
    const char *full_name;       /* -F */
    char notify[MAILDROP_NOTIFY_MAX]; /* -N in canonical form, "" when not given */
    const char *ret;             /* -R: FULL or HDRS, NULL when not given */
    const char *envid;           /* -V */
    bool extract;                /* -t */
    bool ignore_dots;            /* -i, -oi */
    int verbose;                 /* -v */
    unsigned long long size_limit;   /* message_size_limit, 0: none */
    size_t header_limit;         /* header_size_limit */
};

/* Where the other programs are, from main.cf (sendmail.c). */
const char *sendmail_drop_program(void);

/* ---- recipients (sendmail_addr.c) ---- */
struct sm_rcpts {
    char **addr;
    char **notify;               /* per recipient, "" for none */
    size_t n, cap;
};
void sendmail_rcpts_free(struct sm_rcpts *r);
/* Add one address in external form, unless it is there already. 0 ok, -1
 * when there are too many or it is too long (*why says which). */
int sendmail_rcpts_add(struct sm_rcpts *r, const char *addr, const char *notify, const char **why);
/* Add every address of an RFC 5322 address list (a command-line argument
 * or a To:/Cc:/Bcc: value): display names, comments and groups are
 * dropped, each address is checked and kept in its external form (local
 * part quoted as needed, no <>); duplicates are added once. 0 ok, -1 with
 * *why saying what was wrong (a static string; *bad the address text when
 * that is known, at most 200 bytes). */
int sendmail_rcpts_add_list(struct sm_rcpts *r, const char *text, const char *notify,
                      const char **why, char bad[201]);

/* Split an address list into its addresses (pure; tested on its own):
 * calls fn with each address text as written, without display name,
 * comments, route or <>. 0 ok, -1 malformed (unbalanced quotes, <> or
 * comments, or an address over 1000 bytes). */
int sendmail_address_list(const char *text, size_t len,
                    int (*fn)(const char *addr, size_t len, void *ctx), void *ctx);

/* ---- reading the message (sendmail_input.c) ---- */
struct sm_input {
    FILE *fp;
    bool ignore_dots;            /* -i: a lone "." does not end the message */
    bool smtp;                   /* -bs DATA: "." ends it, leading dots unstuffed */
    bool first_line;             /* no line of the message was kept yet */
    bool at_bol;                 /* the next byte begins a line */
    bool ended;                  /* the end of the message was seen */
    bool dot_seen;               /* ... and it was a "." line, not the end of the input */
    unsigned long long size, limit;  /* content bytes so far, message_size_limit (0: none) */
};
void sendmail_input_init(struct sm_input *in, FILE *fp, bool ignore_dots, bool smtp,
                   unsigned long long limit);
/* Append the next piece of content to out: whole lines ending in LF (CR LF
 * becomes LF; a last line without LF gets one), or a part of a line longer
 * than SM_PIECE. 1 data appended, 0 end of message, -1 over the limit
 * (the rest of the message is still consumed in smtp mode). */
int sendmail_input_read(struct sm_input *in, struct strbuf *out);

/* -t: read the header section, add the recipients of To:, Cc: and Bcc:
 * (Resent-To:, Resent-Cc:, Resent-Bcc: when there are any) and remove the
 * Bcc: (Resent-Bcc:) fields; head gets the content to submit so far (the
 * header section and any body bytes already read). 0 ok, otherwise the
 * exit status after an error message. */
int sendmail_extract_recipients(struct sm_input *in, const struct sm_options *o,
                          struct sm_rcpts *rcpts, struct strbuf *head);

/* ---- the hand-over to tern-drop (sendmail_submit.c) ---- */
struct sm_drop {
    pid_t pid;
    int to_drop, from_drop;      /* its stdin and stdout */
    bool failed;                 /* a write failed: tern-drop went away */
};
/* Start tern-drop and send the envelope. sender NULL: the login name.
 * 0 ok, -1 (message printed). */
int sendmail_drop_start(struct sm_drop *d, const struct sm_options *o, const char *sender,
                  const char *ret, const char *envid, const struct sm_rcpts *rcpts);
/* Content, any amount. */
void sendmail_drop_content(struct sm_drop *d, const char *data, size_t len);
/* The end of the content: tern-drop commits. 0 with the maildrop file's
 * name in id, else tern-drop's exit status (it said why on stderr). */
int sendmail_drop_finish(struct sm_drop *d, char id[QUEUE_ID_SIZE]);
/* Give up: tern-drop sees no end of content and keeps nothing. */
void sendmail_drop_abort(struct sm_drop *d);

/* ---- -bs (sendmail_smtp.c) ---- */
/* An SMTP dialog on stdin/stdout whose messages go through tern-drop like
 * any other; the exit status. */
int sendmail_smtp_session(const struct sm_options *o);

#endif
