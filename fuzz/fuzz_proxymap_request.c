/* fuzz_proxymap_request.c: libFuzzer target for the proxymap service's
 * decoders: any byte string is offered as a request frame the way proxymap
 * reads one from a process of the tern uid, and as a reply frame the way a
 * proxy: table's client reads one; what decodes must be within the limits
 * and encode again to the same bytes.
 * sources: lib/global/proxy_proto.c lib/util/attr.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "attr.h"
#include "proxy_proto.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssize_t frame = attr_frame_size(data, size, PROXY_FRAME_LIMIT);
    if (frame <= 0)
        return 0;
    struct proxy_request req;
    struct proxy_reply rep;
    const char *why;
    struct strbuf again = STRBUF_INIT(PROXY_FRAME_LIMIT + 4);
    if (proxy_decode_request(data, (size_t)frame, &req, &why) == 0) {
        if (!proxy_table_ok(req.table) || strlen(req.key) > PROXY_KEY_MAX
            || proxy_encode_request(&again, &req) < 0)
            abort();
        fuzz_same_bytes(again.data, again.len, data, (size_t)frame);
    }
    sb_reset(&again);
    if (proxy_decode_reply(data, (size_t)frame, &rep) == 0) {
        if (rep.status < 0 || rep.status >= PROXY_STAT_COUNT || strlen(rep.value) > PROXY_VALUE_MAX
            || (rep.status != PROXY_STAT_OK && *rep.value) || proxy_encode_reply(&again, &rep) < 0)
            abort();
    }
    sb_free(&again);
    return 0;
}
