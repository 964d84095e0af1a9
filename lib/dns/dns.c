/* dns.c: MX, address, TLSA and TXT lookups through c-ares (see dns.h). Queries
 * are built here (so that they can ask for DNSSEC validation with the AD
 * bit) and sent without search domains or host aliases, driven with poll()
 * until they finish or the lookup's deadline passes; their answers are
 * copied into bounded arrays after checking every name (dns_answer.c). */
#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "dns.h"
#include "dns_answer.h"
#include "strbuf.h"
#include "util.h"

#define DNS_TYPE_A 1
#define DNS_TYPE_MX 15
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_TLSA 52
#define DNS_TYPE_TXT 16
#define DNS_EDNS_SIZE 1232      /* EDNS payload size offered (c-ares's default is 1280) */
#define DNS_CLASS_IN 1
#define DNS_SERVERS_TEXT_MAX 4096

struct dns_resolver {
    ares_channel channel;
    int timeout_ms;
    bool dnssec;             /* queries ask for validation (AD bit) */
    bool ad_trusted;         /* ... and the answers' AD bit is believed */
};

/* One query in flight: the callback copies what c-ares hands over. */
struct dns_query {
    bool done;
    int status;              /* ARES_*, after the answer's RCODE */
    bool ad;                 /* the answer's AD bit */
    unsigned char *answer;
    int answer_len;
};

/* ---- configuration ---- */

/* One server in "ADDR", "ADDR:PORT", "[ADDR]" or "[ADDR]:PORT" form, checked
 * and appended to csv in the form ares_set_servers_ports_csv() reads. */
static int dns_server_append(struct strbuf *csv, const char *word, struct strbuf *err)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *start = word, *port = NULL;
    size_t hlen;
    if (word[0] == '[') {
        const char *close = strchr(word, ']');
        if (!close || (close[1] && close[1] != ':'))
            goto bad;
        start = word + 1;
        hlen = (size_t)(close - start);
        port = close[1] ? close + 2 : NULL;
    } else {
        const char *colon = strchr(word, ':');
        if (colon && strchr(colon + 1, ':'))
            colon = NULL;            /* a bare IPv6 address */
        hlen = colon ? (size_t)(colon - word) : strlen(word);
        port = colon ? colon + 1 : NULL;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        goto bad;
    memcpy(host, start, hlen);
    host[hlen] = 0;
    unsigned char bin[sizeof(struct in6_addr)];
    bool v6 = inet_pton(AF_INET6, host, bin) == 1;
    long portnum = 53;
    if ((!v6 && inet_pton(AF_INET, host, bin) != 1)
        || (port && parse_long(port, 1, 65535, &portnum) < 0))
        goto bad;
    if (sb_appendf(csv, "%s%s%s%s:%ld", csv->len ? "," : "", v6 ? "[" : "", host,
                   v6 ? "]" : "", portnum) < 0)
        goto bad;
    return 0;
bad:
    sb_appendf(err, "bad DNS server \"%s\": expected ADDRESS, ADDRESS:PORT or [ADDRESS]:PORT", word);
    return -1;
}

static int dns_set_servers(struct dns_resolver *r, const char *servers, struct strbuf *err)
{
    struct strbuf csv = STRBUF_INIT(DNS_SERVERS_TEXT_MAX);
    char *copy = xstrdup(servers), *save = NULL;
    int rc = 0;
    for (char *w = strtok_r(copy, ", \t\r\n", &save); w && rc == 0; w = strtok_r(NULL, ", \t\r\n", &save))
        rc = dns_server_append(&csv, w, err);
    if (rc == 0 && csv.len) {
        int st = ares_set_servers_ports_csv(r->channel, csv.data);
        if (st != ARES_SUCCESS) {
            sb_appendf(err, "cannot use DNS servers \"%s\": %s", servers, ares_strerror(st));
            rc = -1;
        }
    }
    free(copy);
    sb_free(&csv);
    return rc;
}

void dns_close(struct dns_resolver *r)
{
    if (!r)
        return;
    ares_destroy(r->channel);
    free(r);
}

