/* match_list.c: lists of domains or networks with literal, "/file/name",
 * "type:name" and "!" entries, as Postfix's match lists (see match_list.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "config.h"
#include "log.h"
#include "maps.h"
#include "match_list.h"
#include "netlist.h"
#include "strbuf.h"
#include "util.h"

#define MATCH_FILE_DEPTH 5          /* files named in files */
#define MATCH_ENTRY_LIMIT 100000
#define MATCH_KEY_MAX 1100

enum entry_type { E_DOMAIN, E_NETWORK, E_TABLE };

struct match_entry {
    enum entry_type type;
    bool negate;
    bool fixed_keys;        /* E_TABLE: parent domains are looked up too */
    char *domain;           /* E_DOMAIN */
    struct netlist *net;    /* E_NETWORK */
    struct map *map;        /* E_TABLE */
};

struct match_list {
    char *param;
    enum match_kind kind;
    int flags;
    struct match_entry *entries;
    size_t n, cap;
};

static int add_words(struct match_list *l, const char *text, int depth, struct strbuf *err);

/* "type:name" and not an address ("2001:db8::/32", "[::1]"): the type is
 * a word of letters and digits that starts with a letter. */
static bool is_table(const char *word)
{
    const char *colon = strchr(word, ':');
    if (!colon || !isalpha((unsigned char)word[0]))
        return false;
    for (const char *p = word; p < colon; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return false;
    return true;
}

/* Tables whose keys are patterns are asked about the whole name only. */
static bool has_fixed_keys(const char *spec)
{
    spec = map_spec_inner(spec);
    return strncmp(spec, "pcre:", 5) != 0 && strncmp(spec, "regexp:", 7) != 0
           && strncmp(spec, "cidr:", 5) != 0;
}

static struct match_entry *new_entry(struct match_list *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->entries = xrealloc(l->entries, l->cap * sizeof(*l->entries));
    }
    struct match_entry *e = &l->entries[l->n];
    memset(e, 0, sizeof(*e));
    return e;
}

/* The entries of a file, each line's words in order. */
static int add_file(struct match_list *l, const char *path, int depth, struct strbuf *err)
{
    if (depth >= MATCH_FILE_DEPTH) {
        sb_appendf(err, "%s: %s: files nested deeper than %d", l->param, path, MATCH_FILE_DEPTH);
        return -1;
    }
    FILE *fp = fopen(path, "re");
    if (!fp) {
        sb_appendf(err, "%s: cannot read %s: %s", l->param, path, strerror(errno));
        return -1;
    }
    struct strbuf line = STRBUF_INIT(65536);
    int c, rc = 0;
    bool more = true;
    while (more && rc == 0) {
        sb_reset(&line);
        while ((c = getc(fp)) != EOF && c != '\n')
            if (sb_appendc(&line, c) < 0) {
                sb_appendf(err, "%s: %s: line longer than 65536 bytes", l->param, path);
                rc = -1;
                break;
            }
        more = c != EOF;
        const char *p = sb_str(&line);
        while (isspace((unsigned char)*p))
            p++;
        if (rc == 0 && *p && *p != '#')
            rc = add_words(l, p, depth + 1, err);
    }
    sb_free(&line);
    fclose(fp);
    return rc;
}

static int add_entry(struct match_list *l, const char *word, int depth, struct strbuf *err)
{
    if (l->n >= MATCH_ENTRY_LIMIT) {
        sb_appendf(err, "%s: more than %d entries", l->param, MATCH_ENTRY_LIMIT);
        return -1;
    }
    bool negate = word[0] == '!';
    const char *w = word + negate;
    if (!*w) {
        sb_appendf(err, "%s: entry \"%s\": nothing after '!'", l->param, word);
        return -1;
    }
    if (w[0] == '/') {
        if (negate) {
            sb_appendf(err, "%s: entry \"%s\": a file cannot be negated; negate its entries",
                       l->param, word);
            return -1;
        }
        return add_file(l, w, depth, err);
    }
    struct strbuf why = STRBUF_INIT(1024);
    struct match_entry *e = new_entry(l);
    e->negate = negate;
    int rc = 0;
    if (l->kind == MATCH_NETWORKS && !is_table(w)) {
        e->type = E_NETWORK;
        if (!(e->net = netlist_parse(w, &why)) || netlist_count(e->net) != 1 || strchr(w, '!')) {
            sb_appendf(err, "%s: %s", l->param, why.len ? sb_str(&why) : "bad network entry");
            netlist_free(e->net);
            rc = -1;
        }
    } else if (is_table(w)) {
        e->type = E_TABLE;
        e->fixed_keys = has_fixed_keys(w);
        if (!(e->map = map_open(w, &why))) {
            sb_appendf(err, "%s: table %s: %s", l->param, w, sb_str(&why));
            rc = -1;
        }
    } else if (strpbrk(w, "@/:!") || strlen(w) > 255) {
        sb_appendf(err, "%s: entry \"%.100s\" is not a domain name, /file/name or type:table",
                   l->param, word);
        rc = -1;
    } else {
        e->type = E_DOMAIN;
        e->domain = address_domain_normalize(w);
    }
    sb_free(&why);
    if (rc == 0)
        l->n++;
    return rc;
}

