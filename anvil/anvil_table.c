/* anvil_table.c: anvil's bounded table of clients (see anvil_table.h): a
 * hash index with a random seed, a least-recently-seen list for eviction and
 * expiry, fixed rate windows of anvil_rate_time_unit as in Postfix, and the
 * links between clients' connections and the anvil clients that made them.
 * The lists are those of <sys/queue.h>. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <unistd.h>

#include "anvil_table.h"
#include "log.h"
#include "util.h"

#define ANVIL_KEY_MAX (ANVIL_SERVICE_MAX + 1 + ANVIL_ADDR_MAX + 1)
#define ANVIL_EVICT_WARN_INTERVAL 300   /* seconds between warnings about a full table */

enum anvil_counter {
    CNT_CONN_RATE, CNT_MAIL_RATE, CNT_RCPT_RATE, CNT_NTLS_RATE, CNT_AUTH_RATE,
    CNT_RATES,
    CNT_CONN_COUNT = CNT_RATES,     /* only in the statistics */
    CNT_ALL
};

struct anvil_link;

struct anvil_entry {
    char *key;                      /* "service addr" */
    size_t svc_len;                 /* bytes of the service name in key */
    uint64_t hash;
    struct anvil_entry *hnext;      /* hash chain */
    TAILQ_ENTRY(anvil_entry) lru;   /* least-recently-seen list, oldest first */
    time_t start;                   /* the current time unit began here */
    time_t last;                    /* last request */
    long conns;
    long rate[CNT_RATES];
    LIST_HEAD(, anvil_link) links;  /* anvil clients holding its connections */
};

struct anvil_link {
    struct anvil_peer *peer;
    struct anvil_entry *entry;
    long count;
    LIST_ENTRY(anvil_link) peer_list;   /* the peer's links */
    LIST_ENTRY(anvil_link) entry_list;  /* the entry's links */
};

struct anvil_peer {
    LIST_HEAD(, anvil_link) links;
    size_t nlinks;
};

struct anvil_peak {
    long value;
    char ident[ANVIL_KEY_MAX];      /* "service:addr" */
    time_t when;
};

struct anvil_table {
    struct anvil_entry **buckets;
    size_t nbuckets;                /* a power of two */
    uint64_t seed;
    size_t size, limit;
    long unit;
    TAILQ_HEAD(, anvil_entry) lru;
    unsigned long evictions;
    time_t last_evict_warning;
    struct anvil_peak peak[CNT_ALL];
    size_t peak_size;
    time_t peak_size_when;
};

static uint64_t random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = (uint64_t)now_usec() ^ ((uint64_t)getpid() << 32);
    return seed | 1;
}

/* FNV-1a over the seed and the key: addresses are chosen by strangers, so
 * the chains must not be predictable. */
static uint64_t key_hash(const struct anvil_table *t, const char *key)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ t->seed;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

struct anvil_table *anvil_table_create(size_t limit, long time_unit)
{
    struct anvil_table *t = xcalloc(1, sizeof(*t));
    t->limit = limit ? limit : 1;
    t->unit = time_unit > 0 ? time_unit : 1;
    t->nbuckets = 64;
    while (t->nbuckets < t->limit && t->nbuckets < ((size_t)1 << 24))
        t->nbuckets <<= 1;
    t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
    t->seed = random_seed();
    TAILQ_INIT(&t->lru);
    return t;
}

/* ---- links ---- */

static void link_free(struct anvil_link *l)
{
    LIST_REMOVE(l, peer_list);
    LIST_REMOVE(l, entry_list);
    l->peer->nlinks--;
    free(l);
}

static struct anvil_link *link_find(struct anvil_entry *e, struct anvil_peer *p)
{
    struct anvil_link *l;
    LIST_FOREACH(l, &e->links, entry_list)
        if (l->peer == p)
            return l;
    return NULL;
}

static struct anvil_link *link_new(struct anvil_entry *e, struct anvil_peer *p)
{
    struct anvil_link *l = xcalloc(1, sizeof(*l));
    l->peer = p;
    l->entry = e;
    LIST_INSERT_HEAD(&p->links, l, peer_list);
    LIST_INSERT_HEAD(&e->links, l, entry_list);
    p->nlinks++;
    return l;
}

/* ---- entries ---- */

