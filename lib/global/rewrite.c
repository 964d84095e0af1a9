/* rewrite.c: canonical mapping, masquerading, virtual alias expansion,
 * automatic BCC and virtual_alias_domains (see rewrite.h), with Postfix's
 * names, lookup order and limits. The tables are opened once per process;
 * the message header scanner is in rewrite_header.c. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "domains.h"
#include "log.h"
#include "maps.h"
#include "resolve.h"
#include "rewrite.h"
#include "strbuf.h"
#include "util.h"

#define CANONICAL_NESTING_MAX 10   /* Postfix's limit for canonical maps */
#define REWRITE_VALUE_MAX 65536    /* bytes of a table's answer that are used */

/* A list of tables as main.cf names them, opened one by one so that
 * pattern tables can be told apart (they see the whole address only). */
struct rw_table {
    enum param_id param;
    const char *name;
    struct map **maps;
    bool *pattern;
    size_t n;
    bool broken;                   /* a table could not be opened */
};

enum { T_CANON, T_SENDER_CANON, T_RCPT_CANON, T_VIRTUAL, T_RCPT_BCC, T_SENDER_BCC,
       T_MASQ_EXCEPT, T_COUNT };

static struct rw_table tables[T_COUNT] = {
    [T_CANON] = { P_canonical_maps, "canonical_maps", NULL, NULL, 0, false },
    [T_SENDER_CANON] = { P_sender_canonical_maps, "sender_canonical_maps", NULL, NULL, 0, false },
    [T_RCPT_CANON] = { P_recipient_canonical_maps, "recipient_canonical_maps", NULL, NULL, 0, false },
    [T_VIRTUAL] = { P_virtual_alias_maps, "virtual_alias_maps", NULL, NULL, 0, false },
    [T_RCPT_BCC] = { P_recipient_bcc_maps, "recipient_bcc_maps", NULL, NULL, 0, false },
    [T_SENDER_BCC] = { P_sender_bcc_maps, "sender_bcc_maps", NULL, NULL, 0, false },
    /* the type:table entries of these two lists (their words are in rw.*) */
    [T_MASQ_EXCEPT] = { P_masquerade_exceptions, "masquerade_exceptions", NULL, NULL, 0, false },
};

static struct {
    bool loaded;
    unsigned canon_classes, sender_canon_classes, rcpt_canon_classes, masq_classes;
    bool propagate_canonical, propagate_virtual;
    char **masq_domains;           /* lower case, '!' kept */
    size_t nmasq_domains;
    char **masq_names;             /* masquerade_exceptions that are names */
    size_t nmasq_names;
    long recursion_limit, expansion_limit;
    char *always_bcc;
    const char *delimiters;
} rw;

/* ---- set-up ---- */

static unsigned class_bits(enum param_id p, const char *param)
{
    static const struct name_code names[] = {
        { "envelope_sender", REWRITE_ENV_SENDER }, { "envelope_recipient", REWRITE_ENV_RCPT },
        { "header_sender", REWRITE_HDR_SENDER }, { "header_recipient", REWRITE_HDR_RCPT },
        { NULL, 0 },
    };
    return cfg_list_bits(cfg_str(p), names, param);
}

unsigned rewrite_receive_overrides(const char *value)
{
    static const struct name_code names[] = {
        { "no_unknown_recipient_checks", RECEIVE_NO_UNKNOWN_RCPT },
        { "no_address_mappings", RECEIVE_NO_MAPPINGS },
        { "no_header_body_checks", RECEIVE_NO_CHECKS }, { "no_milters", RECEIVE_NO_MILTERS },
        { NULL, 0 },
    };
    return cfg_list_bits(value, names, "receive_override_options");
}

char *rewrite_content_filter(void)
{
    const char *v = cfg_str(P_content_filter);
    v += strspn(v, " \t");
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 0)
        return NULL;
    bool has_colon = memchr(v, ':', n) != NULL;
    char *filter = xmalloc(n + 2);
    memcpy(filter, v, n);
    if (!has_colon)
        filter[n++] = ':';       /* the transport alone: an empty next hop */
    filter[n] = 0;
    return filter;
}

