/* maillog.h: reading Tern's own log back (maillog.c), for `tern report`
 * and anything else that summarizes what the mail system did: the log
 * files of an instance with their rotated copies (plain or gzip), one line
 * split into time, tag and text, and the text of the lines that matter
 * taken apart into the fields of the frozen grammar (doc/ARCHITECTURE.md;
 * tests/instance/golden/ holds one line of each kind):
 *
 *   connect from CLIENT
 *   disconnect from CLIENT ehlo=1 starttls=1 ... commands=N
 *   Anonymous TLS connection established from CLIENT: TLSv1.3 with ...
 *   Trusted TLS connection established to HOST: TLSv1.3 with ...
 *   ID: client=CLIENT[, sasl_method=M, sasl_username=U]
 *   ID: uid=N from=<SENDER>
 *   ID: from=<SENDER>, size=N, nrcpt=N (queue active)
 *   ID: to=<RCPT>, [orig_to=<ADDR>, ]relay=R, [conn_use=N, ]delay=D,
 *       delays=a/b/c/d, dsn=X.Y.Z, status=sent|deferred|bounced (TEXT)
 *   ID: to=<RCPT>, relay=none, dsn=X.Y.Z, status=expired, returned to sender
 *   ID: sender non-delivery notification: ID2
 *   ID: removed
 *   NOQUEUE: reject: RCPT from CLIENT: 550 5.1.1 TEXT; from=<S> to=<R> proto=P helo=<H>
 *   NOQUEUE: milter-reject: ..., ID: reject: header ... (cleanup), discard:, hold:
 *
 * Everything in a line may come from a hostile peer (addresses, replies,
 * host names): fields are pointers into the caller's copy of the line, cut
 * at the grammar's separators, never interpreted further. A line that
 * does not have the shape of its kind is reported as malformed. */
#ifndef TERN_MAILLOG_H
#define TERN_MAILLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define MAILLOG_LINE_MAX 8192        /* longer lines are cut (log.c writes < 4600) */
#define MAILLOG_FILES_MAX 64         /* rotated copies read of one log */

/* ---- the files ---- */

/* The log and its rotated copies, oldest first: FILE.N[.gz] (N down to 1)
 * and FILE-YYYYMMDD[.gz] (logrotate's dateext), then FILE itself. Returns
 * the number of names put in files (each malloc'd; free with
 * maillog_files_free); a FILE that does not exist is left out. */
size_t maillog_files(const char *file, char **files, size_t max);
void maillog_files_free(char **files, size_t n);

/* A log file opened for reading, plain or gzip-compressed (told by its
 * contents, not its name). */
struct maillog_reader;
/* NULL with a message in err when it cannot be opened. */
struct strbuf;
struct maillog_reader *maillog_open(const char *path, struct strbuf *err);
/* The same, reading only the last tail bytes of a plain file (from the
 * first whole line in them); a gzip file, or one no longer than tail, is
 * read from its start. */
struct maillog_reader *maillog_open_tail(const char *path, unsigned long long tail, struct strbuf *err);
/* The next line without its line end, NUL-terminated, in the reader's
 * buffer (valid until the next call; the caller may modify it); lines
 * longer than MAILLOG_LINE_MAX are cut there. 1 a line, 0 at the end, -1
 * read error (err). NUL bytes in a line are replaced by '?'. */
int maillog_next(struct maillog_reader *r, char **line, size_t *len, struct strbuf *err);
/* Bytes of the file read so far (of the compressed file for gzip), from
 * where reading began: for a progress bar against the file's size. */
unsigned long long maillog_offset(const struct maillog_reader *r);
void maillog_close(struct maillog_reader *r);

/* ---- one line ---- */

struct maillog_line {
    time_t time;                  /* when it was written */
    const char *host;
    const char *tag;              /* "tern/smtpd", "tern/submission/smtpd" */
    const char *program;          /* the last part of the tag: "smtpd" */
    const char *text;             /* after "]: " */
};

/* The year a "Dec  6 11:46:49" time stamp belongs to is the one that puts
 * it at most a day after now (logs are read after they are written). */
struct maillog_clock {
    time_t now;
    int month, mday, hour;        /* the last hour converted, and ... */
    time_t hour_start;            /* ... its start */
};
void maillog_clock_init(struct maillog_clock *c, time_t now);

/* Split line in place: 1 a line of syslog_name's programs (tag
 * "SYSLOG_NAME/..."), 0 a line of another program, -1 not a log line at
 * all. Time stamps may be syslog's "Mmm dd hh:mm:ss" (local time) or
 * RFC 3339 "YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm)". */
int maillog_split(char *line, const char *syslog_name, struct maillog_clock *clock,
                  struct maillog_line *out);

/* ---- the text of a line ---- */

enum maillog_kind {
    MAILLOG_OTHER,                /* a line no summary counts (warnings, ...) */
    MAILLOG_MALFORMED,            /* looks like a kind below, but is not */
    MAILLOG_CONNECT,              /* client */
    MAILLOG_DISCONNECT,           /* client, starttls (successful STARTTLS commands) */
    MAILLOG_TLS_IN,               /* client, tls_version */
    MAILLOG_TLS_OUT,              /* relay (the server), tls_version */
    MAILLOG_CLIENT,               /* id, client, sasl_username */
    MAILLOG_PICKUP,               /* id, addr (sender), uid */
    MAILLOG_FROM,                 /* id, addr (sender), size, nrcpt */
    MAILLOG_DELIVERY,             /* id, addr, orig_to, relay, delay, dsn, status, reason */
    MAILLOG_NOTIFICATION,         /* id, new_id, reason ("non-delivery", "delay", ...) */
    MAILLOG_REMOVED,              /* id */
    MAILLOG_REJECT,               /* id (or "NOQUEUE"), action, stage, client, reason, sender, rcpt */
    MAILLOG_DISCARD,              /* the same fields */
    MAILLOG_HOLD,                 /* the same fields (reason may be empty) */
};

struct maillog_event {
    enum maillog_kind kind;
    const char *id;               /* queue ID, "NOQUEUE", or NULL */
    const char *client;           /* "name[addr]" */
    const char *addr;             /* the envelope address of from= / to= */
    const char *orig_to;
    const char *relay;
    const char *dsn;
    const char *status;           /* sent, deferred, bounced, expired */
    const char *reason;           /* a delivery's text; a reject's reply */
    const char *action;           /* reject, milter-reject, discard, hold, ... */
    const char *stage;            /* RCPT, END-OF-MESSAGE, header, body, ... */
    const char *sender, *rcpt;    /* a reject's from=<> and to=<> */
    const char *sasl_username;
    const char *tls_version;
    const char *new_id;
    long long size;
    long nrcpt;
    long long delay_usec;         /* delay=, -1 when the line has none */
    unsigned starttls;
};

/* Take text (struct maillog_line's) apart, in place. */
void maillog_parse(char *text, struct maillog_event *ev);

/* "0.12", "1.5", "300" as microseconds; -1 when it is not a delay. */
long long maillog_parse_delay(const char *s);

#endif