struct dns_resolver *dns_open(const char *servers, int timeout, struct strbuf *err)
{
    static bool library_ready;
    if (!library_ready) {
        int st = ares_library_init(ARES_LIB_INIT_ALL);
        if (st != ARES_SUCCESS) {
            sb_appendf(err, "cannot initialize the DNS resolver library: %s", ares_strerror(st));
            return NULL;
        }
        library_ready = true;
    }
    struct dns_resolver *r = xcalloc(1, sizeof(*r));
    r->timeout_ms = timeout > 0 ? timeout * 1000 : 30000;
    /* Names from MX records and next hops are absolute: no search list,
     * and no HOSTALIASES file from the environment. */
    struct ares_options opts = { .flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_EDNS };
    int st = ares_init_options(&r->channel, &opts, ARES_OPT_FLAGS);
    if (st != ARES_SUCCESS) {
        sb_appendf(err, "cannot initialize the DNS resolver: %s", ares_strerror(st));
        free(r);
        return NULL;
    }
    if (servers && *servers && dns_set_servers(r, servers, err) < 0) {
        dns_close(r);
        return NULL;
    }
    return r;
}

/* Whether every configured server is on this host. */
static bool dns_servers_local(struct dns_resolver *r)
{
    struct ares_addr_port_node *list = NULL;
    if (ares_get_servers_ports(r->channel, &list) != ARES_SUCCESS)
        return false;
    bool local = list != NULL;
    for (const struct ares_addr_port_node *p = list; p; p = p->next) {
        if (p->family == AF_INET)
            local = local && (ntohl(p->addr.addr4.s_addr) >> 24) == 127;
        else if (p->family == AF_INET6)
            local = local && IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)&p->addr.addr6);
        else
            local = false;
    }
    ares_free_data(list);
    return local;
}

bool dns_set_dnssec(struct dns_resolver *r, bool trust_remote)
{
    r->dnssec = true;
    r->ad_trusted = trust_remote || dns_servers_local(r);
    return r->ad_trusted;
}

/* ---- running queries ---- */

/* c-ares hands over every answer it got from a server; its RCODE decides
 * the status, as ares_query() would. */
static void dns_callback(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct dns_query *q = arg;
    q->done = true;
    q->status = status;
    if (status == ARES_SUCCESS)
        q->status = dns_answer_header(abuf, alen, &q->ad);
    if (q->status == ARES_SUCCESS) {
        q->answer = xmalloc((size_t)alen);
        memcpy(q->answer, abuf, (size_t)alen);
        q->answer_len = alen;
    }
}

/* Send a query for name and type: with EDNS, recursion desired, and with
 * DNSSEC on the AD bit (RFC 6840 section 5.7: the resolver then says in
 * AD whether it validated the answer, without sending signatures). */
static void dns_send(struct dns_resolver *r, const char *name, int type, struct dns_query *q)
{
    unsigned char *buf = NULL;
    int len = 0;
    int st = ares_create_query(name, DNS_CLASS_IN, type, 0, 1, &buf, &len, DNS_EDNS_SIZE);
    if (st != ARES_SUCCESS || len < 12) {
        ares_free_string(buf);
        q->done = true;
        q->status = st != ARES_SUCCESS ? st : ARES_EBADQUERY;
        return;
    }
    if (r->dnssec)
        buf[3] |= 0x20;
    ares_send(r->channel, buf, len, dns_callback, q);
    ares_free_string(buf);
}

/* Whether q's answer, records or denial, counts as validated. */
static bool dns_query_secure(const struct dns_resolver *r, const struct dns_query *q)
{
    return r->dnssec && r->ad_trusted && q->done && q->ad
           && (q->status == ARES_SUCCESS || q->status == ARES_ENOTFOUND);
}

static bool dns_all_done(const struct dns_query *qs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!qs[i].done)
            return false;
    return true;
}

/* Milliseconds to wait in poll(): c-ares's own retry timer, capped by the deadline. */
static int dns_poll_wait(struct dns_resolver *r, long long deadline_ms)
{
    long long left = deadline_ms - now_usec() / 1000;
    struct timeval max = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 }, tv;
    struct timeval *t = ares_timeout(r->channel, &max, &tv);
    long long ms = (long long)t->tv_sec * 1000 + t->tv_usec / 1000;
    return ms < 0 ? 0 : ms > left ? (int)left : (int)ms;
}

/* Drive the channel until every query in qs is done or the deadline passes;
 * then what is still running is cancelled (its callback sees ECANCELLED). */
