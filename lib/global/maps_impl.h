/* maps_impl.h: what each lookup-table type provides to maps.c, the
 * bounded reader of logical lines that every text-based table shares, and
 * what the tables of ordered rules and the inline tables share. */
#ifndef TERN_MAPS_IMPL_H
#define TERN_MAPS_IMPL_H

#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "maps.h"
#include "strbuf.h"

#define MAP_LINE_LIMIT 65536
#define MAP_ENTRY_LIMIT 10000000

struct map {
    char *spec;
    char *name;          /* after "type:" */
    bool fold_case;      /* lower-case keys before lookup */
    int (*lookup)(struct map *m, const char *key, struct strbuf *result);
    void (*close)(struct map *m);
    void *priv;
    /* The file this table was read from, to notice when it is rebuilt or
     * edited: kept open (file_fd) and looked at with fstat, never by path,
     * so the check works the same inside a chroot where the path is gone. */
    char *file;
    int file_fd;             /* -1: nothing to watch */
    nlink_t file_nlink;
    struct timespec file_mtime;
    off_t file_size;
    bool file_check_failed;  /* fstat failed once: warned, not asked again */
    struct map *next_open;   /* every open table, for maps_changed() */
};

int map_db_open(struct map *m, bool btree, struct strbuf *err);
int map_db_build(const char *name, bool btree, int flags, struct strbuf *err);
int map_pcre_open(struct map *m, struct strbuf *err);
int map_texthash_open(struct map *m, struct strbuf *err);
int map_inline_open(struct map *m, struct strbuf *err);
int map_unix_open(struct map *m, struct strbuf *err);
int map_cidr_open(struct map *m, struct strbuf *err);
int map_static_open(struct map *m, struct strbuf *err);
int map_sqlite_open(struct map *m, struct strbuf *err);
int map_pgsql_open(struct map *m, struct strbuf *err);
int map_ldap_open(struct map *m, struct strbuf *err);
int map_proxy_open(struct map *m, struct strbuf *err);
/* Whether the tlen bytes at type name a table type. */
bool map_type_known(const char *type, size_t tlen);

/* Logical lines of a table source file: blank lines and lines whose first
 * non-blank character is '#' are skipped, and a line that starts with white
 * space continues the one before (joined with one space). No physical or
 * logical line may exceed MAP_LINE_LIMIT bytes, and NUL bytes are refused,
 * so a hostile file costs bounded memory. */
struct map_reader {
    FILE *fp;
    const char *path;
    int lineno;            /* physical lines read so far */
    int start;             /* first physical line of the current logical line */
    struct strbuf line;    /* the current logical line, leading space removed */
    struct strbuf ahead;   /* the physical line read after it */
    bool have_ahead;
};

int map_reader_open(struct map_reader *r, const char *path, struct strbuf *err);
/* 1 with r->line and r->start set, 0 at the end, -1 with "path:line: ..." in err. */
int map_reader_next(struct map_reader *r, struct strbuf *err);
void map_reader_close(struct map_reader *r);

/* Each logical line of the file at path to fn, with the number of its
 * first physical line, until fn fails: 0, or -1 with err (the reader's
 * "path:line: ..." or fn's). */
typedef int (*map_line_fn)(void *ctx, char *text, int line, const char *path,
                           struct strbuf *err);
int map_reader_each(const char *path, map_line_fn fn, void *ctx, struct strbuf *err);

/* ---- the tables of ordered rules, pcre:, regexp: and cidr: (map_rules.c) ---- */

#define MAP_IF_MAX_DEPTH 100

/* The open "if" blocks of a rule list: the index of each one's rule. */
struct map_ifs {
    size_t open[MAP_IF_MAX_DEPTH];
    int open_line[MAP_IF_MAX_DEPTH];    /* where each was opened, for messages */
    int depth;
};

/* Whether p starts with the keyword word (any case) followed by white
 * space or the end. */
bool map_is_keyword(const char *p, const char *word);
/* An "if" whose pattern is followed by rest opens a block at rule number
 * rule: 0, or -1 with "path:line: ..." in err (text after the pattern,
 * blocks nested too deep). */
int map_ifs_open(struct map_ifs *ifs, size_t rule, const char *rest, const char *path,
                 int line, struct strbuf *err);
/* "endif" followed by rest closes the innermost block: 0 with *if_rule
 * set to its if's rule number, or -1 with err (text after endif, endif
 * without if). */
int map_ifs_close(struct map_ifs *ifs, const char *rest, const char *path, int line,
                  size_t *if_rule, struct strbuf *err);
/* The end of a rule list: 0, or -1 with "name:line: if without endif" in
 * err when a block is still open. */
int map_ifs_end(const struct map_ifs *ifs, const char *name, struct strbuf *err);
/* Free a rule list: free_rule on each of the n rules (size bytes apart),
 * then the array. */
void map_rules_free(void *rules, size_t n, size_t size, void (*free_rule)(void *rule));
/* The end of a table type's open: rc 0 makes priv, lookup and close the
 * table's; rc -1 closes what was read (close(m) with priv) and returns -1. */
int map_opened(struct map *m, void *priv, int rc,
               int (*lookup)(struct map *m, const char *key, struct strbuf *result),
               void (*close)(struct map *m));
/* Room for one more rule after n in rules (*cap elements of size bytes,
 * at most max): the array, grown as needed, or NULL with "path:line: more
 * than max rules" in err (rules then stays as it was). */
void *map_rules_room(void *rules, size_t n, size_t *cap, size_t size, size_t max,
                     const char *path, int line, struct strbuf *err);

/* The items of an inline table, m->name as "{ item, {item}, ... }" (the
 * caller has checked the outer braces): commas and white space separate
 * items, "{item}" holds anything but '}', a bare item ends at any byte of
 * stops. fn gets each item in turn (NUL-terminated, writable) until one
 * fails. 0, or -1 with err ("what table "spec": unbalanced {" or fn's). */
int map_inline_items(const struct map *m, const char *what, const char *stops,
                     int (*fn)(char *item, void *ctx, struct strbuf *err), void *ctx,
                     struct strbuf *err);

#endif
