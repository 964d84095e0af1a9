/* test_virtual_lookup.c: unit tests of the virtual agent's table lookups
 * (virtual/virtual_lookup.c): the keys in Postfix's order (full address,
 * without the extension, @domain), the mailbox path under
 * virtual_mailbox_base with Maildir for a trailing '/', and the answers
 * that must never become a delivery: a path that climbs out of the base,
 * no or a bad uid or gid, a uid below virtual_minimum_uid. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "maps.h"
#include "strbuf.h"
#include "virtual.h"

struct virtual_settings virtual_cfg;

static struct maplist *tables(const char *spec)
{
    struct strbuf err = STRBUF_INIT(1024);
    struct maplist *l = maplist_open(spec, &err);
    if (!l)
        fprintf(stderr, "%s: %s\n", spec, sb_str(&err));
    CHECK(l != NULL);
    sb_free(&err);
    return l;
}

static void test_path(void)
{
    char path[VIRTUAL_PATH_MAX];
    bool maildir = false;
    struct strbuf why = STRBUF_INIT(256);
    CHECK(virtual_mailbox_path("/var/vmail", "example.com/alice/", path, sizeof(path), &maildir,
                               &why) == 0);
    CHECK_STR(path, "/var/vmail/example.com/alice/");
    CHECK(maildir);
    CHECK(virtual_mailbox_path("/var/vmail", "example.com/bob", path, sizeof(path), &maildir,
                               &why) == 0);
    CHECK_STR(path, "/var/vmail/example.com/bob");
    CHECK(!maildir);
    CHECK(virtual_mailbox_path("/b", "x/../../etc/passwd", path, sizeof(path), &maildir, &why) < 0);
    CHECK(strstr(sb_str(&why), "..") != NULL);
    CHECK(virtual_mailbox_path("/b", "..", path, sizeof(path), &maildir, &why) < 0);
    CHECK(virtual_mailbox_path("/b", "a/..//", path, sizeof(path), &maildir, &why) < 0);
    CHECK(virtual_mailbox_path("/b", "", path, sizeof(path), &maildir, &why) < 0);
    CHECK(virtual_mailbox_path("/b", "a\nb", path, sizeof(path), &maildir, &why) < 0);
    CHECK(virtual_mailbox_path("/b", "a..b/..c/", path, sizeof(path), &maildir, &why) == 0);
    char small[8];
    CHECK(virtual_mailbox_path("/b", "abcdefgh", small, sizeof(small), &maildir, &why) < 0);
    sb_free(&why);
}

static void test_ids(void)
{
    long long id = -1;
    CHECK(virtual_parse_id("5000", &id) == 0 && id == 5000);
    CHECK(virtual_parse_id("0", &id) == 0 && id == 0);
    CHECK(virtual_parse_id("", &id) < 0);
    CHECK(virtual_parse_id("-1", &id) < 0);
    CHECK(virtual_parse_id("50x", &id) < 0);
    CHECK(virtual_parse_id(" 5", &id) < 0);
    CHECK(virtual_parse_id("4294967295", &id) < 0);
    CHECK(virtual_parse_id("99999999999999999999999", &id) < 0);
}

static int lookup(const char *local, const char *domain, struct virtual_mailbox *mb,
                  struct delivery_status *st)
{
    memset(mb, 0, sizeof(*mb));
    memset(st, 0, sizeof(*st));
    return virtual_lookup(&virtual_cfg, local, domain, mb, st);
}

static void test_lookup(void)
{
    struct virtual_mailbox mb;
    struct delivery_status st;
    virtual_cfg.base = "/v";
    virtual_cfg.recipient_delimiter = "+";
    virtual_cfg.minimum_uid = 100;
    virtual_cfg.mailbox_maps = tables("inline:{ alice@a.example=a.example/alice/, "
                                      "bob+box@a.example=a.example/bob-box, "
                                      "bob@a.example=a.example/bob, @c.example=c.example/all/, "
                                      "evil@a.example=../../etc/x, root@a.example=a.example/root/, "
                                      "nogid@b.example=b/nogid/, badid@a.example=a/badid/ }");
    virtual_cfg.uid_maps = tables("inline:{ root@a.example=0, badid@a.example=12x }, static:5000");
    virtual_cfg.gid_maps = tables("inline:{ alice@a.example=5001, @a.example=5002, "
                                  "@c.example=5003 }");
    CHECK(lookup("alice", "a.example", &mb, &st) == 0);
    CHECK_STR(mb.path, "/v/a.example/alice/");
    CHECK(mb.maildir && mb.uid == 5000 && mb.gid == 5001);
    /* the extension: the full address first, then without it */
    CHECK(lookup("bob+box", "a.example", &mb, &st) == 0);
    CHECK_STR(mb.path, "/v/a.example/bob-box");
    CHECK(!mb.maildir && mb.gid == 5002);
    CHECK(lookup("bob+other", "a.example", &mb, &st) == 0);
    CHECK_STR(mb.path, "/v/a.example/bob");
    /* @domain for the rest of a domain */
    CHECK(lookup("anyone", "c.example", &mb, &st) == 0);
    CHECK_STR(mb.path, "/v/c.example/all/");
    CHECK(mb.gid == 5003);
    /* unknown: bounced as Postfix does */
    CHECK(lookup("carol", "a.example", &mb, &st) < 0);
    CHECK(st.status == 5);
    CHECK_STR(st.dsn, "5.1.1");
    CHECK_STR(st.reason, "unknown user: \"carol@a.example\"");
    /* configuration errors wait */
    CHECK(lookup("evil", "a.example", &mb, &st) < 0);
    CHECK(st.status == 4 && strcmp(st.dsn, "4.3.5") == 0 && strstr(st.reason, "..") != NULL);
    CHECK(lookup("root", "a.example", &mb, &st) < 0);
    CHECK(st.status == 4 && strcmp(st.dsn, "4.3.5") == 0);
    CHECK(strstr(st.reason, "below virtual_minimum_uid (100)") != NULL);
    CHECK(lookup("nogid", "b.example", &mb, &st) < 0);
    CHECK(st.status == 4 && strstr(st.reason, "virtual_gid_maps has no gid") != NULL);
    CHECK(lookup("badid", "a.example", &mb, &st) < 0);
    CHECK(st.status == 4 && strstr(st.reason, "bad uid") != NULL);
    /* the minimum is never below 1: root is never a mailbox owner */
    virtual_cfg.minimum_uid = 0;
    CHECK(lookup("root", "a.example", &mb, &st) < 0);
    /* no tables: every recipient is unknown */
    struct maplist *saved = virtual_cfg.mailbox_maps;
    virtual_cfg.mailbox_maps = NULL;
    CHECK(lookup("alice", "a.example", &mb, &st) < 0 && st.status == 5);
    virtual_cfg.mailbox_maps = saved;
    maplist_close(virtual_cfg.mailbox_maps);
    maplist_close(virtual_cfg.uid_maps);
    maplist_close(virtual_cfg.gid_maps);
}

int main(void)
{
    test_path();
    test_ids();
    test_lookup();
    return check_summary();
}
