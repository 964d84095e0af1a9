/* qmgr_dsn.h: delivery status notifications (RFC 3464) that qmgr sends back
 * to a message's sender: failures (bounces), delays and successes. */
#ifndef TERN_QMGR_DSN_H
#define TERN_QMGR_DSN_H

#include <stddef.h>
#include <sys/types.h>

struct strbuf;

struct dsn_rcpt {
    const char *address;
    const char *orcpt;       /* "rfc822;addr" or "" */
    const char *dsn;         /* X.Y.Z */
    const char *reason;      /* text from the delivery agent */
    const char *remote_mta;  /* host name, or NULL/"" for local delivery */
    const char *action;      /* per recipient ("delivered", "relayed"), NULL: the report's */
};

enum dsn_action { DSN_FAILED, DSN_DELAYED, DSN_DELIVERED };

struct dsn_report {
    enum dsn_action action;
    const char *queue_id;
    const char *sender;      /* the original envelope sender: the notice's recipient */
    long long arrival_usec;
    long long retry_until_usec;  /* delays: when the message expires (Will-Retry-Until), 0: none */
    const char *envid;       /* may be NULL */
    bool headers_only;       /* RET=HDRS, or the message is over bounce_size_limit */
    const struct dsn_rcpt *rcpts;
    size_t nrcpts;
};

/* Compose the whole notice (headers and multipart/report body, lines ending
 * in LF) into out, quoting the original from the queue file fd. 0 ok, -1
 * when the original cannot be read. */
int qmgr_dsn_compose(struct strbuf *out, const struct dsn_report *rep, int fd,
                     off_t content_offset);

/* The remote server's own reply inside an agent's reason
 * ("host x[1.2.3.4] said: 550 5.1.1 ... (in reply to RCPT TO command)"),
 * or the reason itself; written to buf. */
const char *qmgr_dsn_diagnostic(const char *reason, char *buf, size_t bufsz);

#endif