static bool is_table(const char *word)
{
    const char *colon = strchr(word, ':');
    return colon && colon != word && word[0] != '[';
}

static bool is_pattern(const char *spec)
{
    spec = map_spec_inner(spec);
    return strncmp(spec, "pcre:", 5) == 0 || strncmp(spec, "regexp:", 7) == 0;
}

static void table_add(struct rw_table *t, const char *spec)
{
    struct strbuf err = STRBUF_INIT(4096);
    struct map *m = map_open(spec, &err);
    if (!m) {
        msg_warn("%s: %s; mail that needs it waits (451 4.3.0) until it is fixed", t->name,
                 sb_str(&err));
        t->broken = true;
    } else {
        t->maps = xrealloc(t->maps, (t->n + 1) * sizeof(*t->maps));
        t->pattern = xrealloc(t->pattern, (t->n + 1) * sizeof(*t->pattern));
        t->maps[t->n] = m;
        t->pattern[t->n++] = is_pattern(spec);
    }
    sb_free(&err);
}

/* A parameter that is a list of tables. */
static void table_open(struct rw_table *t)
{
    size_t n;
    char **words = cfg_list_split(cfg_str(t->param), &n);
    for (size_t i = 0; i < n; i++)
        table_add(t, words[i]);
    cfg_list_free(words, n);
}

/* A list of names and type:table entries: the names are returned (lower
 * case), the tables opened into t. */
static char **mixed_list(struct rw_table *t, size_t *count)
{
    size_t n, used = 0;
    char **words = cfg_list_split(cfg_str(t->param), &n);
    char **names = xcalloc(n + 1, sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        if (is_table(words[i]))
            table_add(t, words[i]);
        else if (words[i][0] == '/')
            msg_warn("%s: file entry \"%s\" ignored: list the names or use a table", t->name,
                     words[i]);
        else
            names[used++] = str_lower(xstrdup(words[i]));
    }
    cfg_list_free(words, n);
    *count = used;
    return names;
}

static void free_words(char **w, size_t n)
{
    for (size_t i = 0; w && i < n; i++)
        free(w[i]);
    free(w);
}

static void table_close(struct rw_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        map_close(t->maps[i]);
    free(t->maps);
    free(t->pattern);
    t->maps = NULL;
    t->pattern = NULL;
    t->n = 0;
    t->broken = false;
}

void rewrite_init(void)
{
    if (rw.loaded) {
        for (int i = 0; i < T_COUNT; i++)
            table_close(&tables[i]);
        free_words(rw.masq_domains, rw.nmasq_domains);
        free_words(rw.masq_names, rw.nmasq_names);
        free(rw.always_bcc);
    }
    rw.canon_classes = class_bits(P_canonical_classes, "canonical_classes");
    rw.sender_canon_classes = class_bits(P_sender_canonical_classes, "sender_canonical_classes")
                              & (REWRITE_ENV_SENDER | REWRITE_HDR_SENDER);
    rw.rcpt_canon_classes = class_bits(P_recipient_canonical_classes, "recipient_canonical_classes")
                            & (REWRITE_ENV_RCPT | REWRITE_HDR_RCPT);
    rw.masq_classes = class_bits(P_masquerade_classes, "masquerade_classes");
    size_t n;
    char **words = cfg_list_split(cfg_str(P_propagate_unmatched_extensions), &n);
    rw.propagate_canonical = rw.propagate_virtual = false;
    for (size_t i = 0; i < n; i++) {
        rw.propagate_canonical |= strcasecmp(words[i], "canonical") == 0;
        rw.propagate_virtual |= strcasecmp(words[i], "virtual") == 0;
    }
    cfg_list_free(words, n);
    rw.masq_domains = cfg_list_split(cfg_str(P_masquerade_domains), &rw.nmasq_domains);
    for (size_t i = 0; i < rw.nmasq_domains; i++)
        str_lower(rw.masq_domains[i]);
    for (int i = T_CANON; i <= T_SENDER_BCC; i++)
        table_open(&tables[i]);
    rw.masq_names = mixed_list(&tables[T_MASQ_EXCEPT], &rw.nmasq_names);
    domains_init();     /* virtual_alias_domains, a domain list of lib/global/domains.h */
    rw.recursion_limit = cfg_int(P_virtual_alias_recursion_limit);
    rw.expansion_limit = cfg_int(P_virtual_alias_expansion_limit);
    if (rw.recursion_limit < 1)
        rw.recursion_limit = 1;
    if (rw.expansion_limit < 1)
        rw.expansion_limit = 1;
    rw.always_bcc = xstrdup(cfg_str(P_always_bcc));
    rw.delimiters = cfg_str(P_recipient_delimiter);
    rw.loaded = true;
}

