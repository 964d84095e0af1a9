/* fuzz_mac_expand.c: libFuzzer target for the $name expander
 * (lib/util/mac_expand.c) on templates as main.cf, forward_path and DNS
 * blocklist reply maps give them. The first byte picks the mode (filter,
 * recursive values) and the bounds; the rest is the template. Besides
 * crashes, leaks and sanitizer reports, the output never passes its bound,
 * a filtered value never brings a '/', and a template without '$' comes
 * out as it went in.
 * sources: lib/util/mac_expand.c */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mac_expand.h"

/* Values that are themselves templates, loops included, for recursive mode. */
static const struct mac_var vars[] = {
    { "a", "alpha" }, { "e", "" }, { "d", "$$x" }, { "r", "[$a${e:E}]" }, { "l", "$l" },
    { "m", "${a?$m}" }, { "u", "../x/y" }, { "n", "${nosuch:$r$r$r}" }, { "b", "$r$n$r$n" },
    { NULL, NULL },
};

/* Like local's: '/' and other unsafe characters become '_'. */
static int filter(struct strbuf *out, const char *name, size_t len, const char *value, void *context)
{
    (void)name;
    (void)len;
    (void)context;
    for (; *value; value++)
        if (sb_appendc(out, *value == '/' ? '_' : *value) < 0)
            return -1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    unsigned mode = data[0];
    char *tmpl = malloc(size);
    if (!tmpl)
        return 0;
    memcpy(tmpl, data + 1, size - 1);
    tmpl[size - 1] = 0;           /* a NUL inside ends the template early, as in C strings */
    size_t limit = 16 + (mode >> 4) * 64;
    bool recurse = mode & 1, filtered = !recurse && (mode & 2);
    const struct mac_expand_spec spec = {
        .lookup = mac_var_table_lookup, .filter = filtered ? filter : NULL, .context = (void *)vars,
        .flags = recurse ? MAC_EXP_RECURSE : 0, .depth_max = (int)((mode >> 2) & 3) * 8,
    };
    struct strbuf out = STRBUF_INIT(limit);
    int status = mac_expand(&out, tmpl, &spec);
    if (status & ~(MAC_EXP_UNDEF | MAC_EXP_ERROR))
        abort();
    if (out.len > limit || strlen(sb_str(&out)) != out.len)
        abort();
    if (!strchr(tmpl, '$') && strlen(tmpl) <= limit
        && (status != MAC_EXP_OK || strcmp(sb_str(&out), tmpl) != 0))
        abort();
    if (filtered && status == MAC_EXP_OK && !strchr(tmpl, '/') && strchr(sb_str(&out), '/'))
        abort();
    sb_free(&out);
    free(tmpl);
    return 0;
}