static void entry_remove(struct anvil_table *t, struct anvil_entry *e)
{
    struct anvil_entry **pp = &t->buckets[e->hash & (t->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    TAILQ_REMOVE(&t->lru, e, lru);
    while (!LIST_EMPTY(&e->links))
        link_free(LIST_FIRST(&e->links));
    t->size--;
    free(e->key);
    free(e);
}

static void evict_oldest(struct anvil_table *t, time_t now)
{
    struct anvil_entry *victim = TAILQ_FIRST(&t->lru);
    if (!victim)
        return;
    t->evictions++;
    if (!t->last_evict_warning || now - t->last_evict_warning >= ANVIL_EVICT_WARN_INTERVAL) {
        t->last_evict_warning = now;
        msg_warn("client table full (%zu clients): forgetting the least recently seen; "
                 "raise anvil_client_table_limit if this happens often", t->limit);
    }
    entry_remove(t, victim);
}

static struct anvil_entry *entry_get(struct anvil_table *t, const struct anvil_request *req,
                                     time_t now)
{
    char key[ANVIL_KEY_MAX];
    snprintf(key, sizeof(key), "%s %s", req->service, req->addr);
    uint64_t h = key_hash(t, key);
    for (struct anvil_entry *e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->key, key) == 0) {
            TAILQ_REMOVE(&t->lru, e, lru);
            TAILQ_INSERT_TAIL(&t->lru, e, lru);
            return e;
        }
    if (t->size >= t->limit)
        evict_oldest(t, now);
    struct anvil_entry *e = xcalloc(1, sizeof(*e));
    e->key = xstrdup(key);
    e->svc_len = strlen(req->service);
    e->hash = h;
    e->start = now;
    size_t b = h & (t->nbuckets - 1);
    e->hnext = t->buckets[b];
    t->buckets[b] = e;
    TAILQ_INSERT_TAIL(&t->lru, e, lru);
    t->size++;
    if (t->size > t->peak_size) {
        t->peak_size = t->size;
        t->peak_size_when = now;
    }
    return e;
}

/* Rates count the events since the entry's time unit began; the first
 * event after it ended begins a new one (Postfix's anvil does the same). */
static void entry_window(struct anvil_table *t, struct anvil_entry *e, time_t now)
{
    if (now - e->start >= t->unit || now < e->start) {
        memset(e->rate, 0, sizeof(e->rate));
        e->start = now;
    }
}

static void note_peak(struct anvil_table *t, enum anvil_counter c, long value,
                      const struct anvil_entry *e, time_t now)
{
    struct anvil_peak *pk = &t->peak[c];
    if (value <= pk->value)
        return;
    pk->value = value;
    pk->when = now;
    snprintf(pk->ident, sizeof(pk->ident), "%.*s:%s", (int)e->svc_len, e->key,
             e->key + e->svc_len + 1);
}

static long bump(struct anvil_table *t, struct anvil_entry *e, enum anvil_counter c, time_t now)
{
    if (e->rate[c] < 0x7fffffffL)
        e->rate[c]++;
    note_peak(t, c, e->rate[c], e, now);
    return e->rate[c];
}

static void do_connect(struct anvil_table *t, struct anvil_peer *p, struct anvil_entry *e,
                       time_t now, struct anvil_reply *rep)
{
    struct anvil_link *l = link_find(e, p);
    if (!l && p->nlinks < ANVIL_PEER_LINK_LIMIT)
        l = link_new(e, p);
    if (l) {                /* without a link it could never be taken back */
        l->count++;
        e->conns++;
        note_peak(t, CNT_CONN_COUNT, e->conns, e, now);
    }
    rep->rate = bump(t, e, CNT_CONN_RATE, now);
}

static void do_disconnect(struct anvil_entry *e, struct anvil_peer *p)
{
    struct anvil_link *l = link_find(e, p);
    if (!l)
        return;             /* not counted here (anvil restarted, entry forgotten) */
    e->conns--;
    if (--l->count == 0)
        link_free(l);
}

void anvil_table_request(struct anvil_table *t, struct anvil_peer *p,
                         const struct anvil_request *req, time_t now, struct anvil_reply *rep)
{
    struct anvil_entry *e = entry_get(t, req, now);
    e->last = now;
    entry_window(t, e, now);
    rep->status = ANVIL_STAT_OK;
    rep->rate = 0;
    switch (req->type) {
    case ANVIL_REQ_CONNECT: do_connect(t, p, e, now, rep); break;
    case ANVIL_REQ_DISCONNECT: do_disconnect(e, p); break;
    case ANVIL_REQ_MESSAGE: rep->rate = bump(t, e, CNT_MAIL_RATE, now); break;
    case ANVIL_REQ_RECIPIENT: rep->rate = bump(t, e, CNT_RCPT_RATE, now); break;
    case ANVIL_REQ_NEWTLS: rep->rate = bump(t, e, CNT_NTLS_RATE, now); break;
    case ANVIL_REQ_NEWTLS_STATUS: rep->rate = e->rate[CNT_NTLS_RATE]; break;
    case ANVIL_REQ_AUTH: rep->rate = bump(t, e, CNT_AUTH_RATE, now); break;
    default: rep->status = ANVIL_STAT_FAIL; break;
    }
    rep->count = e->conns;
}

/* ---- peers ---- */

struct anvil_peer *anvil_peer_create(struct anvil_table *t)
{
    (void)t;
    return xcalloc(1, sizeof(struct anvil_peer));
}

void anvil_peer_close(struct anvil_table *t, struct anvil_peer *p)
{
    (void)t;
    while (!LIST_EMPTY(&p->links)) {
        struct anvil_link *l = LIST_FIRST(&p->links);
        l->entry->conns -= l->count;
        link_free(l);
    }
    free(p);
}

/* ---- housekeeping ---- */

void anvil_table_expire(struct anvil_table *t, time_t now)
{
    struct anvil_entry *e = TAILQ_FIRST(&t->lru);
    /* The list is ordered by last request, so the stale ones come first. */
    while (e && now - e->last >= t->unit) {
        struct anvil_entry *next = TAILQ_NEXT(e, lru);
        if (e->conns == 0)
            entry_remove(t, e);
        e = next;
    }
}

size_t anvil_table_size(const struct anvil_table *t)
{
    return t->size;
}

unsigned long anvil_table_evictions(const struct anvil_table *t)
{
    return t->evictions;
}

static const char *stamp(time_t when, char *buf, size_t size)
{
    struct tm tm;
    if (!localtime_r(&when, &tm) || strftime(buf, size, "%b %e %H:%M:%S", &tm) == 0)
        str_copy(buf, size, "?");
    return buf;
}

long anvil_table_peak(const struct anvil_table *t, bool rate)
{
    return t->peak[rate ? CNT_CONN_RATE : CNT_CONN_COUNT].value;
}

void anvil_table_log_stats(struct anvil_table *t)
{
    /* the peaks in the order they are logged, with their names */
    static const struct {
        enum anvil_counter counter;
        const char *text;
    } peaks[] = {
        { CNT_CONN_RATE, "connection rate" }, { CNT_CONN_COUNT, "connection count" },
        { CNT_MAIL_RATE, "message rate" }, { CNT_RCPT_RATE, "recipient rate" },
        { CNT_NTLS_RATE, "new TLS sessions" }, { CNT_AUTH_RATE, "AUTH rate" },
    };
    char when[64];
    for (size_t i = 0; i < sizeof(peaks) / sizeof(peaks[0]); i++) {
        enum anvil_counter c = peaks[i].counter;
        const struct anvil_peak *pk = &t->peak[c];
        if (pk->value <= 0)
            continue;
        if (c == CNT_CONN_COUNT)
            msg_info("statistics: max %s %ld for (%s) at %s", peaks[i].text, pk->value,
                     pk->ident, stamp(pk->when, when, sizeof(when)));
        else
            msg_info("statistics: max %s %ld/%lds for (%s) at %s", peaks[i].text, pk->value,
                     t->unit, pk->ident, stamp(pk->when, when, sizeof(when)));
    }
    if (t->peak_size > 0)
        msg_info("statistics: max cache size %zu at %s", t->peak_size,
                 stamp(t->peak_size_when, when, sizeof(when)));
    memset(t->peak, 0, sizeof(t->peak));
    t->peak_size = 0;
}

void anvil_table_free(struct anvil_table *t)
{
    if (!t)
        return;
    struct anvil_entry *e;
    while ((e = TAILQ_FIRST(&t->lru)))
        entry_remove(t, e);
    free(t->buckets);
    free(t);
}
