/* fuzz_proxymap_request.c: libFuzzer target for the proxymap service's
 * decoders: any byte string is offered as a request frame the way proxymap
 * reads one from a process of the tern uid, and as a reply frame the way a
 * proxy: table's client reads one; what decodes must be within the limits
 * and encode again to the same bytes.
 * sources: lib/global/proxy_proto.c lib/util/attr.c */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "attr.h"
#include "proxy_proto.h"
#include "strbuf.h"

/* What proxymap trusts of a request: a table name it could have allowed
 * and a key within the bound. */
static bool request_ok(const struct proxy_request *req)
{
    return proxy_table_ok(req->table) && strlen(req->key) <= PROXY_KEY_MAX;
}

/* A status it knows; a value within the bound, and only with an answer. */
static bool reply_ok(const struct proxy_reply *rep)
{
    return rep->status >= 0 && rep->status < PROXY_STAT_COUNT && strlen(rep->value) <= PROXY_VALUE_MAX
           && (rep->status == PROXY_STAT_OK || !*rep->value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_FRAME_ROUND_TRIP(data, size, PROXY_FRAME_LIMIT, proxy, request_ok, reply_ok);
    return 0;
}
