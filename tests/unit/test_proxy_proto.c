/* test_proxy_proto.c: unit tests of the proxymap protocol and of the proxy:
 * table type: round trips of requests and replies, hostile frames that the
 * strict decoders refuse, the tables proxy_read_maps allows, and the client
 * against a scripted server on a real UNIX socket (an answer, a connection
 * that breaks and is opened again, a malformed answer, "not allowed", a
 * failed lookup, no answer in time): every failure is -1, never "not
 * found". */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attr.h"
#include "check.h"
#include "config.h"
#include "maps.h"
#include "proxy_proto.h"
#include "strbuf.h"
#include "util.h"

static void test_round_trips(void)
{
    struct strbuf out = STRBUF_INIT(PROXY_FRAME_LIMIT + 4);
    struct proxy_request req = { "pgsql:/etc/tern/virtual.cf", "Alice@Example.COM" }, back;
    const char *why = NULL;
    CHECK(proxy_encode_request(&out, &req) == 0);
    CHECK(proxy_decode_request(out.data, out.len, &back, &why) == 0);
    CHECK_STR(back.table, req.table);
    CHECK_STR(back.key, req.key);
    /* the key may be empty and hold any byte but NUL */
    sb_reset(&out);
    req.key = "";
    CHECK(proxy_encode_request(&out, &req) == 0);
    CHECK(proxy_decode_request(out.data, out.len, &back, &why) == 0 && *back.key == 0);
    sb_reset(&out);
    req.key = "a\tb\r\n\x01\xff";
    CHECK(proxy_encode_request(&out, &req) == 0);
    CHECK(proxy_decode_request(out.data, out.len, &back, &why) == 0);
    CHECK_STR(back.key, req.key);

    struct proxy_reply rep = { PROXY_STAT_OK, "alice@dest.test" }, rback;
    sb_reset(&out);
    CHECK(proxy_encode_reply(&out, &rep) == 0);
    CHECK(proxy_decode_reply(out.data, out.len, &rback) == 0);
    CHECK(rback.status == PROXY_STAT_OK);
    CHECK_STR(rback.value, "alice@dest.test");
    for (int st = PROXY_STAT_NOKEY; st < PROXY_STAT_COUNT; st++) {
        struct proxy_reply r = { st, NULL };
        sb_reset(&out);
        CHECK(proxy_encode_reply(&out, &r) == 0);
        CHECK(proxy_decode_reply(out.data, out.len, &rback) == 0 && rback.status == st
              && *rback.value == 0);
    }
    CHECK_STR(proxy_status_name(PROXY_STAT_DENY), "not allowed");
    CHECK_STR(proxy_status_name(99), "?");
    sb_free(&out);
}

static void test_encode_bounds(void)
{
    struct strbuf out = STRBUF_INIT(PROXY_FRAME_LIMIT + 4);
    char *big = xmalloc(PROXY_VALUE_MAX + 2);
    memset(big, 'x', PROXY_VALUE_MAX + 1);
    big[PROXY_VALUE_MAX + 1] = 0;
    struct proxy_request req = { "hash:/x", big };
    CHECK(proxy_encode_request(&out, &req) == -1 && out.len == 0);   /* key too long */
    big[PROXY_KEY_MAX] = 0;
    CHECK(proxy_encode_request(&out, &req) == 0);                   /* exactly the limit */
    sb_reset(&out);
    const char *bad_tables[] = { "", "hash", ":x", "hash:", "hash:/a\nb", "hash:/a\x7f", NULL };
    req.key = "k";
    for (int i = 0; bad_tables[i]; i++) {
        req.table = bad_tables[i];
        CHECK(proxy_encode_request(&out, &req) == -1);
    }
    req.table = NULL;
    CHECK(proxy_encode_request(&out, &req) == -1);
    big[PROXY_KEY_MAX] = 'x';
    big[PROXY_VALUE_MAX] = 0;
    struct proxy_reply rep = { PROXY_STAT_OK, big };
    CHECK(proxy_encode_reply(&out, &rep) == 0);                     /* exactly the limit */
    sb_reset(&out);
    big[PROXY_VALUE_MAX] = 'x';
    CHECK(proxy_encode_reply(&out, &rep) == -1);
    rep = (struct proxy_reply){ PROXY_STAT_NOKEY, "value" };        /* a value without "found" */
    CHECK(proxy_encode_reply(&out, &rep) == -1);
    rep = (struct proxy_reply){ PROXY_STAT_COUNT, "" };
    CHECK(proxy_encode_reply(&out, &rep) == -1);
    rep = (struct proxy_reply){ -1, "" };
    CHECK(proxy_encode_reply(&out, &rep) == -1);
    CHECK(out.len == 0);
    free(big);
    sb_free(&out);
}

/* A request frame made by hand from name/value pairs. */
static void frame_of(struct strbuf *out, const char *const *pairs)
{
    struct attr_writer w;
    sb_reset(out);
    attr_begin(&w, out);
    for (int i = 0; pairs[i]; i += 2)
        attr_put_str(&w, pairs[i], pairs[i + 1]);
    attr_end(&w);
}

