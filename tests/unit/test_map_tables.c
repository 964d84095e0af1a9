/* test_map_tables.c: unit tests of the cidr:, static: and sqlite: table
 * types and of the domain and network lists that may hold tables
 * (lib/global/match_list.c, lib/global/domains.c): first match wins,
 * negation and if/endif in cidr, the inline forms, the sqlite query file
 * with its expansions, SQL quoting, result_format, domain and
 * expansion_limit, and the bad inputs: malformed lines that must fail
 * with file:line, and a missing database or a failing query that must be
 * a lookup error (-1), never "not found". */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "domains.h"
#include "log.h"
#include "maps.h"
#include "match_list.h"
#include "strbuf.h"

static char dir[] = "/tmp/tern-test-map-tables-XXXXXX";
static struct strbuf err = STRBUF_INIT(0);

static const char *path_of(const char *name)
{
    static char path[8][512];
    static int slot;
    char *p = path[slot++ % 8];
    snprintf(p, sizeof(path[0]), "%s/%s", dir, name);
    return p;
}

static const char *write_file(const char *name, const char *text)
{
    const char *p = path_of(name);
    FILE *fp = fopen(p, "w");
    CHECK(fp != NULL);
    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
    return p;
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
    struct map *m = map_open(spec, &err);
    if (!m)
        fprintf(stderr, "open %s: %s\n", spec, sb_str(&err));
    return m;
}

static const char *lookup(struct map *m, const char *key)
{
    static struct strbuf out = STRBUF_INIT(0);
    if (!m)
        return "(no table)";
    int rc = map_lookup(m, key, &out);
    return rc == 1 ? sb_str(&out) : rc == 0 ? "(none)" : "(error)";
}

static int open_fails_with(const char *spec, const char *want)
{
    sb_reset(&err);
    struct map *m = map_open(spec, &err);
    if (m) {
        map_close(m);
        fprintf(stderr, "%s opened, expected \"%s\"\n", spec, want);
        return 0;
    }
    if (!strstr(sb_str(&err), want)) {
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", sb_str(&err), want);
        return 0;
    }
    return 1;
}

/* ---- cidr: ---- */

static void test_cidr(void)
{
    const char *p = write_file("t.cidr",
        "# comment\n"
        "192.0.2.0/24      REJECT listed net\n"
        "192.0.2.7         OK never reached: the /24 is first\n"
        "!10.0.0.0/8       outside ten\n"
        "  continued\n"
        "if 10.1.0.0/16\n"
        "10.1.2.3          host in block\n"
        "if !10.1.2.0/24\n"
        "10.1.3.0/24       outside inner\n"
        "endif\n"
        "endif\n"
        "[2001:db8::]/32   v6 net\n"
        "2001:DB8:0:0::1   unreachable\n"
        "0.0.0.0/0         any v4\n");
    struct map *m = open_map(spec_of("cidr", p));
    CHECK(m != NULL);
    CHECK_STR(lookup(m, "192.0.2.7"), "REJECT listed net");
    CHECK_STR(lookup(m, "192.0.2.255"), "REJECT listed net");
    CHECK_STR(lookup(m, "8.8.8.8"), "outside ten continued");
    CHECK_STR(lookup(m, "10.1.2.3"), "host in block");
    CHECK_STR(lookup(m, "10.1.3.9"), "outside inner");
    CHECK_STR(lookup(m, "10.1.2.4"), "any v4");      /* inside the inner if: skipped */
    CHECK_STR(lookup(m, "10.2.0.1"), "any v4");
    /* a negated IPv4 rule never matches an IPv6 key */
    CHECK_STR(lookup(m, "2001:db8::1"), "v6 net");
    CHECK_STR(lookup(m, "2001:0db8:0000::0001"), "v6 net");
    CHECK_STR(lookup(m, "2002::1"), "(none)");
    CHECK_STR(lookup(m, "::ffff:192.0.2.1"), "REJECT listed net");
    /* keys that are not addresses are not found */
    CHECK_STR(lookup(m, "mail.example.com"), "(none)");
    CHECK_STR(lookup(m, "192.0.2"), "(none)");
    CHECK_STR(lookup(m, "[192.0.2.1]"), "(none)");
    CHECK_STR(lookup(m, ""), "(none)");
    map_close(m);

    /* inline, as Postfix 3.7 has it */
    m = open_map("cidr:{ {192.0.2.0/24 first, with comma}, 10.0.0.0/8 ten, {!::/0 v4} }");
    CHECK_STR(lookup(m, "192.0.2.1"), "first, with comma");
    CHECK_STR(lookup(m, "10.9.9.9"), "ten");
    CHECK_STR(lookup(m, "8.8.8.8"), "(none)");     /* !::/0 is for IPv6 keys only */
    map_close(m);
    m = open_map("cidr:{ {!::/0 v4}, {::/0 v6} }");
    CHECK_STR(lookup(m, "2001:db8::9"), "v6");
    map_close(m);
}

