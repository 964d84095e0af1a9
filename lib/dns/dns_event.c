/* dns_event.c: c-ares inside a libevent loop (see dns_event.h). c-ares
 * reports which sockets it wants watched through its socket-state callback;
 * each gets a persistent event, and one timer drives c-ares's retries and
 * timeouts. Host names and addresses go through the hosts file first, as
 * the system's own lookups do (localhost stays localhost without DNS);
 * TXT and MX are plain queries. */
#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dns_answer.h"
#include "dns_event.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

#define DNS_TYPE_A 1
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_MX 15
#define DNS_TYPE_TXT 16
#define DNS_CLASS_IN 1
#define DNSEV_SOCKS_MAX 16

struct dnsev_sock {
    ares_socket_t fd;
    struct event *ev;
    short what;
};

struct dnsev {
    ares_channel channel;
    struct event_base *base;
    struct event *timer;
    struct dnsev_sock socks[DNSEV_SOCKS_MAX];
    size_t nsocks;
};

struct dnsev_query {
    struct dnsev *d;
    enum dnsev_type type;
    dnsev_fn fn;
    void *ctx;
    bool cancelled;
    bool starting;                 /* inside dnsev_lookup() */
    struct dnsev_answer *early;    /* an answer that came before it returned */
};

static void dnsev_rearm(struct dnsev *d);

/* ---- driving c-ares from the loop ---- */

static void dnsev_io(evutil_socket_t fd, short what, void *arg)
{
    struct dnsev *d = arg;
    ares_process_fd(d->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    dnsev_rearm(d);
}

static void dnsev_tick(evutil_socket_t fd, short what, void *arg)
{
    struct dnsev *d = arg;
    ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    dnsev_rearm(d);
}

/* c-ares's next retry or timeout, if anything is outstanding. */
static void dnsev_rearm(struct dnsev *d)
{
    if (!d->base)
        return;
    struct timeval max = { 1, 0 }, tv;
    struct timeval *t = ares_timeout(d->channel, &max, &tv);
    evtimer_add(d->timer, t);
}

static void dnsev_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dnsev *d = data;
    size_t i;
    for (i = 0; i < d->nsocks && d->socks[i].fd != fd; i++)
        ;
    short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    if (i < d->nsocks) {
        event_free(d->socks[i].ev);
        if (!what) {
            d->socks[i] = d->socks[--d->nsocks];
            return;
        }
    } else {
        if (!what)
            return;
        if (d->nsocks == DNSEV_SOCKS_MAX) {
            msg_warn("DNS resolver: too many sockets at once");
            return;
        }
        i = d->nsocks++;
        d->socks[i].fd = fd;
    }
    d->socks[i].what = what;
    d->socks[i].ev = event_new(d->base, fd, what | EV_PERSIST, dnsev_io, d);
    event_add(d->socks[i].ev, NULL);
}

