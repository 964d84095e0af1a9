/* test_maps.c: unit tests of the lookup tables: hash and btree databases
 * built from text and read back case-insensitively, pcre with flags,
 * negation, if/endif and $N substitution, inline and texthash tables,
 * map lists, and hostile or broken inputs that must fail with file:line. */
#include <db.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "chroot.h"
#include "log.h"
#include "maps.h"
#include "strbuf.h"

static char dir[] = "/tmp/tern-test-maps-XXXXXX";
static struct strbuf err = STRBUF_INIT(0);

/* DIR/name in one of a few rotating buffers. */
static const char *path_of(const char *name)
{
    static char path[8][512];
    static int slot;
    char *p = path[slot++ % 8];
    snprintf(p, sizeof(path[0]), "%s/%s", dir, name);
    return p;
}

static const char *write_bytes(const char *name, const char *data, size_t len)
{
    const char *p = path_of(name);
    FILE *fp = fopen(p, "w");
    CHECK(fp != NULL);
    if (fp) {
        CHECK(fwrite(data, 1, len, fp) == len);
        fclose(fp);
    }
    return p;
}

static const char *write_file(const char *name, const char *text)
{
    return write_bytes(name, text, strlen(text));
}

static const char *spec_of(const char *type, const char *path)
{
    static char spec[4][600];
    static int slot;
    char *s = spec[slot++ % 4];
    snprintf(s, sizeof(spec[0]), "%s:%s", type, path);
    return s;
}

static struct map *open_map(const char *spec)
{
    sb_reset(&err);
    return map_open(spec, &err);
}

/* The answer as one string, so that found, not found and error differ. */
static const char *lookup(struct map *m, const char *key)
{
    static struct strbuf out = STRBUF_INIT(0);
    if (!m)
        return "(no table)";
    int rc = map_lookup(m, key, &out);
    return rc == 1 ? sb_str(&out) : rc == 0 ? "(none)" : "(error)";
}

/* Opening fails, and the message contains want (typically "file:line:"). */
static int open_fails_with(const char *spec, const char *want)
{
    struct map *m = open_map(spec);
    if (m) {
        map_close(m);
        return 0;
    }
    if (!strstr(sb_str(&err), want)) {
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", sb_str(&err), want);
        return 0;
    }
    return 1;
}

static int log_contains(const char *want)
{
    struct strbuf text = STRBUF_INIT(0);
    char buf[4096];
    size_t n;
    FILE *fp = fopen(path_of("maillog"), "r");
    if (!fp)
        return 0;
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
        sb_append(&text, buf, n);
    fclose(fp);
    int found = strstr(sb_str(&text), want) != NULL;
    sb_free(&text);
    return found;
}

static const char access_src[] =
    "# comment\n"
    "Example.COM   REJECT no thanks\n"
    "user@example.org\tOK\r\n"
    "long   first part\n"
    "  continued here\n"
    "\t# a comment between continuation lines\n"
    "\tand here\n"
    "\n"
    "empty\n"
    "dup first\n"
    "DUP second\n"
    "cr in\rmiddle\n";

/* Read the raw database: the key and value must carry their NUL, as postmap's do. */
static void check_raw_nul(const char *dbfile, bool btree)
{
    DB *db;
    CHECK(db_create(&db, NULL, 0) == 0);
    CHECK(db->open(db, NULL, dbfile, NULL, btree ? DB_BTREE : DB_HASH, DB_RDONLY, 0) == 0);
    DBT k = { .data = "example.com", .size = sizeof("example.com") };
    DBT v = { 0 };
    CHECK(db->get(db, NULL, &k, &v, 0) == 0);
    CHECK(v.size == sizeof("REJECT no thanks") && memcmp(v.data, "REJECT no thanks", v.size) == 0);
    k.size--;
    CHECK(db->get(db, NULL, &k, &v, 0) == DB_NOTFOUND);
    db->close(db, 0);
}

