/* fuzz_local_alias.c: libFuzzer target for local(8)'s parser of destination
 * lists: any byte string is split as an alias value and as a .forward or
 * :include: file (comment lines allowed), as local does with text that a
 * user or a map supplies. Every destination it returns must be within the
 * bounds local relies on.
 * sources: local/local_expand.c lib/global/address.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "local/local.h"
#include "strbuf.h"

static void check(const struct dest_list *l)
{
    if (l->n > LOCAL_DEST_MAX)
        __builtin_trap();
    for (size_t i = 0; i < l->n; i++) {
        const struct local_dest *d = &l->items[i];
        size_t n = d->value ? strlen(d->value) : 0;
        if (!d->value || n > LOCAL_ITEM_MAX
            || (d->kind == DEST_FILE && d->value[0] != '/')
            || (d->kind == DEST_INCLUDE && d->value[0] != '/')
            || (d->kind == DEST_COMMAND && n == 0))
            __builtin_trap();
        for (size_t j = 0; j < n; j++)
            if ((unsigned char)d->value[j] < 0x20 && d->value[j] != '\t')
                __builtin_trap();   /* controls never reach a command or a path */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes: no terminating NUL to lean on */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    for (int flags = 0; flags <= LOCAL_PARSE_FILE; flags += LOCAL_PARSE_FILE) {
        struct dest_list l = { 0 };
        struct strbuf err = STRBUF_INIT(1024);
        if (local_expand_parse(text, size, flags, &l, &err) == 0)
            check(&l);
        local_dest_list_free(&l);
        sb_free(&err);
    }
    free(text);
    return 0;
}
