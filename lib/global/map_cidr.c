/* map_cidr.c: cidr: tables (Postfix's cidr_table(5)): rules
 * "network/prefix result" or "address result" tried in order, the first
 * match wins; "!pattern result" matches the addresses outside the network,
 * and "if [!]pattern" ... "endif" blocks hold rules tried only for the
 * addresses inside (or outside) it; a negated IPv4 network never matches
 * an IPv6 key, nor the reverse. IPv4 and IPv6, optionally in [];
 * IPv4-mapped IPv6 keys match IPv4 rules. A key that is not an IP address
 * is simply not found. The networks are parsed by lib/util/netlist.c, the
 * parser of mynetworks, so the two read addresses the same way. A rule
 * that does not parse, or has host bits set beyond its prefix, makes the
 * table fail to open with "file:line: ..." rather than silently match
 * less than the administrator wrote. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "maps_impl.h"
#include "netlist.h"
#include "util.h"

#define CIDR_MAX_RULES 1000000
#define CIDR_KEY_MAX 64

enum cidr_kind { CIDR_MATCH, CIDR_IF, CIDR_ENDIF };

struct cidr_rule {
    enum cidr_kind kind;
    bool negate;
    int family;            /* AF_INET or AF_INET6: a key of the other never matches */
    struct netlist *net;   /* one network; NULL for endif */
    char *result;          /* CIDR_MATCH only */
    size_t skip_to;        /* CIDR_IF: index after the matching endif */
};

static void cidr_rule_free(void *rule)
{
    struct cidr_rule *r = rule;
    netlist_free(r->net);
    free(r->result);
}

struct cidr_table {
    struct cidr_rule *rules;
    size_t n, cap;
    struct map_ifs ifs;
};

/* The network at *p (up to white space) into r; advances *p past it. */
static int parse_network(struct cidr_rule *r, char **p, const char *path, int line,
                         struct strbuf *err)
{
    char *start = *p;
    if (*start == '!') {
        r->negate = true;
        start++;
    }
    size_t n = strcspn(start, " \t\r\n\v\f");
    char saved = start[n];
    start[n] = 0;
    struct strbuf why = STRBUF_INIT(512);
    if (n == 0 || strpbrk(start, "!,")) {
        sb_appendf(err, "%s:%d: expected a network/prefix or an address, found \"%.60s\"",
                   path, line, start);
    } else if (!(r->net = netlist_parse(start, &why)) || netlist_count(r->net) != 1) {
        sb_appendf(err, "%s:%d: %s", path, line, why.len ? sb_str(&why) : "bad network pattern");
        netlist_free(r->net);
        r->net = NULL;
    }
    sb_free(&why);
    r->family = strchr(start, ':') ? AF_INET6 : AF_INET;
    start[n] = saved;
    *p = start + n;
    return r->net ? 0 : -1;
}

static int parse_rule(struct cidr_table *t, char *text, int line, const char *path,
                      struct strbuf *err)
{
    struct cidr_rule r = { .kind = CIDR_MATCH };
    char *p = text;
    if (map_is_keyword(p, "endif")) {
        size_t opener;
        if (map_ifs_close(&t->ifs, p + 5, path, line, &opener, err) < 0)
            return -1;
        r.kind = CIDR_ENDIF;
        t->rules[opener].skip_to = t->n + 1;
        t->rules[t->n++] = r;
        return 0;
    }
    bool is_if = map_is_keyword(p, "if");
    if (is_if)
        for (p += 2; isspace((unsigned char)*p); p++)
            ;
    if (parse_network(&r, &p, path, line, err) < 0)
        return -1;
    while (isspace((unsigned char)*p))
        p++;
    if (is_if) {
        if (map_ifs_open(&t->ifs, t->n, p, path, line, err) == 0) {
            r.kind = CIDR_IF;
            t->rules[t->n++] = r;
            return 0;
        }
    } else if (!*p) {
        sb_appendf(err, "%s:%d: missing result after the network", path, line);
    } else {
        r.result = xstrdup(p);
        t->rules[t->n++] = r;
        return 0;
    }
    netlist_free(r.net);
    return -1;
}

/* One rule of table t (a map_line_fn). */
static int add_rule(void *table, char *text, int line, const char *path, struct strbuf *err)
{
    struct cidr_table *t = table;
    void *rules = map_rules_room(t->rules, t->n, &t->cap, sizeof(*t->rules), CIDR_MAX_RULES,
                                 path, line, err);
    if (!rules)
        return -1;
    t->rules = rules;
    return parse_rule(t, text, line, path, err);
}

/* The key as a socket address and its family (IPv4 for an IPv4-mapped
 * IPv6 address): false when it is not an IP address. */
static bool key_address(const char *key, struct sockaddr_storage *ss, int *family)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (strlen(key) >= CIDR_KEY_MAX)
        return false;
    if (inet_pton(AF_INET, key, &in->sin_addr) == 1) {
        in->sin_family = *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, key, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        *family = IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) ? AF_INET : AF_INET6;
        return true;
    }
    return false;
}

static int cidr_lookup(struct map *m, const char *key, struct strbuf *result)
{
    struct cidr_table *t = m->priv;
    struct sockaddr_storage ss;
    int family;
    if (!key_address(key, &ss, &family))
        return 0;
    for (size_t i = 0; i < t->n; i++) {
        struct cidr_rule *r = &t->rules[i];
        if (r->kind == CIDR_ENDIF)
            continue;
        bool hit = r->family == family
                   && netlist_match(r->net, (const struct sockaddr *)&ss) != r->negate;
        if (r->kind == CIDR_IF) {
            if (!hit)
                i = r->skip_to - 1;
            continue;
        }
        if (hit)
            return sb_appends(result, r->result) < 0 ? -1 : 1;
    }
    return 0;
}

static void cidr_close(struct map *m)
{
    struct cidr_table *t = m->priv;
    map_rules_free(t->rules, t->n, sizeof(*t->rules), cidr_rule_free);
    free(t);
}

struct inline_rules {
    struct cidr_table *t;
    int count;
};

static int inline_rule(char *text, void *ctx, struct strbuf *err)
{
    struct inline_rules *r = ctx;
    text = str_trim(text);
    return *text ? add_rule(r->t, text, ++r->count, "cidr:{...} rule", err) : 0;
}

/* Rules from a source file, or inline as cidr:{ {rule}, {rule} } (Postfix
 * 3.7's inline form; a rule without braces ends at the next comma). */
static int read_inline(struct cidr_table *t, const struct map *m, struct strbuf *err)
{
    size_t len = strlen(m->name);
    if (len < 2 || m->name[len - 1] != '}') {
        sb_appendf(err, "cidr table \"%.100s\": missing '}' (cidr:{ {rule}, {rule} })", m->spec);
        return -1;
    }
    struct inline_rules ctx = { t, 0 };
    return map_inline_items(m, "cidr", ",", inline_rule, &ctx, err);
}

int map_cidr_open(struct map *m, struct strbuf *err)
{
    struct cidr_table *t = xcalloc(1, sizeof(*t));
    int rc = m->name[0] == '{' ? read_inline(t, m, err)
                               : map_reader_each(m->name, add_rule, t, err);
    if (rc == 0)
        rc = map_ifs_end(&t->ifs, m->name[0] == '{' ? m->spec : m->name, err);
    return map_opened(m, t, rc, cidr_lookup, cidr_close);
}
