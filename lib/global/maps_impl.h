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
/* In the loadable modules map_pgsql.so and map_ldap.so (map_module.c). */
int map_pgsql_open(struct map *m, struct strbuf *err);
int map_ldap_open(struct map *m, struct strbuf *err);
/* Load daemon_directory/map_TYPE.so and open m with its map_TYPE_open. */
int map_module_open(const char *type, struct map *m, struct strbuf *err);
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

/* What every rule of an ordered table has, whatever its pattern: the
 * first member of each table type's rule. */
enum map_rule_kind { MAP_RULE_MATCH, MAP_RULE_IF, MAP_RULE_ENDIF };
struct map_rule {
    enum map_rule_kind kind;
    bool negate;           /* "!pattern": the rule hits when it does not match */
    char *result;          /* MAP_RULE_MATCH only */
    size_t skip_to;        /* MAP_RULE_IF: index after the matching endif */
    int line;              /* where it was read, for messages */
};

/* A table type's part of its rules. */
struct map_rule_type {
    size_t rule_size;      /* its rule struct, which starts with a struct map_rule */
    size_t max_rules;
    const char *pattern_name;   /* "pattern", "network": for messages */
    /* The pattern at *p (after any "if" and '!') into rule, advancing *p
     * past it: 0, or -1 with "path:line: ..." in err. */
    int (*pattern)(struct map_rule *rule, char **p, const char *path, int line,
                   struct strbuf *err);
    /* Optional: refuse a match rule whose result cannot work with its
     * pattern: 0, or -1 with "path:line: ..." in err. */
    int (*check)(const struct map_rule *rule, const char *path, struct strbuf *err);
    /* Free what pattern allocated in rule (also after it failed). */
    void (*free_rule)(struct map_rule *rule);
};

/* An ordered table's rules, in the order read. */
struct map_rule_list {
    const struct map_rule_type *type;
    void *rules;           /* n rules, type->rule_size bytes apart */
    size_t n, cap;
    struct map_ifs ifs;
};

static inline struct map_rule *map_rule_at(const struct map_rule_list *l, size_t i)
{
    return (struct map_rule *)((char *)l->rules + i * l->type->rule_size);
}

/* Whether p starts with the keyword word (any case) followed by white
 * space or the end. */
bool map_is_keyword(const char *p, const char *word);
/* One logical line as the next rule: "[!]PATTERN result", "if [!]PATTERN"
 * or "endif". 0, or -1 with "path:line: ..." in err (a bad pattern, no
 * result, text after the if pattern or endif, endif without if, blocks
 * nested too deep, more than type->max_rules rules). */
int map_rules_add(struct map_rule_list *l, char *text, int line, const char *path,
                  struct strbuf *err);
/* The end of the rules: 0, or -1 with "name:line: if without endif" in err
 * when a block is still open. */
int map_rules_end(const struct map_rule_list *l, const char *name, struct strbuf *err);
/* Every rule of the file at path, then map_rules_end: 0 or -1 with err. */
int map_rules_read(struct map_rule_list *l, const char *path, struct strbuf *err);
#define MAP_RULES_NONE (-1)      /* no rule hits */
#define MAP_RULES_FAILED (-2)    /* a pattern could not be matched */
/* The first match rule that hits, in order, skipping the block of each if
 * rule that does not: its index, MAP_RULES_NONE or MAP_RULES_FAILED.
 * hits(rule, ctx) says whether a rule hits the key, its negate applied (1
 * or 0; -1 when it cannot tell, which ends the walk). */
long map_rules_first(const struct map_rule_list *l, int (*hits)(const void *rule, void *ctx),
                     void *ctx);
void map_rules_free(struct map_rule_list *l);
/* The end of a table type's open: rc 0 makes priv, lookup and close the
 * table's; rc -1 closes what was read (close(m) with priv) and returns -1. */
int map_opened(struct map *m, void *priv, int rc,
               int (*lookup)(struct map *m, const char *key, struct strbuf *result),
               void (*close)(struct map *m));
/* The items of an inline table, m->name as "{ item, {item}, ... }" (the
 * caller has checked the outer braces): commas and white space separate
 * items, "{item}" holds anything but '}', a bare item ends at any byte of
 * stops. fn gets each item in turn (NUL-terminated, writable) until one
 * fails. 0, or -1 with err ("what table "spec": unbalanced {" or fn's). */
int map_inline_items(const struct map *m, const char *what, const char *stops,
                     int (*fn)(char *item, void *ctx, struct strbuf *err), void *ctx,
                     struct strbuf *err);

#endif
