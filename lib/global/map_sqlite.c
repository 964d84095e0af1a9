/* map_sqlite.c: sqlite: tables, as Postfix's sqlite_table(5) has them: the
 * table's name is a query file of "name = value" lines:
 *   dbpath          the SQLite database, opened read-only
 *   query           the SELECT to run, with %s (the key), %u (its local part,
 *                   or the whole key when it has no @), %d (its domain),
 *                   %1..%9 (the labels of its domain, %1 the last) and %%;
 *                   %S %U %D mean the same. A key without what the query
 *                   needs (no domain for %d, too few labels for %3, an empty
 *                   local part for %u) is not looked up: it is not found.
 *                   Every expansion is quoted by SQLite's own quoting (%q:
 *                   ' doubled), so the query writes them inside '...'
 *   result_format   how each row's first column becomes a result: %s the
 *                   value, %u %d %1..%9 its parts, %S %U %D of the key
 *                   (default %s); rows are joined with commas
 *   domain          only keys user@domain with one of these domains (names,
 *                   /file/name or type:name tables, as mydestination takes
 *                   them: lib/global/match_list.h) are looked up
 *   expansion_limit at most this many results (0: no limit); more is a
 *                   lookup error
 *   table, select_field, where_field, additional_conditions: the older
 *                   way of writing "SELECT select_field FROM table WHERE
 *                   where_field = '%s' additional_conditions"
 * The file is read and expanded by the code all database tables share
 * (map_query.h): a name it does not know is logged and ignored, a name
 * given twice takes its last value, as Postfix reads these files. The
 * database is opened when the table is (before a daemon drops privileges
 * or chroots), and again at a lookup when it could not be: a missing or
 * unreadable database, a query that fails or a limit exceeded make the
 * lookup fail (-1, a temporary error for the caller), never "not found". */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "map_query.h"
#include "maps_impl.h"
#include "util.h"

#define SQLITE_QUERY_LIMIT 65536
#define SQLITE_RESULT_LIMIT 1048576
#define SQLITE_BUSY_MS 1000

static const char *const sqlite_params[] = {
    "dbpath", "query", "result_format", "domain", "expansion_limit", "table", "select_field",
    "where_field", "additional_conditions", NULL,
};

struct sqlite_table {
    char *dbpath;
    struct map_sql sql;
    sqlite3 *db;
};

/* A part of the key inside a '...' literal of the query, through SQLite's
 * own quoting: whatever the key holds, it cannot end the literal. */
static int sqlite_quote(struct strbuf *out, const char *s, size_t n, void *ctx)
{
    (void)ctx;
    if (n > SQLITE_QUERY_LIMIT)
        return -1;
    char *q = sqlite3_mprintf("%.*q", (int)n, s);
    if (!q)
        return -1;
    int rc = sb_appends(out, q);
    sqlite3_free(q);
    return rc;
}

/* ---- the query file ---- */

/* query, or the older settings' "SELECT select_field FROM table WHERE
 * where_field = '%s' additional_conditions" when query is not set. */
static char *sqlite_query_of(const struct map_query_file *f, struct strbuf *err)
{
    const char *path = map_query_path(f);
    const char *query = map_query_str(f, "query", NULL);
    const char *table = map_query_str(f, "table", NULL);
    const char *field = map_query_str(f, "select_field", NULL);
    const char *where = map_query_str(f, "where_field", NULL);
    if (query || (!table && !field && !where)) {
        if (!query)
            sb_appendf(err, "%s: query is not set", path);
        return query ? xstrdup(query) : NULL;
    }
    if (!table || !field || !where) {
        sb_appendf(err, "%s: without query, table, select_field and where_field must all be set",
                   path);
        return NULL;
    }
    struct strbuf q = STRBUF_INIT(SQLITE_QUERY_LIMIT);
    sb_appendf(&q, "SELECT %s FROM %s WHERE %s = '%%s' %s", field, table, where,
               map_query_str(f, "additional_conditions", ""));
    char *s = xstrdup(sb_str(&q));
    sb_free(&q);
    return s;
}

/* ---- lookups ---- */

