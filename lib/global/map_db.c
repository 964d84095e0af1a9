/* map_db.c: hash: and btree: tables in Berkeley DB 5.3 files (NAME.db),
 * opened read-only for lookups and compiled from text by map_db_build. */
#include <db.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "maps_impl.h"
#include "util.h"

/* Berkeley DB's own messages: detail for -v, the caller reports the error. */
static void db_message(const DB_ENV *env, const char *prefix, const char *text)
{
    (void)env;
    (void)prefix;
    msg_debug("Berkeley DB: %s", text);
}

/* NAME.db plus suffix; -1 with err when the name is too long, because a
 * NULL file name would make Berkeley DB open an empty in-memory table. */
static int db_path(struct strbuf *out, const char *name, const char *suffix, struct strbuf *err)
{
    sb_reset(out);
    if (sb_appendf(out, "%s.db%s", name, suffix) < 0) {
        sb_appendf(err, "table name too long: \"%.100s...\"", name);
        return -1;
    }
    return 0;
}

static int map_db_lookup(struct map *m, const char *key, struct strbuf *result)
{
    DB *db = m->priv;
    for (int with_nul = 1; with_nul >= 0; with_nul--) {
        DBT k = { .data = (void *)key, .size = (u_int32_t)(strlen(key) + (size_t)with_nul) };
        DBT v = { 0 };
        int rc = db->get(db, NULL, &k, &v, 0);
        if (rc == DB_NOTFOUND)
            continue;
        if (rc != 0) {
            msg_warn("%s: lookup of \"%.100s\" failed: %s; if the file is damaged, "
                     "rebuild it with `tern map build %s`", m->spec, key, db_strerror(rc), m->spec);
            return -1;
        }
        size_t len = v.size;
        if (len && ((char *)v.data)[len - 1] == 0)
            len--;
        if (memchr(v.data, 0, len) || sb_append(result, v.data, len) < 0) {
            msg_warn("%s: bad value for \"%.100s\"", m->spec, key);
            return -1;
        }
        return 1;
    }
    return 0;
}

static void map_db_close(struct map *m)
{
    DB *db = m->priv;
    if (db)
        db->close(db, 0);
}

/* Berkeley DB's on-disk page header, unchanged since version 2: the page's
 * own number at offset 8, its type at 25; the meta page (page 0) holds the
 * magic number at 12 and the page size at 20. The types a hash or btree
 * file may hold (duplicate pages too, though map_build and postmap write none): */
enum { PG_FREE = 0, PG_OLD_DUP = 1, PG_HASH_UNSORTED = 2, PG_BTREE_INTERNAL = 3,
       PG_BTREE_LEAF = 5, PG_OVERFLOW = 7, PG_HASH_META = 8, PG_BTREE_META = 9,
       PG_DUP_LEAF = 12, PG_HASH = 13 };

static bool page_type_ok(unsigned type, bool btree)
{
    if (type == PG_FREE || type == PG_OVERFLOW || type == PG_BTREE_INTERNAL
        || type == PG_DUP_LEAF || type == PG_OLD_DUP)
        return true;
    return btree ? type == PG_BTREE_LEAF : type == PG_HASH || type == PG_HASH_UNSORTED;
}

static uint32_t get32(const unsigned char *p, bool swap)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

static bool page_is_hole(const unsigned char *page, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if (page[i])
            return false;
    return true;
}

/* Page checksums catch damage inside a page, but a page overwritten whole
 * (garbage, or a block of another file) can escape them, and Berkeley DB
 * then answers "not found" or crashes. So before the open, check that each
 * page says it is itself and of a type this file may hold: one sequential
 * read (DB->verify does more, but can take seconds on a damaged file). */
static int db_check_pages(const char *path, bool btree)
{
    FILE *fp = fopen(path, "re");
    if (!fp)
        return errno;
    unsigned char meta[32], *page = NULL;
    int rc = DB_VERIFY_BAD;
    if (fread(meta, 1, sizeof(meta), fp) != sizeof(meta))
        goto done;
    uint32_t magic = btree ? DB_BTREEMAGIC : DB_HASHMAGIC;
    bool swap = get32(meta + 12, false) != magic;
    uint32_t size = get32(meta + 20, swap);
    if (get32(meta + 12, swap) != magic || size < 512 || size > 65536 || (size & (size - 1)))
        goto done;
    page = xmalloc(size);
    rewind(fp);
    uint32_t pgno = 0;
    size_t n;
    while ((n = fread(page, 1, size, fp)) == size) {
        bool ok = pgno == 0         /* the meta page: its magic and size were checked */
                  || page_is_hole(page, size)
                  || (get32(page + 8, swap) == pgno && page_type_ok(page[25], btree));
        if (!ok)
            goto done;
        pgno++;
    }
    if (n == 0 && !ferror(fp))
        rc = 0;
done:
    free(page);
    fclose(fp);
    return rc;
}

