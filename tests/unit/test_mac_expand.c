/* test_mac_expand.c: unit tests of the $name expander (lib/util/mac_expand.c):
 * each syntax, good and bad templates, undefined names, the filter hook,
 * recursive values, the depth bound and the output bound. */
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "mac_expand.h"

/* A small table of names; "loop" and "deep*" are for recursive mode. */
static const struct mac_var table[] = {
    { "a", "alpha" }, { "empty", "" }, { "dollar", "$$" }, { "ab", "[$a$(a)]" },
    { "loop", "x$loop" }, { "nested", "${a?<${empty:E}>}" }, { "ref_empty", "$empty" },
    { "slash", "a/b c" }, { "deep1", "$deep2" }, { "deep2", "$deep3" }, { "deep3", "end" },
    { NULL, NULL },
};

/* Values of names starting with 's' are untrusted: keep letters only. */
static int filter(struct strbuf *out, const char *name, size_t len, const char *value, void *context)
{
    (void)context;
    (void)len;
    if (name[0] != 's')
        return sb_appends(out, value);
    for (; *value; value++)
        if (sb_appendc(out, (*value >= 'a' && *value <= 'z') ? *value : '_') < 0)
            return -1;
    return 0;
}

#define PLAIN 0
#define FILTER 1
#define RECURSE 2

static int run(const char *tmpl, int how, int depth, size_t limit, struct strbuf *out)
{
    const struct mac_expand_spec spec = { mac_var_table_lookup, how & FILTER ? filter : NULL, (void *)table,
                                          how & RECURSE ? MAC_EXP_RECURSE : 0, depth };
    sb_free(out);
    sb_init(out, limit);
    return mac_expand(out, tmpl, &spec);
}

static void expect(const char *tmpl, int how, int status, const char *result)
{
    struct strbuf out = STRBUF_INIT(0);
    int rc = run(tmpl, how, 4, 1024, &out);
    CHECK(rc == status);
    if (rc != status)
        fprintf(stderr, "  template \"%s\": status %d, expected %d\n", tmpl, rc, status);
    if (result)
        CHECK_STR(sb_str(&out), result);
    sb_free(&out);
}

static void test_good(void)
{
    expect("", PLAIN, MAC_EXP_OK, "");
    expect("no names", PLAIN, MAC_EXP_OK, "no names");
    expect("$a-${a}.$(a)", PLAIN, MAC_EXP_OK, "alpha-alpha.alpha");
    expect("$a_x$a", PLAIN, MAC_EXP_UNDEF, "alpha");            /* the name is a_x */
    expect("cost $$5 $$", PLAIN, MAC_EXP_OK, "cost $5 $");
    expect("$dollar", PLAIN, MAC_EXP_OK, "$$");                 /* values are not templates */
    expect("${a?yes}${empty?no}${nosuch?no}", PLAIN, MAC_EXP_OK, "yes");
    expect("${a:no}${empty:E}${nosuch:U}", PLAIN, MAC_EXP_OK, "EU");
    expect("${a?[$a]}", PLAIN, MAC_EXP_OK, "[alpha]");
    expect("${a?${empty:{x}}}", PLAIN, MAC_EXP_OK, "{x}");      /* braces nest */
    expect("$(a?(x))", PLAIN, MAC_EXP_OK, "(x)");
    expect("${a?$(a)}", PLAIN, MAC_EXP_OK, "alpha");
    expect("${a?}", PLAIN, MAC_EXP_OK, "");
    expect("$nosuch/x", PLAIN, MAC_EXP_UNDEF, "/x");
    expect("${nosuch}", PLAIN, MAC_EXP_UNDEF, "");
    expect("<$slash>", FILTER, MAC_EXP_OK, "<a_b_c>");
    expect("<$a>", FILTER, MAC_EXP_OK, "<alpha>");
    expect("${a?$slash}", FILTER, MAC_EXP_OK, "a_b_c");
    expect("$ab", RECURSE, MAC_EXP_OK, "[alphaalpha]");
    expect("$dollar", RECURSE, MAC_EXP_OK, "$");
    expect("$nested", RECURSE, MAC_EXP_OK, "<E>");
    expect("${ref_empty?set}${ref_empty:unset}", RECURSE, MAC_EXP_OK, "unset");
    expect("$deep1", RECURSE, MAC_EXP_OK, "end");
}

