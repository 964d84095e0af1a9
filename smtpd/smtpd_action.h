/* smtpd_action.h: pure parsers for what a lookup table or a policy server
 * tells smtpd to do: access(5) results ("OK", "REJECT text", "450 4.7.1
 * text", "DISCARD", "HOLD", "FILTER smtp:[host]:port", "PREPEND Name:
 * value", a restriction list ...) and the replies of Postfix's policy
 * delegation protocol ("action=..." lines ending with an empty line). No
 * I/O and no session state: fuzzed and unit-tested with hostile input. */
#ifndef TERN_SMTPD_ACTION_H
#define TERN_SMTPD_ACTION_H

#include <stdbool.h>
#include <stddef.h>

enum smtpd_access_kind {
    ACT_OK,              /* OK, PERMIT, or an all-numerical result */
    ACT_DUNNO,
    ACT_REJECT,          /* REJECT [text] */
    ACT_DEFER,           /* DEFER [text] */
    ACT_DEFER_IF_PERMIT, /* DEFER_IF_PERMIT [text] */
    ACT_DEFER_IF_REJECT, /* DEFER_IF_REJECT [text] */
    ACT_CODE,            /* 4NN text / 5NN text */
    ACT_DISCARD,         /* DISCARD [text] */
    ACT_HOLD,            /* HOLD [text] */
    ACT_FILTER,          /* FILTER transport:destination */
    ACT_PREPEND,         /* PREPEND Header-Name: value */
    ACT_WARN,            /* WARN [text] */
    ACT_INFO,            /* INFO [text] */
    ACT_REDIRECT,        /* REDIRECT user@domain (recognized, not supported) */
    ACT_BCC,             /* BCC user@domain (recognized, not supported) */
    ACT_RESTRICTIONS,    /* anything else: a restriction list to evaluate */
    ACT_INVALID,         /* an action word with a malformed argument */
};

#define ACTION_DSN_MAX 15

struct smtpd_access_action {
    enum smtpd_access_kind kind;
    int code;                         /* ACT_CODE: 400..599 */
    char dsn[ACTION_DSN_MAX + 1];     /* enhanced status code given, "" if none */
    const char *text;                 /* the rest, pointing into the value (its end if none) */
    size_t text_len;                  /* without trailing white space */
};

/* Classify value (a table result or a policy action). Never fails: an
 * unknown word is ACT_RESTRICTIONS, a bad argument ACT_INVALID. */
void smtpd_access_action_parse(const char *value, struct smtpd_access_action *a);

/* An RFC 3463 status code "C.S.D" at the start of text (C 2, 4 or 5,
 * S at most 3 digits, D at most 3 digits) followed by white space or the
 * end: its length, else 0. */
size_t smtpd_dsn_prefix_len(const char *text);

/* A header line for PREPEND: "Name: value", printable ASCII, the name
 * made of characters 33..126 except ':'. */
bool smtpd_header_line_valid(const char *text, size_t len);

/* The reply of a policy server in buf[0..len): name=value lines, then an
 * empty line. 1 complete (*action, *action_len: the value of "action",
 * pointing into buf; *used: bytes the reply took), 0 incomplete, -1
 * malformed (no action, a line without '=', a NUL, or more than max bytes). */
int smtpd_policy_reply_parse(const char *buf, size_t len, size_t max, const char **action,
                             size_t *action_len, size_t *used);

#endif