static void test_cidr_errors(void)
{
    static const struct { const char *text, *want; } bad[] = {
        { "192.0.2.1/24 x\n", "bad.cidr:1: bad network entry \"192.0.2.1/24\": host bits set" },
        { "# c\n192.0.2.0/33 x\n", "bad.cidr:2: bad network entry" },
        { "192.0.2.0/24\n", "bad.cidr:1: missing result" },
        { "mail.example.com OK\n", "bad.cidr:1: bad network entry \"mail.example.com\"" },
        { "hash:/etc/x OK\n", "bad.cidr:1: bad network entry" },
        { "192.0.2.0/24,10.0.0.0/8 OK\n", "bad.cidr:1: expected a network" },
        { "!!192.0.2.0/24 OK\n", "bad.cidr:1: expected a network" },
        { "! OK\n", "bad.cidr:1: expected a network" },
        { "if 192.0.2.0/24\n192.0.2.1 x\n", "if without endif" },
        { "endif\n", "bad.cidr:1: endif without if" },
        { "if 192.0.2.0/24 x\nendif\n", "bad.cidr:1: text after the if pattern" },
        { "if 192.0.2.0/24\nendif x\n", "bad.cidr:2: text after endif" },
        { "[192.0.2.0/24 x\n", "bad.cidr:1: bad network entry" },
        { "1.2.3.4/-1 x\n", "bad.cidr:1: bad network entry" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *p = write_file("bad.cidr", bad[i].text);
        CHECK(open_fails_with(spec_of("cidr", p), bad[i].want));
    }
    CHECK(open_fails_with(spec_of("cidr", path_of("missing.cidr")), "cannot open"));
    CHECK(open_fails_with("cidr:{ {192.0.2.0/24 x", "missing '}'"));
    CHECK(open_fails_with("cidr:{ {192.0.2.0/24 x }", "unbalanced {"));
    CHECK(open_fails_with("cidr:{ 192.0.2.1/24 x }", "host bits set"));
}

/* ---- static: ---- */

static void test_static(void)
{
    struct map *m = open_map("static:REJECT");
    CHECK_STR(lookup(m, "anything"), "REJECT");
    CHECK_STR(lookup(m, ""), "REJECT");
    map_close(m);
    m = open_map("static:{ 550 5.7.1 go away, now }");
    CHECK_STR(lookup(m, "x"), "550 5.7.1 go away, now");
    map_close(m);
    m = open_map("static:{}");
    CHECK_STR(lookup(m, "x"), "");
    map_close(m);
    CHECK(open_fails_with("static:{ unbalanced", "missing '}'"));
    /* in a main.cf list, the braces keep the spaces in one entry */
    struct maplist *l = maplist_open("static:{ a b c }, static:second", &err);
    CHECK(l != NULL);
    struct strbuf v = STRBUF_INIT(0);
    CHECK(l && maplist_lookup(l, "k", &v) == 1);
    CHECK_STR(sb_str(&v), "a b c");
    sb_free(&v);
    maplist_close(l);
}

/* ---- sqlite: ---- */

static void make_db(const char *path)
{
    sqlite3 *db;
    unlink(path);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db,
        "CREATE TABLE alias (address TEXT, goto TEXT, active INTEGER);"
        "INSERT INTO alias VALUES ('info@example.com', 'alice@example.com', 1);"
        "INSERT INTO alias VALUES ('info@example.com', 'bob@example.net', 1);"
        "INSERT INTO alias VALUES ('old@example.com', 'gone@example.com', 0);"
        "INSERT INTO alias VALUES ('o''brien@example.com', 'ob@example.com', 1);"
        "INSERT INTO alias VALUES ('null@example.com', NULL, 1);"
        "INSERT INTO alias VALUES ('many@example.com', 'a', 1);"
        "INSERT INTO alias VALUES ('many@example.com', 'b', 1);"
        "INSERT INTO alias VALUES ('many@example.com', 'c', 1);"
        "CREATE TABLE domains (domain TEXT);"
        "INSERT INTO domains VALUES ('example.com'), ('mail.example.org');",
        NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "sqlite: %s\n", msg ? msg : "?");
    CHECK(rc == SQLITE_OK);
    sqlite3_free(msg);
    sqlite3_close(db);
}

