/* test_anvil_table.c: unit tests of anvil's client table: counts and rates
 * per (service, address), the time unit, connections taken back when an
 * anvil client goes away, eviction at the size limit, expiry, and the
 * request decoder's strictness. */
#include <string.h>

#include "anvil_proto.h"
#include "anvil_table.h"
#include "check.h"
#include "strbuf.h"

static struct anvil_reply ask(struct anvil_table *t, struct anvil_peer *p,
                              enum anvil_request_type type, const char *addr, time_t now)
{
    struct anvil_request req = { type, "smtp", addr };
    struct anvil_reply rep;
    anvil_table_request(t, p, &req, now, &rep);
    return rep;
}

static void test_counts_and_rates(void)
{
    struct anvil_table *t = anvil_table_create(100, 60);
    struct anvil_peer *a = anvil_peer_create(t), *b = anvil_peer_create(t);
    CHECK(ask(t, a, ANVIL_REQ_CONNECT, "192.0.2.1", 1000).count == 1);
    struct anvil_reply r = ask(t, b, ANVIL_REQ_CONNECT, "192.0.2.1", 1001);
    CHECK(r.count == 2 && r.rate == 2 && r.status == ANVIL_STAT_OK);
    CHECK(ask(t, a, ANVIL_REQ_CONNECT, "192.0.2.2", 1001).count == 1);
    CHECK(ask(t, a, ANVIL_REQ_MESSAGE, "192.0.2.1", 1002).rate == 1);
    CHECK(ask(t, a, ANVIL_REQ_MESSAGE, "192.0.2.1", 1003).rate == 2);
    CHECK(ask(t, a, ANVIL_REQ_RECIPIENT, "192.0.2.1", 1003).rate == 1);
    CHECK(ask(t, a, ANVIL_REQ_NEWTLS, "192.0.2.1", 1003).rate == 1);
    CHECK(ask(t, a, ANVIL_REQ_NEWTLS_STATUS, "192.0.2.1", 1003).rate == 1);
    CHECK(ask(t, a, ANVIL_REQ_AUTH, "192.0.2.1", 1003).rate == 1);
    /* a new time unit: rates start over, connections stay */
    r = ask(t, a, ANVIL_REQ_MESSAGE, "192.0.2.1", 1061);
    CHECK(r.rate == 1 && r.count == 2);
    /* disconnect; one from a client that did not connect is ignored */
    CHECK(ask(t, a, ANVIL_REQ_DISCONNECT, "192.0.2.1", 1062).count == 1);
    CHECK(ask(t, a, ANVIL_REQ_DISCONNECT, "192.0.2.1", 1062).count == 1);
    /* b goes away: its connection is taken back */
    anvil_peer_close(t, b);
    CHECK(ask(t, a, ANVIL_REQ_NEWTLS_STATUS, "192.0.2.1", 1063).count == 0);
    CHECK(anvil_table_size(t) == 2);
    anvil_table_log_stats(t);
    anvil_peer_close(t, a);
    anvil_table_free(t);
}

static void test_eviction_and_expiry(void)
{
    struct anvil_table *t = anvil_table_create(3, 60);
    struct anvil_peer *p = anvil_peer_create(t);
    ask(t, p, ANVIL_REQ_CONNECT, "10.0.0.1", 100);
    ask(t, p, ANVIL_REQ_MESSAGE, "10.0.0.2", 101);
    ask(t, p, ANVIL_REQ_MESSAGE, "10.0.0.3", 102);
    ask(t, p, ANVIL_REQ_MESSAGE, "10.0.0.2", 103);
    CHECK(anvil_table_size(t) == 3);
    /* a fourth client: the least recently seen (10.0.0.1) is forgotten */
    ask(t, p, ANVIL_REQ_MESSAGE, "10.0.0.4", 104);
    CHECK(anvil_table_size(t) == 3);
    CHECK(anvil_table_evictions(t) == 1);
    CHECK(ask(t, p, ANVIL_REQ_NEWTLS_STATUS, "10.0.0.2", 105).count == 0);
    CHECK(ask(t, p, ANVIL_REQ_MESSAGE, "10.0.0.2", 105).rate == 3);
    /* the forgotten client's connection is gone with it, and so is its link */
    CHECK(ask(t, p, ANVIL_REQ_CONNECT, "10.0.0.1", 106).count == 1);
    /* expiry: entries idle for a time unit without connections go */
    anvil_table_expire(t, 200);
    CHECK(anvil_table_size(t) == 1);
    anvil_peer_close(t, p);
    anvil_table_expire(t, 300);
    CHECK(anvil_table_size(t) == 0);
    anvil_table_free(t);
}

static int decode(const struct anvil_request *in, struct anvil_request *out)
{
    struct strbuf sb = STRBUF_INIT(ANVIL_FRAME_LIMIT);
    int rc = anvil_encode_request(&sb, in);
    if (rc == 0)
        rc = anvil_decode_request(sb.data, sb.len, out, NULL);
    sb_free(&sb);
    return rc;
}

static void test_protocol(void)
{
    struct anvil_request in = { ANVIL_REQ_RECIPIENT, "127.0.0.1:25", "2001:db8::1" }, out;
    CHECK(decode(&in, &out) == 0 && out.type == ANVIL_REQ_RECIPIENT);
    in.addr = "has space";
    CHECK(decode(&in, &out) < 0);
    in.addr = "";
    CHECK(decode(&in, &out) < 0);
    /* hand-made frames: unknown request, extra attribute */
    struct strbuf sb = STRBUF_INIT(ANVIL_FRAME_LIMIT);
    const char bad[] = "\0\0\0\x2d" "\x07request\0\0\0\x04" "nope\0"
                       "\x07service\0\0\0\x04smtp\0" "\x04" "addr\0\0\0\x01" "x\0";
    CHECK(anvil_decode_request(bad, sizeof(bad) - 1, &out, NULL) < 0);
    struct anvil_reply rep = { 0, 3, 7 }, back;
    CHECK(anvil_encode_reply(&sb, &rep) == 0);
    CHECK(anvil_decode_reply(sb.data, sb.len, &back) == 0 && back.count == 3 && back.rate == 7);
    sb.data[sb.len - 2] = 'x';
    CHECK(anvil_decode_reply(sb.data, sb.len, &back) < 0);
    sb_free(&sb);
}

int main(void)
{
    test_counts_and_rates();
    test_eviction_and_expiry();
    test_protocol();
    return check_summary();
}
