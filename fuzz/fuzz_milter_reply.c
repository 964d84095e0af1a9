/* fuzz_milter_reply.c: libFuzzer target for the milter reply decoders: any
 * byte string is read as a stream of filter packets the way the MTA side
 * reads one; each packet is decoded as a reply and as an option negotiation,
 * and reply code texts are parsed as a session would use them.
 * sources: lib/milter/milter_proto.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter_proto.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct strbuf text = STRBUF_INIT(65536);
    for (int n = 0; n < 64 && size > 0; n++) {
        ssize_t pkt = milter_packet_size(data, size, 65536);
        if (pkt <= 0)
            break;
        const unsigned char *p = data + 4;
        size_t len = (size_t)pkt - 4;
        struct milter_reply r;
        struct milter_optneg o;
        const char *why = NULL;
        if (milter_reply_decode(p, len, &r, &why) == 0) {
            if (r.cmd == SMFIR_REPLYCODE) {
                int code;
                if (milter_replycode_parse(r.text, &code, &text) == 0
                    && (code < 400 || code > 599))
                    abort();
            }
            if (r.name && (!milter_header_name_ok(r.name) || !milter_header_value_ok(r.value)))
                abort();
            if (r.body && r.body + r.body_len != p + len)
                abort();
        } else if (!why) {
            abort();
        }
        if (p[0] == SMFIC_OPTNEG && milter_optneg_decode(p + 1, len - 1, &o, &why) == 0) {
            for (int i = 0; i < MILTER_STAGE_COUNT; i++)
                if (o.macros[i] && strlen(o.macros[i]) > MILTER_MACRO_LIST_MAX)
                    abort();
        }
        data += pkt;
        size -= (size_t)pkt;
    }
    sb_free(&text);
    return 0;
}