static void test_hostile_requests(void)
{
    struct strbuf f = STRBUF_INIT(0);
    struct proxy_request req;
    const char *why;
    static const char *const cases[][9] = {
        { "request", "update", "table", "hash:/x", "key", "k", NULL },      /* unknown request */
        { "request", "lookup", "table", "hash:/x", NULL },                  /* no key */
        { "request", "lookup", "key", "k", "table", "hash:/x", NULL },      /* wrong order */
        { "request", "lookup", "table", "hash:/x", "key", "k", "x", "y", NULL }, /* extra */
        { "request", "lookup", "table", "nocolon", "key", "k", NULL },
        { "request", "lookup", "table", "hash:/x\r", "key", "k", NULL },
        { "request", "lookup", "table", "", "key", "k", NULL },
        { "table", "hash:/x", "key", "k", NULL },                           /* no request */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        frame_of(&f, cases[i]);
        why = NULL;
        CHECK(proxy_decode_request(f.data, f.len, &req, &why) == -1 && why);
    }
    /* a NUL inside a value, a truncated frame, a length that lies */
    struct strbuf ok = STRBUF_INIT(0);
    struct attr_writer w;
    attr_begin(&w, &ok);
    attr_put_str(&w, "request", "lookup");
    attr_put_str(&w, "table", "hash:/x");
    attr_put_bytes(&w, "key", "a\0b", 3);
    attr_end(&w);
    CHECK(proxy_decode_request(ok.data, ok.len, &req, &why) == -1);
    for (size_t cut = 0; cut < ok.len; cut++)
        CHECK(proxy_decode_request(ok.data, cut, &req, &why) == -1);
    sb_free(&ok);
    /* a reply: status out of range, value with "not found", missing value */
    static const char *const bad_replies[][5] = {
        { "status", "5", "value", "", NULL },
        { "status", "-1", "value", "", NULL },
        { "status", "1", "value", "v", NULL },
        { "status", "0", NULL },
        { "value", "", "status", "0", NULL },
    };
    struct proxy_reply rep;
    for (size_t i = 0; i < sizeof(bad_replies) / sizeof(bad_replies[0]); i++) {
        frame_of(&f, bad_replies[i]);
        CHECK(proxy_decode_reply(f.data, f.len, &rep) == -1);
    }
    sb_free(&f);
}

static void test_allowed(void)
{
    struct proxy_allowed *a = proxy_allowed_open(
        "proxy:hash:/etc/tern/virtual, hash:/etc/tern/plain,\n check_recipient_access "
        "proxy:pgsql:/etc/tern/access.cf reject_unlisted_recipient proxy:proxy:hash:/x "
        "proxy:hash:/etc/tern/virtual proxy: proxy:nocolon");
    CHECK(proxy_allowed_count(a) == 2);
    CHECK(proxy_allowed_has(a, "hash:/etc/tern/virtual"));
    CHECK(proxy_allowed_has(a, "pgsql:/etc/tern/access.cf"));
    CHECK(!proxy_allowed_has(a, "hash:/etc/tern/plain"));
    CHECK(!proxy_allowed_has(a, "proxy:hash:/x"));
    CHECK(!proxy_allowed_has(a, "hash:/x"));
    CHECK(!proxy_allowed_has(a, "hash:/etc/tern/virtual "));
    proxy_allowed_free(a);
    a = proxy_allowed_open("");
    CHECK(proxy_allowed_count(a) == 0 && !proxy_allowed_has(a, "hash:/x"));
    proxy_allowed_free(a);
}

/* ---- the client against a scripted server ---- */

static int greet_and_read(int fd, struct strbuf *in, char *key, size_t keysz)
{
    struct proxy_request req;
    const char *why;
    if (attr_read(fd, in, PROXY_FRAME_LIMIT, 5) < 0
        || proxy_decode_request(in->data, in->len, &req, &why) < 0)
        return -1;
    str_copy(key, keysz, req.key);
    return 0;
}

static void answer(int fd, int status, const char *value)
{
    struct strbuf out = STRBUF_INIT(0);
    struct proxy_reply rep = { status, value };
    if (proxy_encode_reply(&out, &rep) == 0)
        attr_write(fd, &out, 5);
    sb_free(&out);
}

/* The script: each connection, what it answers; exits 0 when every
 * request carried the key expected. */
