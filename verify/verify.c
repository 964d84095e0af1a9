/* verify.c: the address verification service, like Postfix's verify(8).
 * One long-running event-driven process on private/verify keeps the
 * address_verify_map cache of probe results and sends the probes:
 *
 *   - smtpd's reject_unverified_recipient / reject_unverified_sender ask
 *     {request=query, address, probe=1}; an address without a fresh result
 *     gets a probe: a message from address_verify_sender to the address,
 *     submitted through cleanup with the attribute verify_probe=ADDRESS
 *     (lib/global/QUEUE.md). qmgr routes it like any message, the delivery
 *     agents see the probe flag and only find out whether they could
 *     deliver (smtp and lmtp end after the RCPT reply, local and virtual
 *     look the recipient up without writing anything), and qmgr sends each
 *     outcome here as {request=update}, never as a bounce or a delivery;
 *   - `tern verify ADDRESS` asks with probe=0 to show the cache.
 *
 * Results age as Postfix's do (address_verify_positive_expire_time and
 * _refresh_time, address_verify_negative_*): a result past its refresh time
 * is still answered while a new probe runs; one past its expiry time is
 * forgotten. Probes are bounded so that a dictionary attack cannot become
 * a probe storm: at most address_verify_pending_limit under way, at most
 * address_verify_probe_rate_limit a minute, negative results cached, and
 * the cache itself bounded by address_verify_cache_size_limit. An address
 * over a bound is answered "unknown" (smtpd: verification in progress,
 * 450) without a probe.
 *
 * The cache is written to address_verify_map (a text file of Tern's own
 * in the local file store of cache_file.c,
 * one line per address: ADDRESS TAB STATUS TAB UPDATED TAB PROBED TAB
 * REASON) under a temporary name and renamed, every minute when it
 * changed and at exit, and read back at start. Berkeley DB is not used
 * because lib's tables are read-only by design; the file is private to
 * this service (mail_owner, 0600).
 *
 * address_verify_map may instead be a memcache: or redis: table
 * (cache_store.h) that the hosts of a fleet share: an address not known
 * here is looked up there, and each result is written there as
 * "STATUS TAB UPDATED TAB PROBED TAB REASON" (the fields of the file) that
 * expires with the result, so that an address one host verified is
 * answered on the others without a new probe. No file is written then. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "attr.h"
#include "cache_store.h"
#include "cleanup_client.h"
#include "config.h"
#include "evframe.h"
#include "log.h"
#include "queue.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"
#include "verify_proto.h"

#define VERIFY_OUTPUT_HIGH (64 * 1024) /* a client this far behind is dropped */
#define VERIFY_BATCH 64                /* requests answered per read event */
#define VERIFY_SAVE_INTERVAL 60        /* seconds between saves of a changed cache */
#define VERIFY_TIMER_INTERVAL 10       /* seconds between checks for stale probes */
#define VERIFY_DEFER_REFRESH_MAX 60    /* a temporary result is probed again this soon */
#define VERIFY_LINE_MAX (VERIFY_ADDR_MAX + VERIFY_REASON_MAX + 100)

struct entry {
    struct entry *next;          /* hash chain */
    char *address;               /* lower case */
    int status;                  /* enum verify_status */
    char *reason;
    long long updated;           /* when the result came in; 0: none yet */
    long long probed;            /* when the last probe was sent; 0: never */
    bool pending;                /* a probe is under way */
};

static struct {
    struct entry **buckets;
    size_t nbuckets, count, pending;
    long pos_expire, pos_refresh, neg_expire, neg_refresh, probe_timeout;
    bool neg_cache;
    long pending_limit, rate_limit, size_limit;
    long long rate_window;       /* start of the current minute of probes */
    long rate_count;
    char *path;                  /* the cache file; NULL: memory only */
    struct cache_store *shared;  /* memcache: or redis: table, or NULL */
    bool dirty;
    struct event *timer_ev;
    long long last_save;
    long long last_refusal_warning;  /* a flood is warned about once a minute */
} vc;

