/* verify_proto.h: the wire protocol of the verify service (verify/verify.c;
 * doc/PROTOCOLS.md), which keeps the address verification cache and sends
 * the probes, encoded and decoded here once for its clients (smtpd's
 * reject_unverified_*, qmgr's probe results, `tern verify`) and the server.
 *
 *   server -> client, once:  {protocol=verify}
 *   client -> server:        {request=query, address=A, probe=0|1}
 *   server -> client:        {status=S, reason=TEXT, updated=T, probed=T}
 *   client -> server:        {request=update, address=A, status=S, reason=TEXT}
 *   server -> client:        {status=0}
 *
 * Several requests may follow on one connection; answers come in request
 * order. The address statuses are Postfix's (deliverable, deferred,
 * undeliverable, unknown), so that the reply texts and the cache read the
 * same. */
#ifndef TERN_VERIFY_PROTO_H
#define TERN_VERIFY_PROTO_H

#include <stddef.h>

struct strbuf;

#define VERIFY_PROTOCOL "verify"
#define VERIFY_SOCKET "private/verify"   /* relative to queue_directory */
#define VERIFY_FRAME_LIMIT 4096          /* largest request or answer frame */
#define VERIFY_ADDR_MAX 1024             /* bytes of an address */
#define VERIFY_REASON_MAX 1024           /* bytes of a reason kept and sent */
#define VERIFY_REQ_QUERY "query"
#define VERIFY_REQ_UPDATE "update"
/* The attribute of a probe's queue file: `A verify_probe=ADDRESS`, the
 * address whose result the probe is for (before any rewriting). */
#define VERIFY_PROBE_ATTR "verify_probe"

enum verify_status {
    VERIFY_STAT_OK = 0,        /* deliverable */
    VERIFY_STAT_DEFER = 1,     /* the probe failed temporarily */
    VERIFY_STAT_BOUNCE = 2,    /* undeliverable */
    VERIFY_STAT_TODO = 3,      /* no result yet: a probe is (or is to be) under way */
};

/* "deliverable", "deferred", "undeliverable", "unknown". */
const char *verify_status_name(int status);
/* The address status of a delivery status (2, 4, 5). */
int verify_status_of_delivery(int status);

struct verify_answer {
    int status;                        /* enum verify_status */
    char reason[VERIFY_REASON_MAX];
    long long updated, probed;         /* seconds since the epoch, 0: never */
};

/* Blocking clients (`tern verify`, qmgr's results): one request on a new
 * connection to VERIFY_SOCKET, relative to the working directory (the
 * queue directory), within timeout seconds. 0 ok; -1 with why set. */
int verify_client_query(const char *address, int probe, struct verify_answer *ans, int timeout,
                        struct strbuf *why);
int verify_client_update(const char *address, int status, const char *reason, int timeout,
                         struct strbuf *why);

/* The frames, for clients that run in an event loop (smtpd). */
int verify_encode_query(struct strbuf *out, const char *address, int probe);
/* An answer frame: 0, or -1 when it is malformed. */
int verify_decode_answer(const void *frame, size_t len, struct verify_answer *ans);

#endif
