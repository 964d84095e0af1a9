/* maps.c: "type:name" dispatch for lookup tables, map lists, and the reader
 * of postmap-style source files shared by texthash: and `tern map build`. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "maps_impl.h"
#include "chroot.h"
#include "file_watch.h"
#include "progress.h"
#include "util.h"

static struct map *open_maps;

/* The file a table is read from: NAME.db for Berkeley DB tables, NAME for
 * the types read from a source file, the password file for unix: (so that
 * a new account is seen by a chrooted smtpd, which reads that file through
 * a descriptor: lib/passwd.c); NULL for inline:. */
static char *map_file_of(const char *type, size_t tlen, const char *name)
{
    if ((tlen == 4 && strncmp(type, "hash", 4) == 0) || (tlen == 5 && strncmp(type, "btree", 5) == 0)) {
        size_t n = strlen(name);
        char *file = xmalloc(n + 4);
        memcpy(file, name, n);
        memcpy(file + n, ".db", 4);
        return file;
    }
    if ((tlen == 4 && strncmp(type, "pcre", 4) == 0) || (tlen == 6 && strncmp(type, "regexp", 6) == 0)
        || (tlen == 8 && strncmp(type, "texthash", 8) == 0)
        || (tlen == 4 && strncmp(type, "cidr", 4) == 0 && name[0] != '{')
        || (tlen == 6 && strncmp(type, "sqlite", 6) == 0))
        return xstrdup(name);
    if (tlen == 4 && strncmp(type, "unix", 4) == 0)
        return xstrdup(PASSWD_FILE);
    return NULL;
}

/* As Postfix's dict_changed does: the file stays open, and a change is a
 * link count of 0 (replaced by a rename, as `tern map build` and editors
 * do, or removed), a different link count, size or modification time
 * (edited in place). Opened before any chroot, the descriptor keeps
 * working inside it, so no path is ever looked up there: a check can
 * never fail for "no such file" and restart the daemon in a loop. */
static void map_remember_file(struct map *m, const char *type, size_t tlen)
{
    struct stat st;
    m->file = map_file_of(type, tlen, m->name);
    m->file_fd = -1;
    if (m->file) {
        int fd = open(m->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd >= 0 && fstat(fd, &st) == 0) {
            m->file_fd = fd;
            m->file_nlink = st.st_nlink;
            m->file_mtime = st.st_mtim;
            m->file_size = st.st_size;
        } else {
            msg_warn("table %s: cannot open %s to notice when it changes: %m; "
                     "run `tern reload` after changing it", m->spec, m->file);
            if (fd >= 0)
                close(fd);
        }
    }
    m->next_open = open_maps;
    open_maps = m;
}

static bool map_file_changed(struct map *m)
{
    struct stat st;
    if (m->file_fd < 0 || m->file_check_failed)
        return false;
    /* Outside a chroot every unix: lookup asks the C library afresh. */
    if (!chroot_active() && strcmp(m->file, PASSWD_FILE) == 0)
        return false;
    if (fstat(m->file_fd, &st) < 0) {
        /* cannot happen on a descriptor we hold; never a reason to restart */
        msg_warn("table %s: cannot check %s for changes: %m; run `tern reload` after "
                 "changing it", m->spec, m->file);
        m->file_check_failed = true;
        return false;
    }
    return st.st_nlink == 0 || st.st_nlink != m->file_nlink || st.st_size != m->file_size
           || st.st_mtim.tv_sec != m->file_mtime.tv_sec || st.st_mtim.tv_nsec != m->file_mtime.tv_nsec;
}

bool maps_changed(void)
{
    static time_t last_look;
    static bool changed;
    time_t now = time(NULL);
    if (changed || now == last_look)
        return changed;
    last_look = now;
    for (struct map *m = open_maps; m; m = m->next_open)
        if (map_file_changed(m)) {
            msg_info("table %s has changed: restarting to read it again", m->spec);
            changed = true;
            break;
        }
    if (!changed && file_watch_changed())     /* certificates and keys */
        changed = true;
    return changed;
}

static int open_hash(struct map *m, struct strbuf *err)
{
    return map_db_open(m, false, err);
}

static int open_btree(struct map *m, struct strbuf *err)
{
    return map_db_open(m, true, err);
}

static int open_pgsql(struct map *m, struct strbuf *err)
{
    return map_module_open("pgsql", m, err);
}

static int open_ldap(struct map *m, struct strbuf *err)
{
    return map_module_open("ldap", m, err);
}

