/* map_ldap.c: the ldap: table type, ldap:/etc/tern/FILE with the query
 * file of ldap_table(5): server_host, server_port, timeout, search_base,
 * query_filter, result_attribute, special_result_attribute,
 * terminal_result_attribute, leaf_result_attribute, result_format, scope,
 * bind, bind_dn, bind_pw, domain, expansion_limit, size_limit,
 * recursion_limit, dereference, chase_referrals, version.
 *
 * One connection per table and process (libldap tries the servers of
 * server_host in order), opened and bound at the first lookup and kept for
 * the next ones. A server that cannot be reached, a bind that fails, a
 * search that fails or takes longer than timeout make the lookup a
 * temporary error (-1), never "not found". A reused connection that turns
 * out to be broken (the server restarted) is reopened at once and the
 * search asked again.
 *
 * TLS: start_tls, ldaps:// URLs, tls_ca_cert_file, tls_ca_cert_dir,
 * tls_cert, tls_key, tls_require_cert, tls_cipher_suite. Not supported,
 * and refused when set (rather than silently doing less than the file
 * asks): bind = sasl and the sasl_ parameters.
 *
 * special_result_attribute, terminal_result_attribute,
 * leaf_result_attribute and recursion_limit work as ldap_table(5) says
 * (group expansion through member DNs or LDAP URLs), with every DN or URL
 * followed at most once per lookup, so that groups that contain each
 * other end. */
#include <arpa/inet.h>
#include <ldap.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "chroot.h"
#include "config.h"
#include "log.h"
#include "map_query.h"
#include "match_list.h"
#include "maps_impl.h"
#include "util.h"

#define LDAP_FILTER_LIMIT (64 * 1024)
#define LDAP_ATTRIBUTE_LIMIT 64

static const char *const ldap_params[] = {
    "server_host", "server_port", "timeout", "search_base", "query_filter", "result_format",
    "domain", "result_attribute", "special_result_attribute", "terminal_result_attribute",
    "leaf_result_attribute", "scope", "bind", "bind_dn", "bind_pw", "cache", "cache_expiry",
    "cache_size", "recursion_limit", "expansion_limit", "size_limit", "dereference",
    "chase_referrals", "version", "debuglevel", "start_tls", "tls_ca_cert_dir",
    "tls_ca_cert_file", "tls_cert", "tls_key", "tls_require_cert", "tls_random_file",
    "tls_cipher_suite", "sasl_mechs", "sasl_realm", "sasl_authz_id", "sasl_minssf", NULL,
};

struct ldap_table {
    const char *spec;
    char *urls;            /* space-separated, as ldap_initialize takes them */
    char *search_base, *query_filter, *result_format;
    bool dynamic_base;     /* search_base depends on the key */
    /* attribute lists, NULL-terminated: result_attribute, then
     * special_result_attribute (DNs or LDAP URLs searched in turn),
     * terminal_result_attribute, leaf_result_attribute; attrs is all of
     * them, what a search asks for */
    char **result_attrs, **special_attrs, **terminal_attrs, **leaf_attrs, **attrs;
    long recursion_limit;
    int scope, version, deref;
    bool bind, chase_referrals;
    char *bind_dn, *bind_pw;
    long timeout, expansion_limit, size_limit;
    struct match_list *domains;
    LDAP *ld;
    bool reused;
    bool start_tls;
    int require_cert;      /* LDAP_OPT_X_TLS_NEVER ... _HARD */
    void *tls_ctx;         /* made at open, before any chroot; NULL: no TLS */
};

/* ---- quoting ---- */

/* A value inside a search filter (RFC 4515): the filter's own characters
 * and control bytes as \XX. */
