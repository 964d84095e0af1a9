/* map_sqlite.c: sqlite: tables, as Postfix's sqlite_table(5) has them: the
 * table's name is a query file of "name = value" lines:
 *   dbpath          the SQLite database, opened read-only
 *   query           the SELECT to run, with %s (the key), %u (its local part,
 *                   or the whole key when it has no @), %d (its domain),
 *                   %1..%9 (the labels of its domain, %1 the last) and %%;
 *                   %S %U %D mean the same. A key without what the query
 *                   needs (no domain for %d, too few labels for %3, an empty
 *                   local part for %u) is not looked up: it is not found.
 *                   Every expansion is quoted for SQL (' doubled), so the
 *                   query writes them inside '...'
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
 * A key the file does not know is an error when the table is opened, so a
 * misspelled setting is not silently ignored. The database is opened when
 * the table is (before a daemon drops privileges or chroots), and again at
 * a lookup when it could not be: a missing or unreadable database, a query
 * that fails or a limit exceeded make the lookup fail (-1, a temporary
 * error for the caller), never "not found". */
#include <ctype.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "maps_impl.h"
#include "match_list.h"
#include "util.h"

#define SQLITE_QUERY_LIMIT 65536
#define SQLITE_RESULT_LIMIT 1048576
#define SQLITE_BUSY_MS 1000

struct sqlite_table {
    char *dbpath, *query, *result_format;
    struct match_list *domains;   /* NULL: any key */
    long expansion_limit;
    sqlite3 *db;
};

/* ---- expansion ---- */

/* The parts of an address-like string: local part, domain (NULL when there
 * is no @ or nothing after it). */
struct parts {
    const char *whole;
    char *local;
    char *domain;
};

static void parts_split(struct parts *p, const char *s)
{
    const char *at = strrchr(s, '@');
    p->whole = s;
    p->local = at ? xstrndup(s, (size_t)(at - s)) : xstrdup(s);
    p->domain = at && at[1] ? xstrdup(at + 1) : NULL;
}

static void parts_free(struct parts *p)
{
    free(p->local);
    free(p->domain);
}

/* Label n (1: the last) of domain into out; false when it has fewer. */
static bool domain_label(const char *domain, int n, struct strbuf *out)
{
    size_t end = strlen(domain);
    for (int i = 1;; i++) {
        size_t start = end;
        while (start > 0 && domain[start - 1] != '.')
            start--;
        if (i == n)
            return end > start && sb_append(out, domain + start, end - start) == 0;
        if (start == 0)
            return false;
        end = start - 1;
    }
}

static int append_value(struct strbuf *out, const char *s, size_t n, bool quote)
{
    for (size_t i = 0; i < n; i++) {
        if (quote && s[i] == '\'' && sb_appendc(out, '\'') < 0)
            return -1;
        if (sb_appendc(out, s[i]) < 0)
            return -1;
    }
    return 0;
}

/* The expansion of one %c of parts p into out: 1 done, 0 the key lacks
 * what it needs (suppress), -1 too long. */
static int expand_one(char c, const struct parts *p, bool quote, struct strbuf *out)
{
    const char *v = NULL;
    struct strbuf label = STRBUF_INIT(1024);
    int rc = 1;
    switch (tolower((unsigned char)c)) {
    case 's': v = p->whole; break;
    case 'u': v = *p->local ? p->local : NULL; break;
    case 'd': v = p->domain; break;
    default:
        if (p->domain && domain_label(p->domain, c - '0', &label))
            v = sb_str(&label);
        break;
    }
    if (!v)
        rc = 0;
    else if (append_value(out, v, strlen(v), quote) < 0)
        rc = -1;
    sb_free(&label);
    return rc;
}

static bool valid_escape(char c)
{
    return c == '%' || (c && strchr("sudSUD123456789", c) != NULL);
}

/* A template's % escapes are all known: checked when the table opens. */
static int check_template(const char *name, const char *tmpl, const char *path,
                          struct strbuf *err)
{
    for (const char *t = tmpl; (t = strchr(t, '%')) != NULL; t += 2)
        if (!t[1] || !valid_escape(t[1])) {
            sb_appendf(err, "%s: %s: unknown expansion \"%%%c\" (known: %%s %%u %%d %%1-%%9 "
                       "%%S %%U %%D %%%%)", path, name, t[1] ? t[1] : ' ');
            return -1;
        }
    return 0;
}

