/* test_maps.c: unit tests of the lookup tables: hash and btree databases
 * built from text and read back case-insensitively, pcre with flags,
 * negation, if/endif and $N substitution, inline and texthash tables,
 * map lists, and hostile or broken inputs that must fail with file:line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "maps.h"
#include "strbuf.h"

static char dir[] = "/tmp/tern-test-maps-XXXXXX";

static const char *file(const char *name, const char *text)
{
    static char path[4][256];
    static int slot;
    char *p = path[slot++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    FILE *fp = fopen(p, "w");
    fputs(text, fp);
    fclose(fp);
    return p;
}

static const char *lookup(struct map *m, const char *key)
{
    static struct strbuf out = STRBUF_INIT(0);
    int rc = map_lookup(m, key, &out);
    return rc == 1 ? sb_str(&out) : rc == 0 ? "(none)" : "(error)";
}

static struct map *open_spec(const char *type, const char *path, struct strbuf *err)
{
    char spec[512];
    snprintf(spec, sizeof(spec), "%s:%s", type, path);
    sb_reset(err);
    return map_open(spec, err);
}

int main(void)
{
    struct strbuf err = STRBUF_INIT(4096);
    if (!mkdtemp(dir))
        return 1;
    const char *src = strdup(file("access", "# comment\n"
                           "Example.COM   REJECT no thanks\n"
                           "user@example.org OK\n"
                           "long   first part\n"
                           "  continued here\n"
                           "\n"
                           "empty\n"));
    for (int btree = 0; btree <= 1; btree++) {
        const char *type = btree ? "btree" : "hash";
        char spec[512];
        snprintf(spec, sizeof(spec), "%s:%s", type, src);
        sb_reset(&err);
        CHECK(map_build(spec, 0, &err) == 0);
        struct map *m = open_spec(type, src, &err);
        CHECK(m != NULL);
        if (!m)
            continue;
        CHECK_STR(lookup(m, "example.com"), "REJECT no thanks");
        CHECK_STR(lookup(m, "EXAMPLE.com"), "REJECT no thanks");
        CHECK_STR(lookup(m, "user@example.org"), "OK");
        CHECK_STR(lookup(m, "long"), "first part continued here");
        CHECK_STR(lookup(m, "empty"), "");
        CHECK_STR(lookup(m, "missing"), "(none)");
        map_close(m);
    }
    /* aliases syntax */
    const char *al = file("aliases", "postmaster: root\n\"quoted name\": a, b\nabuse:\n  root,\n  admin\n");
    char spec[512];
    snprintf(spec, sizeof(spec), "hash:%s", al);
    sb_reset(&err);
    CHECK(map_build(spec, MAP_BUILD_ALIASES, &err) == 0);
    struct map *m = open_spec("hash", al, &err);
    CHECK(m && strcmp(lookup(m, "abuse"), "root, admin") == 0);
    CHECK(m && strcmp(lookup(m, "\"quoted name\""), "a, b") == 0);
    map_close(m);
    file("bad-aliases", "no colon here\n");
    snprintf(spec, sizeof(spec), "hash:%s/bad-aliases", dir);
    sb_reset(&err);
    CHECK(map_build(spec, MAP_BUILD_ALIASES, &err) == -1);
    CHECK(strstr(sb_str(&err), "bad-aliases:1:") != NULL);
    /* a table that was never built */
    CHECK(open_spec("hash", "/nonexistent/table", &err) == NULL);
    CHECK(strstr(sb_str(&err), "tern map build") != NULL);
    /* a corrupt database file is an open error, not a crash */
    char dbpath[512];
    snprintf(dbpath, sizeof(dbpath), "%s/junk", dir);
    file("junk.db", "this is not a Berkeley DB file at all, just text ............\n");
    CHECK(open_spec("hash", dbpath, &err) == NULL);

    /* pcre */
    const char *re = file("pcre", "# rules in order\n"
                          "/^(\\w+)@(example\\.com)$/   user $1 at $2\n"
                          "/^CaseSensitive$/i         matched exactly\n"
                          "if /\\.test$/\n"
                          "/^a\\./                     inside if\n"
                          "endif\n"
                          "!/@/                       no at sign\n"
                          "/^b\\./                     after if\n");
    m = open_spec("pcre", re, &err);
    CHECK(m != NULL);
    if (m) {
        CHECK_STR(lookup(m, "joe@EXAMPLE.com"), "user joe at EXAMPLE.com");
        CHECK_STR(lookup(m, "casesensitive"), "no at sign");
        CHECK_STR(lookup(m, "CaseSensitive"), "matched exactly");
        CHECK_STR(lookup(m, "a.x@y.test"), "inside if");
        CHECK_STR(lookup(m, "a.x@y.org"), "(none)");
        CHECK_STR(lookup(m, "plainword"), "no at sign");
        CHECK_STR(lookup(m, "x@casesensitive"), "(none)");
        CHECK_STR(lookup(m, "b.x@y.test"), "after if");
        map_close(m);
    }
    m = open_spec("regexp", re, &err);
    CHECK(m != NULL);
    map_close(m);
    const char *bad[] = { "/unterminated  result\n", "/(/ result\n", "/ok/ \n",
                          "if /x/\n/y/ z\n", "endif\n", "/x/q result\n" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *p = file("badpcre", bad[i]);
        CHECK(open_spec("pcre", p, &err) == NULL);
        CHECK(strstr(sb_str(&err), "badpcre") != NULL);
    }

    /* inline and texthash */
    m = map_open("inline:{ a=1, B=2, { key with = value with spaces } }", &err);
    CHECK(m != NULL);
    if (m) {
        CHECK_STR(lookup(m, "b"), "2");
        CHECK_STR(lookup(m, "key with"), "value with spaces");
        CHECK_STR(lookup(m, "c"), "(none)");
        map_close(m);
    }
    sb_reset(&err);
    CHECK(map_open("inline:{ a=1, { unbalanced }", &err) == NULL);
    CHECK(map_open("inline:a=1", &err) == NULL);
    CHECK(map_open("nosuchtype:x", &err) == NULL);
    CHECK(map_open("noколон", &err) == NULL);
    m = open_spec("texthash", src, &err);
    CHECK(m && strcmp(lookup(m, "LONG"), "first part continued here") == 0);
    map_close(m);

    /* lists: first answer wins; errors are not "not found" */
    char list[1024];
    snprintf(list, sizeof(list), "inline:{ x=from-inline }, texthash:%s", src);
    sb_reset(&err);
    struct maplist *l = maplist_open(list, &err);
    struct strbuf out = STRBUF_INIT(0);
    CHECK(l && maplist_lookup(l, "x", &out) == 1 && strcmp(sb_str(&out), "from-inline") == 0);
    CHECK(l && maplist_lookup(l, "example.com", &out) == 1);
    CHECK(l && maplist_lookup(l, "nowhere", &out) == 0);
    maplist_close(l);
    CHECK(maplist_open("hash:/nonexistent/x", &err) == NULL);

    /* huge lines are refused with the file and line */
    struct strbuf huge = STRBUF_INIT(0);
    sb_appends(&huge, "key ");
    for (int i = 0; i < 70000; i++)
        sb_appendc(&huge, 'v');
    sb_appendc(&huge, '\n');
    const char *hp = file("huge", huge.data);
    CHECK(open_spec("texthash", hp, &err) == NULL);
    CHECK(strstr(sb_str(&err), "huge:1:") != NULL);

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    sb_free(&err);
    sb_free(&out);
    sb_free(&huge);
    free((char *)src);
    return check_summary();
}