/* A database written without NULs (as other tools may) is read too. */
static void check_reads_without_nul(bool btree)
{
    const char *dbfile = path_of("nonul.db");
    unlink(dbfile);
    DB *db;
    CHECK(db_create(&db, NULL, 0) == 0);
    CHECK(db->open(db, NULL, dbfile, NULL, btree ? DB_BTREE : DB_HASH, DB_CREATE, 0644) == 0);
    DBT k = { .data = "bare.example", .size = 12 }, v = { .data = "RELAY", .size = 5 };
    CHECK(db->put(db, NULL, &k, &v, 0) == 0);
    db->close(db, 0);
    struct map *m = open_map(spec_of(btree ? "btree" : "hash", path_of("nonul")));
    CHECK_STR(lookup(m, "BARE.example"), "RELAY");
    CHECK_STR(lookup(m, "bare"), "(none)");
    map_close(m);
}

static void test_db(bool btree)
{
    const char *type = btree ? "btree" : "hash";
    const char *src = write_file(btree ? "access-btree" : "access-hash", access_src);
    sb_reset(&err);
    CHECK(map_build(spec_of(type, src), 0, &err) == 0);
    CHECK_STR(sb_str(&err), "");
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.db.tmp", src);
    CHECK(access(tmp, F_OK) != 0);
    struct map *m = open_map(spec_of(type, src));
    CHECK(m != NULL);
    CHECK_STR(m ? map_spec(m) : "", spec_of(type, src));
    CHECK_STR(lookup(m, "example.com"), "REJECT no thanks");
    CHECK_STR(lookup(m, "EXAMPLE.com"), "REJECT no thanks");
    CHECK_STR(lookup(m, "user@example.org"), "OK");
    CHECK_STR(lookup(m, "long"), "first part continued here and here");
    CHECK_STR(lookup(m, "empty"), "(none)");
    CHECK_STR(lookup(m, "dup"), "first");
    CHECK_STR(lookup(m, "cr"), "in\rmiddle");
    CHECK_STR(lookup(m, "missing"), "(none)");
    CHECK_STR(lookup(m, ""), "(none)");
    map_close(m);
    CHECK(log_contains("line 11: duplicate entry \"dup\""));
    CHECK(log_contains("line 9: expected format: key whitespace value"));
    snprintf(tmp, sizeof(tmp), "%s.db", src);
    check_raw_nul(tmp, btree);
    check_reads_without_nul(btree);
    /* a hash file is not a btree and the other way round */
    CHECK(open_fails_with(spec_of(btree ? "hash" : "btree", src), "or damaged; rebuild it"));
}

static void test_aliases(void)
{
    const char *al = write_file("aliases", "postmaster: root\n\"quoted name\": a, b\n"
                                "abuse:\n  root,\n  admin\nNoValue:\n"
                                "\"odd:\\\"name\": odd\nuser@example.com: remote\n");
    sb_reset(&err);
    CHECK(map_build(spec_of("hash", al), MAP_BUILD_ALIASES, &err) == 0);
    struct map *m = open_map(spec_of("hash", al));
    CHECK_STR(lookup(m, "abuse"), "root, admin");
    CHECK_STR(lookup(m, "Postmaster"), "root");
    CHECK_STR(lookup(m, "quoted name"), "a, b");
    CHECK_STR(lookup(m, "odd:\"name"), "odd");
    CHECK_STR(lookup(m, "novalue"), "(none)");
    CHECK_STR(lookup(m, "user@example.com"), "(none)");
    map_close(m);
    CHECK(log_contains("expected format: key: value"));
    CHECK(log_contains("alias name \"user@example.com\" must be local"));
    const char *bad = write_file("bad-aliases", "ok: x\nno colon here\n");
    sb_reset(&err);
    CHECK(map_build(spec_of("hash", bad), MAP_BUILD_ALIASES, &err) == -1);
    CHECK(strstr(sb_str(&err), "bad-aliases:2:") != NULL);
    /* a failed build leaves neither a table nor its temporary file */
    CHECK(access(path_of("bad-aliases.db"), F_OK) != 0);
    CHECK(access(path_of("bad-aliases.db.tmp"), F_OK) != 0);
}

/* Damage a database file in place: seed 0 overwrites everything after the
 * first (meta) page, other seeds fill one page with pseudo-random bytes. */
static void damage_db(const char *dbfile, unsigned seed)
{
    FILE *fp = fopen(dbfile, "r+");
    CHECK(fp != NULL);
    if (!fp)
        return;
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp), from = 4096, to = size;
    unsigned x = seed * 2654435761u + 1;
    if (seed && size > 8192) {
        from = 4096 * (1 + (long)(seed % (unsigned)(size / 4096 - 1)));
        to = from + 4096;
    }
    fseek(fp, from, SEEK_SET);
    for (long i = from; i < to; i++) {
        x = x * 1103515245u + 12345u;
        fputc(seed ? (int)(x >> 16) & 0xff : 0xa5 ^ (int)(i * 7), fp);
    }
    fclose(fp);
}

