/* dns_rbl.c: the query names and reply filters of DNS blocklists, shared
 * by smtpd (reject_rbl_client) and postscreen (postscreen_dnsbl_sites);
 * see dns_rbl.h. */
#include <arpa/inet.h>
#include <string.h>

#include "dns_rbl.h"
#include "strbuf.h"
#include "util.h"

bool dns_rbl_query_name(const char *addr, const char *domain, char *out, size_t size)
{
    unsigned char b[16];
    if (size == 0)
        return false;
    struct strbuf q = STRBUF_INIT(size - 1);
    bool ok = true;
    if (inet_pton(AF_INET, addr, b) == 1) {
        ok = sb_appendf(&q, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0], domain) == 0;
    } else if (inet_pton(AF_INET6, addr, b) == 1) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 15; i >= 0 && ok; i--)
            ok = sb_appendf(&q, "%c.%c.", hex[b[i] & 15], hex[b[i] >> 4]) == 0;
        ok = ok && sb_appends(&q, domain) == 0;
    } else {
        ok = false;
    }
    if (ok)
        str_copy(out, size, sb_str(&q));
    sb_free(&q);
    return ok;
}

/* One alternative of a bracketed octet pattern: "2" or "2..11"; -1 when
 * malformed, else whether value is in it. */
static int octet_alternative(char *alt, int value)
{
    long lo, hi;
    char *dots = strstr(alt, "..");
    if (dots) {
        *dots = 0;
        if (parse_long(alt, 0, 255, &lo) < 0 || parse_long(dots + 2, 0, 255, &hi) < 0)
            return -1;
        return value >= lo && value <= hi;
    }
    if (parse_long(alt, 0, 255, &lo) < 0)
        return -1;
    return value == lo;
}

/* One octet pattern: "2", "[2..11]", "[2;4;8]"; -1 when malformed, else
 * whether value matches (value -1: only check the syntax). */
static int octet_matches(const char *pat, size_t n, int value)
{
    char buf[64];
    if (n >= 2 && pat[0] == '[' && pat[n - 1] == ']') {
        if (n - 2 >= sizeof(buf) || n == 2)
            return -1;
        memcpy(buf, pat + 1, n - 2);
        buf[n - 2] = 0;
        int found = 0;
        char *save = NULL;
        for (char *alt = strtok_r(buf, ";", &save); alt; alt = strtok_r(NULL, ";", &save)) {
            int m = octet_alternative(alt, value);
            if (m < 0)
                return -1;
            found |= m;
        }
        return found;
    }
    long v;
    if (n == 0 || n >= 8)
        return -1;
    memcpy(buf, pat, n);
    buf[n] = 0;
    if (parse_long(buf, 0, 255, &v) < 0)
        return -1;
    return v == value;
}

/* Walk the four octet patterns of filter against b (NULL: syntax only);
 * -1 malformed, 0 no match, 1 match. */
static int filter_walk(const char *filter, const unsigned char *b)
{
    const char *p = filter;
    int all = 1;
    for (int i = 0; i < 4; i++) {
        size_t n = 0;
        if (*p == '[') {
            const char *close = strchr(p, ']');
            if (!close)
                return -1;
            n = (size_t)(close - p) + 1;
        } else {
            while (p[n] && p[n] != '.')
                n++;
        }
        int m = octet_matches(p, n, b ? b[i] : -1);
        if (m < 0)
            return -1;
        all &= m;
        p += n;
        if (i < 3) {
            if (*p != '.')
                return -1;
            p++;
        }
    }
    return *p ? -1 : all;
}

bool dns_rbl_filter_matches(const char *filter, const struct dns_addr *a)
{
    if (a->family != AF_INET)
        return false;
    return filter_walk(filter, (const unsigned char *)&a->u.v4) == 1;
}

bool dns_rbl_listing(const char *filter, const struct dns_addr *a)
{
    if (filter)
        return dns_rbl_filter_matches(filter, a);
    if (a->family != AF_INET)
        return false;
    const unsigned char *b = (const unsigned char *)&a->u.v4;
    /* RFC 5782: listings are 127.0.0.0/8; 127.255.255.0/24 are the error
     * codes some lists answer to queries they refuse (Spamhaus) */
    return b[0] == 127 && !(b[1] == 255 && b[2] == 255);
}

bool dns_rbl_filter_valid(const char *filter)
{
    return filter_walk(filter, NULL) >= 0;
}