static void __attribute__((noreturn)) fake_server(int lfd)
{
    struct strbuf in = STRBUF_INIT(0);
    char key[64];
    int bad = 0;
    int c = accept(lfd, NULL, NULL);                       /* connection 1 */
    attr_send_protocol(c, PROXY_PROTOCOL, 5);
    bad |= greet_and_read(c, &in, key, sizeof(key)) || strcmp(key, "k1") != 0;
    answer(c, PROXY_STAT_OK, "v1");
    bad |= greet_and_read(c, &in, key, sizeof(key)) || strcmp(key, "k2") != 0;
    close(c);                                              /* as if restarted */
    c = accept(lfd, NULL, NULL);                           /* connection 2 */
    attr_send_protocol(c, PROXY_PROTOCOL, 5);
    bad |= greet_and_read(c, &in, key, sizeof(key)) || strcmp(key, "k2") != 0;
    answer(c, PROXY_STAT_NOKEY, "");
    bad |= greet_and_read(c, &in, key, sizeof(key)) || strcmp(key, "k3") != 0;
    struct strbuf junk = STRBUF_INIT(0);
    struct attr_writer w;
    attr_begin(&w, &junk);
    attr_put_int(&w, "status", 9);
    attr_put_str(&w, "value", "");
    attr_end(&w);
    attr_write(c, &junk, 5);                               /* a status that does not exist */
    sb_free(&junk);
    close(c);
    c = accept(lfd, NULL, NULL);                           /* connection 3 */
    attr_send_protocol(c, PROXY_PROTOCOL, 5);
    bad |= greet_and_read(c, &in, key, sizeof(key)) || strcmp(key, "k4") != 0;
    answer(c, PROXY_STAT_DENY, "");
    bad |= greet_and_read(c, &in, key, sizeof(key)) || strcmp(key, "k5") != 0;
    answer(c, PROXY_STAT_RETRY, "");
    bad |= greet_and_read(c, &in, key, sizeof(key)) || strcmp(key, "k6") != 0;
    /* no answer: the client gives up after 1 s and closes (EOF here) */
    bad |= attr_read(c, &in, PROXY_FRAME_LIMIT, 10) == 0 || errno == ETIMEDOUT;
    close(c);
    c = accept(lfd, NULL, NULL);                           /* connection 4 */
    attr_send_protocol(c, PROXY_PROTOCOL, 5);
    bad |= greet_and_read(c, &in, key, sizeof(key)) || strcmp(key, "k7") != 0;
    answer(c, PROXY_STAT_OK, "again");
    close(c);
    sb_free(&in);
    _exit(bad ? 1 : 0);
}

static void test_client(void)
{
    char dir[] = "/tmp/tern-proxy-test-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    struct strbuf path = STRBUF_INIT(0), err = STRBUF_INIT(4096), v = STRBUF_INIT(0);
    sb_appendf(&path, "%s/main.cf", dir);
    FILE *f = fopen(path.data, "w");
    /* the client connects with mail_owner's ids when it runs as root: here
     * the test's own, so that its socket in a directory of its own is
     * reached whoever runs the test */
    const struct passwd *me = getpwuid(geteuid());
    fprintf(f, "queue_directory = %s\nproxy_lookup_timeout = 1s\nmail_owner = %s\n", dir,
            me ? me->pw_name : "root");
    fclose(f);
    CHECK(cfg_load(dir, &err) == 0);
    sb_reset(&path);
    sb_appendf(&path, "%s/private", dir);
    mkdir(path.data, 0700);
    sb_appends(&path, "/proxymap");

    /* the type is checked at open; nothing is connected then */
    CHECK(map_open("proxy:proxy:hash:/x", &err) == NULL);
    CHECK(strstr(sb_str(&err), "cannot be proxied again") != NULL);
    sb_reset(&err);
    CHECK(map_open("proxy:nosuchtype:/x", &err) == NULL);
    sb_reset(&err);
    CHECK(map_open("proxy:hash", &err) == NULL);
    sb_reset(&err);
    struct map *m = map_open("proxy:pgsql:/etc/tern/virtual.cf", &err);
    CHECK(m != NULL);
    if (!m)
        goto out;
    /* nobody listens: a temporary error */
    CHECK(map_lookup(m, "k0", &v) == -1);

    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    str_copy(sa.sun_path, sizeof(sa.sun_path), path.data);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 8) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);              /* a client that never comes must not hang the suite */
        fake_server(lfd);
    }
    close(lfd);
    CHECK(map_lookup(m, "k1", &v) == 1);
    CHECK_STR(sb_str(&v), "v1");
    CHECK(map_lookup(m, "k2", &v) == 0);        /* asked again on a new connection */
    CHECK(map_lookup(m, "k3", &v) == -1);       /* malformed answer */
    CHECK(map_lookup(m, "k4", &v) == -1);       /* not allowed */
    CHECK(map_lookup(m, "k5", &v) == -1);       /* the lookup failed there */
    CHECK(map_lookup(m, "k6", &v) == -1);       /* no answer within 1 s: not asked again */
    CHECK(map_lookup(m, "k7", &v) == 1);
    CHECK_STR(sb_str(&v), "again");
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    map_close(m);
out:
    unlink(path.data);
    sb_reset(&path);
    sb_appendf(&path, "%s/private", dir);
    rmdir(path.data);
    sb_reset(&path);
    sb_appendf(&path, "%s/main.cf", dir);
    unlink(path.data);
    rmdir(dir);
    sb_free(&path);
    sb_free(&err);
    sb_free(&v);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_round_trips();
    test_encode_bounds();
    test_hostile_requests();
    test_allowed();
    test_client();
    return check_summary();
}
