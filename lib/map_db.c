/* map_db.c: hash: and btree: tables in Berkeley DB 5.3 files (NAME.db),
 * opened read-only for lookups and compiled from text by map_db_build. */
#include <db.h>
#include <errno.h>
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
    msg_debug("Berkeley DB: %s", text);
}

static int db_path(struct strbuf *out, const char *name, const char *suffix)
{
    sb_reset(out);
    return sb_appendf(out, "%s.db%s", name, suffix);
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
            msg_warn("%s: lookup of \"%.100s\" failed: %s", m->spec, key, db_strerror(rc));
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

int map_db_open(struct map *m, bool btree, struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT(4096);
    DB *db;
    db_path(&path, m->name, "");
    int rc = db_create(&db, NULL, 0);
    if (rc == 0) {
        db->set_errcall(db, db_message);
        rc = db->open(db, NULL, path.data, NULL, btree ? DB_BTREE : DB_HASH, DB_RDONLY, 0);
        if (rc != 0) {
            db->close(db, 0);
            db = NULL;
        }
    }
    if (rc != 0) {
        sb_appendf(err, "cannot open %s: %s (build it with `tern map build %s`)",
                   path.data, rc > 0 ? strerror(rc) : db_strerror(rc), m->spec);
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
    int rc = b->db->put(b->db, NULL, &k, &v, 0);
    free(lc);
    if (rc != 0) {
        sb_appendf(b->err, "%s:%d: cannot store \"%.100s\": %s", b->path, line, key, db_strerror(rc));
        return -1;
    }
    return 0;
}

int map_db_build(const char *name, bool btree, int flags, struct strbuf *err)
{
    struct strbuf tmp = STRBUF_INIT(4096), final = STRBUF_INIT(4096);
    db_path(&tmp, name, ".tmp");
    db_path(&final, name, "");
    unlink(tmp.data);
    DB *db;
    int rc = db_create(&db, NULL, 0);
    if (rc == 0)
        db->set_errcall(db, db_message);
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
    if (result < 0)
        unlink(tmp.data);
    sb_free(&tmp);
    sb_free(&final);
    return result;
}