static void dns_wait(struct dns_resolver *r, struct dns_query *qs, size_t n, long long deadline_ms)
{
    while (!dns_all_done(qs, n)) {
        if (now_usec() / 1000 >= deadline_ms) {
            ares_cancel(r->channel);
            break;
        }
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        struct pollfd pfd[ARES_GETSOCK_MAXNUM];
        /* Not ARES_GETSOCK_WRITABLE(): it shifts a signed 1 into the sign bit. */
        unsigned bits = (unsigned)ares_getsock(r->channel, socks, ARES_GETSOCK_MAXNUM);
        nfds_t nfds = 0;
        for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = (short)(((bits >> i) & 1u ? POLLIN : 0)
                               | ((bits >> (i + ARES_GETSOCK_MAXNUM)) & 1u ? POLLOUT : 0));
            if (ev)
                pfd[nfds++] = (struct pollfd){ socks[i], ev, 0 };
        }
        int rc = poll(pfd, nfds, dns_poll_wait(r, deadline_ms));
        if (rc < 0 && errno != EINTR) {
            ares_cancel(r->channel);
            break;
        }
        if (rc <= 0) {
            ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);   /* timers */
            continue;
        }
        for (nfds_t i = 0; i < nfds; i++) {
            if (!pfd[i].revents)
                continue;
            bool rd = pfd[i].revents & (POLLIN | POLLERR | POLLHUP);
            bool wr = pfd[i].revents & (POLLOUT | POLLERR | POLLHUP);
            ares_process_fd(r->channel, rd ? pfd[i].fd : ARES_SOCKET_BAD,
                            wr ? pfd[i].fd : ARES_SOCKET_BAD);
        }
    }
}

static enum dns_status dns_status_of(int ares_status)
{
    switch (ares_status) {
    case ARES_SUCCESS: return DNS_OK;
    case ARES_ENODATA: return DNS_NODATA;
    case ARES_ENOTFOUND:
    case ARES_EBADNAME: return DNS_NOTFOUND;
    default: return DNS_TEMPFAIL;
    }
}

static void dns_explain(struct strbuf *why, int ares_status)
{
    sb_reset(why);
    switch (ares_status) {
    case ARES_ENOTFOUND: sb_appends(why, "Host not found"); break;
    case ARES_EBADNAME: sb_appends(why, "Host not found (invalid name)"); break;
    case ARES_ENODATA: sb_appends(why, "No data of the requested type"); break;
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED: sb_appends(why, "Host not found, try again (DNS timeout)"); break;
    case ARES_ESERVFAIL: sb_appends(why, "Host not found, try again (server failure)"); break;
    default: sb_appendf(why, "Host not found, try again (%s)", ares_strerror(ares_status)); break;
    }
}

static void dns_query_free(struct dns_query *q)
{
    free(q->answer);
    q->answer = NULL;
}

/* ares_query()'s rule: NOERROR without records is "no data". */
static int dns_nodata(const struct dns_query *q, int st)
{
    return st == ARES_SUCCESS && q->answer_len >= 12 && q->answer[6] == 0 && q->answer[7] == 0
               ? ARES_ENODATA : st;
}

/* ---- MX ---- */

/* One lookup of name's records of type, parsed by parse into an array of
 * max elements of size bytes (*rrs, malloc'd; NULL on failure) and *count;
 * *secure when asked for: whether the answer was validated. */
static enum dns_status lookup_rrs(struct dns_resolver *r, const char *name, int type,
                                  int (*parse)(const struct dns_query *q, void *out, size_t max,
                                               size_t *count),
                                  size_t size, size_t max, void **rrs, size_t *count, bool *secure,
                                  struct strbuf *why)
{
    struct dns_query q = { 0 };
    *count = 0;
    *rrs = xcalloc(max, size);
    dns_send(r, name, type, &q);
    dns_wait(r, &q, 1, now_usec() / 1000 + r->timeout_ms);
    int st = dns_nodata(&q, q.done ? q.status : ARES_ETIMEOUT);
    if (secure)
        *secure = dns_query_secure(r, &q);
    if (st == ARES_SUCCESS)
        st = parse(&q, *rrs, max, count);
    dns_query_free(&q);
    if (st != ARES_SUCCESS) {
        free(*rrs);
        *rrs = NULL;
        dns_explain(why, st);
    }
    return dns_status_of(st);
}

static int parse_mx(const struct dns_query *q, void *out, size_t max, size_t *count)
{
    return dns_answer_mx(q->answer, q->answer_len, out, max, count);
}

enum dns_status dns_lookup_mx(struct dns_resolver *r, const char *name,
                              struct dns_mx **mx, size_t *count, bool *secure,
                              struct strbuf *why)
{
    void *rrs;
    enum dns_status st = lookup_rrs(r, name, DNS_TYPE_MX, parse_mx, sizeof(**mx), DNS_MX_MAX,
                                    &rrs, count, secure, why);
    *mx = rrs;
    return st;
}

/* ---- A / AAAA ---- */

/* Which of two failures says more: a temporary one, then "not found". */
static int dns_worse(int a, int b)
{
    if (dns_status_of(a) == DNS_TEMPFAIL)
        return a;
    if (dns_status_of(b) == DNS_TEMPFAIL)
        return b;
    return a == ARES_ENOTFOUND ? a : b;
}

