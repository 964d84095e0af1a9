/* tls_protocols.c: Postfix's TLS protocol list syntax into an OpenSSL
 * version range, and the table key for a TLS server name (see
 * tls_protocols.h). */
#include <string.h>

#include <openssl/ssl.h>

#include "strbuf.h"
#include "tls_protocols.h"
#include "util.h"

static const struct {
    const char *name;
    int version;
    unsigned long no_option;
} versions[] = {
    { "SSLv2", 0x0200, 0 }, { "SSLv3", SSL3_VERSION, SSL_OP_NO_SSLv3 },
    { "TLSv1", TLS1_VERSION, SSL_OP_NO_TLSv1 }, { "TLSv1.1", TLS1_1_VERSION, SSL_OP_NO_TLSv1_1 },
    { "TLSv1.2", TLS1_2_VERSION, SSL_OP_NO_TLSv1_2 }, { "TLSv1.3", TLS1_3_VERSION, SSL_OP_NO_TLSv1_3 },
};
#define NVERSIONS (int)(sizeof(versions) / sizeof(versions[0]))
#define FIRST_USABLE 2      /* OpenSSL 3 speaks neither SSLv2 nor SSLv3 */
#define SERVER_NAME_MAX 255

static int version_index(const char *name)
{
    for (int i = 0; i < NVERSIONS; i++)
        if (str_ieq(name, versions[i].name))
            return i;
    return -1;
}

/* Apply one item to the allowed set; -1 on an unknown or malformed item. */
static int apply_item(const char *item, unsigned *allowed, unsigned *listed, struct strbuf *err)
{
    const char *name = item;
    enum { ONLY, AT_LEAST, AT_MOST, EXCLUDE } op = ONLY;
    if (strncmp(item, ">=", 2) == 0) {
        op = AT_LEAST;
        name += 2;
    } else if (strncmp(item, "<=", 2) == 0) {
        op = AT_MOST;
        name += 2;
    } else if (item[0] == '!') {
        op = EXCLUDE;
        name += 1;
    }
    int i = version_index(name);
    if (i < 0) {
        sb_appendf(err, "unknown TLS protocol \"%.60s\" (expected SSLv2, SSLv3, TLSv1, TLSv1.1, "
                   "TLSv1.2 or TLSv1.3, with an optional >=, <= or !)", item);
        return -1;
    }
    unsigned bit = 1u << i;
    switch (op) {
    case ONLY: *listed |= bit; break;
    case AT_LEAST: *allowed &= ~(bit - 1); break;
    case AT_MOST: *allowed &= (bit << 1) - 1; break;
    case EXCLUDE: *allowed &= ~bit; break;
    }
    return 0;
}

int tls_protocols_parse(const char *spec, int *min_version, int *max_version,
                        unsigned long *no_options, struct strbuf *err)
{
    unsigned allowed = (1u << NVERSIONS) - 1, listed = 0;
    char item[64];
    const char *p = spec ? spec : "";
    while (*p) {
        size_t n = strcspn(p, ", :\t\r\n");
        if (n >= sizeof(item)) {
            sb_appendf(err, "TLS protocol item too long: \"%.60s...\"", p);
            return -1;
        }
        if (n > 0) {
            memcpy(item, p, n);
            item[n] = 0;
            if (apply_item(item, &allowed, &listed, err) < 0)
                return -1;
        }
        p += n;
        p += strspn(p, ", :\t\r\n");
    }
    if (listed)
        allowed &= listed;
    allowed &= ~((1u << FIRST_USABLE) - 1);
    int lo = -1, hi = -1;
    for (int i = 0; i < NVERSIONS; i++)
        if (allowed & (1u << i)) {
            if (lo < 0)
                lo = i;
            hi = i;
        }
    if (lo < 0) {
        sb_appendf(err, "\"%.100s\" allows no TLS protocol this OpenSSL supports", spec);
        return -1;
    }
    unsigned long no = 0;
    for (int i = lo; i <= hi; i++)
        if (!(allowed & (1u << i)))
            no |= versions[i].no_option;
    *min_version = versions[lo].version;
    *max_version = versions[hi].version;
    *no_options = no;
    return 0;
}

/* ---- server names (SNI) ---- */

static void sni_lower(char *dst, const char *src, size_t cap)
{
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++)
        dst[i] = (char)((src[i] >= 'A' && src[i] <= 'Z') ? src[i] + 32 : src[i]);
    dst[i] = 0;
}

const char *tls_server_name_key(const char *sni, char *buf, size_t bufsz)
{
    size_t n = strlen(sni);
    if (n == 0 || n > SERVER_NAME_MAX || bufsz < n + 1)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)sni[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '-' || c == '.' || c == '_'))
            return NULL;
    }
    if (sni[0] == '.' || strstr(sni, ".."))
        return NULL;
    sni_lower(buf, sni, bufsz);
    if (buf[n - 1] == '.')
        buf[n - 1] = 0;     /* a trailing root dot is the same name */
    return buf[0] ? buf : NULL;
}