/* The query for key: 1 ready, 0 suppressed, -1 too long. */
static int expand_query(const char *tmpl, const struct parts *key, struct strbuf *out)
{
    for (const char *t = tmpl; *t; t++) {
        int rc = 0;
        if (*t != '%')
            rc = sb_appendc(out, *t);
        else if (*++t == '%')
            rc = sb_appendc(out, '%');
        else if ((rc = expand_one(*t, key, true, out)) <= 0)
            return rc;
        else
            rc = 0;
        if (rc < 0)
            return -1;
    }
    return 1;
}

/* One row's value through result_format into out (comma-separated):
 * 1 added, 0 nothing to add, -1 too long. */
static int expand_result(const char *tmpl, const char *value, const struct parts *key,
                         struct strbuf *out)
{
    if (!value || !*value)
        return 0;
    struct parts v;
    parts_split(&v, value);
    size_t mark = out->len;
    int rc = out->len ? sb_appendc(out, ',') : 0;
    for (const char *t = tmpl; rc >= 0 && *t; t++) {
        if (*t != '%') {
            rc = sb_appendc(out, *t);
        } else if (*++t == '%') {
            rc = sb_appendc(out, '%');
        } else {
            bool of_key = isupper((unsigned char)*t);
            rc = expand_one(*t, of_key ? key : &v, false, out);
            if (rc == 0) {      /* this row has no such part: no result */
                sb_truncate(out, mark);
                break;
            }
        }
    }
    parts_free(&v);
    return rc < 0 ? -1 : out->len > mark;
}

/* ---- the query file ---- */

static int set_field(char **field, const char *name, const char *value, const char *path,
                     int line, struct strbuf *err)
{
    if (*field) {
        sb_appendf(err, "%s:%d: %s is set twice", path, line, name);
        return -1;
    }
    *field = xstrdup(value);
    return 0;
}

struct legacy {
    char *table, *select_field, *where_field, *additional_conditions;
};

static int parse_setting(struct sqlite_table *t, struct legacy *old, char **domain, char **limit,
                         char *text, const char *path, int line, struct strbuf *err)
{
    char *eq = strchr(text, '=');
    if (!eq) {
        sb_appendf(err, "%s:%d: expected \"name = value\"", path, line);
        return -1;
    }
    *eq = 0;
    char *name = str_trim(text), *value = str_trim(eq + 1);
    static const char *const names[] = { "dbpath", "query", "result_format", "domain",
        "expansion_limit", "table", "select_field", "where_field", "additional_conditions" };
    char **fields[] = { &t->dbpath, &t->query, &t->result_format, domain, limit, &old->table,
                        &old->select_field, &old->where_field, &old->additional_conditions };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return set_field(fields[i], name, value, path, line, err);
    sb_appendf(err, "%s:%d: unknown setting \"%.60s\" (known: dbpath, query, result_format, "
               "domain, expansion_limit)", path, line, name);
    return -1;
}

/* The older settings make the query when query is not set. */
static int legacy_query(struct sqlite_table *t, struct legacy *old, const char *path,
                        struct strbuf *err)
{
    bool any = old->table || old->select_field || old->where_field;
    if (t->query || !any) {
        if (!t->query)
            sb_appendf(err, "%s: query is not set", path);
        return t->query ? 0 : -1;
    }
    if (!old->table || !old->select_field || !old->where_field) {
        sb_appendf(err, "%s: without query, table, select_field and where_field must all be set",
                   path);
        return -1;
    }
    struct strbuf q = STRBUF_INIT(SQLITE_QUERY_LIMIT);
    sb_appendf(&q, "SELECT %s FROM %s WHERE %s = '%%s' %s", old->select_field, old->table,
               old->where_field, old->additional_conditions ? old->additional_conditions : "");
    t->query = xstrdup(sb_str(&q));
    sb_free(&q);
    return 0;
}

static int open_domains(struct sqlite_table *t, const char *value, const char *path,
                        struct strbuf *err)
{
    struct strbuf why = STRBUF_INIT(4096);
    t->domains = match_list_open("domain", value, MATCH_DOMAINS, 0, &why);
    if (!t->domains)
        sb_appendf(err, "%s: %s", path, sb_str(&why));
    sb_free(&why);
    return t->domains ? 0 : -1;
}

