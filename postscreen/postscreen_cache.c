/* postscreen_cache.c: postscreen's temporary allowlist: for each client
 * address, until when each test stays passed. It lives in memory (one
 * process owns it) and is saved in data_directory/postscreen/cache, a
 * text file of Tern's own format (cache_file.c), one line per client:
 *     ADDRESS PREGREET DNSBL PIPELINING NON_SMTP BARE_NEWLINE
 * (each a UNIX time until which that test stays passed, 0: not passed),
 * written under a temporary name and renamed, every PSC_SAVE_INTERVAL
 * when it changed and at exit; read back at start, bad lines skipped.
 * Entries whose last pass expired postscreen_cache_retention_time ago are
 * removed every postscreen_cache_cleanup_interval, a bounded slice of the
 * table per event so that a large cache never stalls the screening.
 *
 * When postscreen_cache_map is a memcache: or redis: table (cache_store.h),
 * the hosts of a fleet share the allowlist: a client not known here is
 * looked up there, and every pass is written there too, as
 * "PREGREET;DNSBL;PIPELINING;NON_SMTP;BARE_NEWLINE" (the same times) that
 * expires with the last of them plus postscreen_cache_retention_time. The
 * memory table stays in front of it; no file is written then. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "cache_store.h"
#include "config.h"
#include "data_dir.h"
#include "log.h"
#include "postscreen.h"
#include "strbuf.h"
#include "util.h"

#define PSC_BUCKETS 65536
#define PSC_SAVE_INTERVAL 60          /* seconds */
#define PSC_CLEAN_SLICE 4096          /* buckets looked at per cleanup event */
#define PSC_CACHE_MAX 1000000         /* entries; beyond, the oldest make room */
#define PSC_CACHE_FILE "cache"
#define PSC_LINE_MAX 255              /* the longest line of the file */

struct cache_entry {
    struct cache_entry *next;
    time_t until[PSC_TEST_COUNT];
    char addr[PSC_ADDR_MAX];
};

static struct {
    struct cache_entry *buckets[PSC_BUCKETS];
    size_t count;
    bool dirty, persistent;
    int data_fd, dir_fd;
    long retention, cleanup_interval;
    size_t clean_cursor, clean_dropped;     /* where this cleanup is, what it removed */
    struct event *save_ev, *clean_ev;
    struct cache_store *shared;             /* memcache: or redis:, or NULL */
} cache = { .data_fd = -1, .dir_fd = -1 };

/* The bucket of an address: FNV-1a over its text. */
static struct cache_entry **bucket_of(const char *addr)
{
    unsigned h = 2166136261u;
    while (*addr)
        h = (h ^ (unsigned char)*addr++) * 16777619u;
    return &cache.buckets[h % PSC_BUCKETS];
}

static struct cache_entry *cache_find(const char *addr)
{
    struct cache_entry *e = *bucket_of(addr);
    while (e && strcmp(e->addr, addr) != 0)
        e = e->next;
    return e;
}

static time_t latest_pass(const struct cache_entry *e)
{
    time_t t = 0;
    for (int i = 0; i < PSC_TEST_COUNT; i++)
        if (e->until[i] > t)
            t = e->until[i];
    return t;
}

/* A full table makes room: from the first non-empty bucket at or after
 * from, the entry whose passes end first goes. Addresses that only waited
 * out the greeting (a flood of them costs an attacker little) hold short
 * passes; a client that passed the deep tests holds them for 30 days, so
 * it is the last to go and new clients keep getting through. */
static void evict_one(struct cache_entry **from)
{
    static time_t warned;
    size_t at = (size_t)(from - cache.buckets);
    for (size_t n = 0; n < PSC_BUCKETS; n++, at = (at + 1) % PSC_BUCKETS) {
        struct cache_entry **pp = &cache.buckets[at], **victim = NULL;
        for (; *pp; pp = &(*pp)->next)
            if (!victim || latest_pass(*pp) < latest_pass(*victim))
                victim = pp;
        if (!victim)
            continue;
        struct cache_entry *e = *victim;
        *victim = e->next;
        free(e);
        cache.count--;
        break;
    }
    time_t now = time(NULL);
    if (now - warned >= 3600) {
        warned = now;
        msg_warn("the postscreen cache is full (%d entries): the clients whose passes end "
                 "first make room", PSC_CACHE_MAX);
    }
}

