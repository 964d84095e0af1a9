/* mac_expand.h: expansion of $name, ${name}, $(name), ${name?text},
 * ${name:text} and $$ in a template, in the manner of Postfix's
 * mac_expand(3): main.cf values, forward_path and DNS blocklist reply
 * templates all use this one syntax. The caller supplies the names. */
#ifndef TERN_MAC_EXPAND_H
#define TERN_MAC_EXPAND_H

#include <stddef.h>

#include "strbuf.h"

/* Result bits of mac_expand(). */
#define MAC_EXP_OK    0
#define MAC_EXP_UNDEF (1 << 0)  /* a plain $name was undefined; it expanded to nothing */
#define MAC_EXP_ERROR (1 << 1)  /* bad syntax, too deep, or the output bound: unusable */

/* Flags of a mac_expand_spec. */
#define MAC_EXP_RECURSE (1 << 0)  /* values are templates themselves (main.cf) */

/* The value of name[0..len), or NULL when the name is undefined. Names are
 * [A-Za-z0-9_]+. The text must stay valid while it is used: with
 * MAC_EXP_RECURSE that is while it is expanded, other lookups included. */
typedef const char *(*mac_lookup_fn)(const char *name, size_t len, void *context);

/* Append value (of name) to out, changing what the caller does not trust;
 * 0 or -1 when out is full. Without RECURSE only. */
typedef int (*mac_filter_fn)(struct strbuf *out, const char *name, size_t len, const char *value,
                             void *context);

struct mac_expand_spec {
    mac_lookup_fn lookup;
    mac_filter_fn filter;   /* NULL: values are appended as they are */
    void *context;          /* passed to lookup and filter */
    int flags;              /* MAC_EXP_RECURSE */
    int depth_max;          /* nested expansions allowed (conditional text, recursive values) */
};

/* A caller's names as a table, for a lookup function to search. */
struct mac_var {
    const char *name;
    const char *value;      /* NULL: undefined */
};

/* The value of name[0..len) in vars[0..n), or NULL. */
const char *mac_var_find(const struct mac_var *vars, size_t n, const char *name, size_t len);
/* A lookup over a fixed table: context is a struct mac_var array that
 * ends with { NULL, NULL }. */
const char *mac_var_table_lookup(const char *name, size_t len, void *context);

/* Append the expansion of tmpl to out (bounded by out's limit). ${name?text}
 * expands text when name is defined and not empty, ${name:text} when it is
 * undefined or empty; braces nest. With MAC_EXP_RECURSE the emptiness test
 * is on the expanded value. Returns MAC_EXP_* bits; on MAC_EXP_ERROR out
 * holds a partial result. */
int mac_expand(struct strbuf *out, const char *tmpl, const struct mac_expand_spec *spec);

#endif