struct dnsev *dnsev_open(const char *servers, int timeout, struct strbuf *err)
{
    /* dns_open() sets up the library and checks the server list; its
     * channel is only used for that. */
    struct dns_resolver *probe = dns_open(servers, timeout, err);
    if (!probe)
        return NULL;
    dns_close(probe);
    struct dnsev *d = xcalloc(1, sizeof(*d));
    int ms = timeout > 0 ? timeout * 1000 : 10000;
    struct ares_options opts = {
        .flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_EDNS,
        .sock_state_cb = dnsev_sock_state,
        .sock_state_cb_data = d,
        .timeout = ms / 2 > 0 ? ms / 2 : 1,
        .tries = 2,
    };
    int st = ares_init_options(&d->channel, &opts, ARES_OPT_FLAGS | ARES_OPT_SOCK_STATE_CB
                               | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (st != ARES_SUCCESS) {
        sb_appendf(err, "cannot initialize the DNS resolver: %s", ares_strerror(st));
        free(d);
        return NULL;
    }
    if (servers && *servers) {
        /* the same list dns_open accepted, in c-ares's own syntax */
        struct strbuf csv = STRBUF_INIT(4096);
        char *copy = xstrdup(servers), *save = NULL;
        for (char *w = strtok_r(copy, ", \t\r\n", &save); w; w = strtok_r(NULL, ", \t\r\n", &save)) {
            char host[INET6_ADDRSTRLEN + 1];
            const char *port = NULL, *start = w;
            size_t hlen;
            if (*w == '[') {
                const char *close = strchr(w, ']');
                start = w + 1;
                hlen = close ? (size_t)(close - start) : 0;
                port = close && close[1] == ':' ? close + 2 : NULL;
            } else {
                const char *colon = strchr(w, ':');
                if (colon && strchr(colon + 1, ':'))
                    colon = NULL;
                hlen = colon ? (size_t)(colon - w) : strlen(w);
                port = colon ? colon + 1 : NULL;
            }
            if (hlen == 0 || hlen >= sizeof(host))
                continue;
            memcpy(host, start, hlen);
            host[hlen] = 0;
            bool v6 = strchr(host, ':') != NULL;
            sb_appendf(&csv, "%s%s%s%s:%s", csv.len ? "," : "", v6 ? "[" : "", host, v6 ? "]" : "",
                       port ? port : "53");
        }
        free(copy);
        st = ares_set_servers_ports_csv(d->channel, sb_str(&csv));
        sb_free(&csv);
        if (st != ARES_SUCCESS) {
            sb_appendf(err, "cannot use DNS servers \"%s\": %s", servers, ares_strerror(st));
            ares_destroy(d->channel);
            free(d);
            return NULL;
        }
    }
    return d;
}

void dnsev_attach(struct dnsev *d, struct event_base *base)
{
    d->base = base;
    d->timer = evtimer_new(base, dnsev_tick, d);
}

/* ---- answers ---- */

static void explain(struct dnsev_answer *a, int st)
{
    switch (st) {
    case ARES_SUCCESS: a->status = DNS_OK; a->why = ""; return;
    case ARES_ENODATA: a->status = DNS_NODATA; a->why = "No data of the requested type"; return;
    case ARES_ENOTFOUND:
    case ARES_EBADNAME: a->status = DNS_NOTFOUND; a->why = "Host not found"; return;
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION: a->status = DNS_TEMPFAIL; a->why = "Host not found, try again (DNS timeout)"; return;
    case ARES_ESERVFAIL: a->status = DNS_TEMPFAIL; a->why = "Host not found, try again (server failure)"; return;
    default: a->status = DNS_TEMPFAIL; a->why = "Host not found, try again"; return;
    }
}

/* Takes a (malloc'ed). An answer that arrives while the lookup is still
 * being started (from the hosts file) waits for the loop: callers are
 * promised their callback later, never from inside dnsev_lookup(). */
static void deliver(struct dnsev_query *q, struct dnsev_answer *a)
{
    if (q->starting) {
        q->early = a;
        return;
    }
    if (!q->cancelled)
        q->fn(q->ctx, a);
    free(a);
    free(q);
}

static void deliver_early(evutil_socket_t fd, short what, void *arg)
{
    struct dnsev_query *q = arg;
    q->starting = false;
    deliver(q, q->early);
}

static void host_callback(void *arg, int status, int timeouts, struct hostent *he)
{
    struct dnsev_query *q = arg;
    struct dnsev_answer *a = xcalloc(1, sizeof(*a));
    explain(a, status);
    if (status == ARES_SUCCESS && q->type == DNSEV_PTR) {
        a->nnames = dns_hostent_names(he, a->names, DNSEV_NAMES_MAX);
        if (a->nnames == 0)
            explain(a, ARES_ENOTFOUND);
    } else if (status == ARES_SUCCESS) {
        a->naddr = he ? dns_hostent_addrs(he, he->h_addrtype, a->addrs, DNS_ADDR_MAX) : 0;
        if (a->naddr == 0)
            explain(a, ARES_ENODATA);
    }
    deliver(q, a);
}

static void query_callback(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct dnsev_query *q = arg;
    struct dnsev_answer *a = xcalloc(1, sizeof(*a));
    if (status == ARES_SUCCESS && q->type == DNSEV_TXT) {
        status = dns_answer_txt(abuf, alen, a->txt, sizeof(a->txt));
    } else if (status == ARES_SUCCESS && (q->type == DNSEV_A || q->type == DNSEV_AAAA)) {
        status = dns_answer_addrs(abuf, alen, q->type == DNSEV_A ? AF_INET : AF_INET6, a->addrs,
                                  DNS_ADDR_MAX, &a->naddr);
    } else if (status == ARES_SUCCESS && q->type == DNSEV_MX) {
        struct dns_mx mx[DNSEV_NAMES_MAX];
        size_t n = 0;
        status = dns_answer_mx(abuf, alen, mx, DNSEV_NAMES_MAX, &n);
        for (size_t i = 0; i < n; i++)
            str_copy(a->names[a->nnames++], DNS_NAME_MAX + 1, mx[i].host);
    }
    explain(a, status);
    deliver(q, a);
}

struct dnsev_query *dnsev_lookup(struct dnsev *d, const char *name, enum dnsev_type type,
                                 dnsev_fn fn, void *ctx)
{
    if (!d || !d->base || !*name || strlen(name) > DNS_NAME_MAX + 1)
        return NULL;
    unsigned char bin[16];
    int family = 0;
    if (type == DNSEV_PTR) {
        if (inet_pton(AF_INET, name, bin) == 1)
            family = AF_INET;
        else if (inet_pton(AF_INET6, name, bin) == 1)
            family = AF_INET6;
        else
            return NULL;
    }
    struct dnsev_query *q = xcalloc(1, sizeof(*q));
    q->d = d;
    q->type = type;
    q->fn = fn;
    q->ctx = ctx;
    q->starting = true;
    switch (type) {
    case DNSEV_PTR:
        ares_gethostbyaddr(d->channel, bin, family == AF_INET ? 4 : 16, family, host_callback, q);
        break;
    case DNSEV_HOST4:
    case DNSEV_HOST6:
        ares_gethostbyname(d->channel, name, type == DNSEV_HOST4 ? AF_INET : AF_INET6,
                           host_callback, q);
        break;
    case DNSEV_A:
    case DNSEV_AAAA:
    case DNSEV_TXT:
    case DNSEV_MX: {
        static const int qtypes[] = { [DNSEV_A] = DNS_TYPE_A, [DNSEV_AAAA] = DNS_TYPE_AAAA,
                                      [DNSEV_TXT] = DNS_TYPE_TXT, [DNSEV_MX] = DNS_TYPE_MX };
        ares_query(d->channel, name, DNS_CLASS_IN, qtypes[type], query_callback, q);
        break;
    }
    }
    q->starting = false;
    if (q->early) {
        struct timeval now = { 0, 0 };
        q->starting = true;     /* keeps deliver() holding the answer until then */
        event_base_once(d->base, -1, EV_TIMEOUT, deliver_early, q, &now);
    }
    dnsev_rearm(d);
    return q;
}

void dnsev_cancel(struct dnsev_query *q)
{
    if (q)
        q->cancelled = true;
}
