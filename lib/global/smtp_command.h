/* smtp_command.h: pure parsing of SMTP command lines, shared by smtpd and
 * sendmail -bs: the verb split, MAIL FROM / RCPT TO with their ESMTP
 * parameters (SIZE, BODY, RET, ENVID, SMTPUTF8, REQUIRETLS, AUTH, NOTIFY, ORCPT), xtext
 * decoding, HELO and BDAT arguments. No I/O and no session state, so every function is unit-tested
 * with hostile input. On a syntax error the functions return -1 and fill a
 * struct smtp_parse_error with the reply Postfix would give. */
#ifndef TERN_SMTP_COMMAND_H
#define TERN_SMTP_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#include "address.h"

enum smtp_verb {
    SMTP_VERB_NONE = 0,   /* not a command (used for session events) */
    SMTP_HELO, SMTP_EHLO, SMTP_STARTTLS, SMTP_AUTH, SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_BDAT,
    SMTP_RSET, SMTP_NOOP, SMTP_VRFY, SMTP_EXPN, SMTP_HELP, SMTP_ETRN,
    SMTP_TURN, SMTP_QUIT, SMTP_UNKNOWN,
    SMTP_VERB_COUNT
};

/* Lower-case name for the disconnect statistics ("ehlo", "unknown"). */
const char *smtp_verb_stat_name(enum smtp_verb v);
/* Upper-case name for "... after VERB from ..." log lines. */
const char *smtp_verb_name(enum smtp_verb v);

/* Split line[0..len) (no CRLF) into a verb and its argument: *arg points
 * into line after the white space following the verb ("" when none). The
 * line must be NUL-terminated at len. Returns SMTP_UNKNOWN for anything
 * that is not one of the verbs above. */
enum smtp_verb smtp_parse_verb(const char *line, size_t len, const char **arg);

/* The reply for a syntax error: "CODE TEXT" with TEXT beginning with the
 * enhanced status code. */
struct smtp_parse_error {
    int code;
    char text[200];
};

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };
enum smtp_ret { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS };

#define SMTP_NOTIFY_NEVER   0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY   0x8

#define SMTP_ENVID_MAX 100   /* RFC 3461: at most 100 characters */
#define SMTP_ORCPT_MAX 500   /* addr-type ";" address, decoded */
#define SMTP_AUTH_MAX 500

/* What the server offers, which decides what the parsers accept. */
struct smtp_parse_opts {
    long long size_limit;   /* message_size_limit; 0 = none */
    bool smtputf8_enable;
    bool strict_rfc821;     /* strict_rfc821_envelopes: the address in <> */
    /* REQUIRETLS (RFC 8689): known to the server (requiretls_enable), and
     * allowed now (the session is encrypted). Known but not allowed is
     * refused with 530 5.7.10; unknown is an unsupported option. */
    bool requiretls_known;
    bool requiretls_allowed;
};

struct smtp_mail_args {
    struct address sender;
    long long size;          /* declared SIZE=, -1 when not given */
    enum smtp_body body;
    enum smtp_ret ret;
    char *envid;             /* decoded ENVID, NULL when not given */
    char *auth;              /* decoded AUTH= value ("<>" kept), NULL when not given */
    bool smtputf8;
    bool requiretls;         /* REQUIRETLS (RFC 8689): TLS on every onward hop */
};

struct smtp_rcpt_args {
    struct address rcpt;
    unsigned notify;         /* SMTP_NOTIFY_* bits, 0 when not given */
    char *orcpt;             /* "addr-type;decoded-address", NULL when not given */
};

/* arg is the text after "MAIL " ("FROM:<a@b> SIZE=10"). 0 ok, -1 error. */
int smtp_parse_mail(const char *arg, const struct smtp_parse_opts *opts,
                    struct smtp_mail_args *out, struct smtp_parse_error *err);
void smtp_mail_args_free(struct smtp_mail_args *m);

/* arg is the text after "RCPT ". smtputf8: MAIL carried SMTPUTF8. */
int smtp_parse_rcpt(const char *arg, const struct smtp_parse_opts *opts, bool smtputf8,
                    struct smtp_rcpt_args *out, struct smtp_parse_error *err);
void smtp_rcpt_args_free(struct smtp_rcpt_args *r);

/* NOTIFY bits as the queue file wants them: "NEVER" or "SUCCESS,FAILURE,DELAY"
 * subsets, "" for none. buf of at least 32 bytes. */
const char *smtp_notify_string(unsigned notify, char *buf, size_t bufsz);

/* RFC 3461 xtext of s appended to out: -1 when s has bytes over 126 (the
 * values these parameters carry must be ASCII) or out's limit is reached;
 * out is then unchanged. */
struct strbuf;
int xtext_append(struct strbuf *out, const char *s);

/* Decode RFC 3461 xtext in[0..n) into a new string. Returns NULL when it is
 * malformed ('+' not followed by two hex digits, bytes outside 33..126 except
 * as allowed by utf8), decodes to a control character or NUL, or when the
 * decoded text would exceed max bytes. */
char *xtext_decode(const char *in, size_t n, size_t max, bool utf8);

/* HELO/EHLO argument: exactly one word of printable characters (UTF-8
 * allowed), at most 255 bytes. Returns a new string or NULL. */
char *smtp_parse_helo(const char *arg);

/* BDAT "count [LAST]". Returns 0 ok; -1 when count itself is not a number
 * (the chunk cannot be skipped: the session cannot continue); -2 when count
 * parsed but the rest is malformed (skip count bytes, then reply 501). */
int smtp_parse_bdat(const char *arg, long long *count, bool *last);

/* Does s[0..n) contain a NUL byte, or 8-bit bytes that are not UTF-8? */
bool smtp_line_has_nul(const char *s, size_t n);
bool smtp_line_bad_utf8(const char *s, size_t n);

#endif