/* The table types, in the order the error for an unknown one names them. */
static const struct map_type {
    const char *name;
    int (*open)(struct map *m, struct strbuf *err);
} map_types[] = {
    { "hash", open_hash },
    { "btree", open_btree },
    { "pcre", map_pcre_open },
    { "regexp", map_pcre_open },
    { "texthash", map_texthash_open },
    { "inline", map_inline_open },
    { "unix", map_unix_open },
    { "cidr", map_cidr_open },
    { "static", map_static_open },
    { "sqlite", map_sqlite_open },
    { "pgsql", open_pgsql },
    { "ldap", open_ldap },
    { "proxy", map_proxy_open },
};

static const struct map_type *map_type_of(const char *spec, size_t tlen)
{
    for (size_t i = 0; i < sizeof(map_types) / sizeof(map_types[0]); i++)
        if (strlen(map_types[i].name) == tlen && strncmp(spec, map_types[i].name, tlen) == 0)
            return &map_types[i];
    return NULL;
}

bool map_type_known(const char *type, size_t tlen)
{
    return map_type_of(type, tlen) != NULL;
}

const char *map_spec_inner(const char *spec)
{
    return strncmp(spec, "proxy:", 6) == 0 ? spec + 6 : spec;
}

static bool proxy_direct;

void maps_proxy_direct(void)
{
    proxy_direct = true;
}

struct map *map_open(const char *spec, struct strbuf *err)
{
    if (proxy_direct && strncmp(spec, "proxy:", 6) == 0 && strncmp(spec + 6, "proxy:", 6) != 0)
        spec += 6;
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || !colon[1]) {
        sb_appendf(err, "bad table name \"%.100s\": expected type:name", spec);
        return NULL;
    }
    struct map *m = xcalloc(1, sizeof(*m));
    m->spec = xstrdup(spec);
    m->name = xstrdup(colon + 1);
    size_t tlen = (size_t)(colon - spec);
    const struct map_type *type = map_type_of(spec, tlen);
    int rc;
    if (type) {
        rc = type->open(m, err);
    } else {
        sb_appendf(err, "unsupported table type \"%.*s\" in \"%.100s\" (", (int)tlen, spec, spec);
        for (size_t i = 0; i < sizeof(map_types) / sizeof(map_types[0]); i++)
            sb_appendf(err, "%s%s", i ? ", " : "", map_types[i].name);
        sb_appends(err, ")");
        rc = -1;
    }
    if (rc < 0) {
        free(m->spec);
        free(m->name);
        free(m);
        return NULL;
    }
    map_remember_file(m, spec, tlen);
    return m;
}

int map_lookup(struct map *m, const char *key, struct strbuf *result)
{
    sb_reset(result);
    if (!m->fold_case)
        return m->lookup(m, key, result);
    char *lc = str_lower(xstrdup(key));
    int rc = m->lookup(m, lc, result);
    free(lc);
    return rc;
}

void map_close(struct map *m)
{
    if (!m)
        return;
    if (m->close)
        m->close(m);
    for (struct map **p = &open_maps; *p; p = &(*p)->next_open)
        if (*p == m) {
            *p = m->next_open;
            break;
        }
    if (m->file_fd >= 0)
        close(m->file_fd);
    free(m->file);
    free(m->spec);
    free(m->name);
    free(m);
}

const char *map_spec(const struct map *m)
{
    return m->spec;
}

int map_build(const char *spec, int flags, struct strbuf *err)
{
    if (strncmp(spec, "hash:", 5) == 0)
        return map_db_build(spec + 5, false, flags, err);
    if (strncmp(spec, "btree:", 6) == 0)
        return map_db_build(spec + 6, true, flags, err);
    sb_appendf(err, "cannot build \"%.100s\": only hash: and btree: tables are compiled", spec);
    return -1;
}

/* ---- source files ---- */

int map_inline_items(const struct map *m, const char *what, const char *stops,
                     int (*fn)(char *item, void *ctx, struct strbuf *err), void *ctx,
                     struct strbuf *err)
{
    char *body = xstrndup(m->name + 1, strlen(m->name) - 2), *p = body;
    int rc = 0;
    while (rc == 0) {
        while (*p && (isspace((unsigned char)*p) || *p == ','))
            p++;
        if (!*p)
            break;
        char *item = p, *end;
        if (*p == '{') {
            item = p + 1;
            if (!(end = strchr(item, '}'))) {
                sb_appendf(err, "%s table \"%.100s\": unbalanced {", what, m->spec);
                rc = -1;
                break;
            }
        } else {
            end = p + strcspn(p, stops);
        }
        char saved = *end;
        *end = 0;
        p = saved ? end + 1 : end;
        rc = fn(item, ctx, err);
    }
    free(body);
    return rc;
}

