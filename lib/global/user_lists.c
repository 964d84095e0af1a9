/* user_lists.c: the users' allow and deny lists and the correspondent
 * allowlist, in Berkeley DB files opened under a lock for each operation
 * (user_lists.h). */
#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chroot.h"
#include "config.h"
#include "log.h"
#include "strbuf.h"
#include "user_lists.h"
#include "util.h"

#define LISTS_DB "user_lists"
#define CORR_DB "correspondents"
#define COUNT_KEY "#count"            /* no address key starts with '#' */
#define VALUE_MAX (1024 * 1024)       /* a user's lists, as one value */
/* so many entries of the longest kind ("allow:" + pattern + ",") fit in
 * VALUE_MAX, whatever user_lists_max_entries says */
#define ENTRIES_CAP 4000
_Static_assert(ENTRIES_CAP * (USER_LISTS_ADDRESS_MAX + 8) < VALUE_MAX, "the lists fit in a value");
#define EVICT_KEEP(max) ((max) - (max) / 10)   /* eviction leaves room for a tenth */

/* ---- the folder and the locked files ---- */

static bool create_refused;      /* after user_lists_prepare */
/* A daemon's folder, opened by descriptor before a chroot could hide
 * it (user_lists_prepare), and the working directory to come back to
 * after Berkeley DB, which opens by name, has opened a file in it. */
static int dir_fd = -1, home_fd = -1;