int map_db_open(struct map *m, bool btree, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT(4096);
    DB *db = NULL;
    if (db_path(&path, m->name, "", err) < 0) {
        sb_free(&path);
        return -1;
    }
    int rc = db_create(&db, NULL, 0);
    if (rc == 0) {
        db->set_errcall(db, db_message);
        rc = db->open(db, NULL, path.data, NULL, btree ? DB_BTREE : DB_HASH, DB_RDONLY, 0);
        if (rc == 0)
            rc = db_check_pages(path.data, btree);
        if (rc != 0) {
            db->close(db, 0);
            db = NULL;
        }
    }
    if (rc != 0) {
        if (rc == DB_VERIFY_BAD || rc == DB_RUNRECOVERY)   /* bad structure, bad checksum */
            sb_appendf(err, "cannot open %s: the file is damaged; rebuild it with "
                       "`tern map build %s`", path.data, m->spec);
        else if (rc == EINVAL)      /* what Berkeley DB says for both */
            sb_appendf(err, "cannot open %s: not a %s database, or damaged; rebuild it with "
                       "`tern map build %s`", path.data, btree ? "btree" : "hash", m->spec);
        else
            sb_appendf(err, "cannot open %s: %s", path.data, rc > 0 ? strerror(rc) : db_strerror(rc));
        if (rc == ENOENT)
            sb_appendf(err, " (build it with `tern map build %s`)", m->spec);
        sb_free(&path);
        return -1;
    }
    sb_free(&path);
    m->priv = db;
    m->fold_case = true;
    m->lookup = map_db_lookup;
    m->close = map_db_close;
    return 0;
}

struct build_ctx {
    DB *db;
    const char *path;
    struct strbuf *err;
};

static int build_put(const char *key, const char *value, int line, void *arg)
{
    struct build_ctx *b = arg;
    char *lc = str_lower(xstrdup(key));
    DBT k = { .data = lc, .size = (u_int32_t)strlen(lc) + 1 };
    DBT v = { .data = (void *)value, .size = (u_int32_t)strlen(value) + 1 };
    /* As postmap does, keep the first entry for a key and warn about the rest. */
    int rc = b->db->put(b->db, NULL, &k, &v, DB_NOOVERWRITE);
    if (rc == DB_KEYEXIST) {
        msg_warn("%s, line %d: duplicate entry \"%.100s\" ignored: the first one is used",
                 b->path, line, lc);
        rc = 0;
    }
    free(lc);
    if (rc != 0) {
        sb_appendf(b->err, "%s:%d: cannot store \"%.100s\": %s", b->path, line, key, db_strerror(rc));
        return -1;
    }
    return 0;
}

/* Make the rename durable; a failure only costs durability, so warn. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
    if (fsync_dir(dir) < 0)
        msg_warn("cannot fsync directory %s: %s", dir, strerror(errno));
    free(dir);
}

int map_db_build(const char *name, bool btree, int flags, struct strbuf *err)
{
    struct strbuf tmp = STRBUF_INIT(4096), final = STRBUF_INIT(4096);
    if (db_path(&tmp, name, ".tmp", err) < 0 || db_path(&final, name, "", err) < 0) {
        sb_free(&tmp);
        sb_free(&final);
        return -1;
    }
    unlink(tmp.data);
    DB *db;
    int rc = db_create(&db, NULL, 0);
    if (rc == 0) {
        db->set_errcall(db, db_message);
        /* Page checksums: every reader (Postfix's too) then checks each page it
         * reads, so a damaged file gives an error instead of a crash. */
        rc = db->set_flags(db, DB_CHKSUM);
    }
    if (rc == 0 && (rc = db->open(db, NULL, tmp.data, NULL, btree ? DB_BTREE : DB_HASH,
                                  DB_CREATE | DB_EXCL, 0644)) != 0) {
        db->close(db, 0);
    }
    if (rc != 0) {
        sb_appendf(err, "cannot create %s: %s", tmp.data, rc > 0 ? strerror(rc) : db_strerror(rc));
        sb_free(&tmp);
        sb_free(&final);
        return -1;
    }
    struct build_ctx ctx = { db, name, err };
    int result = map_read_source(name, flags, build_put, &ctx, err);
    rc = db->close(db, 0);
    if (result == 0 && rc != 0) {
        sb_appendf(err, "cannot write %s: %s", tmp.data, db_strerror(rc));
        result = -1;
    }
    if (result == 0 && rename(tmp.data, final.data) < 0) {
        sb_appendf(err, "cannot rename %s to %s: %s", tmp.data, final.data, strerror(errno));
        result = -1;
    }
    if (result == 0)
        sync_parent_dir(final.data);
    if (result < 0)
        unlink(tmp.data);
    sb_free(&tmp);
    sb_free(&final);
    return result;
}
