/* fuzz_smtpd_action.c: libFuzzer target for what smtpd takes from lookup
 * tables and policy servers: the access(5) result parser and the policy
 * reply parser. Whatever they return must point inside the input and
 * describe it consistently.
 * sources: smtpd/smtpd_action.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "smtpd/smtpd_action.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size, 16384);
    if (!text)
        return 0;

    struct smtpd_access_action a;
    smtpd_access_action_parse(text, &a);
    size_t n = strlen(text);
    if (a.text < text || a.text + a.text_len > text + n)
        abort();
    if (a.kind == ACT_CODE && (a.code < 400 || a.code > 599))
        abort();
    if (strlen(a.dsn) > ACTION_DSN_MAX || (a.dsn[0] && !smtpd_dsn_prefix_len(a.dsn)))
        abort();
    if (a.kind == ACT_PREPEND && !smtpd_header_line_valid(a.text, a.text_len))
        abort();

    const char *action;
    size_t alen, used;
    int rc = smtpd_policy_reply_parse((const char *)data, size, 4096, &action, &alen, &used);
    if (rc == 1 && (used > size || action < (const char *)data
                    || action + alen > (const char *)data + used))
        abort();
    free(text);
    return 0;
}