int map_reader_open(struct map_reader *r, const char *path, struct strbuf *err)
{
    memset(r, 0, sizeof(*r));
    if (!(r->fp = fopen(path, "re"))) {
        sb_appendf(err, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    r->path = path;
    sb_init(&r->line, MAP_LINE_LIMIT);
    sb_init(&r->ahead, MAP_LINE_LIMIT);
    return 0;
}

void map_reader_close(struct map_reader *r)
{
    if (r->fp)
        fclose(r->fp);
    r->fp = NULL;
    sb_free(&r->line);
    sb_free(&r->ahead);
}

int map_reader_each(const char *path, map_line_fn fn, void *ctx, struct strbuf *err)
{
    struct map_reader r;
    if (map_reader_open(&r, path, err) < 0)
        return -1;
    int rc;
    while ((rc = map_reader_next(&r, err)) > 0)
        if ((rc = fn(ctx, r.line.data, r.start, path, err)) < 0)
            break;
    map_reader_close(&r);
    return rc;
}

/* One physical line into r->ahead without its line end: 1, 0 at EOF, -1.
 * Reads a byte at a time into a bounded buffer, never an unbounded one. */
static int read_physical(struct map_reader *r, struct strbuf *err)
{
    int c;
    sb_reset(&r->ahead);
    while ((c = getc_unlocked(r->fp)) != EOF && c != '\n') {
        if (c == 0) {
            sb_appendf(err, "%s:%d: NUL byte in line", r->path, r->lineno + 1);
            return -1;
        }
        if (sb_appendc(&r->ahead, c) < 0) {
            sb_appendf(err, "%s:%d: line longer than %d bytes", r->path, r->lineno + 1,
                       MAP_LINE_LIMIT);
            return -1;
        }
    }
    if (c == EOF && ferror(r->fp)) {
        sb_appendf(err, "%s:%d: read error: %s", r->path, r->lineno + 1, strerror(errno));
        return -1;
    }
    if (c == EOF && r->ahead.len == 0)
        return 0;
    if (r->ahead.len && r->ahead.data[r->ahead.len - 1] == '\r')
        sb_truncate(&r->ahead, r->ahead.len - 1);
    r->lineno++;
    return 1;
}

/* The logical line is complete: drop its trailing white space. */
static int line_done(struct map_reader *r)
{
    size_t n = r->line.len;
    while (n > 0 && isspace((unsigned char)r->line.data[n - 1]))
        n--;
    sb_truncate(&r->line, n);
    return 1;
}

int map_reader_next(struct map_reader *r, struct strbuf *err)
{
    sb_reset(&r->line);
    for (;;) {
        if (!r->have_ahead) {
            int rc = read_physical(r, err);
            if (rc < 0)
                return -1;
            if (rc == 0)
                return r->line.len ? line_done(r) : 0;
            r->have_ahead = true;
        }
        const char *text = sb_str(&r->ahead), *p = text;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == 0 || *p == '#') {
            r->have_ahead = false;
            continue;
        }
        if (p == text && r->line.len)
            return line_done(r);    /* the next logical line starts here: keep it */
        r->have_ahead = false;
        if (r->line.len == 0) {
            r->start = r->lineno;
            if (sb_appends(&r->line, p) < 0)
                goto too_long;
        } else if (sb_appendc(&r->line, ' ') < 0 || sb_appends(&r->line, p) < 0) {
            goto too_long;
        }
    }
too_long:
    sb_appendf(err, "%s:%d: logical line longer than %d bytes", r->path, r->lineno, MAP_LINE_LIMIT);
    return -1;
}

/* The ':' that ends an aliases(5) name: the first one outside quotes. */
static char *alias_colon(char *s)
{
    bool quoted = false;
    for (; *s; s++) {
        if (*s == '\\' && s[1])
            s++;
        else if (*s == '"')
            quoted = !quoted;
        else if (*s == ':' && !quoted)
            return s;
    }
    return NULL;
}

/* A name like "john smith" is stored unquoted, as the local part that
 * delivery looks up: quotes removed, backslash escapes resolved. */
static void alias_unquote(char *s)
{
    char *out = s;
    for (; *s; s++) {
        if (*s == '\\' && s[1])
            *out++ = *++s;
        else if (*s != '"')
            *out++ = *s;
    }
    *out = 0;
}

/* Split "key value" (or aliases(5) "name: value") and hand it to fn. As in
 * Postfix, an entry without a value, or an alias name that is not local,
 * is skipped with a warning. */
static int source_entry(char *text, int line, int flags, const char *path,
                        int (*fn)(const char *, const char *, int, void *), void *ctx,
                        struct strbuf *err)
{
    char *key = text, *value;
    bool aliases = flags & MAP_BUILD_ALIASES;
    if (aliases) {
        char *colon = alias_colon(key);
        if (!colon) {
            sb_appendf(err, "%s:%d: missing ':' after the alias name", path, line);
            return -1;
        }
        *colon = 0;
        value = colon + 1;
    } else {
        size_t k = strcspn(key, " \t\r\n\v\f");
        value = key + k;
        if (*value)
            *value++ = 0;
    }
    key = str_trim(key);
    value = str_trim(value);
    if (aliases && strpbrk(key, "@%")) {
        msg_warn("%s, line %d: alias name \"%.100s\" must be local; ignored", path, line, key);
        return 0;
    }
    if (aliases)
        alias_unquote(key);
    if (!*key) {
        sb_appendf(err, "%s:%d: empty key", path, line);
        return -1;
    }
    if (!*value) {
        msg_warn("%s, line %d: expected format: key%svalue; ignoring \"%.100s\"", path, line,
                 aliases ? ": " : " whitespace ", key);
        return 0;
    }
    if (fn(key, value, line, ctx) < 0) {
        if (err->len == 0)
            sb_appendf(err, "%s:%d: cannot store entry", path, line);
        return -1;
    }
    return 0;
}

int map_read_source(const char *path, int flags,
                    int (*fn)(const char *key, const char *value, int line, void *ctx),
                    void *ctx, struct strbuf *err)
{
    struct map_reader r;
    if (map_reader_open(&r, path, err) < 0)
        return -1;
    int rc, entries = 0;
    struct progress bar = { .on = false };
    if (flags & MAP_BUILD_PROGRESS) {
        struct stat st;
        char what[PROGRESS_WHAT_MAX + 1];
        const char *base = strrchr(path, '/');
        snprintf(what, sizeof(what), "building %s", base ? base + 1 : path);
        progress_begin(&bar, what, fstat(fileno(r.fp), &st) == 0 ? (unsigned long long)st.st_size : 0,
                       true);
    }
    while ((rc = map_reader_next(&r, err)) > 0) {
        if (bar.on && (entries & 255) == 0)
            progress_update(&bar, (unsigned long long)ftello(r.fp));
        if (++entries > MAP_ENTRY_LIMIT) {
            sb_appendf(err, "%s:%d: more than %d entries", path, r.start, MAP_ENTRY_LIMIT);
            rc = -1;
            break;
        }
        if ((rc = source_entry(r.line.data, r.start, flags, path, fn, ctx, err)) < 0)
            break;
    }
    progress_end(&bar);
    map_reader_close(&r);
    return rc < 0 ? -1 : 0;
}

/* ---- lists ---- */

struct maplist {
    struct map **maps;
    size_t n;
};

struct maplist *maplist_open_param(enum param_id id)
{
    const char *value = cfg_str(id);
    if (!*value)
        return NULL;
    struct strbuf err = STRBUF_INIT(1024);
    struct maplist *l = maplist_open(value, &err);
    if (!l)
        msg_fatal("main.cf: %s: %s", param_table()[id].name, sb_str(&err));
    sb_free(&err);
    return l;
}

struct maplist *maplist_open(const char *value, struct strbuf *err)
{
    size_t n;
    char **words = cfg_list_split(value, &n);
    struct maplist *l = xcalloc(1, sizeof(*l));
    l->maps = xcalloc(n ? n : 1, sizeof(struct map *));
    for (size_t i = 0; i < n; i++) {
        if (!(l->maps[l->n] = map_open(words[i], err))) {
            cfg_list_free(words, n);
            maplist_close(l);
            return NULL;
        }
        l->n++;
    }
    cfg_list_free(words, n);
    return l;
}

int maplist_lookup_which(struct maplist *l, const char *key, struct strbuf *result, size_t *which)
{
    for (size_t i = 0; i < l->n; i++) {
        int rc = map_lookup(l->maps[i], key, result);
        if (rc != 0) {
            *which = i;
            return rc;      /* found, or an error that must not look like "not found" */
        }
    }
    return 0;
}

int maplist_lookup(struct maplist *l, const char *key, struct strbuf *result)
{
    size_t which;
    return maplist_lookup_which(l, key, result, &which);
}

size_t maplist_size(const struct maplist *l)
{
    return l->n;
}

struct map *maplist_map(const struct maplist *l, size_t i)
{
    return l->maps[i];
}

void maplist_close(struct maplist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        map_close(l->maps[i]);
    free(l->maps);
    free(l);
}
