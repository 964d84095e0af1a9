/* milter.h: the MTA side of the milter protocol: the smtpd_milters and
 * non_smtpd_milters lists with Postfix's per-milter settings, a chain of
 * filter connections driven from a libevent loop (one connection per
 * filter per SMTP session, reused for each of its messages), and the
 * message that the filters' modification requests edit: headers in order
 * in memory, the body in a file (spooled in the queue directory's tmp/,
 * never held in memory), and the envelope changes they ask for. */
#ifndef TERN_MILTER_H
#define TERN_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "config.h"
#include "milter_proto.h"
#include "strbuf.h"

struct event_base;

/* ---- configuration ---- */

enum milter_action { MILTER_ACT_ACCEPT, MILTER_ACT_REJECT, MILTER_ACT_TEMPFAIL,
                     MILTER_ACT_QUARANTINE, MILTER_ACT_SHUTDOWN };

struct milter_spec {
    char *endpoint;                 /* as configured: inet:host:port or unix:path */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int protocol;                   /* version offered, 2..6 */
    enum milter_action default_action;
    long connect_timeout, command_timeout, content_timeout;
};

/* Macro list index: the milter stages, and the unknown command. */
#define MILTER_MACRO_UNKNOWN MILTER_STAGE_COUNT

struct milter_config {
    struct milter_spec *specs;
    size_t n;
    char **macros[MILTER_STAGE_COUNT + 1];   /* configured names per stage */
    size_t nmacros[MILTER_STAGE_COUNT + 1];
};

/* Read the milter list of parameter which (P_smtpd_milters or
 * P_non_smtpd_milters) and the shared milter_* settings. Relative unix:
 * paths are taken from the queue directory. -1 with err set on a bad
 * entry. */
int milter_config_load(struct milter_config *mc, enum param_id which, struct strbuf *err);
/* The same for a daemon: on a bad list, warn "NAME: PROBLEM; consequence"
 * (what the daemon does until the list is fixed) and return false. */
bool milter_config_load_or_warn(struct milter_config *mc, enum param_id which,
                                const char *consequence);
/* The same for a daemon that receives mail (smtpd, pickup): no milters at
 * all with receive_override_options = no_milters (mail that a content
 * filter sends back has been through them already). */
bool milter_config_load_receiver(struct milter_config *mc, enum param_id which,
                                 const char *consequence);
void milter_config_free(struct milter_config *mc);
int milter_action_parse(const char *s, enum milter_action *a);
const char *milter_action_name(enum milter_action a);

/* ---- the message that filters see and edit ---- */

struct milter_header {
    char *name;
    char *value;        /* everything after the colon, folds as "\n" + white space */
};

struct milter_env_edit {
    char cmd;           /* SMFIR_CHGFROM, SMFIR_ADDRCPT(_PAR), SMFIR_DELRCPT */
    char *addr;         /* without angle brackets */
    char *args;         /* ESMTP parameters, "" when none */
};

struct milter_msg {
    struct milter_header *hdrs;     /* in memory: bounded by the header limit */
    size_t nhdrs, caphdrs;
    bool blank_line;    /* an empty line separated header and body */
    int body_fd;        /* the file that holds the body (owned), -1 when empty */
    off_t body_off, body_len;       /* where in that file; lines end in "\n" */
    off_t body_limit;   /* largest body a filter may put in its place */
    struct milter_env_edit *env;
    size_t nenv, capenv;
    char *quarantine;   /* reason, when a filter asked for the hold queue */
};

/* The content (lines ending in "\n") is the first len bytes of file fd;
 * the message takes fd and closes it in milter_msg_free (also when this
 * fails). Only the header section is read into memory, at most
 * header_limit bytes of it: a header line that does not fit starts the
 * body, so the message still renders byte for byte as it came. 0, or -1
 * with errno when fd cannot be read. */
int milter_msg_parse(struct milter_msg *m, int fd, off_t len, size_t header_limit, off_t body_limit);
/* Up to n body bytes from offset off (pread semantics). */
ssize_t milter_msg_body_read(const struct milter_msg *m, off_t off, char *buf, size_t n);
/* The body is now the first len bytes of fd (the message takes fd; -1 and
 * 0 for an empty body). */