static int quote_filter(struct strbuf *out, const char *s, size_t n, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc = (c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20 || c == 0x7f)
                     ? sb_appendf(out, "\\%02x", c)
                     : sb_appendc(out, c);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* A value inside a DN (RFC 4514): its special characters escaped with a
 * backslash wherever they are, control bytes as \XX. */
static int quote_dn(struct strbuf *out, const char *s, size_t n, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (c < 0x20 || c == 0x7f)
            rc = sb_appendf(out, "\\%02x", c);
        else if (strchr(",+\"\\<>;= #", c))
            rc = sb_appendc(out, '\\') < 0 ? -1 : sb_appendc(out, c);
        else
            rc = sb_appendc(out, c);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- connections ---- */

static void ld_disconnect(struct ldap_table *t)
{
    if (t->ld)
        ldap_unbind_ext_s(t->ld, NULL, NULL);
    t->ld = NULL;
    t->reused = false;
}

/* Whether every server of server_host is named by an IP address, which
 * needs no file (resolv.conf, hosts, a socket) that a chroot hides. */
static bool ld_servers_are_addresses(const char *urls)
{
    char *list = xstrdup(urls), *save = NULL;
    bool all = true;
    for (char *url = strtok_r(list, " ", &save); url && all; url = strtok_r(NULL, " ", &save)) {
        LDAPURLDesc *u = NULL;
        unsigned char addr[sizeof(struct in6_addr)];
        all = ldap_url_parse(url, &u) == LDAP_URL_SUCCESS && u->lud_host
              && strcasecmp(u->lud_scheme, "ldapi") != 0
              && (inet_pton(AF_INET, u->lud_host, addr) == 1
                  || inet_pton(AF_INET6, u->lud_host, addr) == 1);
        if (u)
            ldap_free_urldesc(u);
    }
    free(list);
    return all;
}

static const char *chroot_hint(const struct ldap_table *t)
{
    return chroot_active() && !ld_servers_are_addresses(t->urls)
               ? " (this service runs chrooted in queue_directory: name the server by IP "
                 "address, not by host name or ldapi:// socket, or set chroot = n for it in "
                 "master.cf)" : "";
}

static bool connection_error(int rc)
{
    return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT
           || rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY || rc == LDAP_LOCAL_ERROR;
}

static int ld_connect(struct ldap_table *t)
{
    int rc = ldap_initialize(&t->ld, t->urls);
    if (rc != LDAP_SUCCESS) {
        msg_warn("%s: cannot use server_host %s: %s", t->spec, t->urls, ldap_err2string(rc));
        t->ld = NULL;
        return -1;
    }
    struct timeval tv = { .tv_sec = t->timeout };
    int size = (int)t->size_limit;
    if (ldap_set_option(t->ld, LDAP_OPT_PROTOCOL_VERSION, &t->version) != LDAP_OPT_SUCCESS
        || ldap_set_option(t->ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS
        || ldap_set_option(t->ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS
        || ldap_set_option(t->ld, LDAP_OPT_DEREF, &t->deref) != LDAP_OPT_SUCCESS
        || ldap_set_option(t->ld, LDAP_OPT_SIZELIMIT, &size) != LDAP_OPT_SUCCESS
        || ldap_set_option(t->ld, LDAP_OPT_REFERRALS,
                           t->chase_referrals ? LDAP_OPT_ON : LDAP_OPT_OFF) != LDAP_OPT_SUCCESS) {
        msg_warn("%s: cannot set the LDAP connection's options", t->spec);
        ld_disconnect(t);
        return -1;
    }
    if (t->tls_ctx
        && (ldap_set_option(t->ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &t->require_cert) != LDAP_OPT_SUCCESS
            || ldap_set_option(t->ld, LDAP_OPT_X_TLS_CTX, t->tls_ctx) != LDAP_OPT_SUCCESS)) {
        msg_warn("%s: cannot set the LDAP connection's TLS options", t->spec);
        ld_disconnect(t);
        return -1;
    }
    if (t->start_tls && (rc = ldap_start_tls_s(t->ld, NULL, NULL)) != LDAP_SUCCESS) {
        char *detail = NULL;
        ldap_get_option(t->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &detail);
        bool useful = detail && *detail && *detail != '(';
        bool checked = t->require_cert == LDAP_OPT_X_TLS_DEMAND
                       || t->require_cert == LDAP_OPT_X_TLS_HARD;
        msg_warn("%s: STARTTLS with LDAP server %s failed: %s%s%s%s%s", t->spec, t->urls,
                 ldap_err2string(rc), useful ? " (" : "", useful ? detail : "", useful ? ")" : "",
                 checked && rc == LDAP_CONNECT_ERROR
                     ? "; is its certificate signed by a CA of tls_ca_cert_file or "
                       "tls_ca_cert_dir, and for the name in server_host?" : "");
        ldap_memfree(detail);
        ld_disconnect(t);
        return -1;
    }
    if (t->bind) {
        struct berval cred = { .bv_val = t->bind_pw, .bv_len = strlen(t->bind_pw) };
        rc = ldap_sasl_bind_s(t->ld, t->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
        if (rc != LDAP_SUCCESS) {
            msg_warn("%s: cannot bind to LDAP server %s as \"%s\": %s%s%s", t->spec, t->urls,
                     t->bind_dn, ldap_err2string(rc),
                     rc == LDAP_PROTOCOL_ERROR && t->version == 2
                         ? " (the server may not accept LDAPv2: set version = 3)" : "",
                     connection_error(rc) ? chroot_hint(t) : "");
            ld_disconnect(t);
            return -1;
        }
    }
    t->reused = false;
    return 0;
}

/* ---- searches ---- */

enum { LD_BROKEN = -2 };

/* What one lookup has gathered, across the searches that special result
 * attributes lead to. */
struct ld_walk {
    const char *key;
    struct map_results results;
    struct strbuf err;
    char **seen;           /* DNs and URLs already followed: loops end */
    size_t nseen;
    int searches;
    int state;             /* 0, -1 (lookup error) or LD_BROKEN */
};

/* Searches per lookup (the lookup key's and those that special result
 * attributes lead to): a bound on the work a group structure can cause. */
#define LDAP_SEARCH_LIMIT 1000

static bool in_list(char **list, const char *attr)
{
    for (; list && *list; list++)
        if (strcasecmp(*list, attr) == 0)
            return true;
    return false;
}

static bool entry_has(struct ldap_table *t, LDAPMessage *e, char **list)
{
    for (; list && *list; list++) {
        struct berval **vals = ldap_get_values_len(t->ld, e, *list);
        bool found = vals && vals[0];
        if (vals)
            ldap_value_free_len(vals);
        if (found)
            return true;
    }
    return false;
}

/* The text of a value, or NULL when it is empty or not text. */
static char *value_text(const struct berval *v)
{
    if (v->bv_len == 0 || memchr(v->bv_val, 0, v->bv_len))
        return NULL;
    return xstrndup(v->bv_val, v->bv_len);
}

static void ld_walk_search(struct ldap_table *t, struct ld_walk *w, const char *base, int scope,
                           const char *filter, long depth);

/* Follow one value of a special result attribute: a DN, searched with
 * scope base, or an LDAP URL, searched as it says. */
static void ld_follow(struct ldap_table *t, struct ld_walk *w, const char *value, long depth)
{
    for (size_t i = 0; i < w->nseen; i++)
        if (strcasecmp(w->seen[i], value) == 0)
            return;                /* followed already: a loop, or a shared member */
    w->seen = xrealloc(w->seen, (w->nseen + 1) * sizeof(char *));
    w->seen[w->nseen++] = xstrdup(value);
    if (ldap_is_ldap_url(value)) {
        LDAPURLDesc *u = NULL;
        if (ldap_url_parse(value, &u) != LDAP_URL_SUCCESS) {
            msg_warn("%s: lookup of \"%.100s\": bad LDAP URL \"%.200s\" skipped", t->spec,
                     w->key, value);
            return;
        }
        ld_walk_search(t, w, u->lud_dn ? u->lud_dn : "", u->lud_scope < 0 ? LDAP_SCOPE_BASE
                                                                            : u->lud_scope,
                       u->lud_filter ? u->lud_filter : "(objectclass=*)", depth);
        ldap_free_urldesc(u);
    } else {
        ld_walk_search(t, w, value, LDAP_SCOPE_BASE, "(objectclass=*)", depth);
    }
}

/* One entry, as ldap_table(5) says: the terminal result attributes alone
 * when it has any; otherwise the result attributes, the leaf result
 * attributes unless it has special result attributes, and the entries
 * those lead to. */
static void ld_entry(struct ldap_table *t, struct ld_walk *w, LDAPMessage *e, long depth)
{
    bool terminal = entry_has(t, e, t->terminal_attrs);
    bool leaf = !terminal && !entry_has(t, e, t->special_attrs);
    for (char **a = t->attrs; *a && w->state == 0; a++) {
        bool take = terminal ? in_list(t->terminal_attrs, *a)
                             : in_list(t->result_attrs, *a) || (leaf && in_list(t->leaf_attrs, *a));
        bool follow = !terminal && in_list(t->special_attrs, *a);
        if (!take && !follow)
            continue;
        struct berval **vals = ldap_get_values_len(t->ld, e, *a);
        for (size_t i = 0; vals && vals[i] && w->state == 0; i++) {
            char *text = value_text(vals[i]);
            if (!text)
                continue;
            if (take && map_results_add(&w->results, t->result_format, text, w->key, &w->err) < 0)
                w->state = -1;
            if (follow && w->state == 0) {
                if (depth >= t->recursion_limit) {
                    sb_appendf(&w->err, "special result attributes nested deeper than "
                               "recursion_limit = %ld", t->recursion_limit);
                    w->state = -1;
                } else {
                    ld_follow(t, w, text, depth + 1);
                }
            }
            free(text);
        }
        if (vals)
            ldap_value_free_len(vals);
    }
}

/* One search and its entries. A DN that a special result attribute names
 * and that does not exist is skipped (with a warning), as in Postfix. */
static void ld_walk_search(struct ldap_table *t, struct ld_walk *w, const char *base, int scope,
                           const char *filter, long depth)
{
    if (++w->searches > LDAP_SEARCH_LIMIT) {
        sb_appendf(&w->err, "more than %d searches", LDAP_SEARCH_LIMIT);
        w->state = -1;
        return;
    }
    struct timeval tv = { .tv_sec = t->timeout };
    LDAPMessage *res = NULL;
    int rc = ldap_search_ext_s(t->ld, base, scope, filter, t->attrs, 0, NULL, NULL, &tv,
                               (int)t->size_limit, &res);
    if (rc == LDAP_SUCCESS) {
        t->reused = true;
        for (LDAPMessage *e = ldap_first_entry(t->ld, res); e && w->state == 0;
             e = ldap_next_entry(t->ld, e))
            ld_entry(t, w, e, depth);
    } else if (rc == LDAP_NO_SUCH_OBJECT && (depth > 0 || t->dynamic_base)) {
        t->reused = true;          /* a base made from the key or a value that does not exist */
        if (depth > 0)
            msg_warn("%s: lookup of \"%.100s\": entry \"%.200s\" not found, skipped", t->spec,
                     w->key, base);
    } else if (rc == LDAP_TIMEOUT) {
        /* asking again at once would only wait as long again */
        sb_appendf(&w->err, "LDAP server %s did not answer within %ld s", t->urls, t->timeout);
        ld_disconnect(t);
        w->state = -1;
    } else if (connection_error(rc)) {
        if (t->reused)
            msg_info("%s: connection to LDAP server %s lost: %s", t->spec, t->urls,
                     ldap_err2string(rc));
        else
            sb_appendf(&w->err, "search failed on %s: %s%s", t->urls, ldap_err2string(rc),
                       chroot_hint(t));
        ld_disconnect(t);
        w->state = LD_BROKEN;
    } else {
        sb_appendf(&w->err, "search (base \"%s\", filter \"%s\") failed: %s%s", base, filter,
                   ldap_err2string(rc),
                   rc == LDAP_SIZELIMIT_EXCEEDED ? " (more entries than size_limit)" : "");
        t->reused = true;
        w->state = -1;
    }
    if (res)
        ldap_msgfree(res);
}

/* One lookup on the open connection: 1, 0, -1, or LD_BROKEN (closed). */
static int ld_search(struct ldap_table *t, const char *base, const char *filter, const char *key,
                     struct strbuf *result)
{
    struct ld_walk w = { .key = key, .err = STRBUF_INIT(1024) };
    sb_reset(result);
    map_results_init(&w.results, result, t->expansion_limit);
    ld_walk_search(t, &w, base, t->scope, filter, 0);
    if (w.state == -1 || (w.state == LD_BROKEN && w.err.len))
        msg_warn("%s: lookup of \"%.100s\": %s", t->spec, key, sb_str(&w.err));
    for (size_t i = 0; i < w.nseen; i++)
        free(w.seen[i]);
    free(w.seen);
    sb_free(&w.err);
    int answer = w.state != 0 ? w.state : w.results.count > 0 ? 1 : 0;
    if (answer != 1)
        sb_reset(result);
    return answer;
}

/* The search base and filter for key: 1, or 0 when a template suppresses
 * the lookup, -1 on error. */
static int ld_expand(struct ldap_table *t, const char *key, struct strbuf *base,
                     struct strbuf *filter)
{
    struct strbuf err = STRBUF_INIT(512);
    int rc = map_expand(base, t->search_base, MAP_EXPAND_QUERY, key, NULL, quote_dn, NULL, &err);
    if (rc > 0)
        rc = map_expand(filter, t->query_filter, MAP_EXPAND_QUERY, key, NULL, quote_filter, NULL,
                        &err);
    if (rc < 0)
        msg_warn("%s: cannot make the search for \"%.100s\": %s", t->spec, key, sb_str(&err));
    sb_free(&err);
    return rc;
}

static int ldap_lookup(struct map *m, const char *key, struct strbuf *result)
{
    struct ldap_table *t = m->priv;
    if (!*key)
        return 0;
    int allow = map_query_domains_allow(t->domains, key);
    if (allow <= 0)
        return allow;
    struct strbuf base = STRBUF_INIT(LDAP_FILTER_LIMIT), filter = STRBUF_INIT(LDAP_FILTER_LIMIT);
    int rc = ld_expand(t, key, &base, &filter);
    for (int attempt = 0; rc > 0; attempt++) {
        bool was_open = t->ld != NULL;
        if (!t->ld && ld_connect(t) < 0) {
            rc = -1;
            break;
        }
        rc = ld_search(t, sb_str(&base), sb_str(&filter), key, result);
        if (rc != LD_BROKEN)
            break;
        /* a reused connection that broke is reopened once, at once */
        rc = was_open && attempt == 0 ? 1 : -1;
    }
    sb_free(&base);
    sb_free(&filter);
    return rc;
}

/* ---- the query file ---- */

static void ldap_close(struct map *m)
{
    struct ldap_table *t = m->priv;
    ld_disconnect(t);
    free(t->urls);
    free(t->search_base);
    free(t->query_filter);
    free(t->result_format);
    char **lists[] = { t->result_attrs, t->special_attrs, t->terminal_attrs, t->leaf_attrs };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        for (char **a = lists[i]; a && *a; a++)
            free(*a);
        free(lists[i]);
    }
    free(t->attrs);        /* its strings are those of the lists */
    free(t->bind_dn);
    if (t->bind_pw) {
        explicit_bzero(t->bind_pw, strlen(t->bind_pw));
        free(t->bind_pw);
    }
    match_list_free(t->domains);
    free(t);
}

/* server_host: host, host:port, or an ldap://, ldaps://, ldapi:// URL. */
static int ld_urls(struct ldap_table *t, const struct map_query_file *f, long port,
                   struct strbuf *err)
{
    size_t n;
    char **words = cfg_list_split(map_query_str(f, "server_host", "localhost"), &n);
    struct strbuf urls = STRBUF_INIT(0);
    for (size_t i = 0; i < n; i++) {
        const char *w = words[i];
        if (urls.len)
            sb_appendc(&urls, ' ');
        if (strstr(w, "://")) {
            if (strncasecmp(w, "ldap://", 7) != 0 && strncasecmp(w, "ldaps://", 8) != 0
                && strncasecmp(w, "ldapi://", 8) != 0) {
                sb_appendf(err, "%s: server_host: \"%.100s\" is not an LDAP URL",
                           map_query_path(f), w);
                break;
            }
            sb_appends(&urls, w);
        } else if (strchr(w, ':')) {
            sb_appendf(&urls, "ldap://%s", w);
        } else {
            sb_appendf(&urls, "ldap://%s:%ld", w, port);
        }
    }
    cfg_list_free(words, n);
    if (err->len || urls.len == 0) {
        if (!err->len)
            sb_appendf(err, "%s: server_host is empty", map_query_path(f));
        sb_free(&urls);
        return -1;
    }
    t->urls = xstrdup(sb_str(&urls));
    sb_free(&urls);
    return 0;
}

/* Parameters this table type refuses when they ask for something. */
static int ld_refuse_unsupported(const struct map_query_file *f, struct strbuf *err)
{
    static const char *const unsupported[] = {
        "sasl_mechs", "sasl_realm", "sasl_authz_id",
    };
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        const char *v = map_query_str(f, unsupported[i], "");
        if (*v) {
            sb_appendf(err, "%s: %s is not supported by this ldap: table type", map_query_path(f),
                       unsupported[i]);
            return -1;
        }
    }
    return 0;
}

/* tls_require_cert: yes/no as in Postfix, or libldap's level names. */
static int ld_require_cert(const struct map_query_file *f, int *level, struct strbuf *err)
{
    static const struct { const char *name; int level; } levels[] = {
        { "never", LDAP_OPT_X_TLS_NEVER }, { "allow", LDAP_OPT_X_TLS_ALLOW },
        { "try", LDAP_OPT_X_TLS_TRY }, { "demand", LDAP_OPT_X_TLS_DEMAND },
        { "hard", LDAP_OPT_X_TLS_HARD },
    };
    const char *v = map_query_str(f, "tls_require_cert", "no");
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (strcasecmp(v, levels[i].name) == 0) {
            *level = levels[i].level;
            return 0;
        }
    bool yes;
    if (map_query_bool(f, "tls_require_cert", false, &yes, err) < 0)
        return -1;
    *level = yes ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;
    return 0;
}

/* The TLS context of start_tls and ldaps:// servers, made now: the
 * certificate files are read here, before any chroot hides them, and
 * every connection of this table uses the context. */
static int ld_tls(struct ldap_table *t, const struct map_query_file *f, struct strbuf *err)
{
    const char *path = map_query_path(f);
    if (map_query_bool(f, "start_tls", false, &t->start_tls, err) < 0
        || ld_require_cert(f, &t->require_cert, err) < 0)
        return -1;
    if (!t->start_tls && !strcasestr(t->urls, "ldaps://"))
        return 0;
    LDAP *ld = NULL;
    if (ldap_initialize(&ld, t->urls) != LDAP_SUCCESS) {
        sb_appendf(err, "%s: cannot use server_host %s", path, t->urls);
        return -1;
    }
    static const struct { const char *param; int option; } files[] = {
        { "tls_ca_cert_file", LDAP_OPT_X_TLS_CACERTFILE },
        { "tls_ca_cert_dir", LDAP_OPT_X_TLS_CACERTDIR },
        { "tls_cert", LDAP_OPT_X_TLS_CERTFILE },
        { "tls_key", LDAP_OPT_X_TLS_KEYFILE },
        { "tls_cipher_suite", LDAP_OPT_X_TLS_CIPHER_SUITE },
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) && rc == 0; i++) {
        const char *v = map_query_str(f, files[i].param, "");
        if (*v && ldap_set_option(ld, files[i].option, v) != LDAP_OPT_SUCCESS) {
            sb_appendf(err, "%s: %s = %s: refused by libldap", path, files[i].param, v);
            rc = -1;
        }
    }
    int is_server = 0;
    if (rc == 0
        && (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &t->require_cert) != LDAP_OPT_SUCCESS
            || ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &is_server) != LDAP_OPT_SUCCESS
            || ldap_get_option(ld, LDAP_OPT_X_TLS_CTX, &t->tls_ctx) != LDAP_OPT_SUCCESS
            || !t->tls_ctx)) {
        sb_appendf(err, "%s: cannot set up TLS: check tls_ca_cert_file, tls_ca_cert_dir, "
                   "tls_cert and tls_key (readable certificate and key files)", path);
        rc = -1;
    }
    /* the context keeps one reference of ours until the process ends */
    ldap_unbind_ext_s(ld, NULL, NULL);
    return rc;
}