static unsigned long hash_of(const char *s)
{
    unsigned long h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static struct entry **slot_of(const char *address)
{
    struct entry **pp = &vc.buckets[hash_of(address) % vc.nbuckets];
    while (*pp && strcmp((*pp)->address, address) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void entry_free(struct entry *e)
{
    free(e->address);
    free(e->reason);
    free(e);
}

static void entry_remove(struct entry **pp)
{
    struct entry *e = *pp;
    *pp = e->next;
    if (e->pending)
        vc.pending--;
    vc.count--;
    entry_free(e);
    vc.dirty = true;
}

static void set_reason(struct entry *e, const char *reason)
{
    char buf[VERIFY_REASON_MAX];
    str_copy(buf, sizeof(buf), reason ? reason : "");
    for (char *p = buf; *p; p++)       /* one line in the cache file */
        if (*p == '\t' || *p == '\n' || *p == '\r')
            *p = ' ';
    free(e->reason);
    e->reason = xstrdup(buf);
}

/* Whether a result is past its expiry time. */
static bool expired(const struct entry *e, long long now)
{
    if (e->updated == 0)
        return e->pending ? false : now - e->probed > vc.probe_timeout;
    long life = e->status == VERIFY_STAT_OK ? vc.pos_expire : vc.neg_expire;
    return now - e->updated > life;
}

/* Make room for one more entry: drop what expired, then the oldest
 * results (never a probe under way) until a tenth of the limit is free. */
static void make_room(long long now)
{
    for (size_t b = 0; b < vc.nbuckets; b++)
        for (struct entry **pp = &vc.buckets[b]; *pp;)
            if (!(*pp)->pending && expired(*pp, now))
                entry_remove(pp);
            else
                pp = &(*pp)->next;
    if (vc.count < (size_t)vc.size_limit)
        return;
    size_t want = (size_t)vc.size_limit - (size_t)vc.size_limit / 10;
    /* the oldest first: raise a cut-off time until enough fall under it */
    long long cut = now - vc.neg_refresh;
    for (int round = 0; round < 32 && vc.count > want; round++) {
        for (size_t b = 0; b < vc.nbuckets; b++)
            for (struct entry **pp = &vc.buckets[b]; *pp;) {
                struct entry *e = *pp;
                long long t = e->updated > e->probed ? e->updated : e->probed;
                if (!e->pending && t <= cut && vc.count > want)
                    entry_remove(pp);
                else
                    pp = &e->next;
            }
        cut = now - (now - cut) / 2;
    }
}

static struct entry *entry_add(const char *address, long long now)
{
    if (vc.count >= (size_t)vc.size_limit)
        make_room(now);
    if (vc.count >= (size_t)vc.size_limit)
        return NULL;
    struct entry *e = xcalloc(1, sizeof(*e));
    e->address = xstrdup(address);
    e->status = VERIFY_STAT_TODO;
    e->reason = xstrdup("");
    struct entry **pp = slot_of(address);
    *pp = e;
    vc.count++;
    vc.dirty = true;
    return e;
}

/* ---- probes ---- */

/* Whether the entry's result is old enough, or missing, for a new probe. */
static bool probe_due(const struct entry *e, long long now)
{
    if (e->pending)
        return false;
    if (e->updated == 0)
        return true;
    long refresh = e->status == VERIFY_STAT_OK ? vc.pos_refresh
                   : !vc.neg_cache ? 0
                   : e->status == VERIFY_STAT_DEFER && vc.neg_refresh > VERIFY_DEFER_REFRESH_MAX
                       ? VERIFY_DEFER_REFRESH_MAX
                       : vc.neg_refresh;
    /* and not again within the refresh time (at most a minute) of the last
     * probe, whose temporary failure may have left the result as it was */
    long gap = refresh < VERIFY_DEFER_REFRESH_MAX ? refresh : VERIFY_DEFER_REFRESH_MAX;
    return now - e->updated >= refresh && now - e->probed >= gap;
}

/* Whether the bounds allow one more probe now. */
static bool probe_allowed(const char *address, long long now)
{
    if (now - vc.rate_window >= 60) {
        vc.rate_window = now;
        vc.rate_count = 0;
    }
    if ((long)vc.pending >= vc.pending_limit || vc.rate_count >= vc.rate_limit) {
        if (now - vc.last_refusal_warning < 60)
            return false;
        vc.last_refusal_warning = now;
        msg_warn("probe for <%.200s> not sent: %zu probes under way, %ld sent this minute "
                 "(address_verify_pending_limit, address_verify_probe_rate_limit); "
                 "more are not warned about for a minute",
                 address, vc.pending, vc.rate_count);
        return false;
    }
    return true;
}

/* spelled: the address as the client gave it, which the probe goes to (a
 * remote local part may be case-sensitive); the cache key is lower case. */
static void send_probe(struct entry *e, const char *spelled, long long now)
{
    char sender[VERIFY_ADDR_MAX];
    const char *s = cfg_str(P_address_verify_sender);
    if (strcmp(s, "<>") == 0)
        s = "";
    if (*s && !strchr(s, '@'))
        snprintf(sender, sizeof(sender), "%s@%s", s, cfg_str(P_myorigin));
    else
        str_copy(sender, sizeof(sender), s);
    struct strbuf content = STRBUF_INIT(4096), err = STRBUF_INIT(1024);
    sb_appendf(&content, "From: <%s>\nTo: <%s>\nSubject: probe\n\n", sender, spelled);
    const char *rcpts[1] = { spelled };
    const char *names[1] = { VERIFY_PROBE_ATTR }, *values[1] = { spelled };
    struct cleanup_submission sub = {
        .sender = sender, .rcpts = rcpts, .nrcpt = 1,
        .attr_names = names, .attr_values = values, .nattr = 1,
        .content = content.data, .content_len = content.len,
    };
    char id[QUEUE_ID_SIZE];
    e->probed = now;
    vc.dirty = true;
    vc.rate_count++;            /* a failed try counts too: cleanup is not hammered */
    if (cleanup_submit(".", cfg_str(P_cleanup_service_name), &sub, id, &err) == 0) {
        e->pending = true;
        vc.pending++;
        msg_info("%s: probe for <%s>", id, e->address);
    } else {
        msg_warn("cannot send a probe for <%s>: %s", e->address, sb_str(&err));
    }
    sb_free(&content);
    sb_free(&err);
}

/* ---- the shared cache ---- */

static bool cache_line(char *line, long long now);

/* What the shared cache knows of address, added to the memory table. */
static struct entry *shared_fetch(const char *address, long long now)
{
    char value[VERIFY_LINE_MAX];
    if (cache_store_get(vc.shared, address, value, sizeof(value)) != 1)
        return NULL;
    struct strbuf line = STRBUF_INIT(2 * VERIFY_LINE_MAX);
    sb_appendf(&line, "%s\t%s", address, value);
    if (!cache_line(line.data, now))
        msg_warn("%s: malformed entry for <%s> ignored", cache_store_name(vc.shared), address);
    sb_free(&line);
    return *slot_of(address);
}

static void shared_store(const struct entry *e, long long now)
{
    if (!vc.neg_cache && e->status != VERIFY_STAT_OK)
        return;
    long life = e->status == VERIFY_STAT_OK ? vc.pos_expire : vc.neg_expire;
    long ttl = life - (long)(now - e->updated);
    if (ttl <= 0)
        return;
    struct strbuf value = STRBUF_INIT(VERIFY_LINE_MAX);
    sb_appendf(&value, "%d\t%lld\t%lld\t%s", e->status, e->updated, e->probed, e->reason);
    cache_store_put(vc.shared, e->address, sb_str(&value), ttl);
    sb_free(&value);
}

/* ---- requests ---- */

static void answer(struct bufferevent *bev, const struct entry *e, bool *ok)
{
    struct strbuf out = STRBUF_INIT(VERIFY_FRAME_LIMIT);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_int(&w, "status", e ? e->status : VERIFY_STAT_TODO);
    attr_put_str(&w, "reason", e ? e->reason : "");
    attr_put_int(&w, "updated", e ? e->updated : 0);
    attr_put_int(&w, "probed", e ? e->probed : 0);
    *ok = attr_end(&w) == 0 && bufferevent_write(bev, out.data, out.len) == 0;
    sb_free(&out);
}

static void do_query(struct bufferevent *bev, const char *address, const char *spelled, bool probe,
                     bool *ok)
{
    long long now = time(NULL);
    struct entry **pp = slot_of(address), *e = *pp;
    if (e && !e->pending && expired(e, now)) {
        entry_remove(pp);
        e = NULL;
    }
    if (!e && vc.shared)
        e = shared_fetch(address, now);
    if (!e && !probe) {
        answer(bev, NULL, ok);
        return;
    }
    bool allowed = false;
    if (!e) {
        if (!(allowed = probe_allowed(address, now))) {
            answer(bev, NULL, ok);      /* "unknown", and nothing kept */
            return;
        }
        e = entry_add(address, now);
    }
    if (!e) {
        msg_warn("address verification cache full (address_verify_cache_size_limit = %ld)",
                 vc.size_limit);
        answer(bev, NULL, ok);
        return;
    }
    if (probe && probe_due(e, now) && (allowed || probe_allowed(address, now)))
        send_probe(e, spelled, now);
    answer(bev, e, ok);
}

static void do_update(struct bufferevent *bev, const char *address, int status, const char *reason,
                      bool *ok)
{
    long long now = time(NULL);
    struct entry *e = *slot_of(address);
    if (!e && !(e = entry_add(address, now)))
        e = NULL;
    if (e) {
        /* a temporary failure does not replace a good result that still
         * holds, nor make it last longer: it expires in its own time */
        if (!(status == VERIFY_STAT_DEFER && e->status == VERIFY_STAT_OK && !expired(e, now))) {
            e->status = status;
            set_reason(e, reason);
            e->updated = now;
        }
        if (e->pending) {
            e->pending = false;
            vc.pending--;
        }
        vc.dirty = true;
        if (vc.shared)
            shared_store(e, now);
        msg_debug("<%s>: %s: %s", address, verify_status_name(status), reason);
    }
    struct strbuf out = STRBUF_INIT(64);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_int(&w, "status", 0);
    *ok = attr_end(&w) == 0 && bufferevent_write(bev, out.data, out.len) == 0;
    sb_free(&out);
}

static bool verify_request(void *ctx, struct bufferevent *bev, const char *frame, size_t len)
{
    struct attr_reader r;
    const char *request, *address, *reason = "";
    long long probe = 0, status = 0;
    char name[ATTR_NAME_MAX + 1];
    if (attr_reader_init(&r, frame, len) < 0 || attr_get_str(&r, "request", &request) < 0
        || attr_get_str(&r, "address", &address) < 0) {
        msg_warn("malformed request from a client; closing its connection");
        return false;
    }
    bool query = strcmp(request, VERIFY_REQ_QUERY) == 0;
    if (query) {
        if (attr_get_int(&r, "probe", 0, 1, &probe) < 0)
            request = "";
    } else if (strcmp(request, VERIFY_REQ_UPDATE) == 0) {
        if (attr_get_int(&r, "status", 0, VERIFY_STAT_BOUNCE, &status) < 0
            || attr_get_str(&r, "reason", &reason) < 0)
            request = "";
    } else {
        request = "";
    }
    size_t alen = strlen(address);
    if (!*request || attr_peek_name(&r, name, sizeof(name)) || attr_reader_done(&r) < 0
        || alen == 0 || alen >= VERIFY_ADDR_MAX || !str_printable(address, VERIFY_ADDR_MAX)) {
        msg_warn("malformed request from a client; closing its connection");
        return false;
    }
    char key[VERIFY_ADDR_MAX];
    str_copy(key, sizeof(key), address);
    str_lower(key);
    bool ok;
    if (query)
        do_query(bev, key, address, probe != 0, &ok);
    else
        do_update(bev, key, (int)status, reason, &ok);
    return ok;
}

/* A client needs no state of its own: NULL context. */
static void verify_accept(int fd, struct event_base *base)
{
    static const struct evframe_service service = {
        .protocol = VERIFY_PROTOCOL, .limit = VERIFY_FRAME_LIMIT, .batch = VERIFY_BATCH,
        .output_high = VERIFY_OUTPUT_HIGH, .handle = verify_request,
        .closed = server_frames_closed,
    };
    server_serve_frames(fd, base, &service, NULL);
}

/* ---- the cache file ---- */

static void write_entries(FILE *fp, void *ctx)
{
    (void)ctx;
    fputs("# address verification cache of tern's verify service; do not edit while it runs\n", fp);
    for (size_t b = 0; b < vc.nbuckets; b++)
        for (const struct entry *e = vc.buckets[b]; e; e = e->next) {
            if (e->updated == 0 || (!vc.neg_cache && e->status != VERIFY_STAT_OK))
                continue;
            fprintf(fp, "%s\t%d\t%lld\t%lld\t%s\n", e->address, e->status, e->updated, e->probed,
                    e->reason);
        }
}

static void cache_save(void)
{
    if (!vc.path || !vc.dirty)
        return;
    if (cache_file_save(AT_FDCWD, vc.path, "address_verify_map", write_entries, NULL) == 0)
        vc.dirty = false;
    vc.last_save = time(NULL);
}

/* One line of the file: "ADDRESS TAB STATUS TAB UPDATED TAB PROBED TAB REASON". */
static bool cache_line(char *line, long long now)
{
    char *f[5];
    f[0] = line;
    for (int i = 1; i < 5; i++) {
        char *tab = strchr(f[i - 1], '\t');
        if (!tab)
            return false;
        *tab = 0;
        f[i] = tab + 1;
    }
    char *end;
    long status = strtol(f[1], &end, 10);
    if (*end || status < VERIFY_STAT_OK || status > VERIFY_STAT_BOUNCE)
        return false;
    long long updated = strtoll(f[2], &end, 10);
    if (*end || updated <= 0)
        return false;
    long long probed = strtoll(f[3], &end, 10);
    size_t alen = strlen(f[0]);
    if (*end || probed < 0 || alen == 0 || alen >= VERIFY_ADDR_MAX || *slot_of(f[0]))
        return false;
    struct entry e = { .status = (int)status, .updated = updated, .probed = probed };
    if (expired(&e, now))
        return true;
    struct entry *n = entry_add(str_lower(f[0]), now);
    if (!n)
        return true;
    n->status = e.status;
    n->updated = updated;
    n->probed = probed;
    set_reason(n, f[4]);
    return true;
}

static bool load_line(char *line, void *ctx)
{
    return cache_line(line, *(long long *)ctx);
}

static void cache_load(void)
{
    long long now = time(NULL);
    cache_file_load(AT_FDCWD, vc.path, "address_verify_map", VERIFY_LINE_MAX, load_line, &now);
    vc.dirty = false;
}

/* The file named by address_verify_map, or NULL for none. */
static char *cache_path(void)
{
    const char *spec = cfg_str(P_address_verify_map);
    if (!*spec || cache_store_shared(spec))
        return NULL;
    static const char *const types[] = { "btree:", "hash:", "texthash:" };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strncmp(spec, types[i], strlen(types[i])) == 0)
            return xstrdup(spec + strlen(types[i]));
    if (strchr(spec, ':') && spec[0] != '/') {
        msg_warn("address_verify_map = %s: only a file (optionally btree:, hash: or texthash:) "
                 "is supported; the cache lives in memory only", spec);
        return NULL;
    }
    return xstrdup(spec);
}

/* ---- timers and life cycle ---- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    long long now = time(NULL);
    /* a probe that brought no result in time (its message was lost or
     * removed) no longer counts as under way */
    for (size_t b = 0; b < vc.nbuckets; b++)
        for (struct entry *e = vc.buckets[b]; e; e = e->next)
            if (e->pending && now - e->probed > vc.probe_timeout) {
                e->pending = false;
                vc.pending--;
            }
    if (now - vc.last_save >= VERIFY_SAVE_INTERVAL)
        cache_save();
}

static long positive(long v)
{
    return v < 0 ? 0 : v;
}

/* As root, before a chroot: a shared cache's file is read and its server
 * resolved now. */
static void verify_pre_init(void)
{
    const char *spec = cfg_str(P_address_verify_map);
    if (!cache_store_shared(spec))
        return;
    /* one event loop answers every smtpd */
    vc.shared = cache_store_open_event_loop(spec, "address_verify_map");
}

static void verify_post_init(struct event_base *base)
{
    vc.pos_expire = positive(cfg_time(P_address_verify_positive_expire_time));
    vc.pos_refresh = positive(cfg_time(P_address_verify_positive_refresh_time));
    vc.neg_expire = positive(cfg_time(P_address_verify_negative_expire_time));
    vc.neg_refresh = positive(cfg_time(P_address_verify_negative_refresh_time));
    vc.neg_cache = cfg_bool(P_address_verify_negative_cache);
    vc.probe_timeout = cfg_time(P_address_verify_probe_timeout);
    if (vc.probe_timeout < 1)
        vc.probe_timeout = 1;
    vc.pending_limit = cfg_int(P_address_verify_pending_limit);
    vc.rate_limit = cfg_int(P_address_verify_probe_rate_limit);
    vc.size_limit = cfg_int(P_address_verify_cache_size_limit);
    if (vc.size_limit < 10)
        vc.size_limit = 10;
    vc.nbuckets = (size_t)vc.size_limit / 4 + 17;
    vc.buckets = xcalloc(vc.nbuckets, sizeof(*vc.buckets));
    vc.path = cache_path();
    if (vc.path)
        cache_load();
    vc.last_save = time(NULL);
    vc.timer_ev = event_new(base, -1, EV_PERSIST, on_timer, NULL);
    struct timeval tv = { VERIFY_TIMER_INTERVAL, 0 };
    if (!vc.timer_ev || event_add(vc.timer_ev, &tv) < 0)
        msg_fatal("cannot set up a timer: out of memory");
}

static void verify_pre_exit(void)
{
    cache_save();
}

SERVER_MAIN("verify", .mode = SERVER_EVENT, .accept_event = verify_accept,
            .pre_init = verify_pre_init, .post_init = verify_post_init,
            .pre_exit = verify_pre_exit, .long_running = true)