static struct cache_entry *cache_add(const char *addr)
{
    if (strlen(addr) >= PSC_ADDR_MAX)
        return NULL;
    struct cache_entry **b = bucket_of(addr);
    if (cache.count >= PSC_CACHE_MAX)
        evict_one(b);
    struct cache_entry *e = xcalloc(1, sizeof(*e));
    str_copy(e->addr, sizeof(e->addr), addr);
    e->next = *b;
    *b = e;
    cache.count++;
    return e;
}

/* What the shared cache knows of addr, merged into the memory table. */
static struct cache_entry *shared_fetch(const char *addr, struct cache_entry *e)
{
    char value[256];
    long long v[PSC_TEST_COUNT];
    char end;
    if (cache_store_get(cache.shared, addr, value, sizeof(value)) != 1)
        return e;
    if (sscanf(value, "%lld;%lld;%lld;%lld;%lld%c", &v[0], &v[1], &v[2], &v[3], &v[4], &end)
        != PSC_TEST_COUNT) {
        msg_warn("%s: malformed entry for %s ignored", cache_store_name(cache.shared), addr);
        return e;
    }
    if (!e && !(e = cache_add(addr)))
        return NULL;
    for (int t = 0; t < PSC_TEST_COUNT; t++)
        if (v[t] > (long long)e->until[t])
            e->until[t] = (time_t)v[t];
    return e;
}

static void shared_store(const struct cache_entry *e, time_t now)
{
    char value[256];
    time_t last = 0;
    for (int t = 0; t < PSC_TEST_COUNT; t++)
        if (e->until[t] > last)
            last = e->until[t];
    snprintf(value, sizeof(value), "%lld;%lld;%lld;%lld;%lld", (long long)e->until[0],
             (long long)e->until[1], (long long)e->until[2], (long long)e->until[3],
             (long long)e->until[4]);
    long ttl = (long)(last - now) + cache.retention;
    cache_store_put(cache.shared, e->addr, value, ttl > 0 ? ttl : 1);
}

unsigned postscreen_cache_expired(const char *addr, unsigned mask, time_t now)
{
    const struct cache_entry *e = cache_find(addr);
    unsigned todo = 0;
    if (cache.shared) {
        for (int t = 0; t < PSC_TEST_COUNT; t++)
            if ((mask & (1u << t)) && (!e || e->until[t] <= now))
                todo |= 1u << t;
        if (todo)
            e = shared_fetch(addr, cache_find(addr));
        todo = 0;
    }
    for (int t = 0; t < PSC_TEST_COUNT; t++)
        if ((mask & (1u << t)) && (!e || e->until[t] <= now))
            todo |= 1u << t;
    return todo;
}

void postscreen_cache_pass(const char *addr, enum postscreen_test t, time_t now)
{
    struct cache_entry *e = cache_find(addr);
    if (!e && !(e = cache_add(addr)))
        return;
    e->until[t] = now + psc_cfg.ttl[t];
    cache.dirty = true;
    if (cache.shared)
        shared_store(e, now);
}

void postscreen_cache_pass_all(const char *addr, time_t now, long ttl)
{
    struct cache_entry *e = cache_find(addr);
    if (!e && !(e = cache_add(addr)))
        return;
    for (int t = 0; t < PSC_TEST_COUNT; t++)
        e->until[t] = now + ttl;
    cache.dirty = true;
    if (cache.shared)
        shared_store(e, now);
}

/* ---- the file ---- */

void postscreen_cache_open(void)
{
    const char *spec = cfg_str(P_postscreen_cache_map);
    if (cache_store_shared(spec)) {
        /* one event loop screens every client */
        cache.shared = cache_store_open_event_loop(spec, "postscreen_cache_map");
        return;
    }
    cache.persistent = *spec != 0;
    if (cache.persistent)
        cache.data_fd = data_dir_open("postscreen", "its cache is kept in memory only");
}

