/* anvil_client.h: the asynchronous client of the anvil service for
 * event-driven daemons (smtpd). Requests go over one UNIX connection per
 * process, pipelined; answers come back through callbacks in request order.
 * When anvil cannot be reached, does not answer within a short time, or
 * answers nonsense, every waiting request is answered "no answer" at once,
 * new requests are refused for a few seconds, and a warning is logged at
 * most once a minute: the caller then goes on without the limit, so that a
 * missing anvil never stalls or refuses mail. */
#ifndef TERN_ANVIL_CLIENT_H
#define TERN_ANVIL_CLIENT_H

#include "anvil_proto.h"

struct event_base;
struct anvil_client;
struct anvil_pending;

#define ANVIL_CLIENT_TIMEOUT_MS 2000     /* longest wait for an answer */

/* rep is NULL when no answer will come (anvil unreachable or failed). */
typedef void (*anvil_reply_fn)(void *ctx, const struct anvil_reply *rep);

/* path: the service's socket (e.g. "private/anvil" relative to the queue
 * directory). Nothing is connected until the first request. */
struct anvil_client *anvil_client_create(struct event_base *base, const char *path);
void anvil_client_free(struct anvil_client *c);

/* Send a request. Returns a handle when it was sent: fn (may be NULL: no
 * interest in the answer) is then called exactly once, later, never from
 * inside this call, unless the handle is cancelled first; the handle is
 * invalid once fn has been called. Returns NULL when anvil cannot be asked
 * now: go on without it. */
struct anvil_pending *anvil_client_ask(struct anvil_client *c, enum anvil_request_type type,
                                       const char *service, const char *addr,
                                       anvil_reply_fn fn, void *ctx);
/* The callback of a sent request will not be called. */
void anvil_pending_cancel(struct anvil_pending *p);

/* Identifies the current connection to anvil (0: none). anvil forgets what
 * a connection counted when that connection closes, so a "disconnect" is
 * sent only on the connection whose "connect" was answered. */
unsigned anvil_client_connection(const struct anvil_client *c);

#endif
