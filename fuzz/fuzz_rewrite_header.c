/* fuzz_rewrite_header.c: libFuzzer target for the address lists of message
 * headers as cleanup rewrites them (lib/global/rewrite_header.c and
 * rewrite.c): any header value a client sends. The tables are a small
 * in-memory stand-in for map_open/map_lookup (the real table code has its
 * own tests), so that the scanner and the rewriting are what is fuzzed.
 * Besides crashes and sanitizer reports: an unchanged value is reported
 * as unchanged, a changed one differs, and rewriting the result again
 * changes nothing (the tables' results are no keys), so the scanner finds
 * the same addresses in what it wrote.
 * sources: lib/global/rewrite.c lib/global/rewrite_header.c lib/global/resolve.c lib/global/domains.c lib/global/address.c lib/global/config.c lib/global/match_list.c lib/util/mac_expand.c lib/util/netlist.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz/fuzz_global.h"
#include "lib/global/maps.h"
#include "lib/global/resolve.h"
#include "lib/global/rewrite.h"
#include "lib/util/strbuf.h"

/* ---- the stand-in tables: every table answers from the same list ---- */

struct map {
    int unused;
};

static const char *const entries[][2] = {
    { "old@example.org", "new@example.net" },
    { "@legacy.example", "@example.net" },
    { "bob", "robert@example.net" },
    { "multi@example.org", "a@example.net, b@example.net" },
};

struct map *map_open(const char *spec, struct strbuf *err)
{
    (void)spec;
    (void)err;
    return calloc(1, sizeof(struct map));
}

int map_lookup(struct map *m, const char *key, struct strbuf *result)
{
    (void)m;
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++)
        if (strcasecmp(entries[i][0], key) == 0)
            return sb_set(result, entries[i][1]) < 0 ? -1 : 1;
    return 0;
}

void map_close(struct map *m)
{
    free(m);
}

const char *map_spec(const struct map *m)
{
    (void)m;
    return "fuzz:table";
}

const char *map_spec_inner(const char *spec)
{
    return spec;
}

static const char *const settings[][2] = {
    { "myhostname", "mx.example.com" }, { "mydestination", "$myhostname, localhost" },
    { "canonical_maps", "hash:canonical" }, { "masquerade_domains", "example.net" },
    { "recipient_delimiter", "+" },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    if (FUZZ_CONFIGURE_ONCE(settings)) {
        resolve_init();
        rewrite_init();
    }
    struct strbuf out = STRBUF_INIT(0), again = STRBUF_INIT(0);
    const char *value = (const char *)data;
    int rc = rewrite_header_value(value, size, REWRITE_HDR_RCPT, NULL, &out);
    if (rc < 0)
        abort();                     /* the tables never fail here */
    if (rc > 0) {
        if (out.len == size && memcmp(out.data, value, size) == 0)
            abort();
        if (rewrite_header_value(out.data, out.len, REWRITE_HDR_RCPT, NULL, &again) != 0)
            abort();
    }
    sb_free(&out);
    sb_free(&again);
    return 0;
}