static bool load_line(char *line, void *ctx)
{
    (void)ctx;
    char addr[PSC_ADDR_MAX], end;
    long long v[PSC_TEST_COUNT];
    if (sscanf(line, "%63s %lld %lld %lld %lld %lld %c", addr, &v[0], &v[1], &v[2], &v[3], &v[4],
               &end) != 1 + PSC_TEST_COUNT
        || strspn(addr, "0123456789abcdefABCDEF.:") != strlen(addr))
        return false;
    struct cache_entry *e = cache_find(addr);
    if (!e && !(e = cache_add(addr)))
        return true;
    for (int t = 0; t < PSC_TEST_COUNT; t++)
        e->until[t] = v[t] < 0 ? 0 : (time_t)v[t];
    return true;
}

static void cache_read(void)
{
    cache_file_load(cache.dir_fd, PSC_CACHE_FILE, "postscreen cache", PSC_LINE_MAX, load_line,
                    NULL);
    msg_debug("postscreen cache: %zu entries read", cache.count);
}

static void write_entries(FILE *fp, void *ctx)
{
    (void)ctx;
    for (size_t b = 0; b < PSC_BUCKETS; b++)
        for (const struct cache_entry *e = cache.buckets[b]; e; e = e->next)
            fprintf(fp, "%s %lld %lld %lld %lld %lld\n", e->addr, (long long)e->until[0],
                    (long long)e->until[1], (long long)e->until[2], (long long)e->until[3],
                    (long long)e->until[4]);
}

void postscreen_cache_save(void)
{
    if (cache.dir_fd < 0 || !cache.dirty)
        return;
    if (cache_file_save(cache.dir_fd, PSC_CACHE_FILE, "postscreen cache", write_entries, NULL) == 0)
        cache.dirty = false;
}

/* ---- expiry ---- */

static bool entry_expired(const struct cache_entry *e, time_t now)
{
    time_t last = 0;
    for (int t = 0; t < PSC_TEST_COUNT; t++)
        if (e->until[t] > last)
            last = e->until[t];
    return last + cache.retention <= now;
}

/* One slice of the table; the next one follows at once until the end. */
static void cache_clean(evutil_socket_t fd, short what, void *arg)
{
    time_t now = time(NULL);
    size_t end = cache.clean_cursor + PSC_CLEAN_SLICE, removed = 0;
    for (; cache.clean_cursor < end && cache.clean_cursor < PSC_BUCKETS; cache.clean_cursor++) {
        struct cache_entry **pp = &cache.buckets[cache.clean_cursor];
        while (*pp) {
            struct cache_entry *e = *pp;
            if (entry_expired(e, now)) {
                *pp = e->next;
                free(e);
                cache.count--;
                removed++;
            } else {
                pp = &e->next;
            }
        }
    }
    if (removed)
        cache.dirty = true;
    cache.clean_dropped += removed;
    struct timeval tv = { 0, 0 };
    if (cache.clean_cursor >= PSC_BUCKETS) {
        msg_info("cache %s full cleanup: retained=%zu dropped=%zu entries",
                 cfg_str(P_postscreen_cache_map), cache.count, cache.clean_dropped);
        cache.clean_cursor = 0;
        cache.clean_dropped = 0;
        tv.tv_sec = cache.cleanup_interval;
    }
    event_add(cache.clean_ev, &tv);
}

static void cache_save_tick(evutil_socket_t fd, short what, void *arg)
{
    postscreen_cache_save();
}

void postscreen_cache_load(struct event_base *base)
{
    cache.retention = cfg_time(P_postscreen_cache_retention_time);
    cache.cleanup_interval = cfg_time(P_postscreen_cache_cleanup_interval);
    if (cache.data_fd >= 0)
        cache.dir_fd = data_dir_folder(&cache.data_fd, "postscreen", "postscreen",
                                       "its cache is kept in memory only");
    if (cache.dir_fd >= 0) {
        cache_read();
        cache.save_ev = event_new(base, -1, EV_PERSIST, cache_save_tick, NULL);
        struct timeval tv = { PSC_SAVE_INTERVAL, 0 };
        if (!cache.save_ev || event_add(cache.save_ev, &tv) < 0)
            msg_fatal("cannot set up a timer: out of memory");
    }
    if (cache.cleanup_interval > 0) {
        cache.clean_ev = evtimer_new(base, cache_clean, NULL);
        struct timeval tv = { cache.cleanup_interval, 0 };
        if (!cache.clean_ev || event_add(cache.clean_ev, &tv) < 0)
            msg_fatal("cannot set up a timer: out of memory");
    }
}
