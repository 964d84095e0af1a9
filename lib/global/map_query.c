/* map_query.c: the reader of the database tables' query files, which have
 * main.cf's syntax ("name = value", '#' comments, continuation lines that
 * start with white space): pgsql:/etc/tern/x.cf, ldap:..., sqlite:...; the
 * opening of such a table from its file, and the settings the SQL tables
 * share. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "map_query.h"
#include "maps_impl.h"
#include "match_list.h"
#include "util.h"

/* A query file has a few dozen names at most; a bound on their number
 * keeps a hostile or mistaken file from costing more than that. */
#define QUERY_FILE_NAME_LIMIT 1000

struct query_param {
    char *name, *value;
    int line;
};

struct map_query_file {
    char *path;
    struct query_param *params;
    size_t n;
};

static bool is_known(const char *name, const char *const *known)
{
    for (; known && *known; known++)
        if (strcmp(*known, name) == 0)
            return true;
    return false;
}

static struct query_param *find(const struct map_query_file *f, const char *name)
{
    for (size_t i = f->n; i > 0; i--)      /* the last one wins */
        if (strcmp(f->params[i - 1].name, name) == 0)
            return &f->params[i - 1];
    return NULL;
}

struct reading {
    struct map_query_file *f;
    const char *const *known;
};

/* One logical line "name = value" into the file being read (a
 * map_line_fn). */
static int add_line(void *ctx, char *text, int line, const char *path, struct strbuf *err)
{
    struct reading *r = ctx;
    struct map_query_file *f = r->f;
    char *eq = strchr(text, '=');
    if (!eq) {
        sb_appendf(err, "%s:%d: expected \"name = value\", found \"%.100s\"", path, line, text);
        return -1;
    }
    *eq = 0;
    char *name = str_trim(text), *value = str_trim(eq + 1);
    if (!*name || strpbrk(name, " \t")) {
        sb_appendf(err, "%s:%d: bad parameter name \"%.100s\"", path, line, name);
        return -1;
    }
    if (!is_known(name, r->known)) {
        msg_warn("%s, line %d: unknown parameter \"%.100s\" ignored", path, line, name);
        return 0;
    }
    if (f->n >= QUERY_FILE_NAME_LIMIT) {
        sb_appendf(err, "%s:%d: more than %d parameters", path, line, QUERY_FILE_NAME_LIMIT);
        return -1;
    }
    f->params = xrealloc(f->params, (f->n + 1) * sizeof(*f->params));
    f->params[f->n].name = xstrdup(name);
    f->params[f->n].value = xstrdup(value);
    f->params[f->n].line = line;
    f->n++;
    return 0;
}

void map_query_free(struct map_query_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->params[i].name);
        /* values may be passwords: do not leave them in freed memory */
        explicit_bzero(f->params[i].value, strlen(f->params[i].value));
        free(f->params[i].value);
    }
    free(f->params);
    free(f->path);
    free(f);
}

struct map_query_file *map_query_read(const char *path, const char *const *known,
                                      struct strbuf *err)
{
    struct map_query_file *f = xcalloc(1, sizeof(*f));
    f->path = xstrdup(path);
    struct reading ctx = { f, known };
    if (map_reader_each(path, add_line, &ctx, err) < 0) {
        map_query_free(f);
        return NULL;
    }
    return f;
}

const char *map_query_path(const struct map_query_file *f)
{
    return f->path;
}

const char *map_query_str(const struct map_query_file *f, const char *name, const char *dflt)
{
    const struct query_param *p = find(f, name);
    return p ? p->value : dflt;
}

bool map_query_has(const struct map_query_file *f, const char *name)
{
    return find(f, name) != NULL;
}

int map_query_int(const struct map_query_file *f, const char *name, long dflt, long min,
                  long max, long *out, struct strbuf *err)
{
    const struct query_param *p = find(f, name);
    if (!p) {
        *out = dflt;
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(p->value, &end, 10);
    if (!*p->value || *end || errno || v < min || v > max || !isdigit((unsigned char)*p->value)) {
        sb_appendf(err, "%s:%d: %s = \"%.50s\": expected a number from %ld to %ld", f->path,
                   p->line, name, p->value, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int map_query_bool(const struct map_query_file *f, const char *name, bool dflt, bool *out,
                   struct strbuf *err)
{
    const struct query_param *p = find(f, name);
    if (!p) {
        *out = dflt;
        return 0;
    }
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(p->value, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(p->value, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    sb_appendf(err, "%s:%d: %s = \"%.50s\": expected yes or no", f->path, p->line, name,
               p->value);
    return -1;
}

int map_query_open(struct map *m, const struct map_query_type *type, struct strbuf *err)
{
    struct map_query_file *f = map_query_read(m->name, type->params, err);
    if (!f)
        return -1;
    m->priv = xcalloc(1, type->size);
    int rc = type->configure(m, f, err);
    map_query_free(f);
    if (rc < 0) {
        type->close(m);
        m->priv = NULL;
        return -1;
    }
    m->lookup = type->lookup;
    m->close = type->close;
    m->fold_case = true;
    return 0;
}

int map_sql_configure(struct map_sql *s, const struct map_query_file *f, char *query,
                      long limit_max, struct strbuf *err)
{
    s->query = query;
    s->result_format = xstrdup(map_query_str(f, "result_format", "%s"));
    if (map_query_int(f, "expansion_limit", 0, 0, limit_max, &s->expansion_limit, err) < 0)
        return -1;
    struct strbuf why = STRBUF_INIT(4096);
    int rc = 0;
    if (map_expand_check(s->query, MAP_EXPAND_QUERY, "query", &why) < 0
        || map_expand_check(s->result_format, MAP_EXPAND_RESULT, "result_format", &why) < 0
        || (!(s->domains = map_query_domains_open(map_query_str(f, "domain", ""), &why))
            && why.len)) {
        sb_appendf(err, "%s: %s", map_query_path(f), sb_str(&why));
        rc = -1;
    }
    sb_free(&why);
    return rc;
}

void map_sql_free(struct map_sql *s)
{
    free(s->query);
    free(s->result_format);
    match_list_free(s->domains);
}
