/* test_map_query.c: unit tests of what the database tables share
 * (lib/global/map_query.c, map_expand.c, map_query_domain.c): the query
 * file reader with good and broken files, the %-expansion of query
 * templates and result formats (every sequence, suppression, quoting only
 * of values, bad templates, size limits), the joining of results under
 * expansion_limit, and the domain restriction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "map_query.h"
#include "match_list.h"
#include "strbuf.h"

static char dir[] = "/tmp/tern-test-map-query-XXXXXX";
static struct strbuf err = STRBUF_INIT(0);

static const char *write_file(const char *name, const char *data, size_t len)
{
    static char path[8][512];
    static int slot;
    char *p = path[slot++ % 8];
    snprintf(p, sizeof(path[0]), "%s/%s", dir, name);
    FILE *fp = fopen(p, "w");
    CHECK(fp != NULL);
    if (fp) {
        CHECK(fwrite(data, 1, len, fp) == len);
        fclose(fp);
    }
    return p;
}

static int log_contains(const char *want)
{
    char path[600], buf[65536];
    snprintf(path, sizeof(path), "%s/maillog", dir);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return strstr(buf, want) != NULL;
}

static const char *const known[] = { "hosts", "query", "user", "password", "expansion_limit",
                                     "bind", NULL };

static struct map_query_file *read_text(const char *text)
{
    sb_reset(&err);
    return map_query_read(write_file("q.cf", text, strlen(text)), known, &err);
}

static int read_fails_with(const char *text, size_t len, const char *want)
{
    sb_reset(&err);
    struct map_query_file *f = map_query_read(write_file("bad.cf", text, len), known, &err);
    if (f) {
        map_query_free(f);
        return 0;
    }
    if (!strstr(sb_str(&err), want)) {
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", sb_str(&err), want);
        return 0;
    }
    return 1;
}

static void test_reader(void)
{
    struct map_query_file *f = read_text(
        "# a comment\n"
        "hosts = db1.example.com\n"
        "   db2.example.com:5433\n"
        "\n"
        "query=SELECT x FROM t WHERE a = '%s' AND b = 'x=y'\n"
        "user = first\n"
        "user = second   \r\n"
        "passwrod = typo\n"
        "password =\n");
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK_STR(map_query_str(f, "hosts", NULL), "db1.example.com db2.example.com:5433");
    CHECK_STR(map_query_str(f, "query", NULL), "SELECT x FROM t WHERE a = '%s' AND b = 'x=y'");
    CHECK_STR(map_query_str(f, "user", NULL), "second");          /* the last one wins */
    CHECK_STR(map_query_str(f, "password", "dflt"), "");          /* set, empty */
    CHECK(map_query_has(f, "password"));
    CHECK(!map_query_has(f, "passwrod"));
    CHECK_STR(map_query_str(f, "bind", "dflt"), "dflt");
    CHECK(log_contains("line 8: unknown parameter \"passwrod\" ignored"));
    long n = 0;
    bool b = false;
    CHECK(map_query_int(f, "expansion_limit", 7, 0, 10, &n, &err) == 0 && n == 7);
    CHECK(map_query_bool(f, "bind", true, &b, &err) == 0 && b);
    map_query_free(f);

    f = read_text("expansion_limit = 12\nbind = No\n");
    CHECK(f && map_query_bool(f, "bind", true, &b, &err) == 0 && !b);
    sb_reset(&err);
    CHECK(f && map_query_int(f, "expansion_limit", 0, 0, 10, &n, &err) == -1);
    CHECK(strstr(sb_str(&err), "q.cf:1: expansion_limit = \"12\": expected a number from 0 to 10"));
    map_query_free(f);
    static const char *const bad_numbers[] = { "-1", "1x", "", "1 2", "+1", "0x10", "99999999999999999999" };
    for (size_t i = 0; i < sizeof(bad_numbers) / sizeof(bad_numbers[0]); i++) {
        char text[100];
        snprintf(text, sizeof(text), "expansion_limit = %s\nbind = maybe\n", bad_numbers[i]);
        f = read_text(text);
        sb_reset(&err);
        CHECK(f && map_query_int(f, "expansion_limit", 0, 0, 1000, &n, &err) == -1);
        sb_reset(&err);
        CHECK(f && map_query_bool(f, "bind", true, &b, &err) == -1);
        CHECK(strstr(sb_str(&err), "expected yes or no"));
        map_query_free(f);
    }

    CHECK(read_fails_with("hosts = x\nno equals sign here\n", 29, "bad.cf:2: expected \"name = value\""));
    CHECK(read_fails_with("= value\n", 8, "bad.cf:1: bad parameter name"));
    CHECK(read_fails_with("two words = value\n", 18, "bad parameter name \"two words\""));
    CHECK(read_fails_with("hosts = a\0b\n", 12, "bad.cf:1: NUL byte"));
    size_t big = 70000;
    char *huge = malloc(big);
    memset(huge, 'a', big);
    memcpy(huge, "query = ", 8);
    huge[big - 1] = '\n';
    CHECK(read_fails_with(huge, big, "longer than"));
    free(huge);
    sb_reset(&err);
    CHECK(map_query_read("/nonexistent/q.cf", known, &err) == NULL);
    CHECK(strstr(sb_str(&err), "cannot open /nonexistent/q.cf"));
}