static int add_words(struct match_list *l, const char *text, int depth, struct strbuf *err)
{
    size_t n;
    char **words = cfg_list_split(text, &n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_entry(l, words[i], depth, err);
    cfg_list_free(words, n);
    return rc;
}

void match_list_free(struct match_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->entries[i].domain);
        netlist_free(l->entries[i].net);
        map_close(l->entries[i].map);
    }
    free(l->entries);
    free(l->param);
    free(l);
}

struct match_list *match_list_open(const char *param, const char *value, enum match_kind kind,
                                   int flags, struct strbuf *err)
{
    struct match_list *l = xcalloc(1, sizeof(*l));
    l->param = xstrdup(param);
    l->kind = kind;
    l->flags = flags;
    if (add_words(l, value, 0, err) < 0) {
        match_list_free(l);
        return NULL;
    }
    return l;
}

size_t match_list_count(const struct match_list *l)
{
    return l ? l->n : 0;
}

/* 1 found, 0 not, -1 error (logged). */
static int table_has(const struct match_list *l, const struct match_entry *e, const char *key)
{
    struct strbuf v = STRBUF_INIT(65536);
    int rc = map_lookup(e->map, key, &v);
    sb_free(&v);
    if (rc < 0)
        msg_warn("%s: table %s: lookup of %s failed", l->param, map_spec(e->map), key);
    return rc;
}

static bool literal_domain_matches(const struct match_list *l, const char *pattern,
                                   const char *domain)
{
    size_t dlen = strlen(domain), plen = strlen(pattern);
    if (pattern[0] == '.')
        return dlen > plen && strcmp(domain + dlen - plen, pattern) == 0;
    if (strcmp(domain, pattern) == 0)
        return true;
    return (l->flags & MATCH_F_PARENT) && dlen > plen && domain[dlen - plen - 1] == '.'
           && strcmp(domain + dlen - plen, pattern) == 0;
}

/* The domain, then its parents: "example.com" (parent style) or
 * ".example.com" for "mail.example.com". */
static int table_domain_matches(const struct match_list *l, const struct match_entry *e,
                                const char *domain)
{
    int rc = table_has(l, e, domain);
    if (rc != 0 || !e->fixed_keys)
        return rc;
    for (const char *dot = strchr(domain, '.'); dot && dot[1]; dot = strchr(dot + 1, '.')) {
        rc = table_has(l, e, (l->flags & MATCH_F_PARENT) ? dot + 1 : dot);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Whether entry e matches key, a domain or an address as kind says: 1
 * yes, 0 no (also for an entry of the other kind), -1 error. */
static int entry_matches(const struct match_list *l, const struct match_entry *e,
                         const char *key, enum match_kind kind)
{
    switch (e->type) {
    case E_DOMAIN:
        return kind == MATCH_DOMAINS && literal_domain_matches(l, e->domain, key);
    case E_NETWORK:
        return kind == MATCH_NETWORKS ? netlist_match_text(e->net, key) : 0;
    case E_TABLE:
        return kind == MATCH_DOMAINS ? table_domain_matches(l, e, key) : table_has(l, e, key);
    }
    return 0;
}

/* The first entry that matches decides. */
static int list_match(const struct match_list *l, const char *key, enum match_kind kind)
{
    if (!l || !*key || strlen(key) >= MATCH_KEY_MAX)
        return 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct match_entry *e = &l->entries[i];
        int rc = entry_matches(l, e, key, kind);
        if (rc < 0)
            return -1;
        if (rc > 0)
            return !e->negate;
    }
    return 0;
}

int match_list_domain(const struct match_list *l, const char *domain)
{
    return list_match(l, domain, MATCH_DOMAINS);
}

int match_list_addr(const struct match_list *l, const char *addr)
{
    return list_match(l, addr, MATCH_NETWORKS);
}