static int db_open(struct map *m, struct sqlite_table *t, struct strbuf *err)
{
    if (t->db)
        return 0;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(t->dbpath, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        sb_appendf(err, "%s: cannot open database %s: %s", m->spec, t->dbpath,
                   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, SQLITE_BUSY_MS);
    t->db = db;
    return 0;
}

/* Each row's first column, through result_format: 1 found, 0 not, -1 the
 * query failed or the result is too large. */
static int run_query(struct map *m, struct sqlite_table *t, const char *sql, const char *key,
                     struct strbuf *result)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(t->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        msg_warn("%s: query failed: %s", m->spec, sqlite3_errmsg(t->db));
        sqlite3_finalize(stmt);
        return -1;
    }
    struct map_results r;
    struct strbuf why = STRBUF_INIT(1024);
    map_results_init(&r, result, t->sql.expansion_limit);
    int rc = 0, step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (map_results_add(&r, t->sql.result_format, (const char *)sqlite3_column_text(stmt, 0),
                            key, &why) < 0 && r.over) {
            msg_warn("%s: expansion limit of %ld results exceeded for \"%.100s\"", m->spec,
                     t->sql.expansion_limit, key);
            rc = -1;
            break;
        }
        if (why.len || result->len > SQLITE_RESULT_LIMIT) {
            msg_warn("%s: result for \"%.100s\" longer than %d bytes", m->spec, key,
                     SQLITE_RESULT_LIMIT);
            rc = -1;
            break;
        }
    }
    sb_free(&why);
    if (rc == 0 && step != SQLITE_DONE) {
        msg_warn("%s: query failed: %s", m->spec, sqlite3_errmsg(t->db));
        rc = -1;
    }
    sqlite3_finalize(stmt);
    if (rc == 0 && r.count > 0)
        rc = 1;
    return rc;
}

static int sqlite_lookup(struct map *m, const char *key, struct strbuf *result)
{
    struct sqlite_table *t = m->priv;
    int rc = map_query_domains_allow(t->sql.domains, key);
    if (rc < 0)
        msg_warn("%s: lookup of the domain of \"%.100s\" in the domain list failed", m->spec, key);
    struct strbuf sql = STRBUF_INIT(SQLITE_QUERY_LIMIT);
    struct strbuf err = STRBUF_INIT(1024);
    if (rc > 0
        && (rc = map_expand(&sql, t->sql.query, MAP_EXPAND_QUERY, key, NULL, sqlite_quote, NULL,
                            &err)) < 0)
        msg_warn("%s: query for \"%.100s\" longer than %d bytes", m->spec, key, SQLITE_QUERY_LIMIT);
    if (rc > 0) {
        sb_reset(&err);
        if (db_open(m, t, &err) < 0) {
            msg_warn("%s", sb_str(&err));
            rc = -1;
        } else {
            rc = run_query(m, t, sb_str(&sql), key, result);
        }
    }
    if (rc <= 0)
        sb_reset(result);
    sb_free(&err);
    sb_free(&sql);
    return rc;
}

static void sqlite_close(struct map *m)
{
    struct sqlite_table *t = m->priv;
    if (t->db)
        sqlite3_close(t->db);
    map_sql_free(&t->sql);
    free(t->dbpath);
    free(t);
}

static int sqlite_configure(struct map *m, const struct map_query_file *f, struct strbuf *err)
{
    struct sqlite_table *t = m->priv;
    const char *path = map_query_path(f);
    const char *dbpath = map_query_str(f, "dbpath", NULL);
    if (!dbpath) {
        sb_appendf(err, "%s: dbpath is not set", path);
        return -1;
    }
    t->dbpath = xstrdup(dbpath);
    char *query = sqlite_query_of(f, err);
    if (!query || map_sql_configure(&t->sql, f, query, 1000000000, err) < 0)
        return -1;
    /* Opened now, while the daemon may still read it; a failure is
     * reported at each lookup until the database can be opened. */
    struct strbuf why = STRBUF_INIT(1024);
    if (db_open(m, t, &why) < 0)
        msg_warn("%s; lookups fail until it can be opened", sb_str(&why));
    sb_free(&why);
    return 0;
}

int map_sqlite_open(struct map *m, struct strbuf *err)
{
    static const struct map_query_type sqlite = {
        sqlite_params, sizeof(struct sqlite_table), sqlite_configure, sqlite_lookup, sqlite_close,
    };
    return map_query_open(m, &sqlite, err);
}
