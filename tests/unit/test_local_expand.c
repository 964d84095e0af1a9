/* test_local_expand.c: unit tests of the local agent's parser of alias
 * values, .forward and :include: files (local_expand.c), with hostile
 * input, and of forward_path expansion (local_forward.c). */
#include <string.h>

#include "check.h"
#include "local.h"
#include "util.h"

struct local_settings local_cfg;

static int parse(const char *text, int flags, struct dest_list *out)
{
    struct strbuf err = STRBUF_INIT(1024);
    local_dest_list_free(out);
    int rc = local_expand_parse(text, strlen(text), flags, out, &err);
    sb_free(&err);
    return rc;
}

static void test_addresses(void)
{
    struct dest_list l = { 0 };
    CHECK(parse("alice, bob@Example.COM", 0, &l) == 0);
    CHECK(l.n == 2);
    CHECK(l.items[0].kind == DEST_ADDRESS);
    CHECK_STR(l.items[0].value, "alice");
    CHECK_STR(l.items[1].value, "bob@Example.COM");   /* as written; matched without case */
    CHECK(!l.items[0].direct);

    CHECK(parse("Alice Smith <alice@example.com>", 0, &l) == 0);
    CHECK(l.n == 1);
    CHECK_STR(l.items[0].value, "alice@example.com");

    CHECK(parse("a b\tc", 0, &l) == 0);
    CHECK(l.n == 3);
    CHECK_STR(l.items[2].value, "c");

    CHECK(parse("\\alice, carol", 0, &l) == 0);
    CHECK(l.n == 2);
    CHECK(l.items[0].direct);
    CHECK_STR(l.items[0].value, "alice");
    CHECK(!l.items[1].direct);

    CHECK(parse("\"john doe\"@example.com", 0, &l) == 0);
    CHECK(l.n == 1);
    CHECK_STR(l.items[0].value, "\"john doe\"@example.com");

    CHECK(parse("", 0, &l) == 0 && l.n == 0);
    CHECK(parse(" , ,,\n ", 0, &l) == 0 && l.n == 0);
    local_dest_list_free(&l);
}

static void test_commands_files_includes(void)
{
    struct dest_list l = { 0 };
    CHECK(parse("\"|/usr/bin/foo arg, x\"", 0, &l) == 0);
    CHECK(l.n == 1 && l.items[0].kind == DEST_COMMAND);
    CHECK_STR(l.items[0].value, "/usr/bin/foo arg, x");

    CHECK(parse("|\"/bin/cat > /tmp/x\", bob", 0, &l) == 0);
    CHECK(l.n == 2 && l.items[0].kind == DEST_COMMAND);
    CHECK_STR(l.items[0].value, "/bin/cat > /tmp/x");

    CHECK(parse("| /bin/cat", 0, &l) == 0);
    CHECK_STR(l.items[0].value, "/bin/cat");

    CHECK(parse("\"|echo \\\"hi\\\"\"", 0, &l) == 0);
    CHECK(l.n == 1);
    CHECK_STR(l.items[0].value, "echo \"hi\"");

    CHECK(parse("/var/log/mail copy", 0, &l) == 0);
    CHECK(l.n == 1 && l.items[0].kind == DEST_FILE);
    CHECK_STR(l.items[0].value, "/var/log/mail copy");

    CHECK(parse("\"/tmp/a,b\"", 0, &l) == 0);
    CHECK(l.n == 1 && l.items[0].kind == DEST_FILE);
    CHECK_STR(l.items[0].value, "/tmp/a,b");

    CHECK(parse(":include:/etc/list, :INCLUDE: /etc/other", 0, &l) == 0);
    CHECK(l.n == 2 && l.items[0].kind == DEST_INCLUDE && l.items[1].kind == DEST_INCLUDE);
    CHECK_STR(l.items[0].value, "/etc/list");
    CHECK_STR(l.items[1].value, "/etc/other");
    local_dest_list_free(&l);
}

static void test_files_with_comments(void)
{
    struct dest_list l = { 0 };
    const char *text = "# my forward file\nalice\n   # indented comment, with comma\n"
                       "bob, carol\r\n\"|/bin/true # not a comment\"\n";
    CHECK(parse(text, LOCAL_PARSE_FILE, &l) == 0);
    CHECK(l.n == 4);
    if (l.n == 4) {
        CHECK_STR(l.items[0].value, "alice");
        CHECK_STR(l.items[2].value, "carol");
        CHECK(l.items[3].kind == DEST_COMMAND);
        CHECK_STR(l.items[3].value, "/bin/true # not a comment");
    }
    /* without the file flag '#' is an ordinary local-part character */
    CHECK(parse("# x", 0, &l) == 0 && l.n == 2);
    CHECK(parse("# only a comment", LOCAL_PARSE_FILE, &l) == 0 && l.n == 0);
    local_dest_list_free(&l);
}

