/* fuzz_anvil_request.c: libFuzzer target for the anvil service's decoders:
 * any byte string is offered as a request frame the way anvil reads one,
 * and as a reply frame the way smtpd's client reads one; what decodes must
 * encode again to the same bytes.
 * sources: lib/global/anvil_proto.c lib/util/attr.c */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "anvil_proto.h"
#include "attr.h"
#include "strbuf.h"

/* Any request that decodes is one anvil can act on. */
static bool request_ok(const struct anvil_request *req)
{
    (void)req;
    return true;
}

static bool reply_ok(const struct anvil_reply *rep)
{
    return rep->count >= 0 && rep->rate >= 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_FRAME_ROUND_TRIP(data, size, ANVIL_FRAME_LIMIT, anvil, request_ok, reply_ok);
    return 0;
}