/* Quote by wrapping every value in [ ], doubling ']': shows exactly what
 * went through the quoting function. */
static int bracket(struct strbuf *out, const char *s, size_t n, void *ctx)
{
    int *calls = ctx;
    (*calls)++;
    if (sb_appendc(out, '[') < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((s[i] == ']' && sb_appendc(out, ']') < 0) || sb_appendc(out, s[i]) < 0)
            return -1;
    return sb_appendc(out, ']');
}

static int refuse(struct strbuf *out, const char *s, size_t n, void *ctx)
{
    (void)out, (void)s, (void)n, (void)ctx;
    return -1;
}

static const char *expand(const char *fmt, enum map_expand_kind kind, const char *value,
                          const char *key, int *rc)
{
    static struct strbuf out = STRBUF_INIT(4096);
    int calls = 0;
    sb_reset(&out);
    sb_reset(&err);
    *rc = map_expand(&out, fmt, kind, value, key, kind == MAP_EXPAND_QUERY ? bracket : NULL,
                     &calls, &err);
    return sb_str(&out);
}

#define EXPANDS(fmt, kind, value, key, want) do { \
    int rc_; const char *got_ = expand(fmt, kind, value, key, &rc_); \
    CHECK(rc_ == 1); CHECK_STR(got_, want); } while (0)
#define SUPPRESSES(fmt, kind, value, key) do { \
    int rc_; expand(fmt, kind, value, key, &rc_); CHECK(rc_ == 0); } while (0)

static void test_expand(void)
{
    const enum map_expand_kind Q = MAP_EXPAND_QUERY, R = MAP_EXPAND_RESULT;
    EXPANDS("SELECT 1", Q, "user@example.com", NULL, "SELECT 1");
    EXPANDS("k='%s'", Q, "user@example.com", NULL, "k='[user@example.com]'");
    EXPANDS("%u|%d", Q, "user@mail.example.com", NULL, "[user]|[mail.example.com]");
    EXPANDS("%1.%2.%3", Q, "user@mail.example.com", NULL, "[com].[example].[mail]");
    EXPANDS("100%% %s%%", Q, "x", NULL, "100% [x]%");
    EXPANDS("%u", Q, "nodomain", NULL, "[nodomain]");            /* %u of a bare key: all */
    EXPANDS("%u", Q, "a@b@c.example", NULL, "[a@b]");            /* the last '@' splits */
    EXPANDS("%s", Q, "o']'brien", NULL, "[o']]'brien]");         /* quoted, as the back end says */
    EXPANDS("%s", Q, "", NULL, "[]");
    /* in a query %S %U %D are %s %u %d, as Postfix has them */
    EXPANDS("%S|%U|%D", Q, "user@example.com", NULL, "[user@example.com]|[user]|[example.com]");
    SUPPRESSES("%D", Q, "nodomain", NULL);
    SUPPRESSES("%d", Q, "nodomain", NULL);
    SUPPRESSES("%d", Q, "user@", NULL);
    SUPPRESSES("%u", Q, "@example.com", NULL);
    SUPPRESSES("%3", Q, "user@example.com", NULL);
    SUPPRESSES("%1", Q, "user", NULL);
    SUPPRESSES("%2", Q, "user@a..b", NULL);                      /* an empty label */
    SUPPRESSES("%1", Q, "user@a.", NULL);
    /* results: no quoting; %S %U %D are the key's */
    EXPANDS("smtp:[%s]", R, "relay.example", "user@example.com", "smtp:[relay.example]");
    EXPANDS("%u+%U@%D", R, "box@store.example", "user@example.com", "box+user@example.com");
    SUPPRESSES("%D", R, "value", "bare-key");
    SUPPRESSES("%d", R, "value-without-domain", "user@example.com");

    /* a quoting function that refuses: an error, not a suppression */
    struct strbuf out = STRBUF_INIT(0);
    sb_reset(&err);
    CHECK(map_expand(&out, "x=%s", Q, "v", NULL, refuse, NULL, &err) == -1);
    CHECK(err.len > 0);
    /* the output's limit */
    struct strbuf small = STRBUF_INIT(8);
    sb_reset(&err);
    CHECK(map_expand(&small, "%s", Q, "a value longer than eight", NULL, NULL, NULL, &err) == -1);
    CHECK(strstr(sb_str(&err), "too long"));
    sb_reset(&small);
    sb_reset(&err);
    CHECK(map_expand(&small, "literal text longer", Q, "v", NULL, NULL, NULL, &err) == -1);
    sb_free(&small);
    sb_free(&out);

    /* templates checked at open */
    static const char *const good_q[] = { "", "plain", "%%", "%s%u%d%1%9", "a%%b", "%S%U%D" };
    static const char *const bad_q[] = { "%", "abc%", "%x", "%0", "%%%" };
    for (size_t i = 0; i < sizeof(good_q) / sizeof(good_q[0]); i++) {
        sb_reset(&err);
        CHECK(map_expand_check(good_q[i], Q, "query", &err) == 0);
    }
    for (size_t i = 0; i < sizeof(bad_q) / sizeof(bad_q[0]); i++) {
        sb_reset(&err);
        CHECK(map_expand_check(bad_q[i], Q, "query", &err) == -1);
        CHECK(strncmp(sb_str(&err), "query: ", 7) == 0);
    }
    sb_reset(&err);
    CHECK(map_expand_check("%S %U %D %s", R, "result_format", &err) == 0);
    CHECK(map_expand_check("%X", R, "result_format", &err) == -1);
    CHECK(strstr(sb_str(&err), "unknown expansion \"%X\""));
}

