/* netlist.c: mynetworks-style address lists (see netlist.h): CIDR blocks and
 * single addresses for IPv4 and IPv6, optionally negated with '!'. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "netlist.h"
#include "strbuf.h"
#include "util.h"

#define NETLIST_TOKEN_MAX 128

struct net_entry {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char addr[16];     /* network, 4 or 16 bytes used */
    unsigned prefix;            /* prefix length in bits */
    bool negate;
};

struct netlist {
    struct net_entry *entries;
    size_t count, cap;
};

size_t netlist_count(const struct netlist *nl)
{
    return nl ? nl->count : 0;
}

void netlist_free(struct netlist *nl)
{
    if (!nl)
        return;
    free(nl->entries);
    free(nl);
}

/* Are all bits of addr beyond prefix zero? */
static bool host_bits_clear(const unsigned char *addr, unsigned bytes, unsigned prefix)
{
    for (unsigned bit = prefix; bit < bytes * 8; bit++)
        if (addr[bit / 8] & (0x80 >> (bit % 8)))
            return false;
    return true;
}

/* Parse "/len" (or nothing: a host entry) into *prefix. */
static int parse_prefix(const char *s, unsigned max, unsigned *prefix)
{
    long v;
    if (*s == 0) {
        *prefix = max;
        return 0;
    }
    if (*s != '/' || !isdigit((unsigned char)s[1]) || parse_long(s + 1, 0, max, &v) < 0)
        return -1;
    *prefix = (unsigned)v;
    return 0;
}

/* One token without its '!' into e; NULL ok, or what is wrong. */
static const char *parse_entry(const char *tok, struct net_entry *e)
{
    char addr[NETLIST_TOKEN_MAX];
    const char *rest;
    size_t n;

    if (tok[0] == '[') {
        const char *close = strchr(tok, ']');
        if (!close)
            return "missing ']'";
        n = (size_t)(close - tok - 1);
        rest = close + 1;
        tok++;
    } else {
        const char *slash = strchr(tok, '/');
        n = slash ? (size_t)(slash - tok) : strlen(tok);
        rest = tok + n;
    }
    if (n == 0 || n >= sizeof(addr))
        return "bad address";
    memcpy(addr, tok, n);
    addr[n] = 0;
    if (inet_pton(AF_INET, addr, e->addr) == 1)
        e->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, e->addr) == 1)
        e->family = AF_INET6;
    else
        return "not a network address (host names and tables are not supported)";
    unsigned bytes = e->family == AF_INET ? 4 : 16;
    if (parse_prefix(rest, bytes * 8, &e->prefix) < 0)
        return "bad prefix length";
    if (!host_bits_clear(e->addr, bytes, e->prefix))
        return "host bits set beyond the prefix length";
    return NULL;
}

static void netlist_add(struct netlist *nl, const struct net_entry *e)
{
    if (nl->count == nl->cap) {
        nl->cap = nl->cap ? nl->cap * 2 : 8;
        nl->entries = xrealloc(nl->entries, nl->cap * sizeof(*nl->entries));
    }
    nl->entries[nl->count++] = *e;
}

struct netlist *netlist_parse(const char *text, struct strbuf *err)
{
    struct netlist *nl = xcalloc(1, sizeof(*nl));
    const char *p = text;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        size_t n = 0;
        while (p[n] && p[n] != ',' && !isspace((unsigned char)p[n]))
            n++;
        if (n == 0)
            break;
        char tok[NETLIST_TOKEN_MAX];
        struct net_entry e;
        memset(&e, 0, sizeof(e));
        const char *why = "entry too long";
        if (n < sizeof(tok)) {
            memcpy(tok, p, n);
            tok[n] = 0;
            e.negate = tok[0] == '!';
            why = parse_entry(tok + e.negate, &e);
        }
        if (why) {
            sb_appendf(err, "bad network entry \"%.*s\": %s", (int)(n > 80 ? 80 : n), p, why);
            netlist_free(nl);
            return NULL;
        }
        netlist_add(nl, &e);
        p += n;
    }
    return nl;
}

static bool entry_matches(const struct net_entry *e, int family, const unsigned char *addr)
{
    if (e->family != family)
        return false;
    unsigned full = e->prefix / 8, rem = e->prefix % 8;
    if (memcmp(e->addr, addr, full) != 0)
        return false;
    if (rem) {
        unsigned char mask = (unsigned char)(0xff << (8 - rem));
        if ((e->addr[full] & mask) != (addr[full] & mask))
            return false;
    }
    return true;
}

static bool netlist_match_bytes(const struct netlist *nl, int family, const unsigned char *addr)
{
    static const unsigned char v4mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };
    if (family == AF_INET6 && memcmp(addr, v4mapped, sizeof(v4mapped)) == 0) {
        family = AF_INET;
        addr += 12;
    }
    for (size_t i = 0; nl && i < nl->count; i++)
        if (entry_matches(&nl->entries[i], family, addr))
            return !nl->entries[i].negate;
    return false;
}

bool netlist_match(const struct netlist *nl, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return netlist_match_bytes(nl, AF_INET, (const unsigned char *)&in->sin_addr);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return netlist_match_bytes(nl, AF_INET6, in6->sin6_addr.s6_addr);
    }
    return false;
}

bool netlist_match_text(const struct netlist *nl, const char *addr)
{
    unsigned char bin[16];
    if (inet_pton(AF_INET, addr, bin) == 1)
        return netlist_match_bytes(nl, AF_INET, bin);
    if (inet_pton(AF_INET6, addr, bin) == 1)
        return netlist_match_bytes(nl, AF_INET6, bin);
    return false;
}