static int ld_scope(const struct map_query_file *f, int *scope, struct strbuf *err)
{
    const char *s = map_query_str(f, "scope", "sub");
    if (strcasecmp(s, "sub") == 0)
        *scope = LDAP_SCOPE_SUBTREE;
    else if (strcasecmp(s, "one") == 0)
        *scope = LDAP_SCOPE_ONELEVEL;
    else if (strcasecmp(s, "base") == 0)
        *scope = LDAP_SCOPE_BASE;
    else {
        sb_appendf(err, "%s: scope = \"%.50s\": expected sub, one or base", map_query_path(f), s);
        return -1;
    }
    return 0;
}

static int ld_bind(struct ldap_table *t, const struct map_query_file *f, struct strbuf *err)
{
    const char *b = map_query_str(f, "bind", "yes");
    if (strcasecmp(b, "sasl") == 0) {
        sb_appendf(err, "%s: bind = sasl is not supported (bind = yes with bind_dn and bind_pw, "
                   "or bind = no)", map_query_path(f));
        return -1;
    }
    if (map_query_bool(f, "bind", true, &t->bind, err) < 0)
        return -1;
    t->bind_dn = xstrdup(map_query_str(f, "bind_dn", ""));
    t->bind_pw = xstrdup(map_query_str(f, "bind_pw", ""));
    return 0;
}