static bool configured(int t)
{
    return tables[t].n > 0 || tables[t].broken;
}

bool rewrite_active(void)
{
    return configured(T_CANON) || configured(T_SENDER_CANON) || configured(T_RCPT_CANON)
           || configured(T_VIRTUAL) || configured(T_RCPT_BCC) || configured(T_SENDER_BCC)
           || rw.nmasq_domains > 0 || (rw.always_bcc && *rw.always_bcc);
}

const char *rewrite_always_bcc(void)
{
    return rw.always_bcc ? rw.always_bcc : "";
}

/* ---- lookups ---- */

/* 1 found, 0 not, -1 failure. Pattern tables only see full keys. */
static int table_find(const struct rw_table *t, const char *key, bool full, struct strbuf *value)
{
    if (t->broken)
        return -1;
    for (size_t i = 0; i < t->n; i++) {
        if (!full && t->pattern[i])
            continue;
        sb_reset(value);
        int rc = map_lookup(t->maps[i], key, value);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* An address taken apart for the lookups. */
struct parts {
    char *local;         /* as given (case kept) */
    char *domain;        /* lower case; myorigin's when the address had none */
    size_t base_len;     /* local part length without the extension */
    bool has_ext;
};

/* The '@' before the domain: the last one outside a quoted string
 * ("a@b"@example.com), NULL when there is none ("a@b" has no domain). */
static const char *domain_at(const char *addr)
{
    const char *at = NULL;
    bool quoted = false;
    for (const char *p = addr; *p; p++) {
        if (*p == '\\' && quoted && p[1])
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (*p == '@' && !quoted)
            at = p;
    }
    return at;
}

static void parts_split(const char *addr, struct parts *p)
{
    const char *at = domain_at(addr);
    p->local = at ? xstrndup(addr, (size_t)(at - addr)) : xstrdup(addr);
    p->domain = str_lower(xstrdup(at ? at + 1 : domain_myorigin()));
    size_t n = strlen(p->local);
    p->base_len = n;
    p->has_ext = false;
    if (rw.delimiters && *rw.delimiters) {
        size_t k = strcspn(p->local, rw.delimiters);
        if (k > 0 && k < n) {
            p->base_len = k;
            p->has_ext = true;
        }
    }
}

static void parts_free(struct parts *p)
{
    free(p->local);
    free(p->domain);
}

static bool domain_is_ours(const char *domain)
{
    return strcmp(domain, domain_myorigin()) == 0 || resolve_domain_is_local(domain);
}

/* Look addr up in t in Postfix's order. 1 found (value), with *stripped
 * set when the key lacked the address extension; 0; -1. */
static int addr_find(const struct rw_table *t, const struct parts *p, struct strbuf *value,
                     bool *stripped)
{
    struct strbuf key = STRBUF_INIT(0);      /* addresses are bounded where they come in */
    int rc;
    *stripped = false;
    sb_appendf(&key, "%s@%s", p->local, p->domain);
    if ((rc = table_find(t, sb_str(&key), true, value)) != 0)
        goto out;
    if (p->has_ext) {
        sb_reset(&key);
        sb_appendf(&key, "%.*s@%s", (int)p->base_len, p->local, p->domain);
        if ((rc = table_find(t, sb_str(&key), false, value)) != 0) {
            *stripped = true;
            goto out;
        }
    }
    if (domain_is_ours(p->domain)) {
        if ((rc = table_find(t, p->local, false, value)) != 0)
            goto out;
        if (p->has_ext) {
            sb_reset(&key);
            sb_append(&key, p->local, p->base_len);
            if ((rc = table_find(t, sb_str(&key), false, value)) != 0) {
                *stripped = true;
                goto out;
            }
        }
    }
    sb_reset(&key);
    sb_appendf(&key, "@%s", p->domain);
    rc = table_find(t, sb_str(&key), false, value);
out:
    sb_free(&key);
    if (rc > 0)
        sb_truncate(value, REWRITE_VALUE_MAX);
    return rc;
}

/* The next address of a table answer ("a@x, b@y c@z", quoted local parts
 * may hold blanks and commas; one pair of <> is dropped). Returns the
 * position after it, or NULL at the end. */
static const char *next_result(const char *s, struct strbuf *out)
{
    sb_reset(out);
    s += strspn(s, ", \t\r\n");
    if (!*s)
        return NULL;
    bool quoted = false;
    for (; *s; s++) {
        if (*s == '\\' && quoted && s[1]) {
            sb_append(out, s, 2);
            s++;
            continue;
        }
        if (*s == '"')
            quoted = !quoted;
        else if (!quoted && strchr(", \t\r\n", *s))
            break;
        sb_appendc(out, *s);
    }
    if (out->len >= 2 && out->data[0] == '<' && out->data[out->len - 1] == '>') {
        memmove(out->data, out->data + 1, out->len - 2);
        sb_truncate(out, out->len - 2);
    }
    return s;
}

/* One result as it replaces the address: "@other" takes the user, a result
 * without a domain takes myorigin's, and the extension goes along when
 * the match was on the address without it. */
static void finish_result(const char *result, const struct parts *p, const char *ext,
                          struct strbuf *out)
{
    sb_reset(out);
    if (result[0] == '@') {
        sb_append(out, p->local, ext ? p->base_len : strlen(p->local));
        if (ext)
            sb_appends(out, ext);
        sb_appends(out, result);
        return;
    }
    const char *at = domain_at(result);
    size_t llen = at ? (size_t)(at - result) : strlen(result);
    sb_append(out, result, llen);
    if (ext)
        sb_appends(out, ext);
    sb_appendf(out, "@%s", at ? at + 1 : domain_myorigin());
}

/* One table answer for addr, as a list of final addresses (words). 1
 * found, 0 not, -1 failure. */
static int addr_map(const struct rw_table *t, const char *addr, bool propagate, char ***words,
                    size_t *nwords)
{
    struct parts p;
    struct strbuf value = STRBUF_INIT(0), one = STRBUF_INIT(0), fin = STRBUF_INIT(0);
    bool stripped;
    parts_split(addr, &p);
    int rc = addr_find(t, &p, &value, &stripped);
    *words = NULL;
    *nwords = 0;
    if (rc > 0) {
        const char *ext = stripped && propagate ? p.local + p.base_len : NULL;
        char *ext_copy = ext ? xstrdup(ext) : NULL;
        for (const char *s = sb_str(&value); (s = next_result(s, &one)) != NULL;) {
            if (!one.len)
                continue;
            finish_result(sb_str(&one), &p, ext_copy, &fin);
            *words = xrealloc(*words, (*nwords + 1) * sizeof(**words));
            (*words)[(*nwords)++] = xstrdup(sb_str(&fin));
        }
        free(ext_copy);
        if (*nwords == 0)
            rc = 0;                  /* an answer without addresses changes nothing */
    }
    parts_free(&p);
    sb_free(&value);
    sb_free(&one);
    sb_free(&fin);
    return rc;
}

/* ---- canonical mapping ---- */

/* One canonical table, repeated until the address stays the same. */
static int canonical_one(const struct rw_table *t, struct strbuf *addr)
{
    for (int round = 0; round < CANONICAL_NESTING_MAX; round++) {
        char **w;
        size_t n;
        int rc = addr_map(t, sb_str(addr), rw.propagate_canonical, &w, &n);
        if (rc <= 0)
            return rc;
        if (n > 1)
            msg_warn("%s: multi-valued entry for %s: only %s is used", t->name, sb_str(addr), w[0]);
        bool same = strcasecmp(w[0], sb_str(addr)) == 0;
        sb_set(addr, w[0]);
        free_words(w, n);
        if (same)
            return 0;
    }
    msg_warn("%s: unreasonable nesting for %s", t->name, sb_str(addr));
    return 0;
}

int rewrite_canonical(const char *addr, unsigned cls, struct strbuf *out)
{
    sb_set(out, addr);
    if (!*addr || !rw.loaded)
        return 0;
    bool sender = cls & (REWRITE_ENV_SENDER | REWRITE_HDR_SENDER);
    const struct rw_table *first = sender ? &tables[T_SENDER_CANON] : &tables[T_RCPT_CANON];
    unsigned first_classes = sender ? rw.sender_canon_classes : rw.rcpt_canon_classes;
    if ((first_classes & cls) && canonical_one(first, out) < 0)
        return -1;
    if ((rw.canon_classes & cls) && canonical_one(&tables[T_CANON], out) < 0)
        return -1;
    return 0;
}

/* ---- masquerading ---- */

/* 1 excepted, 0 not, -1 failure. */
static int masq_excepted(const char *local)
{
    char *lc = str_lower(xstrdup(local));
    int rc = 0;
    for (size_t i = 0; i < rw.nmasq_names && !rc; i++)
        rc = strcmp(rw.masq_names[i], lc) == 0;
    if (!rc && (tables[T_MASQ_EXCEPT].n || tables[T_MASQ_EXCEPT].broken)) {
        struct strbuf v = STRBUF_INIT(0);
        rc = table_find(&tables[T_MASQ_EXCEPT], lc, true, &v);
        sb_free(&v);
    }
    free(lc);
    return rc;
}

int rewrite_masquerade(const char *addr, unsigned cls, struct strbuf *out)
{
    sb_set(out, addr);
    const char *at = domain_at(addr);
    if (!rw.loaded || !(rw.masq_classes & cls) || rw.nmasq_domains == 0 || !at || !at[1])
        return 0;
    char *local = xstrndup(addr, (size_t)(at - addr));
    int ex = masq_excepted(local);
    if (ex != 0) {
        free(local);
        return ex < 0 ? -1 : 0;
    }
    const char *domain = at + 1;
    size_t dlen = strlen(domain);
    for (size_t i = 0; i < rw.nmasq_domains; i++) {
        const char *m = rw.masq_domains[i];
        bool truncate = true;
        for (; *m == '!'; m++)
            truncate = !truncate;
        size_t mlen = strlen(m);
        if (mlen == 0 || mlen > dlen)
            continue;
        if (mlen == dlen) {
            if (strcasecmp(m, domain) == 0)
                break;
            continue;
        }
        const char *parent = domain + dlen - mlen;
        if (parent[-1] == '.' && strcasecmp(m, parent) == 0) {
            if (truncate) {
                sb_reset(out);
                sb_appendf(out, "%s@%s", local, m);
            }
            break;
        }
    }
    free(local);
    return 0;
}

int rewrite_address(const char *addr, unsigned cls, struct strbuf *out)
{
    struct strbuf tmp = STRBUF_INIT(0);
    int rc = rewrite_canonical(addr, cls, &tmp);
    if (rc == 0)
        rc = rewrite_masquerade(sb_str(&tmp), cls, out);
    sb_free(&tmp);
    return rc;
}

/* ---- virtual aliases ---- */

static bool seen(char **list, size_t n, const char *addr)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(list[i], addr) == 0)
            return true;
    return false;
}