static void test_hostile(void)
{
    struct dest_list l = { 0 };
    CHECK(parse("\"unterminated", 0, &l) < 0);
    CHECK(parse("\"|a\nb\"", 0, &l) < 0);
    CHECK(parse(":include:relative", 0, &l) < 0);
    CHECK(parse(":include:", 0, &l) < 0);
    CHECK(parse("|", 0, &l) < 0);
    CHECK(parse("|\"\"", 0, &l) < 0);
    CHECK(parse("/tmp/a\001b", 0, &l) < 0);
    CHECK(parse("a@@b", 0, &l) < 0);
    CHECK(parse("\\alice@example.com", 0, &l) < 0);
    CHECK(parse("<unbalanced", 0, &l) < 0);
    CHECK(parse("\\", 0, &l) < 0);         /* a lone backslash (found by fuzz_local_alias) */
    CHECK(parse("a, \\ ,b", 0, &l) < 0);
    {
        struct strbuf err = STRBUF_INIT(1024);
        CHECK(local_expand_parse("a\0b", 3, 0, &l, &err) < 0);
        sb_free(&err);
    }
    struct strbuf big = STRBUF_INIT(0);
    for (int i = 0; i <= LOCAL_DEST_MAX; i++)
        sb_appendf(&big, "u%d,", i);
    CHECK(parse(sb_str(&big), 0, &l) < 0);
    /* the same count in one item, separated by white space (found by
     * fuzz_local_alias): the bound is on destinations, not items */
    sb_reset(&big);
    for (int i = 0; i <= LOCAL_DEST_MAX; i++)
        sb_appends(&big, "u ");
    CHECK(parse(sb_str(&big), 0, &l) < 0);
    CHECK(l.n <= LOCAL_DEST_MAX);
    sb_reset(&big);
    sb_appendc(&big, '/');
    for (int i = 0; i < LOCAL_ITEM_MAX + 10; i++)
        sb_appendc(&big, 'x');
    CHECK(parse(sb_str(&big), 0, &l) < 0);
    sb_free(&big);
    local_dest_list_free(&l);
}

static void test_forward_expand(void)
{
    struct local_message msg = { .fd = -1, .mark_fd = -1 };
    struct local_delivery d = { .msg = &msg, .delivered_to = "u+a/../b@x", .address = "u+a/../b@x",
                                .local = "u+a/../b", .extension = "a/../b", .domain = "x" };
    struct local_user u = { .name = "u", .uid = 1000, .gid = 1000, .home = "/home/u",
                            .shell = "/bin/sh" };
    struct strbuf out = STRBUF_INIT(4096);
    local_cfg.recipient_delimiter = "+";
    CHECK(local_forward_expand("$home/.forward${recipient_delimiter}${extension}", &d, &u, &out) == 0);
    CHECK_STR(sb_str(&out), "/home/u/.forward+a_.._b");
    CHECK(local_forward_expand("${home}/.forward", &d, &u, &out) == 0);
    CHECK_STR(sb_str(&out), "/home/u/.forward");
    CHECK(local_forward_expand("$home/.fwd${extension?-$extension}${extension:-none}", &d, &u, &out) == 0);
    CHECK_STR(sb_str(&out), "/home/u/.fwd-a_.._b");
    d.extension = "";
    CHECK(local_forward_expand("$home/.fwd${extension?-$extension}${extension:-none}", &d, &u, &out) == 0);
    CHECK_STR(sb_str(&out), "/home/u/.fwd-none");
    CHECK(local_forward_expand("$nosuch/x", &d, &u, &out) < 0);
    CHECK(local_forward_expand("${home", &d, &u, &out) < 0);
    CHECK(local_forward_expand("$home/$", &d, &u, &out) < 0);
    CHECK(local_forward_expand("${nosuch}", &d, &u, &out) < 0);
    /* as in Postfix: $$, $(name), nested braces, a conditional on any name */
    CHECK(local_forward_expand("$(home)/.f$$${nosuch:x}", &d, &u, &out) == 0);
    CHECK_STR(sb_str(&out), "/home/u/.f$x");
    d.extension = "a/b";
    CHECK(local_forward_expand("${extension?$home/${local?[$local]}/$extension}", &d, &u, &out) == 0);
    CHECK_STR(sb_str(&out), "/home/u/[u+a_.._b]/a_b");
    /* the address-derived values are filtered, the password file's are not */
    d.local = "u+a/../b";
    CHECK(local_forward_expand("$home/$user/$shell/$local", &d, &u, &out) == 0);
    CHECK_STR(sb_str(&out), "/home/u/u//bin/sh/u+a_.._b");
    /* a path longer than the buffer is no file name */
    struct strbuf small = STRBUF_INIT(8);
    CHECK(local_forward_expand("$home/.forward", &d, &u, &small) < 0);
    sb_free(&small);
    sb_free(&out);
}

int main(void)
{
    test_addresses();
    test_commands_files_includes();
    test_files_with_comments();
    test_hostile();
    test_forward_expand();
    return check_summary();
}