/* A damaged table is refused at open, or answers each key correctly or
 * with an error: never "not found", never a wrong value, never a crash. */
static int damaged_table_is_safe(const char *spec, int nkeys)
{
    struct map *m = open_map(spec);
    if (!m)
        return strstr(sb_str(&err), "rebuild it") != NULL;
    int safe = 1;
    for (int i = 0; i < nkeys && safe; i++) {
        char key[64], want[64];
        snprintf(key, sizeof(key), "key%d.example", i);
        snprintf(want, sizeof(want), "value %d with some padding", i);
        const char *got = lookup(m, key);
        safe = strcmp(got, "(error)") == 0 || strcmp(got, want) == 0;
    }
    map_close(m);
    return safe;
}

static void test_damaged_db(void)
{
    write_file("junk.db", "this is not a Berkeley DB file at all, just text ............\n");
    CHECK(open_fails_with(spec_of("hash", path_of("junk")), "junk.db: not a hash database"));
    struct strbuf src = STRBUF_INIT(0);
    for (int i = 0; i < 500; i++)
        sb_appendf(&src, "key%d.example value %d with some padding\n", i, i);
    char p[512];
    snprintf(p, sizeof(p), "%s", write_file("damaged", src.data));
    for (int btree = 0; btree <= 1; btree++) {
        const char *spec = spec_of(btree ? "btree" : "hash", p);
        /* damage done after the open (a table overwritten in place) */
        sb_reset(&err);
        CHECK(map_build(spec, 0, &err) == 0);
        struct map *m = open_map(spec);
        CHECK(m != NULL);
        damage_db(path_of("damaged.db"), 0);
        CHECK_STR(lookup(m, "key1.example"), "(error)");
        CHECK_STR(lookup(m, "key499.example"), "(error)");
        map_close(m);
        /* damage present at the open */
        for (unsigned seed = 0; seed < 12; seed++) {
            sb_reset(&err);
            CHECK(map_build(spec, 0, &err) == 0);
            damage_db(path_of("damaged.db"), seed);
            CHECK(damaged_table_is_safe(spec, 500));
        }
    }
    sb_free(&src);
}

static void test_db_errors(void)
{
    CHECK(open_fails_with("hash:/nonexistent/table", "tern map build hash:/nonexistent/table"));
    sb_reset(&err);
    CHECK(map_build("hash:/nonexistent/table", 0, &err) == -1);
    CHECK(strstr(sb_str(&err), "/nonexistent/table") != NULL);
    CHECK(map_build(spec_of("pcre", "/x"), 0, &err) == -1);
    /* a name too long for a path must not become an in-memory table */
    struct strbuf name = STRBUF_INIT(0);
    sb_appends(&name, "hash:/tmp/");
    for (int i = 0; i < 5000; i++)
        sb_appendc(&name, 'a');
    CHECK(open_fails_with(name.data, "too long"));
    sb_reset(&err);
    CHECK(map_build(name.data, 0, &err) == -1);
    sb_free(&name);
}

static const char pcre_src[] =
    "# rules in order\n"
    "/^(\\w+)@(example\\.com)$/   user $1 at $2\n"
    "/^CaseSensitive$/i         matched exactly\n"
    "if /\\.test$/\n"
    "  # comments and nesting inside if\n"
    "if !/^z/\n"
    "/^a\\./                     inside if\n"
    "endif\n"
    "endif\n"
    "/^(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)$/ $1${2}$(3)-$9-$10-$11 $$5 $x\n"
    "/^ spaced \\s key $/x       extended\n"
    "|^pipe/delim$|              other delimiter\n"
    "/^(opt)?ional$/             [$1]\n"
    "/^multi$/                   a result\n"
    "    continued on the next line\n"
    "!/@/                       no at sign\n"
    "/^b\\./                     after if\n";

