/* proxy_proto.h: the wire protocol of the proxymap service (doc/PROTOCOLS.md),
 * which looks keys up in tables it opens once for every process of the
 * instance, as Postfix's proxymap(8) does; and the list of tables it may
 * open, proxy_read_maps. Encoded and decoded in one place for the client
 * table type proxy: (map_proxy.c), the daemon and `tern check`.
 *
 *   server -> client, once:  {protocol=proxymap}
 *   client -> server:        {request=lookup, table=TYPE:NAME, key=STR}
 *   server -> client:        {status=INT, value=STR}
 *
 * One reply per request, in request order; value is empty unless the
 * status is PROXY_STAT_OK. The key is sent as the caller gave it: the
 * server folds it to lower case where the table's type does. */
#ifndef TERN_PROXY_PROTO_H
#define TERN_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;

#define PROXY_PROTOCOL "proxymap"
#define PROXY_SERVICE "proxymap"       /* private/proxymap */
#define PROXY_TABLE_MAX 4096           /* bytes of TYPE:NAME */
#define PROXY_KEY_MAX 8192             /* bytes of a key */
#define PROXY_VALUE_MAX 65536          /* bytes of a value */
/* the largest request or reply frame: the fields and their framing */
#define PROXY_FRAME_LIMIT (PROXY_TABLE_MAX + PROXY_KEY_MAX + PROXY_VALUE_MAX + 512)

enum proxy_status {
    PROXY_STAT_OK = 0,      /* found: value holds the answer */
    PROXY_STAT_NOKEY = 1,   /* not found */
    PROXY_STAT_RETRY = 2,   /* the lookup failed, or the table could not be opened */
    PROXY_STAT_DENY = 3,    /* the table is not in proxy_read_maps */
    PROXY_STAT_BAD = 4,     /* malformed request; the server then closes */
    PROXY_STAT_COUNT
};

struct proxy_request {
    const char *table;      /* TYPE:NAME (decoded: points into the frame) */
    const char *key;
};

struct proxy_reply {
    int status;             /* enum proxy_status */
    const char *value;      /* decoded: points into the frame */
};

/* Whether table is a table name the protocol carries: TYPE:NAME, at most
 * PROXY_TABLE_MAX bytes, no control characters. */
bool proxy_table_ok(const char *table);

/* The status as a word for log lines ("found", "not allowed", ...). */
const char *proxy_status_name(int status);

/* Append one frame to out: 0, or -1 when a field is out of bounds or the
 * buffer's limit is reached (out is then as it was). */
int proxy_encode_request(struct strbuf *out, const struct proxy_request *req);
int proxy_encode_reply(struct strbuf *out, const struct proxy_reply *rep);

/* Decode one whole frame (header included): 0, or -1 for a missing, extra
 * or oversized attribute, an unknown request, a table name that is empty,
 * has no "type:" or holds a control character, an unknown status, a value
 * with a status that has none (a key or value may hold any byte but NUL:
 * the tables take any key, and answers are data). Strings
 * point into frame. why (may be NULL) says what is wrong, for log lines. */
int proxy_decode_request(const void *frame, size_t len, struct proxy_request *req,
                         const char **why);
int proxy_decode_reply(const void *frame, size_t len, struct proxy_reply *rep);

/* ---- proxy_read_maps (map_proxy.c) ---- */

/* The tables proxymap may open: every "proxy:TYPE:NAME" word of the value
 * of proxy_read_maps (once $name references are expanded) allows
 * TYPE:NAME; all other words are ignored, as Postfix does. */
struct proxy_allowed;
struct proxy_allowed *proxy_allowed_open(const char *value);
bool proxy_allowed_has(const struct proxy_allowed *a, const char *table);
size_t proxy_allowed_count(const struct proxy_allowed *a);
void proxy_allowed_free(struct proxy_allowed *a);

#endif