static void test_sqlite(void)
{
    const char *db = path_of("tables.db");
    make_db(db);
    struct strbuf cf = STRBUF_INIT(0);
    sb_appendf(&cf, "# virtual aliases\ndbpath = %s\n"
               "query = SELECT goto FROM alias WHERE address = '%%s'\n"
               "   AND active = 1\n", db);
    struct map *m = open_map(spec_of("sqlite", write_file("alias.cf", sb_str(&cf))));
    CHECK(m != NULL);
    CHECK_STR(lookup(m, "info@example.com"), "alice@example.com,bob@example.net");
    CHECK_STR(lookup(m, "INFO@Example.COM"), "alice@example.com,bob@example.net");
    CHECK_STR(lookup(m, "old@example.com"), "(none)");
    CHECK_STR(lookup(m, "o'brien@example.com"), "ob@example.com");
    CHECK_STR(lookup(m, "null@example.com"), "(none)");
    /* quoting: the key cannot end the string literal */
    CHECK_STR(lookup(m, "x' OR '1'='1"), "(none)");
    CHECK_STR(lookup(m, "x'; DROP TABLE alias; --"), "(none)");
    CHECK_STR(lookup(m, "info@example.com"), "alice@example.com,bob@example.net");
    map_close(m);

    /* %u %d %1 %2, result_format with the value's and the key's parts,
     * the domain list and the expansion limit */
    sb_reset(&cf);
    sb_appendf(&cf, "dbpath = %s\n"
               "query = SELECT goto FROM alias WHERE address = '%%u@%%d' AND '%%2.%%1' = 'example.com'\n"
               "result_format = %%u at %%d for %%U/%%D (%%S) 100%%%%\n"
               "domain = example.com, inline:{ other.example=yes }\n"
               "expansion_limit = 2\n", db);
    m = open_map(spec_of("sqlite", write_file("fmt.cf", sb_str(&cf))));
    CHECK(m != NULL);
    CHECK_STR(lookup(m, "o'brien@example.com"),
              "ob at example.com for o'brien/example.com (o'brien@example.com) 100%");
    CHECK_STR(lookup(m, "info@elsewhere.example"), "(none)");   /* not in domain */
    CHECK_STR(lookup(m, "info"), "(none)");                     /* no domain: not asked */
    CHECK_STR(lookup(m, "@example.com"), "(none)");             /* empty local part */
    /* rows whose value has no domain give no result for %d */
    CHECK_STR(lookup(m, "many@example.com"), "(none)");
    map_close(m);
    sb_reset(&cf);
    sb_appendf(&cf, "dbpath = %s\nquery = SELECT goto FROM alias WHERE address = '%%s'\n"
               "expansion_limit = 2\n", db);
    m = open_map(spec_of("sqlite", write_file("limit.cf", sb_str(&cf))));
    CHECK_STR(lookup(m, "info@example.com"), "alice@example.com,bob@example.net");
    CHECK_STR(lookup(m, "many@example.com"), "(error)");        /* 3 results > 2 */
    map_close(m);

    /* the domain list takes names, files, tables and exclusions */
    sb_reset(&cf);
    sb_appendf(&cf, "dbpath = %s\nquery = SELECT '%%d'\n"
               "domain = !no.example.com, .example.com %s\n",
               db, write_file("domains", "# more\nfile.example\n"));
    m = open_map(spec_of("sqlite", write_file("domains.cf", sb_str(&cf))));
    CHECK_STR(lookup(m, "u@x.example.com"), "x.example.com");
    CHECK_STR(lookup(m, "u@file.example"), "file.example");
    CHECK_STR(lookup(m, "u@no.example.com"), "(none)");
    CHECK_STR(lookup(m, "u@example.com"), "(none)");
    CHECK_STR(lookup(m, "u@other.test"), "(none)");
    map_close(m);

    /* labels the key does not have suppress the query */
    sb_reset(&cf);
    sb_appendf(&cf, "dbpath = %s\nquery = SELECT domain FROM domains WHERE domain = '%%3.%%2.%%1'\n", db);
    m = open_map(spec_of("sqlite", write_file("labels.cf", sb_str(&cf))));
    CHECK_STR(lookup(m, "u@mail.example.org"), "mail.example.org");
    CHECK_STR(lookup(m, "u@example.org"), "(none)");
    map_close(m);

    /* a name given twice: the last one wins, as Postfix reads the file;
     * %S %U %D in a query are %s %u %d */
    sb_reset(&cf);
    sb_appendf(&cf, "dbpath = %s\nquery = SELECT 'first'\n"
               "query = SELECT goto FROM alias WHERE address = '%%U@%%D'\n", db);
    m = open_map(spec_of("sqlite", write_file("twice.cf", sb_str(&cf))));
    CHECK_STR(lookup(m, "o'brien@example.com"), "ob@example.com");
    CHECK_STR(lookup(m, "x\\' OR 1=1 --@example.com"), "(none)");
    map_close(m);

    /* the older settings */
    sb_reset(&cf);
    sb_appendf(&cf, "dbpath = %s\ntable = alias\nselect_field = goto\nwhere_field = address\n"
               "additional_conditions = AND goto LIKE 'bob%%%%'\n", db);
    m = open_map(spec_of("sqlite", write_file("old.cf", sb_str(&cf))));
    CHECK_STR(lookup(m, "info@example.com"), "bob@example.net");
    map_close(m);
    sb_free(&cf);
}

