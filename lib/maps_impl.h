/* maps_impl.h: what each lookup-table type provides to maps.c. */
#ifndef TERN_MAPS_IMPL_H
#define TERN_MAPS_IMPL_H

#include "maps.h"
#include "strbuf.h"

#define MAP_LINE_LIMIT 65536
#define MAP_ENTRY_LIMIT 10000000

struct map {
    char *spec;
    char *name;          /* after "type:" */
    bool fold_case;      /* lower-case keys before lookup */
    int (*lookup)(struct map *m, const char *key, struct strbuf *result);
    void (*close)(struct map *m);
    void *priv;
};

int map_db_open(struct map *m, bool btree, struct strbuf *err);
int map_db_build(const char *name, bool btree, int flags, struct strbuf *err);
int map_pcre_open(struct map *m, struct strbuf *err);
int map_texthash_open(struct map *m, struct strbuf *err);
int map_inline_open(struct map *m, struct strbuf *err);

#endif