static int read_query_file(struct sqlite_table *t, const char *path, struct strbuf *err)
{
    struct map_reader r;
    struct legacy old = { 0 };
    char *domain = NULL, *limit = NULL;
    if (map_reader_open(&r, path, err) < 0)
        return -1;
    int rc;
    while ((rc = map_reader_next(&r, err)) > 0)
        if ((rc = parse_setting(t, &old, &domain, &limit, r.line.data, path, r.start, err)) < 0)
            break;
    map_reader_close(&r);
    if (rc == 0 && !t->dbpath) {
        sb_appendf(err, "%s: dbpath is not set", path);
        rc = -1;
    }
    if (rc == 0)
        rc = legacy_query(t, &old, path, err);
    if (rc == 0 && !t->result_format)
        t->result_format = xstrdup("%s");
    if (rc == 0 && limit && parse_long(limit, 0, 1000000000, &t->expansion_limit) < 0) {
        sb_appendf(err, "%s: expansion_limit = %.40s: expected a number", path, limit);
        rc = -1;
    }
    if (rc == 0)
        rc = check_template("query", t->query, path, err);
    if (rc == 0)
        rc = check_template("result_format", t->result_format, path, err);
    if (rc == 0 && domain && *domain)
        rc = open_domains(t, domain, path, err);
    free(old.table);
    free(old.select_field);
    free(old.where_field);
    free(old.additional_conditions);
    free(domain);
    free(limit);
    return rc;
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

/* 1 the key's domain is listed (or there is no list), 0 not, -1 error. */
static int domain_allowed(const struct sqlite_table *t, const struct parts *key)
{
    if (!t->domains)
        return 1;
    if (!key->domain || !*key->local)
        return 0;
    char *lc = str_lower(xstrdup(key->domain));
    int rc = match_list_domain(t->domains, lc);
    free(lc);
    return rc;
}

static int run_query(struct map *m, struct sqlite_table *t, const char *sql,
                     const struct parts *key, struct strbuf *result)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(t->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        msg_warn("%s: query failed: %s", m->spec, sqlite3_errmsg(t->db));
        sqlite3_finalize(stmt);
        return -1;
    }
    long count = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        int added = expand_result(t->result_format, (const char *)sqlite3_column_text(stmt, 0),
                                  key, result);
        if (added < 0 || result->len > SQLITE_RESULT_LIMIT) {
            msg_warn("%s: result for \"%.100s\" longer than %d bytes", m->spec, key->whole,
                     SQLITE_RESULT_LIMIT);
            rc = -1;
            break;
        }
        if (added && t->expansion_limit > 0 && ++count > t->expansion_limit) {
            msg_warn("%s: expansion limit of %ld results exceeded for \"%.100s\"", m->spec,
                     t->expansion_limit, key->whole);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE) {
        msg_warn("%s: query failed: %s", m->spec, sqlite3_errmsg(t->db));
        rc = -1;
    }
    sqlite3_finalize(stmt);
    if (rc == 0 && result->len)
        rc = 1;
    return rc;
}

static int sqlite_lookup(struct map *m, const char *key, struct strbuf *result)
{
    struct sqlite_table *t = m->priv;
    struct parts k;
    parts_split(&k, key);
    int rc = domain_allowed(t, &k);
    if (rc < 0)
        msg_warn("%s: lookup of the domain of \"%.100s\" in the domain list failed", m->spec, key);
    struct strbuf sql = STRBUF_INIT(SQLITE_QUERY_LIMIT);
    if (rc > 0 && (rc = expand_query(t->query, &k, &sql)) < 0)
        msg_warn("%s: query for \"%.100s\" longer than %d bytes", m->spec, key, SQLITE_QUERY_LIMIT);
    if (rc > 0) {
        struct strbuf err = STRBUF_INIT(1024);
        if (db_open(m, t, &err) < 0) {
            msg_warn("%s", sb_str(&err));
            rc = -1;
        } else {
            rc = run_query(m, t, sb_str(&sql), &k, result);
        }
        sb_free(&err);
    }
    if (rc <= 0)
        sb_reset(result);
    sb_free(&sql);
    parts_free(&k);
    return rc;
}

static void sqlite_close(struct map *m)
{
    struct sqlite_table *t = m->priv;
    if (t->db)
        sqlite3_close(t->db);
    match_list_free(t->domains);
    free(t->dbpath);
    free(t->query);
    free(t->result_format);
    free(t);
}

int map_sqlite_open(struct map *m, struct strbuf *err)
{
    struct sqlite_table *t = xcalloc(1, sizeof(*t));
    m->priv = t;
    if (read_query_file(t, m->name, err) < 0) {
        sqlite_close(m);
        m->priv = NULL;
        return -1;
    }
    /* Opened now, while the daemon may still read it; a failure is
     * reported at each lookup until the database can be opened. */
    struct strbuf why = STRBUF_INIT(1024);
    if (db_open(m, t, &why) < 0)
        msg_warn("%s; lookups fail until it can be opened", sb_str(&why));
    sb_free(&why);
    m->fold_case = true;
    m->lookup = sqlite_lookup;
    m->close = sqlite_close;
    return 0;
}
