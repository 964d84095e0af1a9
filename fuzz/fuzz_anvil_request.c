/* fuzz_anvil_request.c: libFuzzer target for the anvil service's decoders:
 * any byte string is offered as a request frame the way anvil reads one,
 * and as a reply frame the way smtpd's client reads one; what decodes must
 * encode again to the same bytes.
 * sources: lib/global/anvil_proto.c lib/util/attr.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "anvil_proto.h"
#include "attr.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssize_t frame = attr_frame_size(data, size, ANVIL_FRAME_LIMIT);
    if (frame <= 0)
        return 0;
    struct anvil_request req;
    struct anvil_reply rep;
    const char *why;
    struct strbuf again = STRBUF_INIT(ANVIL_FRAME_LIMIT + 4);
    if (anvil_decode_request(data, (size_t)frame, &req, &why) == 0) {
        if (anvil_encode_request(&again, &req) < 0)
            abort();
        fuzz_same_bytes(again.data, again.len, data, (size_t)frame);
    }
    sb_reset(&again);
    if (anvil_decode_reply(data, (size_t)frame, &rep) == 0) {
        if (anvil_encode_reply(&again, &rep) < 0 || rep.count < 0 || rep.rate < 0)
            abort();
    }
    sb_free(&again);
    return 0;
}