/* One attribute list of the query file; NULL-terminated, never NULL. */
static char **ld_attr_list(const struct map_query_file *f, const char *name, const char *dflt,
                           size_t *count)
{
    size_t n;
    char **words = cfg_list_split(map_query_str(f, name, dflt), &n);
    char **list = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        list[i] = xstrdup(words[i]);
    cfg_list_free(words, n);
    *count = n;
    return list;
}

static int ld_attrs(struct ldap_table *t, const struct map_query_file *f, struct strbuf *err)
{
    size_t nr, ns, nt, nl;
    t->result_attrs = ld_attr_list(f, "result_attribute", "maildrop", &nr);
    t->special_attrs = ld_attr_list(f, "special_result_attribute", "", &ns);
    t->terminal_attrs = ld_attr_list(f, "terminal_result_attribute", "", &nt);
    t->leaf_attrs = ld_attr_list(f, "leaf_result_attribute", "", &nl);
    size_t total = nr + ns + nt + nl;
    if (nr + nt + nl == 0 || total > LDAP_ATTRIBUTE_LIMIT) {
        sb_appendf(err, "%s: result_attribute (with leaf_ and terminal_result_attribute) needs "
                   "1 to %d attribute names", map_query_path(f), LDAP_ATTRIBUTE_LIMIT);
        return -1;
    }
    t->attrs = xcalloc(total + 1, sizeof(char *));
    size_t k = 0;
    char **lists[] = { t->result_attrs, t->special_attrs, t->terminal_attrs, t->leaf_attrs };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        for (char **a = lists[i]; *a; a++)
            if (!in_list(t->attrs, *a))
                t->attrs[k++] = *a;
    return 0;
}