const char *user_lists_dir(struct strbuf *err)
{
    static char dir[1024];
    static bool checked;
    if (checked)
        return dir;
    const char *name = cfg_str(P_user_lists_directory);
    if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        sb_appendf(err, "user_lists_directory = %s: must be one folder name inside data_directory",
                   name);
        return NULL;
    }
    /* chrooted into queue_directory (master.cf chroot = y), the default
     * data_directory $queue_directory/data is /data */
    const char *data = cfg_str(P_data_directory), *queue = cfg_str(P_queue_directory);
    size_t qlen = strlen(queue);
    if (chroot_active() && strncmp(data, queue, qlen) == 0 && data[qlen] == '/')
        data += qlen;
    if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", data, name) >= sizeof(dir)) {
        sb_appendf(err, "data_directory is too long");
        return NULL;
    }
    /* after user_lists_prepare this process may not make anything */
    if (!create_refused && mkdir(dir, 0700) < 0 && errno != EEXIST) {
        sb_appendf(err, "cannot create %s: %s", dir, strerror(errno));
        return NULL;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        sb_appendf(err, "cannot open %s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    close(fd);
    if (st.st_uid != geteuid() || (st.st_mode & 077)) {
        sb_appendf(err, "%s must belong to %s and be mode 0700: refused", dir,
                   cfg_str(P_mail_owner));
        return NULL;
    }
    checked = true;
    return dir;
}

struct ldb {
    int lock_fd;
    DB *db;                 /* NULL: reading a table that does not exist yet */
};

static void ldb_close(struct ldb *l)
{
    if (l->db)
        l->db->close(l->db, 0);
    if (l->lock_fd >= 0)
        close(l->lock_fd);      /* and with it the lock */
    l->db = NULL;
    l->lock_fd = -1;
}

/* A plain file of this account with one link (or none yet): what the
 * database library, which opens by name, will find there. */
static int file_ok(int at, const char *path, struct strbuf *err)
{
    int fd = openat(at, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        sb_appendf(err, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int rc = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1
                     && st.st_uid == geteuid() ? 1 : -1;
    close(fd);
    if (rc < 0)
        sb_appendf(err, "%s is not a plain file of this account: refused", path);
    return rc;
}

/* Open NAME.db by name for the library: in dir_fd's folder when there is
 * one (the working directory is changed for that moment only: smtpd's
 * other threads only compute password hashes), else by its full path. */
static int db_open_named(DB *db, const char *dir, const char *name, bool btree, bool write)
{
    char path[1100];
    if (dir_fd >= 0)
        snprintf(path, sizeof(path), "%s.db", name);
    else
        snprintf(path, sizeof(path), "%s/%s.db", dir, name);
    if (dir_fd >= 0 && fchdir(dir_fd) < 0)
        return errno;
    int rc = db->open(db, NULL, path, NULL, btree ? DB_BTREE : DB_HASH,
                      write ? DB_CREATE : DB_RDONLY, 0600);
    if (dir_fd >= 0 && fchdir(home_fd) < 0)
        msg_fatal("cannot return to the working directory: %s", strerror(errno));
    return rc;
}

static int ldb_open(struct ldb *l, const char *name, bool btree, bool write, struct strbuf *err)
{
    l->lock_fd = -1;
    l->db = NULL;
    const char *dir = dir_fd >= 0 ? "." : user_lists_dir(err);
    if (!dir)
        return -1;
    int at = dir_fd >= 0 ? dir_fd : AT_FDCWD;
    char lock[1100], path[1100];
    snprintf(lock, sizeof(lock), "%s/%s.lock", dir, name);
    snprintf(path, sizeof(path), "%s/%s.db", dir, name);
    l->lock_fd = openat(at, lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    struct stat st;
    if (l->lock_fd < 0 || fstat(l->lock_fd, &st) < 0 || !S_ISREG(st.st_mode)
        || st.st_uid != geteuid()) {
        sb_appendf(err, "cannot open the lock file %s: %s", lock,
                   l->lock_fd < 0 ? strerror(errno) : "not a plain file of this account");
        ldb_close(l);
        return -1;
    }
    while (flock(l->lock_fd, write ? LOCK_EX : LOCK_SH) < 0) {
        if (errno != EINTR) {
            sb_appendf(err, "cannot lock %s: %s", lock, strerror(errno));
            ldb_close(l);
            return -1;
        }
    }
    int exists = file_ok(at, path, err);
    if (exists == 0 && write && create_refused) {
        sb_appendf(err, "%s has been removed; it is made again when the service restarts", path);
        exists = -1;
    }
    if (exists < 0 || (exists == 0 && !write)) {
        if (exists < 0)
            ldb_close(l);
        return exists < 0 ? -1 : 0;
    }
    int rc = db_create(&l->db, NULL, 0);
    if (rc == 0 && write)
        rc = l->db->set_flags(l->db, DB_CHKSUM);
    if (rc == 0)
        rc = db_open_named(l->db, dir, name, btree, write);
    if (rc != 0) {
        sb_appendf(err, "cannot open %s: %s", path, db_strerror(rc));
        if (l->db)
            l->db->close(l->db, 0);
        l->db = NULL;
        ldb_close(l);
        return -1;
    }
    return 0;
}

int user_lists_prepare(int fd, struct strbuf *err)
{
    static const struct { const char *name; bool btree; } tables[] = {
        { LISTS_DB, false }, { CORR_DB, true },
    };
    int rc = 0;
    if (fd >= 0) {
        home_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (home_fd < 0) {
            sb_appendf(err, "cannot open the working directory: %s", strerror(errno));
            rc = -1;
        } else {
            dir_fd = fd;
        }
    }
    for (size_t i = 0; rc == 0 && i < sizeof(tables) / sizeof(*tables); i++) {
        struct ldb l;
        if (ldb_open(&l, tables[i].name, tables[i].btree, true, err) < 0)
            rc = -1;
        ldb_close(&l);
    }
    /* even after a failure: a later try could need calls the filter lacks */
    create_refused = true;
    return rc;
}

/* As `tern map build` stores them: key and value with their NUL. 1 found,
 * 0 not, -1 error. */
static int ldb_get(struct ldb *l, const char *key, struct strbuf *value)
{
    sb_reset(value);
    if (!l->db)
        return 0;
    DBT k = { .data = (void *)key, .size = (u_int32_t)strlen(key) + 1 };
    DBT v = { 0 };
    int rc = l->db->get(l->db, NULL, &k, &v, 0);
    if (rc == DB_NOTFOUND)
        return 0;
    if (rc != 0)
        return -1;
    size_t n = v.size;
    if (n && ((char *)v.data)[n - 1] == 0)
        n--;
    return sb_append(value, v.data, n) < 0 ? -1 : 1;
}

static int ldb_put(struct ldb *l, const char *key, const char *value)
{
    DBT k = { .data = (void *)key, .size = (u_int32_t)strlen(key) + 1 };
    DBT v = { .data = (void *)value, .size = (u_int32_t)strlen(value) + 1 };
    return l->db->put(l->db, NULL, &k, &v, 0) == 0 ? 0 : -1;
}

static int ldb_del(struct ldb *l, const char *key)
{
    DBT k = { .data = (void *)key, .size = (u_int32_t)strlen(key) + 1 };
    int rc = l->db->del(l->db, NULL, &k, 0);
    return rc == 0 || rc == DB_NOTFOUND ? 0 : -1;
}

/* ---- checking what is given ---- */

static int check_address(char *s, bool pattern, const char *what, struct strbuf *err)
{
    size_t n = strlen(s);
    if (n == 0 || n > USER_LISTS_ADDRESS_MAX) {
        sb_appendf(err, "%s must be 1 to %d bytes long", what, USER_LISTS_ADDRESS_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || strchr(",:;\"'<>\\()[]", c)) {
            sb_appendf(err, "%s must not contain blanks, control characters, non-ASCII bytes "
                       "or any of , : ; \" ' < > \\ ( ) [ ]", what);
            return -1;
        }
    }
    const char *at = strchr(s, '@');
    if (!at || strchr(at + 1, '@') || !at[1] || at[1] == '.' || s[n - 1] == '.'
        || (!pattern && at == s)) {
        sb_appendf(err, "%s must be %s", what, pattern ? "an address (user@domain) or a domain (@domain)"
                                                       : "an address (user@domain)");
        return -1;
    }
    str_lower(s);
    return 0;
}

int user_lists_check_user(char *user, struct strbuf *err)
{
    return check_address(user, false, "the user", err);
}

int user_lists_check_pattern(char *pattern, struct strbuf *err)
{
    return check_address(pattern, true, "the pattern", err);
}

static const char *kind_name(enum user_list_kind k)
{
    return k == USER_LIST_ALLOW ? "allow" : "deny";
}

/* ---- the lists ---- */

/* Whether the comma list has the entry; its index in entries, or -1. */
static bool list_has(const char *list, const char *entry, size_t *count)
{
    bool found = false;
    size_t n = 0, elen = strlen(entry);
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len) {
            n++;
            if (len == elen && memcmp(p, entry, len) == 0)
                found = true;
        }
        p += len + (c ? 1 : 0);
    }
    if (count)
        *count = n;
    return found;
}

/* cur without the entry */
static void list_without(const char *cur, const struct strbuf *entry, struct strbuf *next)
{
    for (const char *p = cur; *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len && !(len == entry->len && memcmp(p, entry->data, len) == 0)) {
            if (next->len)
                sb_appendc(next, ',');
            sb_append(next, p, len);
        }
        p += len + (c ? 1 : 0);
    }
}

/* Add (max > 0) or remove (max == 0) kind:pattern in user's lists. */
static int lists_change(const char *user, enum user_list_kind kind, const char *pattern, size_t max,
                        struct strbuf *err)
{
    struct ldb l;
    if (ldb_open(&l, LISTS_DB, false, true, err) < 0)
        return -1;
    bool add = max > 0;
    struct strbuf cur = STRBUF_INIT(VALUE_MAX), next = STRBUF_INIT(VALUE_MAX), entry = STRBUF_INIT(0);
    sb_appendf(&entry, "%s:%s", kind_name(kind), pattern);
    int rc = -1;
    size_t count;
    bool listed = false;
    if (ldb_get(&l, user, &cur) < 0)
        sb_appendf(err, "cannot read the lists of %s", user);
    else if ((listed = list_has(sb_str(&cur), sb_str(&entry), &count)) == add)
        rc = add ? (sb_set(err, "already listed"), 0)
                 : (sb_appendf(err, "%s is not on the %s list of %s", pattern, kind_name(kind), user), -1);
    else if (add && count >= max)
        sb_appendf(err, "the lists of %s are full (%zu entries, user_lists_max_entries)", user, count);
    else {
        if (add) {
            sb_append(&next, cur.data, cur.len);
            if (next.len)
                sb_appendc(&next, ',');
            sb_append(&next, entry.data, entry.len);
        } else {
            list_without(sb_str(&cur), &entry, &next);
        }
        if ((next.len ? ldb_put(&l, user, sb_str(&next)) : ldb_del(&l, user)) < 0) {
            sb_appendf(err, "cannot write the lists of %s", user);
        } else {
            sb_set(err, add ? "added" : "removed");
            rc = 0;
        }
    }
    sb_free(&cur);
    sb_free(&next);
    sb_free(&entry);
    ldb_close(&l);
    return rc;
}

int user_lists_add(const char *user, enum user_list_kind kind, const char *pattern, size_t max,
                   struct strbuf *err)
{
    return lists_change(user, kind, pattern, max == 0 ? 1 : max > ENTRIES_CAP ? ENTRIES_CAP : max, err);
}

int user_lists_remove(const char *user, enum user_list_kind kind, const char *pattern,
                      struct strbuf *err)
{
    return lists_change(user, kind, pattern, 0, err);
}

int user_lists_get(const char *user, struct strbuf *out, struct strbuf *err)
{
    struct ldb l;
    if (ldb_open(&l, LISTS_DB, false, false, err) < 0)
        return -1;
    int rc = ldb_get(&l, user, out);
    if (rc < 0)
        sb_appendf(err, "cannot read the lists of %s", user);
    ldb_close(&l);
    return rc < 0 ? -1 : 0;
}

int user_lists_match(const char *recipient, const char *sender, struct strbuf *which)
{
    char rcpt[USER_LISTS_ADDRESS_MAX + 1], from[USER_LISTS_ADDRESS_MAX + 1];
    sb_reset(which);
    if (!*sender || strlen(recipient) > USER_LISTS_ADDRESS_MAX || strlen(sender) > USER_LISTS_ADDRESS_MAX)
        return 0;
    str_copy(rcpt, sizeof(rcpt), recipient);
    str_copy(from, sizeof(from), sender);
    str_lower(rcpt);
    str_lower(from);
    const char *at = strrchr(from, '@');
    struct strbuf err = STRBUF_INIT(1024), list = STRBUF_INIT(VALUE_MAX);
    struct ldb l;
    int rc = ldb_open(&l, LISTS_DB, false, false, &err);
    if (rc == 0)
        rc = ldb_get(&l, rcpt, &list);
    ldb_close(&l);
    if (rc < 0) {
        msg_warn("%s: %s", LISTS_DB, err.len ? sb_str(&err) : "cannot read the table");
        sb_free(&err);
        sb_free(&list);
        return -1;
    }
    /* best: 4 deny address, 3 allow address, 2 deny domain, 1 allow domain */
    int best = 0;
    for (const char *p = sb_str(&list); *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (colon) {
            bool deny = (size_t)(colon - p) == 4 && memcmp(p, "deny", 4) == 0;
            const char *pat = colon + 1;
            size_t plen = len - (size_t)(pat - p);
            int level = 0;
            if (plen == strlen(from) && memcmp(pat, from, plen) == 0)
                level = deny ? 4 : 3;
            else if (at && *pat == '@' && plen == strlen(at) && memcmp(pat, at, plen) == 0)
                level = deny ? 2 : 1;
            if (level > best) {
                best = level;
                sb_reset(which);
                sb_append(which, p, len);
            }
        }
        p += len + (c ? 1 : 0);
    }
    sb_free(&err);
    sb_free(&list);
    return best == 0 ? 0 : (best % 2 == 0 ? 2 : 1);
}

/* ---- the correspondents ---- */

static int corr_key(struct strbuf *key, const char *user, const char *corr)
{
    sb_reset(key);
    if (!*user || *user == '#' || !*corr || strlen(user) > USER_LISTS_ADDRESS_MAX
        || strlen(corr) > USER_LISTS_ADDRESS_MAX || !str_printable(user, USER_LISTS_ADDRESS_MAX)
        || !str_printable(corr, USER_LISTS_ADDRESS_MAX) || strchr(user, ' ') || strchr(corr, ' '))
        return -1;
    sb_appendf(key, "%s %s", user, corr);
    str_lower(key->data);
    return 0;
}

/* A stored time stamp, however the value was damaged. */
static long long stamp_of(const DBT *v)
{
    char buf[32];
    size_t n = v->size < sizeof(buf) - 1 ? v->size : sizeof(buf) - 1;
    memcpy(buf, v->data, n);
    buf[n] = 0;
    return strtoll(buf, NULL, 10);
}

static int compare_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Drop the entries older than ttl, then the oldest until at most keep are
 * left: one pass to learn the times, one to delete. The new count. */
static size_t corr_evict(struct ldb *l, long long now, long ttl, size_t count, size_t keep)
{
    DBC *cur;
    DBT k = { 0 }, v = { 0 };
    size_t n = 0, cap = count + 16;
    long long *times = xmalloc(cap * sizeof(*times));
    if (l->db->cursor(l->db, NULL, &cur, 0) != 0) {
        free(times);
        return count;
    }
    for (int how = DB_FIRST; cur->get(cur, &k, &v, how) == 0; how = DB_NEXT) {
        if (k.size && ((char *)k.data)[0] == '#')
            continue;
        if (n == cap) {
            cap *= 2;
            times = xrealloc(times, cap * sizeof(*times));
        }
        times[n++] = stamp_of(&v);
    }
    /* the expired go; then, past keep, the oldest (of equal times, as
     * many as needed, in key order) */
    long long cutoff = now - ttl;
    size_t drop_equal = 0;
    if (n > keep) {
        qsort(times, n, sizeof(*times), compare_ll);
        long long bound = times[n - keep - 1];      /* the newest that must go */
        if (bound >= cutoff) {
            size_t older = 0;
            while (older < n && times[older] < bound)
                older++;
            cutoff = bound;
            drop_equal = n - keep - older;
        }
    }
    free(times);
    size_t left = 0;
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    for (int how = DB_FIRST; cur->get(cur, &k, &v, how) == 0; how = DB_NEXT) {
        if (k.size && ((char *)k.data)[0] == '#')
            continue;
        long long t = stamp_of(&v);
        if (t < cutoff || (t == cutoff && drop_equal > 0)) {
            if (t == cutoff)
                drop_equal--;
            cur->del(cur, 0);
        } else {
            left++;
        }
    }
    cur->close(cur);
    return left;
}

/* Whether every pair is in the table with a time of the last REFRESH
 * seconds (half the TTL when that is shorter): then nothing needs writing (a write costs an fsync; a user who
 * writes to the same people all day costs one per pair and hour). */
#define REFRESH 3600
static bool corr_all_fresh(const char *const *users, const char *const *rcpts, size_t n,
                           long long now, long ttl)
{
    long refresh = ttl / 2 < REFRESH ? ttl / 2 : REFRESH;
    struct ldb l;
    struct strbuf err = STRBUF_INIT(1024), key = STRBUF_INIT(2 * USER_LISTS_ADDRESS_MAX + 2),
                  val = STRBUF_INIT(64);
    bool fresh = ldb_open(&l, CORR_DB, true, false, &err) == 0 && l.db;
    for (size_t i = 0; i < n && fresh; i++)
        fresh = corr_key(&key, users[i], rcpts[i]) < 0
                || (ldb_get(&l, sb_str(&key), &val) == 1
                    && strtoll(sb_str(&val), NULL, 10) >= now - refresh);
    ldb_close(&l);
    sb_free(&err);
    sb_free(&key);
    sb_free(&val);
    return fresh;
}

int correspondents_record(const char *const *users, const char *const *rcpts, size_t n,
                          long long now, size_t max, long ttl, struct strbuf *err)
{
    if (corr_all_fresh(users, rcpts, n, now, ttl))
        return 0;
    struct ldb l;
    if (ldb_open(&l, CORR_DB, true, true, err) < 0)
        return -1;
    struct strbuf key = STRBUF_INIT(2 * USER_LISTS_ADDRESS_MAX + 2), val = STRBUF_INIT(64);
    char stamp[32];
    snprintf(stamp, sizeof(stamp), "%lld", now);
    size_t count = 0;
    if (ldb_get(&l, COUNT_KEY, &val) == 1)
        count = strtoul(sb_str(&val), NULL, 10);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (corr_key(&key, users[i], rcpts[i]) < 0)
            continue;
        int had = ldb_get(&l, sb_str(&key), &val);
        if (had < 0 || ldb_put(&l, sb_str(&key), stamp) < 0) {
            rc = -1;
            continue;
        }
        if (had == 0)
            count++;
    }
    if (count > max)
        count = corr_evict(&l, now, ttl, count, EVICT_KEEP(max));
    snprintf(stamp, sizeof(stamp), "%zu", count);
    if (ldb_put(&l, COUNT_KEY, stamp) < 0)
        rc = -1;
    if (rc < 0)
        sb_appendf(err, "cannot write %s.db", CORR_DB);
    sb_free(&key);
    sb_free(&val);
    ldb_close(&l);
    return rc;
}

int correspondents_known(const char *user, const char *correspondent, long long now, long ttl)
{
    struct strbuf key = STRBUF_INIT(2 * USER_LISTS_ADDRESS_MAX + 2), val = STRBUF_INIT(64),
                  err = STRBUF_INIT(1024);
    if (corr_key(&key, user, correspondent) < 0) {
        sb_free(&key);
        return 0;
    }
    struct ldb l;
    int rc = ldb_open(&l, CORR_DB, true, false, &err);
    if (rc == 0)
        rc = ldb_get(&l, sb_str(&key), &val);
    ldb_close(&l);
    if (rc < 0)
        msg_warn("%s: %s", CORR_DB, err.len ? sb_str(&err) : "cannot read the table");
    else if (rc == 1)
        rc = strtoll(sb_str(&val), NULL, 10) >= now - ttl ? 1 : 0;
    sb_free(&key);
    sb_free(&val);
    sb_free(&err);
    return rc;
}