static void test_pcre(const char *type)
{
    struct map *m = open_map(spec_of(type, write_file("pcre", pcre_src)));
    CHECK(m != NULL);
    CHECK_STR(lookup(m, "joe@EXAMPLE.com"), "user joe at EXAMPLE.com");
    CHECK_STR(lookup(m, "casesensitive"), "no at sign");
    CHECK_STR(lookup(m, "CaseSensitive"), "matched exactly");
    CHECK_STR(lookup(m, "a.x@y.test"), "inside if");
    CHECK_STR(lookup(m, "a.x@y.TEST"), "inside if");
    CHECK_STR(lookup(m, "a.x@y.org"), "(none)");
    CHECK_STR(lookup(m, "z.a.x@y.test"), "(none)");
    CHECK_STR(lookup(m, "abcdefghijk"), "abc-i-j-k $5 $x");
    CHECK_STR(lookup(m, "spaced KEY"), "extended");
    CHECK_STR(lookup(m, "pipe/delim"), "other delimiter");
    CHECK_STR(lookup(m, "ional"), "[]");
    CHECK_STR(lookup(m, "optional"), "[opt]");
    CHECK_STR(lookup(m, "multi"), "a result continued on the next line");
    CHECK_STR(lookup(m, "plainword"), "no at sign");
    CHECK_STR(lookup(m, "x@casesensitive"), "(none)");
    CHECK_STR(lookup(m, "b.x@y.test"), "after if");
    map_close(m);
}

struct bad_pcre {
    const char *text;
    const char *want;
};

