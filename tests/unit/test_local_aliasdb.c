/* test_local_aliasdb.c: an aliases(5) file compiled with map_build and read
 * back the way the local agent reads alias_maps (case-folded keys, values
 * parsed into destinations). Run as "test_local_aliasdb build hash:FILE" it
 * only compiles FILE, for the whole-instance tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "local.h"
#include "maps.h"
#include "util.h"

static int build_only(const char *spec)
{
    struct strbuf err = STRBUF_INIT(4096);
    int rc = map_build(spec, MAP_BUILD_ALIASES, &err);
    if (rc < 0)
        fprintf(stderr, "test_local_aliasdb: %s\n", sb_str(&err));
    sb_free(&err);
    return rc < 0 ? 1 : 0;
}

static void test_roundtrip(const char *dir)
{
    char src[1024], spec[1100];
    snprintf(src, sizeof(src), "%s/aliases", dir);
    snprintf(spec, sizeof(spec), "hash:%s", src);
    FILE *f = fopen(src, "w");
    fputs("# comment\nPostmaster: root\nroot: alice,\n  bob@example.org\n"
          "cmd: \"|/bin/cat > /dev/null\"\nlist: :include:/etc/list\n", f);
    fclose(f);
    struct strbuf err = STRBUF_INIT(4096), value = STRBUF_INIT(0);
    CHECK(map_build(spec, MAP_BUILD_ALIASES, &err) == 0);
    struct map *m = map_open(spec, &err);
    CHECK(m != NULL);
    if (!m)
        return;
    struct dest_list l = { 0 };
    CHECK(map_lookup(m, "ROOT", &value) == 1);
    CHECK(local_expand_parse(sb_str(&value), value.len, 0, &l, &err) == 0);
    CHECK(l.n == 2);
    if (l.n == 2)
        CHECK_STR(l.items[1].value, "bob@example.org");
    local_dest_list_free(&l);
    CHECK(map_lookup(m, "postmaster", &value) == 1);
    CHECK_STR(sb_str(&value), "root");
    CHECK(map_lookup(m, "cmd", &value) == 1);
    CHECK(local_expand_parse(sb_str(&value), value.len, 0, &l, &err) == 0);
    CHECK(l.n == 1 && l.items[0].kind == DEST_COMMAND);
    local_dest_list_free(&l);
    CHECK(map_lookup(m, "list", &value) == 1);
    CHECK(local_expand_parse(sb_str(&value), value.len, 0, &l, &err) == 0);
    CHECK(l.n == 1 && l.items[0].kind == DEST_INCLUDE);
    local_dest_list_free(&l);
    CHECK(map_lookup(m, "nobody-here", &value) == 0);
    map_close(m);
    sb_free(&err);
    sb_free(&value);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "build") == 0)
        return build_only(argv[2]);
    char dir[] = "/tmp/test_local_aliasdb.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    test_roundtrip(dir);
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void)!system(cmd);
    return check_summary();
}
