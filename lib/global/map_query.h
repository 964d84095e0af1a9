/* map_query.h: what the database table types (pgsql:, ldap:, sqlite:)
 * share: the reader of their Postfix-style query files ("name = value"
 * lines, as in main.cf), the %-expansion of query templates and result
 * formats (pgsql_table(5), ldap_table(5)), the "domain" restriction and the
 * joining of result elements under expansion_limit. */
#ifndef TERN_MAP_QUERY_H
#define TERN_MAP_QUERY_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;
struct map;
struct match_list;

/* ---- query files (map_query.c) ---- */

/* A query file: "name = value" per logical line (continuation lines start
 * with white space, '#' comment lines, as in main.cf); white space around
 * the name and the value is dropped, the value is taken as written (no
 * $name expansion, as Postfix reads these files). A name given twice: the
 * last one wins. */
struct map_query_file;

/* Read path; names not in known (a NULL-terminated list) are reported with
 * a warning naming the file and line, and ignored, as Postfix does. NULL
 * with "path:line: ..." in err for a line without '=', an empty name, an
 * unreadable file, or one larger than the limits of maps_impl.h. */
struct map_query_file *map_query_read(const char *path, const char *const *known,
                                      struct strbuf *err);
void map_query_free(struct map_query_file *f);
const char *map_query_path(const struct map_query_file *f);

/* The value of name, or dflt when the file does not set it. */
const char *map_query_str(const struct map_query_file *f, const char *name, const char *dflt);
/* Whether the file sets name at all. */
bool map_query_has(const struct map_query_file *f, const char *name);
/* A decimal number in [min, max]; 0 with *out set, -1 with err. */
int map_query_int(const struct map_query_file *f, const char *name, long dflt, long min,
                  long max, long *out, struct strbuf *err);
/* yes/no (also true/false, on/off, 1/0); 0 with *out set, -1 with err. */
int map_query_bool(const struct map_query_file *f, const char *name, bool dflt, bool *out,
                   struct strbuf *err);

/* ---- opening a table of a database type (map_query.c) ---- */

/* What a database table type gives map_query_open. */
struct map_query_type {
    const char *const *params;   /* the names its query files take, NULL-terminated */
    size_t size;                 /* of its state, m->priv, zeroed at first */
    /* fills m->priv from the query file: 0, or -1 with err */
    int (*configure)(struct map *m, const struct map_query_file *f, struct strbuf *err);
    int (*lookup)(struct map *m, const char *key, struct strbuf *result);
    void (*close)(struct map *m);   /* also of a state configure gave up on */
};

/* Open m (m->name the query file) as a table of this type, with keys
 * folded to lower case: 0, or -1 with err. */
int map_query_open(struct map *m, const struct map_query_type *type, struct strbuf *err);

/* ---- what the SQL tables read alike (map_query.c) ---- */

/* sqlite: and pgsql: take the same query, result_format, domain and
 * expansion_limit (sqlite_table(5), pgsql_table(5)). */
struct map_sql {
    char *query;                 /* the template of the query */
    char *result_format;
    struct match_list *domains;  /* NULL: any key */
    long expansion_limit;        /* 0: none */
};

/* Fill s from f, with query (taken over, malloc'd) as the template, an
 * expansion_limit up to limit_max, and the templates checked: 0, or -1
 * with "path...: ..." in err; map_sql_free frees s either way. */
int map_sql_configure(struct map_sql *s, const struct map_query_file *f, char *query,
                      long limit_max, struct strbuf *err);
void map_sql_free(struct map_sql *s);

/* ---- the domain restriction (map_query_domain.c) ---- */

/* "domain = example.com, /etc/tern/domains, hash:/etc/tern/domains": a
 * domain match list (match_list.h: names, ".parent" names, /file/names,
 * type:name tables, "!" exclusions). When set, only keys of the form
 * user@domain with a non-empty user and a domain on the list are looked
 * up; every other key is "not found" without a query. */
/* NULL with nothing in err when value is empty; NULL with err on failure.
 * match_list_free frees it. */
struct match_list *map_query_domains_open(const char *value, struct strbuf *err);
/* 1 look the key up, 0 do not (not found), -1 a table of the list failed;
 * d NULL: any key. */
int map_query_domains_allow(const struct match_list *d, const char *key);

/* ---- %-expansion (map_expand.c) ---- */

/* Quotes n bytes of s into out as the back end needs (SQL string
 * escaping, LDAP filter escaping): 0, or -1 when out is full or the text
 * cannot be quoted (invalid in the database's encoding). */
typedef int (*map_quote_fn)(struct strbuf *out, const char *s, size_t n, void *ctx);

/* Formats: MAP_EXPAND_QUERY for a query template (%s %u %d %1..%9 of the
 * key; %S %U %D mean the same there, as in Postfix), MAP_EXPAND_RESULT for
 * result_format (the same of the result value, and %S %U %D of the lookup
 * key). */
enum map_expand_kind { MAP_EXPAND_QUERY, MAP_EXPAND_RESULT };

/* Check a template at open: 0, or -1 with err naming the bad '%' sequence. */
int map_expand_check(const char *fmt, enum map_expand_kind kind, const char *param,
                     struct strbuf *err);

/* Expand fmt into out (appended). value is the key (query) or the result
 * value; key is the lookup key for %S %U %D (result formats; may be NULL
 * for queries). Values are passed through quote (if not NULL), literal
 * text of fmt is not. Returns 1 expanded; 0 suppressed: the template names
 * a part the value lacks (%d of an unqualified key, %u of "@domain", %3
 * of a two-label domain) and no lookup is to be made with it; -1 when out
 * would exceed its limit or quote failed (err says why). The part that
 * was appended before a 0 or -1 stays: the caller truncates. */
int map_expand(struct strbuf *out, const char *fmt, enum map_expand_kind kind,
               const char *value, const char *key, map_quote_fn quote, void *ctx,
               struct strbuf *err);

/* Result elements of one lookup, joined with "," as Postfix's tables
 * return them, with expansion_limit (0: no limit) counted. */
struct map_results {
    struct strbuf *out;
    long limit;
    long count;
    bool over;    /* more than limit elements: the lookup is a temporary error */
};

void map_results_init(struct map_results *r, struct strbuf *out, long limit);
/* Expand result_format for one value (NULL or empty values are skipped, as
 * are values the format suppresses) and add it: 0, or -1 on overflow of
 * out or of the limit (r->over). */
int map_results_add(struct map_results *r, const char *format, const char *value,
                    const char *key, struct strbuf *err);

#endif