static void test_bad(void)
{
    expect("${a", PLAIN, MAC_EXP_ERROR, NULL);
    expect("$(a", PLAIN, MAC_EXP_ERROR, NULL);
    expect("${a?${a}", PLAIN, MAC_EXP_ERROR, NULL);
    expect("${a)", PLAIN, MAC_EXP_ERROR, NULL);
    expect("$", PLAIN, MAC_EXP_ERROR, NULL);
    expect("a $ b", PLAIN, MAC_EXP_ERROR, NULL);
    expect("${}", PLAIN, MAC_EXP_ERROR, NULL);
    expect("${?x}", PLAIN, MAC_EXP_ERROR, NULL);
    expect("${a b}", PLAIN, MAC_EXP_ERROR, NULL);
    expect("${a-b}", PLAIN, MAC_EXP_ERROR, NULL);
    expect("${a?${}}", PLAIN, MAC_EXP_ERROR, NULL);
    expect("${empty?${}}", PLAIN, MAC_EXP_OK, "");             /* text not taken is not read */
    expect("$loop", RECURSE, MAC_EXP_ERROR, NULL);
    expect("${loop?x}", RECURSE, MAC_EXP_ERROR, NULL);
}

static void test_depth(void)
{
    struct strbuf out = STRBUF_INIT(0);
    /* deep1 -> deep2 -> deep3 is three nested expansions */
    CHECK(run("$deep1", RECURSE, 3, 100, &out) == MAC_EXP_OK);
    CHECK(run("$deep1", RECURSE, 2, 100, &out) == MAC_EXP_ERROR);
    /* each conditional text is one level */
    CHECK(run("${a?${a?${a?x}}}", PLAIN, 3, 100, &out) == MAC_EXP_OK);
    CHECK_STR(sb_str(&out), "x");
    CHECK(run("${a?${a?${a?x}}}", PLAIN, 2, 100, &out) == MAC_EXP_ERROR);
    CHECK(run("plain", PLAIN, 0, 100, &out) == MAC_EXP_OK);
    sb_free(&out);
}

static void test_bound(void)
{
    struct strbuf out = STRBUF_INIT(0);
    CHECK(run("$a$a", PLAIN, 4, 10, &out) == MAC_EXP_OK);      /* exactly 10 */
    CHECK(out.len == 10);
    CHECK(run("$a$a!", PLAIN, 4, 10, &out) == MAC_EXP_ERROR);
    CHECK(out.len <= 10);
    CHECK(run("$a$a$a", PLAIN, 4, 10, &out) == MAC_EXP_ERROR);
    CHECK(out.len <= 10);
    CHECK(run("$slash$slash$slash", FILTER, 4, 10, &out) == MAC_EXP_ERROR);
    CHECK(out.len <= 10);
    CHECK(run("$ab$ab", RECURSE, 4, 20, &out) == MAC_EXP_ERROR);
    CHECK(out.len <= 20);
    /* the emptiness test of a recursive value is bounded too */
    CHECK(run("${ab?x}", RECURSE, 4, 5, &out) == MAC_EXP_ERROR);
    /* nothing is written past the bound even for a long literal */
    char big[300];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    CHECK(run(big, PLAIN, 4, 100, &out) == MAC_EXP_ERROR);
    CHECK(out.len <= 100);
    sb_free(&out);
}

static void test_var_find(void)
{
    const struct mac_var vars[] = { { "ab", "1" }, { "a", "2" }, { "none", NULL } };
    CHECK_STR(mac_var_find(vars, 3, "abc", 2), "1");
    CHECK_STR(mac_var_find(vars, 3, "abc", 1), "2");
    CHECK(mac_var_find(vars, 3, "abc", 3) == NULL);
    CHECK(mac_var_find(vars, 3, "none", 4) == NULL);
    CHECK(mac_var_find(vars, 3, "", 0) == NULL);
}

int main(void)
{
    test_var_find();
    test_good();
    test_bad();
    test_depth();
    test_bound();
    return check_summary();
}