static int ld_configure(struct map *m, const struct map_query_file *f, struct strbuf *err)
{
    struct ldap_table *t = m->priv;
    const char *path = map_query_path(f);
    t->spec = m->spec;
    long port, version, deref;
    if (map_query_int(f, "server_port", 389, 1, 65535, &port, err) < 0
        || map_query_int(f, "timeout", 10, 1, 3600, &t->timeout, err) < 0
        || map_query_int(f, "expansion_limit", 0, 0, 1000000, &t->expansion_limit, err) < 0
        || map_query_int(f, "size_limit", t->expansion_limit, 0, 1000000, &t->size_limit, err) < 0
        || map_query_int(f, "version", 2, 2, 3, &version, err) < 0
        || map_query_int(f, "dereference", 0, 0, 3, &deref, err) < 0
        || map_query_int(f, "recursion_limit", 1000, 1, 1000000, &t->recursion_limit, err) < 0
        || map_query_bool(f, "chase_referrals", false, &t->chase_referrals, err) < 0
        || ld_refuse_unsupported(f, err) < 0 || ld_scope(f, &t->scope, err) < 0
        || ld_bind(t, f, err) < 0 || ld_attrs(t, f, err) < 0 || ld_urls(t, f, port, err) < 0
        || ld_tls(t, f, err) < 0)
        return -1;
    t->version = (int)version;
    t->deref = (int)deref;
    t->search_base = xstrdup(map_query_str(f, "search_base", ""));
    t->query_filter = xstrdup(map_query_str(f, "query_filter", "(mailacceptinggeneralid=%s)"));
    t->result_format = xstrdup(map_query_str(f, "result_format", "%s"));
    t->dynamic_base = strchr(t->search_base, '%') != NULL;
    struct strbuf why = STRBUF_INIT(512);
    if (map_expand_check(t->search_base, MAP_EXPAND_QUERY, "search_base", &why) < 0
        || map_expand_check(t->query_filter, MAP_EXPAND_QUERY, "query_filter", &why) < 0
        || map_expand_check(t->result_format, MAP_EXPAND_RESULT, "result_format", &why) < 0) {
        sb_appendf(err, "%s: %s", path, sb_str(&why));
        sb_free(&why);
        return -1;
    }
    sb_free(&why);
    t->domains = map_query_domains_open(map_query_str(f, "domain", ""), err);
    if (!t->domains && err->len)
        return -1;
    /* libldap reads ldap.conf and the like once per process, at its first
     * use: do it now, before any chroot hides those files */
    int v;
    ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &v);
    return 0;
}

int map_ldap_open(struct map *m, struct strbuf *err)
{
    static const struct map_query_type ldap = {
        ldap_params, sizeof(struct ldap_table), ld_configure, ldap_lookup, ldap_close,
    };
    return map_query_open(m, &ldap, err);
}
