/* anvil_proto.h: the wire protocol of the anvil service (doc/PROTOCOLS.md),
 * which counts connections and events per remote client for all smtpd
 * processes together: the request and reply frames, encoded and decoded in
 * one place for the client library and the server.
 *
 *   server -> client, once:  {protocol=anvil}
 *   client -> server:        {request=NAME, service=STR, addr=STR}
 *   server -> client:        {status=INT, count=INT, rate=INT}
 *
 * Replies come in request order, one per request. */
#ifndef TERN_ANVIL_PROTO_H
#define TERN_ANVIL_PROTO_H

#include <stddef.h>

struct strbuf;

#define ANVIL_PROTOCOL "anvil"
#define ANVIL_SERVICE "anvil"          /* private/anvil */
#define ANVIL_FRAME_LIMIT 1024         /* largest request or reply frame */
#define ANVIL_SERVICE_MAX 100          /* bytes of a service name */
#define ANVIL_ADDR_MAX 64              /* bytes of a client address */

/* The requests, each once: its enum value and its name on the wire. */
#define ANVIL_REQUESTS(X)                                                                 \
    X(ANVIL_REQ_CONNECT, "connect")      /* a client connected: count + 1, its rate + 1 */ \
    X(ANVIL_REQ_DISCONNECT, "disconnect") /* it went away: count - 1 */                   \
    X(ANVIL_REQ_MESSAGE, "message")      /* MAIL FROM: message rate + 1 */                \
    X(ANVIL_REQ_RECIPIENT, "recipient")  /* RCPT TO: recipient rate + 1 */                \
    X(ANVIL_REQ_NEWTLS, "newtls")        /* a new (not resumed) TLS session: rate + 1 */  \
    X(ANVIL_REQ_NEWTLS_STATUS, "newtls_status") /* the new TLS session rate, unchanged */ \
    X(ANVIL_REQ_AUTH, "auth")            /* AUTH: AUTH rate + 1 */

enum anvil_request_type {
#define ANVIL_REQUEST_ENUM(id, name) id,
    ANVIL_REQUESTS(ANVIL_REQUEST_ENUM)
#undef ANVIL_REQUEST_ENUM
    ANVIL_REQ_COUNT
};

enum { ANVIL_STAT_OK = 0, ANVIL_STAT_FAIL = 1 };

struct anvil_request {
    enum anvil_request_type type;
    const char *service;   /* decoded: points into the frame */
    const char *addr;
};

struct anvil_reply {
    int status;            /* ANVIL_STAT_OK or ANVIL_STAT_FAIL */
    long count;            /* connections from the client to the service now */
    long rate;             /* events of the request's kind in the current time unit */
};

const char *anvil_request_name(enum anvil_request_type type);

/* Append one frame to out; 0 ok, -1 when a value is out of bounds or the
 * buffer's limit is reached. */
int anvil_encode_request(struct strbuf *out, const struct anvil_request *req);
int anvil_encode_reply(struct strbuf *out, const struct anvil_reply *rep);

/* Decode one whole frame (header included). 0 ok, -1 malformed: wrong or
 * missing attribute, unknown request, a service or address that is empty,
 * too long or holds anything but printable non-space ASCII, extra data.
 * The request's strings point into frame. why (may be NULL) says what is
 * wrong, for log lines. */
int anvil_decode_request(const void *frame, size_t len, struct anvil_request *req,
                         const char **why);
int anvil_decode_reply(const void *frame, size_t len, struct anvil_reply *rep);

#endif
