/* fuzz_sts_policy.c: libFuzzer target for the MTA-STS parsers (RFC
 * 8461): the TXT record, the policy file a remote HTTPS server sends, a
 * cache file's header and the mx pattern match. The first byte picks the
 * parser. Any crash, leak or sanitizer report is a bug, and so is a
 * parsed policy that breaks its own bounds.
 * sources: lib/global/sts_policy.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sts_policy.h"

static void check_policy(const struct sts_policy *p)
{
    if (p->nmx > STS_MX_MAX || p->max_age < 0 || p->max_age > STS_MAX_AGE_MAX
        || (p->mode != STS_NONE && p->nmx == 0))
        abort();
    for (size_t i = 0; i < p->nmx; i++)
        if (memchr(p->mx[i], 0, sizeof(p->mx[i])) == NULL || !p->mx[i][0])
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > STS_POLICY_SIZE_MAX + 1024)
        return 0;
    /* exactly size - 1 bytes, no terminator, for the parsers taking a length */
    char *raw = malloc(size);
    memcpy(raw, data + 1, size - 1);
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    struct strbuf why = STRBUF_INIT(1024);
    struct sts_policy p;
    switch (data[0] % 3) {
    case 0: {
        char id[STS_ID_MAX + 1];
        if (sts_txt_parse(text, id, &why) == 1 && (!id[0] || strlen(id) > STS_ID_MAX))
            abort();
        break;
    }
    case 1:
        if (sts_policy_parse(raw, size - 1, &p, &why) == 0) {
            check_policy(&p);
            (void)sts_mx_match(&p, "mx.example.com");
            (void)sts_mx_match(&p, "a.b");
            struct strbuf list = STRBUF_INIT(0);
            sts_mx_list(&p, &list);
            sb_free(&list);
        }
        break;
    default: {
        struct sts_cached c;
        if (sts_cache_parse(raw, size - 1, &c, &why) == 0) {
            if (c.policy < raw || c.policy + c.policy_len != raw + size - 1)
                abort();
            if (sts_policy_parse(c.policy, c.policy_len, &p, &why) == 0)
                check_policy(&p);
        }
        break;
    }
    }
    sb_free(&why);
    free(text);
    free(raw);
    return 0;
}