void milter_msg_set_body(struct milter_msg *m, int fd, off_t len);
/* The size of the edited message as it renders. */
off_t milter_msg_size(const struct milter_msg *m);
void milter_msg_free(struct milter_msg *m);

/* The edited message, a piece at a time: headers in their (edited) order,
 * the empty line, then the body read from its file. */
struct milter_render {
    size_t hdr, hoff;   /* header being rendered and the offset in its line */
    bool head_done;
    off_t body_pos;
};
#define MILTER_RENDER_INIT { 0, 0, false, 0 }
/* The next at most size bytes in buf; *len is 0 at the end. -1 when the
 * body cannot be read. */
int milter_msg_render_next(const struct milter_msg *m, struct milter_render *r, char *buf,
                           size_t size, size_t *len);
/* The whole message to out, in pieces of at most MILTER_RENDER_PIECE
 * bytes; -1 on a read error or when out returns -1. */
#define MILTER_RENDER_PIECE 65536
int milter_msg_render(const struct milter_msg *m, int (*out)(const char *data, size_t len, void *arg),
                      void *arg);

/* The edits of one filter, applied to m: 0, or -1 with *why. */
int milter_msg_add_header(struct milter_msg *m, const char *name, const char *value, bool leadspc);
int milter_msg_insert_header(struct milter_msg *m, size_t index, const char *name,
                             const char *value, bool leadspc);
int milter_msg_change_header(struct milter_msg *m, size_t index, const char *name,
                             const char *value, bool leadspc);

/* ---- the chain ---- */

enum milter_verdict {
    MILTER_CONTINUE,    /* go on (also: accepted, or a failure with default_action=accept) */
    MILTER_REJECT,      /* code/text hold the reply */
    MILTER_TEMPFAIL,
    MILTER_DISCARD,     /* accept and drop the message */
    MILTER_SHUTDOWN,    /* 421 and end the session */
};

struct milter_result {
    enum milter_verdict verdict;
    int code;
    char text[1024];    /* reply text without the code; lines joined by "\n" */
};

struct milter_chain;

struct milter_owner {
    void *ctx;
    /* Value of a macro ("{name}" or a single letter); NULL or "" when none. */
    const char *(*macro)(void *ctx, const char *name);
    /* The answer to the event in progress (called once per event, from the
     * event loop, never from inside the call that started the event). */
    void (*done)(void *ctx, const struct milter_result *r);
    /* Prefix of log lines: "host[addr]" or a queue ID. */
    const char *(*log_prefix)(void *ctx);
};

struct milter_chain *milter_chain_new(const struct milter_config *mc, struct event_base *base,
                                      const struct milter_owner *owner);
/* Close every filter connection (QUIT) and free the chain. */
void milter_chain_free(struct milter_chain *c);

/* Each event runs through the filters in configured order and ends in one
 * owner->done call. The first event connects and negotiates. */
void milter_connect_event(struct milter_chain *c, const char *host, const struct sockaddr *sa,
                          const char *addr, unsigned port);
void milter_helo_event(struct milter_chain *c, const char *helo);
void milter_mail_event(struct milter_chain *c, const char *sender, const char *const *args, size_t nargs);
void milter_rcpt_event(struct milter_chain *c, const char *rcpt, const char *const *args, size_t nargs);
void milter_data_event(struct milter_chain *c);
void milter_unknown_event(struct milter_chain *c, const char *line);
/* The content phase: headers, end of headers, body, end of message, each
 * filter in turn on the message as the filters before it left it. m is
 * edited in place; envelope edits and a quarantine are recorded in m. */
void milter_message_event(struct milter_chain *c, struct milter_msg *m);
/* The transaction ended before its end of message (RSET, rejection, ...). */
void milter_abort(struct milter_chain *c);
/* True while an event waits for a filter. */
bool milter_busy(const struct milter_chain *c);
/* Forget the owner's event in progress (the session is going away). */
void milter_cancel(struct milter_chain *c);

#endif