static void test_results(void)
{
    struct strbuf out = STRBUF_INIT(0);
    struct map_results r;
    map_results_init(&r, &out, 0);
    sb_reset(&err);
    CHECK(map_results_add(&r, "%s", "one", "k", &err) == 0);
    CHECK(map_results_add(&r, "%s", "", "k", &err) == 0);       /* skipped */
    CHECK(map_results_add(&r, "%s", NULL, "k", &err) == 0);     /* skipped */
    CHECK(map_results_add(&r, "<%d>", "nodomain", "k", &err) == 0);   /* suppressed */
    CHECK(map_results_add(&r, "<%s>", "two", "k", &err) == 0);
    CHECK_STR(sb_str(&out), "one,<two>");
    CHECK(r.count == 2 && !r.over);

    sb_reset(&out);
    map_results_init(&r, &out, 2);
    CHECK(map_results_add(&r, "%s", "a", "k", &err) == 0);
    CHECK(map_results_add(&r, "%s", "b", "k", &err) == 0);
    sb_reset(&err);
    CHECK(map_results_add(&r, "%s", "c", "k", &err) == -1);
    CHECK(r.over);
    CHECK(strstr(sb_str(&err), "expansion_limit = 2"));
    CHECK_STR(sb_str(&out), "a,b");

    struct strbuf tiny = STRBUF_INIT(5);
    map_results_init(&r, &tiny, 0);
    CHECK(map_results_add(&r, "%s", "abc", "k", &err) == 0);
    CHECK(map_results_add(&r, "%s", "def", "k", &err) == -1);
    CHECK_STR(sb_str(&tiny), "abc");                              /* nothing half-added */
    sb_free(&tiny);
    sb_free(&out);
}

static void test_domains(void)
{
    sb_reset(&err);
    CHECK(map_query_domains_open("", &err) == NULL && err.len == 0);
    CHECK(map_query_domains_open(" , ", &err) == NULL && err.len == 0);
    const char *table = write_file("domains", "listed.example ok\n", 18);
    char spec[700];
    snprintf(spec, sizeof(spec), "Example.COM, texthash:%s", table);
    struct match_list *d = map_query_domains_open(spec, &err);
    CHECK(d != NULL);
    CHECK(map_query_domains_allow(d, "user@example.com") == 1);
    CHECK(map_query_domains_allow(d, "user@EXAMPLE.com") == 1);
    CHECK(map_query_domains_allow(d, "user@listed.example") == 1);
    CHECK(map_query_domains_allow(d, "user@sub.example.com") == 0);   /* exact names */
    CHECK(map_query_domains_allow(d, "user@other.example") == 0);
    CHECK(map_query_domains_allow(d, "example.com") == 0);
    CHECK(map_query_domains_allow(d, "@example.com") == 0);
    CHECK(map_query_domains_allow(d, "user@") == 0);
    CHECK(map_query_domains_allow(NULL, "anything") == 1);
    match_list_free(d);
    sb_reset(&err);
    /* files, parents and exclusions, as in any domain list */
    const char *file = write_file("domain-list", "# listed\nfile.example\n", 22);
    snprintf(spec, sizeof(spec), "!no.example.com, .example.com, %s", file);
    d = map_query_domains_open(spec, &err);
    CHECK(d != NULL);
    CHECK(map_query_domains_allow(d, "user@file.example") == 1);
    CHECK(map_query_domains_allow(d, "user@sub.example.com") == 1);
    CHECK(map_query_domains_allow(d, "user@no.example.com") == 0);
    CHECK(map_query_domains_allow(d, "user@example.com") == 0);
    match_list_free(d);
    sb_reset(&err);
    CHECK(map_query_domains_open("/nonexistent/domains", &err) == NULL);
    CHECK(strstr(sb_str(&err), "domain: cannot read /nonexistent/domains"));
    sb_reset(&err);
    CHECK(map_query_domains_open("nosuchtype:/x", &err) == NULL);
    CHECK(err.len > 0);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char logpath[600];
    snprintf(logpath, sizeof(logpath), "%s/maillog", dir);
    log_open("test_map_query");
    log_configure("tern", "mail", logpath);
    test_reader();
    test_expand();
    test_results();
    test_domains();
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    sb_free(&err);
    return check_summary();
}
