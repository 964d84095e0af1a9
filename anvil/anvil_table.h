/* anvil_table.h: anvil's memory: one entry per (service, client address)
 * with the client's connections now and its event rates in the current time
 * unit, the links that remember which anvil client (smtpd process) holds
 * which connections, and the peak values for the periodic statistics.
 *
 * Memory is bounded: at most `limit` entries (anvil_client_table_limit);
 * when a new client arrives at the limit, the least recently seen entry is
 * forgotten, connections and rates included (that client's limits start
 * again from zero: lenient, never a refusal). An entry takes about 150
 * bytes plus its key (at most ANVIL_SERVICE_MAX + ANVIL_ADDR_MAX + 2), the
 * hash index one pointer per entry of the limit: at the default limit of
 * 100000 entries about 35 MB in the worst case (about 20 MB for IPv4
 * clients). On top of that, one link of about 72 bytes per client
 * connection open at the time, at most ANVIL_PEER_LINK_LIMIT per anvil
 * client (smtpd process).
 */
#ifndef TERN_ANVIL_TABLE_H
#define TERN_ANVIL_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "anvil_proto.h"

#define ANVIL_PEER_LINK_LIMIT 100000    /* clients one anvil client may hold connected */

struct anvil_table;
struct anvil_peer;

/* limit: most entries (>= 1); time_unit: seconds (>= 1). */
struct anvil_table *anvil_table_create(size_t limit, long time_unit);
void anvil_table_free(struct anvil_table *t);

/* A connected anvil client. Closing it takes back the connections it
 * counted and did not report as ended (its smtpd process died). */
struct anvil_peer *anvil_peer_create(struct anvil_table *t);
void anvil_peer_close(struct anvil_table *t, struct anvil_peer *p);

/* Apply one request made at time now and fill in the reply. */
void anvil_table_request(struct anvil_table *t, struct anvil_peer *p,
                         const struct anvil_request *req, time_t now, struct anvil_reply *rep);

/* Forget clients without connections whose time unit has ended. */
void anvil_table_expire(struct anvil_table *t, time_t now);
size_t anvil_table_size(const struct anvil_table *t);
/* Entries forgotten to stay within the limit, since the start. */
unsigned long anvil_table_evictions(const struct anvil_table *t);

/* Log the peaks since the last call ("statistics: max connection rate
 * 12/60s for (smtp:192.0.2.1) at Mar  3 10:11:12"), then start over. */
void anvil_table_log_stats(struct anvil_table *t);

/* The highest connection count (rate: connection rate) of one client
 * since the statistics were last logged. */
long anvil_table_peak(const struct anvil_table *t, bool rate);

#endif
