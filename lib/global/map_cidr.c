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

struct cidr_rule {
    struct map_rule head;
    int family;            /* AF_INET or AF_INET6: a key of the other never matches */
    struct netlist *net;   /* one network; NULL for endif */
};

/* The network at *p (up to white space) into the rule; advances *p past it. */
static int parse_network(struct map_rule *rule, char **p, const char *path, int line,
                         struct strbuf *err)
{
    struct cidr_rule *r = (struct cidr_rule *)rule;
    char *start = *p;
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

static void cidr_rule_free(struct map_rule *rule)
{
    netlist_free(((struct cidr_rule *)rule)->net);
}

static const struct map_rule_type cidr_rules = {
    .rule_size = sizeof(struct cidr_rule), .max_rules = CIDR_MAX_RULES,
    .pattern_name = "network", .pattern = parse_network, .free_rule = cidr_rule_free,
};

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

/* The key being looked up, for cidr_hits. */
struct cidr_key {
    struct sockaddr_storage ss;
    int family;
};

/* A key of the other family misses, negated or not. */
static int cidr_hits(const void *rule, void *ctx)
{
    const struct cidr_rule *r = rule;
    const struct cidr_key *k = ctx;
    return r->family == k->family
           && netlist_match(r->net, (const struct sockaddr *)&k->ss) != r->head.negate;
}

static int cidr_lookup(struct map *m, const char *key, struct strbuf *result)
{
    struct map_rule_list *rules = m->priv;
    struct cidr_key k;
    if (!key_address(key, &k.ss, &k.family))
        return 0;
    long i = map_rules_first(rules, cidr_hits, &k);
    if (i < 0)
        return 0;
    return sb_appends(result, map_rule_at(rules, (size_t)i)->result) < 0 ? -1 : 1;
}

static void cidr_close(struct map *m)
{
    map_rules_free(m->priv);
    free(m->priv);
}

struct inline_rules {
    struct map_rule_list *rules;
    int count;
};

static int inline_rule(char *text, void *ctx, struct strbuf *err)
{
    struct inline_rules *r = ctx;
    text = str_trim(text);
    return *text ? map_rules_add(r->rules, text, ++r->count, "cidr:{...} rule", err) : 0;
}

/* Rules from a source file, or inline as cidr:{ {rule}, {rule} } (Postfix
 * 3.7's inline form; a rule without braces ends at the next comma). */
static int read_inline(struct map_rule_list *rules, const struct map *m, struct strbuf *err)
{
    size_t len = strlen(m->name);
    if (len < 2 || m->name[len - 1] != '}') {
        sb_appendf(err, "cidr table \"%.100s\": missing '}' (cidr:{ {rule}, {rule} })", m->spec);
        return -1;
    }
    struct inline_rules ctx = { rules, 0 };
    if (map_inline_items(m, "cidr", ",", inline_rule, &ctx, err) < 0)
        return -1;
    return map_rules_end(rules, m->spec, err);
}

int map_cidr_open(struct map *m, struct strbuf *err)
{
    struct map_rule_list *rules = xcalloc(1, sizeof(*rules));
    rules->type = &cidr_rules;
    int rc = m->name[0] == '{' ? read_inline(rules, m, err) : map_rules_read(rules, m->name, err);
    return map_opened(m, rules, rc, cidr_lookup, cidr_close);
}