static void test_sqlite_errors(void)
{
    const char *db = path_of("tables.db");
    struct strbuf cf = STRBUF_INIT(0);
    /* a missing database opens (it may appear later) but every lookup fails */
    sb_appendf(&cf, "dbpath = %s\nquery = SELECT goto FROM alias WHERE address = '%%s'\n",
               path_of("nonexistent.db"));
    struct map *m = open_map(spec_of("sqlite", write_file("missing.cf", sb_str(&cf))));
    CHECK(m != NULL);
    CHECK_STR(lookup(m, "info@example.com"), "(error)");
    map_close(m);
    /* an unreadable database */
    const char *locked = path_of("locked.db");
    make_db(locked);
    chmod(locked, 0);
    if (access(locked, R_OK) < 0) {     /* not when run as root */
        sb_reset(&cf);
        sb_appendf(&cf, "dbpath = %s\nquery = SELECT goto FROM alias WHERE address = '%%s'\n",
                   locked);
        m = open_map(spec_of("sqlite", write_file("locked.cf", sb_str(&cf))));
        CHECK_STR(lookup(m, "info@example.com"), "(error)");
        map_close(m);
    }
    /* a query that fails, and a file that is not a database */
    sb_reset(&cf);
    sb_appendf(&cf, "dbpath = %s\nquery = SELECT nosuchcolumn FROM alias WHERE address = '%%s'\n", db);
    m = open_map(spec_of("sqlite", write_file("badq.cf", sb_str(&cf))));
    CHECK_STR(lookup(m, "info@example.com"), "(error)");
    map_close(m);
    sb_reset(&cf);
    sb_appendf(&cf, "dbpath = %s\nquery = SELECT goto FROM alias WHERE address = '%%s'\n",
               write_file("junk.db", "this is not a database, just text of some length\n"));
    m = open_map(spec_of("sqlite", write_file("junk.cf", sb_str(&cf))));
    CHECK_STR(lookup(m, "info@example.com"), "(error)");
    map_close(m);
    sb_free(&cf);

    static const struct { const char *text, *want; } bad[] = {
        /* an unknown name is logged and ignored, as Postfix does */
        { "dbpath = /x.db\nqeury = SELECT 1\n", "query is not set" },
        { "query = SELECT 1\n", "dbpath is not set" },
        { "dbpath = /x.db\n", "query is not set" },
        { "dbpath = /x.db\ntable = t\n", "table, select_field and where_field must all be set" },
        { "dbpath = /x.db\nquery = SELECT '%x'\n", "query: unknown expansion \"%x\"" },
        { "dbpath = /x.db\nquery = SELECT '%'\n", "query: unknown expansion" },
        { "dbpath = /x.db\nquery = SELECT 1\nresult_format = %t\n", "result_format: unknown expansion" },
        { "dbpath = /x.db\nquery = SELECT 1\nexpansion_limit = many\n",
          "bad.cf:3: expansion_limit = \"many\"" },
        { "dbpath /x.db\n", "bad.cf:1: expected \"name = value\"" },
        { "dbpath = /x.db\nquery = SELECT 1\ndomain = nosuchtype:x\n", "unsupported table type" },
        { "dbpath = /x.db\nquery = SELECT 1\ndomain = /nonexistent/list\n",
          "bad.cf: domain: cannot read /nonexistent/list" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *p = write_file("bad.cf", bad[i].text);
        CHECK(open_fails_with(spec_of("sqlite", p), bad[i].want));
    }
    CHECK(open_fails_with(spec_of("sqlite", path_of("nonexistent.cf")), "cannot open"));
}

/* ---- lists ---- */

static int domain_in(const char *value, int flags, const char *domain)
{
    sb_reset(&err);
    struct match_list *l = match_list_open("relay_domains", value, MATCH_DOMAINS, flags, &err);
    if (!l) {
        fprintf(stderr, "list \"%s\": %s\n", value, sb_str(&err));
        return -2;
    }
    int rc = match_list_domain(l, domain);
    match_list_free(l);
    return rc;
}

static int addr_in(const char *value, const char *addr)
{
    sb_reset(&err);
    struct match_list *l = match_list_open("mynetworks", value, MATCH_NETWORKS, 0, &err);
    if (!l) {
        fprintf(stderr, "list \"%s\": %s\n", value, sb_str(&err));
        return -2;
    }
    int rc = match_list_addr(l, addr);
    match_list_free(l);
    return rc;
}

static int list_fails_with(const char *value, enum match_kind kind, const char *want)
{
    sb_reset(&err);
    struct match_list *l = match_list_open("mynetworks", value, kind, 0, &err);
    if (l) {
        match_list_free(l);
        fprintf(stderr, "list \"%s\" opened, expected \"%s\"\n", value, want);
        return 0;
    }
    if (!strstr(sb_str(&err), want)) {
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", sb_str(&err), want);
        return 0;
    }
    return 1;
}

static void test_lists(void)
{
    /* literal domains, with and without parent matching */
    CHECK(domain_in("example.com", 0, "example.com") == 1);
    CHECK(domain_in("example.com", 0, "mail.example.com") == 0);
    CHECK(domain_in("example.com", MATCH_F_PARENT, "mail.example.com") == 1);
    CHECK(domain_in(".example.com", 0, "mail.example.com") == 1);
    CHECK(domain_in(".example.com", 0, "example.com") == 0);
    CHECK(domain_in("Example.COM.", 0, "example.com") == 1);
    CHECK(domain_in("!mail.example.com example.com", MATCH_F_PARENT, "mail.example.com") == 0);
    CHECK(domain_in("!mail.example.com example.com", MATCH_F_PARENT, "www.example.com") == 1);

    /* tables: the domain, then its parents (fixed-key tables only) */
    CHECK(domain_in("inline:{ example.com=OK }", 0, "example.com") == 1);
    CHECK(domain_in("inline:{ example.com=OK }", 0, "mail.example.com") == 0);
    CHECK(domain_in("inline:{ .example.com=OK }", 0, "mail.example.com") == 1);
    CHECK(domain_in("inline:{ example.com=OK }", MATCH_F_PARENT, "a.mail.example.com") == 1);
    CHECK(domain_in("inline:{ example.com=OK }", MATCH_F_PARENT, "example.org") == 0);
    CHECK(domain_in("static:x", 0, "anything.example") == 1);
    const char *re = write_file("dom.pcre", "/^example\\.com$/ OK\n");
    char spec[600];
    snprintf(spec, sizeof(spec), "pcre:%s", re);
    CHECK(domain_in(spec, MATCH_F_PARENT, "example.com") == 1);
    CHECK(domain_in(spec, MATCH_F_PARENT, "mail.example.com") == 0);   /* whole name only */

    /* files: their entries, in place, recursively */
    const char *inner = write_file("inner.list", "# inner\nthird.example\n");
    struct strbuf text = STRBUF_INIT(0);
    sb_appendf(&text, "# domains\nfirst.example, !no.second.example\n  second.example %s\n", inner);
    const char *outer = write_file("outer.list", sb_str(&text));
    sb_reset(&text);
    sb_appendf(&text, "literal.example %s", outer);
    CHECK(domain_in(sb_str(&text), MATCH_F_PARENT, "first.example") == 1);
    CHECK(domain_in(sb_str(&text), MATCH_F_PARENT, "x.second.example") == 1);
    CHECK(domain_in(sb_str(&text), MATCH_F_PARENT, "no.second.example") == 0);
    CHECK(domain_in(sb_str(&text), MATCH_F_PARENT, "third.example") == 1);
    CHECK(domain_in(sb_str(&text), MATCH_F_PARENT, "literal.example") == 1);
    CHECK(domain_in(sb_str(&text), MATCH_F_PARENT, "other.example") == 0);
    sb_free(&text);

    /* a failing table is an error, not "not listed"; a later literal does
     * not hide it */
    sb_reset(&text);
    const char *db = path_of("tables.db");
    sb_appendf(&text, "dbpath = %s\nquery = SELECT nosuch FROM domains WHERE domain = '%%s'\n", db);
    snprintf(spec, sizeof(spec), "sqlite:%s example.com", write_file("fail.cf", sb_str(&text)));
    CHECK(domain_in(spec, 0, "example.com") == -1);
    sb_reset(&text);
    sb_appendf(&text, "dbpath = %s\nquery = SELECT domain FROM domains WHERE domain = '%%s'\n", db);
    snprintf(spec, sizeof(spec), "sqlite:%s", write_file("dom.cf", sb_str(&text)));
    CHECK(domain_in(spec, 0, "mail.example.org") == 1);
    CHECK(domain_in(spec, MATCH_F_PARENT, "x.example.com") == 1);
    CHECK(domain_in(spec, 0, "x.example.com") == 0);
    sb_free(&text);

    /* networks */
    CHECK(addr_in("127.0.0.0/8 [::1]/128", "127.0.0.1") == 1);
    CHECK(addr_in("127.0.0.0/8 [::1]/128", "::1") == 1);
    CHECK(addr_in("127.0.0.0/8 [::1]/128", "192.0.2.1") == 0);
    CHECK(addr_in("!192.0.2.7 192.0.2.0/24", "192.0.2.7") == 0);
    CHECK(addr_in("!192.0.2.7 192.0.2.0/24", "192.0.2.8") == 1);
    CHECK(addr_in("2001:db8::/32", "2001:db8::5") == 1);
    const char *nets = write_file("nets.cidr", "192.0.2.0/24 trusted\n!10.0.0.0/8 whatever\n");
    snprintf(spec, sizeof(spec), "127.0.0.1, cidr:%s", nets);
    CHECK(addr_in(spec, "192.0.2.200") == 1);
    CHECK(addr_in(spec, "10.0.0.1") == 0);
    CHECK(addr_in(spec, "8.8.8.8") == 1);
    CHECK(addr_in(spec, "127.0.0.1") == 1);
    CHECK(addr_in("inline:{ 192.0.2.1=x }", "192.0.2.1") == 1);
    CHECK(addr_in("inline:{ 192.0.2.1=x }", "192.0.2.2") == 0);
    const char *netfile = write_file("nets.list", "# trusted\n192.0.2.0/25\n[2001:db8::]/48, !198.51.100.1 198.51.100.0/24\n");
    CHECK(addr_in(netfile, "192.0.2.1") == 1);
    CHECK(addr_in(netfile, "2001:db8::1") == 1);
    CHECK(addr_in(netfile, "198.51.100.1") == 0);
    CHECK(addr_in(netfile, "198.51.100.2") == 1);

    /* entries that cannot be used */
    CHECK(list_fails_with("192.0.2.1/24", MATCH_NETWORKS, "host bits set"));
    CHECK(list_fails_with("mail.example.com", MATCH_NETWORKS, "bad network entry"));
    CHECK(list_fails_with("hash:/nonexistent/relay", MATCH_NETWORKS, "mynetworks: table hash:/nonexistent/relay"));
    CHECK(list_fails_with("nosuchtype:/x", MATCH_DOMAINS, "unsupported table type"));
    CHECK(list_fails_with("/nonexistent/file", MATCH_DOMAINS, "cannot read /nonexistent/file"));
    CHECK(list_fails_with("!/etc/hostname", MATCH_DOMAINS, "a file cannot be negated"));
    CHECK(list_fails_with("!", MATCH_DOMAINS, "nothing after '!'"));
    CHECK(list_fails_with("user@example.com", MATCH_DOMAINS, "is not a domain name"));
    CHECK(list_fails_with("mail/example.com", MATCH_DOMAINS, "is not a domain name"));
    const char *loop = path_of("loop.list");
    write_file("loop.list", loop);
    CHECK(list_fails_with(loop, MATCH_DOMAINS, "files nested deeper than"));
}

/* domains.c on a configuration: tables in mydestination and relay_domains,
 * and a list that cannot be opened answering -1. */
static void test_domains(void)
{
    const char *relay = write_file("relay", "relay.example OK\n");
    struct strbuf cf = STRBUF_INIT(0);
    sb_appendf(&cf, "myhostname = mx.example.com\n"
               "mydestination = localhost, texthash:%s\n"
               "relay_domains = inline:{ relay.example=OK }, literal.example\n"
               "virtual_alias_domains = static:{ }\n", relay);
    write_file("main.cf", sb_str(&cf));
    CHECK(cfg_load(dir, &err) == 0);
    domains_init();
    CHECK(domain_is_local("localhost") == 1);
    CHECK(domain_is_local("relay.example") == 1);
    CHECK(domain_is_local("other.example") == 0);
    CHECK(domain_is_relay("sub.relay.example") == 1);
    CHECK(domain_is_relay("literal.example") == 1);
    CHECK(domain_is_relay("other.example") == 0);
    CHECK(domain_is_virtual_alias("any.example") == 1);
    CHECK(domains_check(P_relay_domains, &err) == 0);

    sb_reset(&cf);
    sb_appendf(&cf, "mydestination = localhost\nrelay_domains = hash:%s\n", path_of("nonexistent"));
    write_file("main.cf", sb_str(&cf));
    CHECK(cfg_load(dir, &err) == 0);
    domains_init();
    CHECK(domain_is_local("localhost") == 1);
    CHECK(domain_is_relay("relay.example") == -1);
    sb_reset(&err);
    CHECK(domains_check(P_relay_domains, &err) == -1);
    CHECK(strstr(sb_str(&err), "relay_domains: table hash:") != NULL);
    CHECK(domain_is_virtual_alias("x.example") == 0);   /* $virtual_alias_maps is empty */
    sb_free(&cf);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    log_open("test_map_tables");
    log_configure("tern", "mail", path_of("maillog"));
    test_cidr();
    test_cidr_errors();
    test_static();
    test_sqlite();
    test_sqlite_errors();
    test_lists();
    test_domains();

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (getenv("TEST_MAPS_KEEP"))
        printf("kept %s\n", dir);
    else
        CHECK(system(cmd) == 0);
    sb_free(&err);
    return check_summary();
}