void rewrite_expansion_free(struct rewrite_expansion *x)
{
    free_words(x->addrs, x->n);
    memset(x, 0, sizeof(*x));
}

/* As Postfix's cleanup: each address in turn is replaced by its first
 * target (the others are appended) until the tables no longer list it or
 * it expanded into itself once; the depth of each chain and the size of
 * the whole list are limited, so a loop ends in a deferral, not a hang. */
int rewrite_virtual(const char *addr, const char *id, struct rewrite_expansion *x)
{
    memset(x, 0, sizeof(*x));
    x->addrs = xcalloc(1, sizeof(*x->addrs));
    x->addrs[x->n++] = xstrdup(addr);
    if (!rw.loaded || !configured(T_VIRTUAL) || !*addr)
        return 0;
    char **fixed = NULL;             /* addresses that listed themselves */
    size_t nfixed = 0;
    int rc = 0;
    for (size_t i = 0; i < x->n && rc == 0; i++) {
        if ((long)x->n > rw.expansion_limit) {
            msg_warn("%s: unreasonable virtual_alias_maps map expansion size for %s -- "
                     "message not accepted, try again later", id, addr);
            rc = REWRITE_LIMIT_EXCEEDED;
            break;
        }
        for (long depth = 0;; depth++) {
            if (seen(fixed, nfixed, x->addrs[i]))
                break;
            if (depth >= rw.recursion_limit) {
                msg_warn("%s: unreasonable virtual_alias_maps map nesting for %s -- "
                         "message not accepted, try again later", id, addr);
                rc = REWRITE_LIMIT_EXCEEDED;
                break;
            }
            char **w;
            size_t n;
            int found = addr_map(&tables[T_VIRTUAL], x->addrs[i], rw.propagate_virtual, &w, &n);
            if (found < 0) {
                msg_warn("%s: virtual_alias_maps map lookup problem for %s -- "
                         "message not accepted, try again later", id, x->addrs[i]);
                rc = REWRITE_LOOKUP_FAILED;
                break;
            }
            if (found == 0)
                break;
            x->listed = true;
            char *lhs = x->addrs[i];
            bool self = seen(w, n, lhs);
            if (self) {
                fixed = xrealloc(fixed, (nfixed + 1) * sizeof(*fixed));
                fixed[nfixed++] = xstrdup(lhs);
            }
            x->addrs = xrealloc(x->addrs, (x->n + n) * sizeof(*x->addrs));
            x->addrs[i] = w[0];
            for (size_t k = 1; k < n; k++)
                x->addrs[x->n++] = w[k];
            free(w);
            free(lhs);
        }
    }
    free_words(fixed, nfixed);
    if (rc != 0) {
        rewrite_expansion_free(x);
        return rc;
    }
    /* the same target reached twice is delivered once */
    size_t kept = 0;
    for (size_t i = 0; i < x->n; i++) {
        if (seen(x->addrs, kept, x->addrs[i]))
            free(x->addrs[i]);
        else
            x->addrs[kept++] = x->addrs[i];
    }
    x->n = kept;
    return 0;
}

/* ---- BCC ---- */

int rewrite_bcc(const char *addr, bool sender, struct strbuf *out)
{
    const struct rw_table *t = &tables[sender ? T_SENDER_BCC : T_RCPT_BCC];
    if (!rw.loaded || !configured(sender ? T_SENDER_BCC : T_RCPT_BCC) || !*addr)
        return 0;
    char **w;
    size_t n;
    int rc = addr_map(t, addr, false, &w, &n);
    if (rc > 0) {
        sb_set(out, w[0]);
        free_words(w, n);
    }
    return rc;
}

/* ---- virtual_alias_domains ---- */

/* Names match exactly, ".parent" names match subdomains; tables are asked
 * the domain, then ".parent" for each parent domain. */
int rewrite_virtual_alias_domain(const char *domain)
{
    return domain_is_virtual_alias(domain);
}