static void test_pcre_errors(void)
{
    static const struct bad_pcre bad[] = {
        { "/unterminated  result\n", "badpcre:1: unterminated pattern" },
        { "# c\n/(/ result\n", "badpcre:2: bad pattern" },
        { "/ok/ \n", "badpcre:1: missing result" },
        { "/a/ x\nif /x/\n/y/ z\n", "badpcre:2: if without endif" },
        { "endif\n", "badpcre:1: endif without if" },
        { "/x/q result\n", "badpcre:1: unknown pattern flag 'q'" },
        { "/(a)/ $2\n", "badpcre:1: $2 but the pattern has 1 group" },
        { "/a/ ${1}\n", "badpcre:1: $1 but the pattern has 0 groups" },
        { "!/(a)/ $1\n", "badpcre:1: $1 in the result of a !/pattern/" },
        { "if /x/ junk\nendif\n", "badpcre:1: text after the if pattern" },
        { "if /x/\nendif junk\n", "badpcre:2: text after endif" },
        { "abc result\n", "badpcre:1: expected a /pattern/" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(open_fails_with(spec_of("pcre", write_file("badpcre", bad[i].text)), bad[i].want));
    CHECK(open_fails_with(spec_of("pcre", write_bytes("badpcre", "/a/ b\n/c/ d\0e\n", 14)),
                          "badpcre:2: NUL byte"));
    CHECK(open_fails_with("pcre:/nonexistent/pcre", "cannot open /nonexistent/pcre"));
    struct strbuf deep = STRBUF_INIT(0);
    for (int i = 0; i < 101; i++)
        sb_appends(&deep, "if /x/\n");
    CHECK(open_fails_with(spec_of("pcre", write_file("badpcre", deep.data)),
                          "badpcre:101: if blocks nested deeper"));
    /* the rule limit, counted in rules, not in allocated slots */
    sb_reset(&deep);
    for (int i = 0; i < 100001; i++)
        sb_appends(&deep, "/a/ b\n");
    CHECK(open_fails_with(spec_of("pcre", write_file("badpcre", deep.data)),
                          "badpcre:100001: more than 100000 rules"));
    sb_free(&deep);
}

/* A match that exceeds PCRE2's limits is an error, never "not found",
 * and a map list must not go on to the next table after it. */
static void test_pcre_match_error(void)
{
    const char *p = write_file("backtrack", "/^(\\w+\\s?)*$/ matched\n");
    struct map *m = open_map(spec_of("pcre", p));
    char key[64];
    memset(key, 'a', 40);
    key[40] = '!';
    key[41] = 0;
    CHECK_STR(lookup(m, key), "(error)");
    CHECK_STR(lookup(m, "short"), "matched");
    map_close(m);
    char list[1200];
    snprintf(list, sizeof(list), "pcre:%s inline:{%s=fallback}", p, key);
    sb_reset(&err);
    struct maplist *l = maplist_open(list, &err);
    struct strbuf out = STRBUF_INIT(0);
    CHECK(l && maplist_lookup(l, key, &out) == -1);
    maplist_close(l);
    sb_free(&out);
}

static void test_inline(void)
{
    struct map *m = open_map("inline:{ a=1, B=2, { key with = value with spaces }\n"
                             "c=3 a=again {Upper=Case} }");
    CHECK(m != NULL);
    CHECK_STR(lookup(m, "b"), "2");
    CHECK_STR(lookup(m, "A"), "1");
    CHECK_STR(lookup(m, "c"), "3");
    CHECK_STR(lookup(m, "key with"), "value with spaces");
    CHECK_STR(lookup(m, "UPPER"), "Case");
    CHECK_STR(lookup(m, "d"), "(none)");
    map_close(m);
    CHECK(log_contains("duplicate entry \"a\""));
    m = open_map("inline:{}");
    CHECK_STR(lookup(m, "a"), "(none)");
    map_close(m);
    CHECK(open_fails_with("inline:{ a=1, { unbalanced }", "unbalanced"));
    CHECK(open_fails_with("inline:{ a=1, novalue }", "is not key=value"));
    CHECK(open_fails_with("inline:{ =1 }", "empty key"));
    CHECK(open_fails_with("inline:a=1", "inline:{"));
    CHECK(open_fails_with("nosuchtype:x", "unsupported table type"));
    CHECK(open_fails_with("no-colon", "expected type:name"));
    CHECK(open_fails_with("hash:", "expected type:name"));
}

static void test_unix_passwd(void)
{
    struct map *m = open_map("unix:passwd.byname");
    CHECK(m != NULL);
    CHECK(strncmp(lookup(m, "root"), "root:*:0:0:", 11) == 0);
    CHECK_STR(lookup(m, "no-such-user-x9"), "(none)");
    CHECK_STR(lookup(m, "root@localhost"), "(none)");
    CHECK_STR(lookup(m, ""), "(none)");
    map_close(m);
    CHECK(open_fails_with("unix:group.byname", "unsupported unix: table"));
}

/* Inside a chroot the table's path is gone: the check on the descriptor
 * kept open must not take that for a change (it used to, and smtpd
 * restarted at every connection); an edit of the file is still seen, and
 * unix:passwd.byname reads the password file opened before the chroot.
 * Needs root: the chroot happens in a child process. */
static void test_tables_in_chroot(void)
{
    if (geteuid() != 0) {
        printf("skipped the chroot test: not root\n");
        return;
    }
    write_file("chrooted", "a 1\n");
    char spec[600], empty[600];
    snprintf(spec, sizeof(spec), "texthash:%s", path_of("chrooted"));
    snprintf(empty, sizeof(empty), "%s", path_of("empty-root"));
    CHECK(mkdir(empty, 0755) == 0);
    struct map *m = open_map(spec);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        chroot_enter(empty);
        int bad = !chroot_active() || access(path_of("chrooted"), F_OK) == 0;
        sleep(1);
        bad |= maps_changed();                                  /* path gone: no change */
        _exit(bad ? 1 : 0);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The password file, opened before the chroot, still answers inside it.
     * (Opened only now: another program adding a user replaces the file,
     * which maps_changed() above would rightly have reported.) */
    struct map *pw = open_map("unix:passwd.byname");
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        struct strbuf v = STRBUF_INIT(0);
        char buf[4096];
        struct passwd pwd, *found = NULL;
        chroot_enter(empty);
        int bad = map_lookup(pw, "root", &v) != 1 || strncmp(sb_str(&v), "root:*:0:0:", 11) != 0;
        bad |= map_lookup(pw, "no-such-user-x", &v) != 0;
        bad |= chroot_getpwuid_r(0, &pwd, buf, sizeof(buf), &found) != 0 || !found
               || strcmp(pwd.pw_name, "root") != 0;
        _exit(bad ? 1 : 0);
    }
    status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    map_close(pw);
    /* an edit in place is a change, seen on the same descriptor */
    pid = fork();
    if (pid == 0) {
        chroot_enter(empty);
        sleep(1);
        _exit(maps_changed() ? 0 : 1);
    }
    usleep(300000);
    FILE *fp = fopen(path_of("chrooted"), "a");
    CHECK(fp != NULL);
    if (fp) {
        fputs("b 2\n", fp);
        fclose(fp);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    map_close(m);
}

static void test_changed_tables(void)
{
    /* a table whose file is replaced is noticed (at most once a second) */
    write_file("changing", "a 1\n");
    char spec[600];
    snprintf(spec, sizeof(spec), "texthash:%s", path_of("changing"));
    struct map *m = open_map(spec);
    CHECK(!maps_changed());
    sleep(1);
    write_file("changing.new", "a 2\n");
    char from[600], to[600];
    snprintf(from, sizeof(from), "%s", path_of("changing.new"));
    snprintf(to, sizeof(to), "%s", path_of("changing"));
    CHECK(rename(from, to) == 0);
    sleep(1);
    CHECK(maps_changed());
    CHECK(log_contains("has changed"));
    map_close(m);
}

static void test_texthash(void)
{
    struct map *m = open_map(spec_of("texthash", write_file("text", access_src)));
    CHECK(m != NULL);
    CHECK_STR(lookup(m, "LONG"), "first part continued here and here");
    CHECK_STR(lookup(m, "user@EXAMPLE.org"), "OK");
    CHECK_STR(lookup(m, "dup"), "first");
    CHECK_STR(lookup(m, "empty"), "(none)");
    map_close(m);
    CHECK(open_fails_with("texthash:/nonexistent/file", "cannot open /nonexistent/file"));
    CHECK(open_fails_with(spec_of("texthash", write_bytes("nul", "a b\nc d\0\n", 9)), "nul:2: NUL byte"));
    /* a huge physical line, and a logical line made huge by continuations */
    struct strbuf huge = STRBUF_INIT(0);
    sb_appends(&huge, "ok fine\nkey ");
    for (int i = 0; i < 70000; i++)
        sb_appendc(&huge, 'v');
    sb_appendc(&huge, '\n');
    CHECK(open_fails_with(spec_of("texthash", write_file("huge", huge.data)),
                          "huge:2: line longer than"));
    sb_set(&huge, "key start\n");
    for (int i = 0; i < 100; i++) {
        sb_appendc(&huge, ' ');
        for (int j = 0; j < 1000; j++)
            sb_appendc(&huge, 'w');
        sb_appendc(&huge, '\n');
    }
    CHECK(open_fails_with(spec_of("texthash", write_file("huge", huge.data)),
                          "huge:67: logical line longer than"));
    /* the last line needs no newline */
    m = open_map(spec_of("texthash", write_file("nonl", "a b\nlast one")));
    CHECK_STR(lookup(m, "last"), "one");
    map_close(m);
    sb_free(&huge);
}

/* Lists: first answer wins; errors are not "not found". */
static void test_maplist(void)
{
    char list[1024];
    snprintf(list, sizeof(list), "inline:{ x=from-inline, { y = two words } },\n"
             " texthash:%s, hash:%s", path_of("text"), path_of("access-hash"));
    sb_reset(&err);
    struct maplist *l = maplist_open(list, &err);
    CHECK(l != NULL);
    struct strbuf out = STRBUF_INIT(0);
    CHECK(l && maplist_lookup(l, "x", &out) == 1 && strcmp(sb_str(&out), "from-inline") == 0);
    CHECK(l && maplist_lookup(l, "Y", &out) == 1 && strcmp(sb_str(&out), "two words") == 0);
    CHECK(l && maplist_lookup(l, "example.com", &out) == 1);
    CHECK(l && maplist_lookup(l, "nowhere", &out) == 0);
    maplist_close(l);
    l = maplist_open("", &err);
    CHECK(l && maplist_lookup(l, "x", &out) == 0);
    maplist_close(l);
    sb_reset(&err);
    CHECK(maplist_open("inline:{a=1}, hash:/nonexistent/x", &err) == NULL);
    CHECK(strstr(sb_str(&err), "/nonexistent/x.db") != NULL);
    sb_free(&out);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    log_open("test_maps");
    log_configure("tern", "mail", path_of("maillog"));
    test_db(false);
    test_db(true);
    test_aliases();
    test_db_errors();
    test_damaged_db();
    test_pcre("pcre");
    test_pcre("regexp");
    test_pcre_errors();
    test_pcre_match_error();
    test_inline();
    test_texthash();
    test_maplist();
    test_unix_passwd();
    test_tables_in_chroot();
    test_changed_tables();

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (getenv("TEST_MAPS_KEEP"))
        printf("kept %s\n", dir);
    else
        CHECK(system(cmd) == 0);
    sb_free(&err);
    return check_summary();
}