enum dns_status dns_lookup_addr(struct dns_resolver *r, const char *name, bool want_v4,
                                bool want_v6, struct dns_addr **addrs, size_t *count,
                                bool *secure, char *canonical, struct strbuf *why)
{
    struct dns_query qs[2] = { { 0 }, { 0 } };
    if (canonical)
        canonical[0] = 0;
    int families[2], nq = 0;
    if (want_v6)
        families[nq++] = AF_INET6;
    if (want_v4)
        families[nq++] = AF_INET;
    for (int i = 0; i < nq; i++)
        dns_send(r, name, families[i] == AF_INET ? DNS_TYPE_A : DNS_TYPE_AAAA, &qs[i]);
    dns_wait(r, qs, (size_t)nq, now_usec() / 1000 + r->timeout_ms);
    if (secure) {
        /* Every answer that came was validated. A query that failed adds
         * no address and does not count: else whoever can drop the AAAA
         * answer could make a secure host insecure, and turn DANE off. */
        size_t answered = 0;
        *secure = true;
        for (int i = 0; i < nq; i++) {
            bool answer = qs[i].done && (qs[i].status == ARES_SUCCESS || qs[i].status == ARES_ENOTFOUND);
            answered += answer;
            if (answer && !dns_query_secure(r, &qs[i]))
                *secure = false;
        }
        *secure = *secure && answered > 0;
    }
    *addrs = xcalloc(2 * DNS_ADDR_MAX, sizeof(**addrs));
    *count = 0;
    int result = ARES_ENODATA;
    for (int i = 0; i < nq; i++) {
        int st = dns_nodata(&qs[i], qs[i].done ? qs[i].status : ARES_ETIMEOUT);
        if (st == ARES_SUCCESS) {
            size_t got = 0;
            st = dns_answer_addrs(qs[i].answer, qs[i].answer_len, families[i], *addrs + *count,
                                  DNS_ADDR_MAX, &got);
            *count += got;
            if (canonical && got && !canonical[0])
                dns_answer_cname(qs[i].answer, qs[i].answer_len, canonical, DNS_NAME_MAX + 1);
        }
        if (st != ARES_SUCCESS)
            result = i == 0 ? st : dns_worse(result, st);
        dns_query_free(&qs[i]);
    }
    if (*count > 0)
        return DNS_OK;
    free(*addrs);
    *addrs = NULL;
    dns_explain(why, result);
    return dns_status_of(result);
}

/* ---- TLSA ---- */

static int parse_tlsa(const struct dns_query *q, void *out, size_t max, size_t *count)
{
    return dns_answer_tlsa(q->answer, q->answer_len, out, max, count);
}

enum dns_status dns_lookup_tlsa(struct dns_resolver *r, const char *name, struct dns_tlsa **tlsa,
                                size_t *count, bool *secure, struct strbuf *why)
{
    void *rrs;
    enum dns_status st = lookup_rrs(r, name, DNS_TYPE_TLSA, parse_tlsa, sizeof(**tlsa),
                                    DNS_TLSA_MAX, &rrs, count, secure, why);
    *tlsa = rrs;
    return st;
}

/* ---- TXT ---- */

enum dns_status dns_lookup_txt(struct dns_resolver *r, const char *name,
                               char (**txt)[DNS_TXT_MAX + 1], size_t *count, struct strbuf *why)
{
    struct dns_query q = { 0 };
    *txt = NULL;
    *count = 0;
    dns_send(r, name, DNS_TYPE_TXT, &q);
    dns_wait(r, &q, 1, now_usec() / 1000 + r->timeout_ms);
    int st = dns_nodata(&q, q.done ? q.status : ARES_ETIMEOUT);
    if (st == ARES_SUCCESS) {
        *txt = xcalloc(DNS_TXTS_MAX, sizeof(**txt));
        st = dns_answer_txts(q.answer, q.answer_len, *txt, DNS_TXTS_MAX, count);
        if (st != ARES_SUCCESS) {
            free(*txt);
            *txt = NULL;
        }
    }
    dns_query_free(&q);
    if (st != ARES_SUCCESS)
        dns_explain(why, st);
    return dns_status_of(st);
}

const char *dns_addr_text(const struct dns_addr *a, char *buf, size_t bufsz)
{
    if (!inet_ntop(a->family, a->family == AF_INET ? (const void *)&a->u.v4 : (const void *)&a->u.v6,
                   buf, (socklen_t)bufsz))
        str_copy(buf, bufsz, "?");
    return buf;
}
