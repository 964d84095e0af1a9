/* dovecot_auth.h: the client side of Dovecot's authentication protocol
 * (version 1.x, as spoken on Dovecot's auth-client socket), which smtpd
 * uses to check AUTH credentials: the lines a client sends, and a strict
 * parser of every line the server sends back. The server is a peer
 * program: its lines are untrusted input, parsed without trusting any
 * length or count in them.
 *
 *   client -> server:  VERSION\t1\t1  CPID\tPID
 *   server -> client:  VERSION\t1\tMINOR  MECH\tNAME[\tFLAG...]  SPID\t..
 *                      CUID\t..  COOKIE\t..  DONE
 *   client -> server:  AUTH\tID\tMECH\tservice=S\tnologin\tlip=A\trip=A
 *                      [\tsecured][\tresp=BASE64]
 *   server -> client:  OK\tID[\tuser=U...] | FAIL\tID[\treason=R][\ttemp]...
 *                      | CONT\tID\tBASE64
 *   client -> server:  CONT\tID\tBASE64
 */
#ifndef TERN_DOVECOT_AUTH_H
#define TERN_DOVECOT_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;

#define DOVECOT_LINE_MAX 16384     /* longest server line we accept */
#define DOVECOT_FIELD_MAX 1024     /* longest user name or reason we keep */

/* Mechanism properties from MECH lines. */
#define DOVECOT_MECH_ANONYMOUS      0x01
#define DOVECOT_MECH_PLAINTEXT      0x02
#define DOVECOT_MECH_DICTIONARY     0x04
#define DOVECOT_MECH_ACTIVE         0x08
#define DOVECOT_MECH_FORWARD_SECRECY 0x10
#define DOVECOT_MECH_MUTUAL_AUTH    0x20
#define DOVECOT_MECH_PRIVATE        0x40

enum dovecot_line_type {
    DOVECOT_VERSION, DOVECOT_MECH, DOVECOT_SPID, DOVECOT_CUID, DOVECOT_COOKIE, DOVECOT_DONE,
    DOVECOT_OK, DOVECOT_FAIL, DOVECOT_CONT,
    DOVECOT_OTHER,      /* a line of a type we do not use: ignored */
};

struct dovecot_line {
    enum dovecot_line_type type;
    unsigned long major, minor;  /* VERSION */
    const char *mech;            /* MECH: the mechanism name (upper case, [A-Z0-9_-]) */
    unsigned mech_flags;         /* MECH: DOVECOT_MECH_* */
    unsigned long id;            /* OK, FAIL, CONT: the request */
    const char *data;            /* CONT: the base64 challenge ("" allowed) */
    const char *user;            /* OK, FAIL: user=, NULL when absent */
    const char *reason;          /* FAIL: reason=, NULL when absent */
    bool temp;                   /* FAIL: temp (a temporary failure) */
};

/* Parse one server line, without its LF, in place: line[0..len) is
 * modified (tabs become NULs, escapes are undone) and out's strings point
 * into it. line[len] must be writable (it becomes the terminator). 0 ok,
 * -1 malformed (the connection cannot be trusted any more): a NUL byte,
 * a line over DOVECOT_LINE_MAX, a missing or non-numeric version or id,
 * a bad mechanism name, a user or reason over DOVECOT_FIELD_MAX or with a
 * bad escape, a CONT whose data is not base64 text. Control characters
 * in a user or reason become spaces. */
int dovecot_parse_line(char *line, size_t len, struct dovecot_line *out);

/* The client's handshake: "VERSION\t1\t1\nCPID\tpid\n". */
int dovecot_format_hello(struct strbuf *out, unsigned long pid);

/* An AUTH request line (with its LF). resp is the base64 initial response
 * or NULL. Every string must be free of tabs, LF and other controls:
 * -1 otherwise, or when out's limit is reached. */
int dovecot_format_auth(struct strbuf *out, unsigned long id, const char *mech,
                        const char *service, const char *local_ip, const char *remote_ip,
                        bool secured, const char *resp);
/* A continuation "CONT\tID\tBASE64\n". */
int dovecot_format_cont(struct strbuf *out, unsigned long id, const char *resp);

#endif
