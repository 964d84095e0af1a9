/* fuzz_dns_answer.c: libFuzzer target for what a hostile DNS server reaches:
 * the raw answer bytes, parsed by c-ares and turned into Tern's results by
 * lib/dns/dns_answer.c, read as each kind of answer Tern asks for (MX, A, AAAA,
 * TXT, PTR, TLSA, CNAME chains, the header's status and AD bit, and the hostent c-ares
 * builds for host and PTR lookups). Any
 * crash, leak, sanitizer report, or a result that breaks its bounds (an
 * invalid name, too many entries, unsorted MX, unprintable TXT) is a bug.
 * sources: lib/dns/dns_answer.c lib/global/address.c -lcares */
#include <ares.h>
#include <netdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns_answer.h"

static void check_mx(const unsigned char *buf, int len)
{
    struct dns_mx mx[8];
    size_t n = 99;
    int st = dns_answer_mx(buf, len, mx, 8, &n);
    if (n > 8 || (st == ARES_SUCCESS) != (n > 0))
        abort();
    for (size_t i = 0; i < n; i++) {
        if (mx[i].host[0] && !dns_name_ok(mx[i].host))
            abort();
        if (i > 0 && mx[i - 1].preference > mx[i].preference)
            abort();
    }
}

static void check_addrs(const unsigned char *buf, int len, int family)
{
    struct dns_addr a[DNS_ADDR_MAX];
    size_t n = 99;
    int st = dns_answer_addrs(buf, len, family, a, 5, &n);
    if (n > 5 || (st == ARES_SUCCESS) != (n > 0))
        abort();
    for (size_t i = 0; i < n; i++)
        if (a[i].family != family)
            abort();
}

static void check_txt(const unsigned char *buf, int len)
{
    char txt[65];
    if (dns_answer_txt(buf, len, txt, sizeof(txt)) == ARES_SUCCESS || txt[0]) {
        size_t l = strnlen(txt, sizeof(txt));
        if (l >= sizeof(txt))
            abort();
        for (size_t i = 0; i < l; i++)
            if (txt[i] < 32 || txt[i] > 126)
                abort();
    }
    static char txts[3][DNS_TXT_MAX + 1];
    size_t n = 99;
    int st = dns_answer_txts(buf, len, txts, 3, &n);
    if (n > 3 || (st == ARES_SUCCESS) != (n > 0))
        abort();
    for (size_t i = 0; i < n; i++) {
        size_t l = strnlen(txts[i], sizeof(txts[i]));
        if (l > DNS_TXT_MAX)
            abort();
        for (size_t k = 0; k < l; k++)
            if (txts[i][k] < 32 || txts[i][k] > 126)
                abort();
    }
}

static void check_tlsa(const unsigned char *buf, int len)
{
    static struct dns_tlsa t[3];
    size_t n = 99;
    bool ad;
    int st = dns_answer_tlsa(buf, len, t, 3, &n);
    if (n > 3 || (st == ARES_SUCCESS) != (n > 0))
        abort();
    if (st == ARES_SUCCESS && dns_answer_header(buf, len, &ad) != ARES_SUCCESS)
        abort();
    for (size_t i = 0; i < n; i++)
        if (t[i].len < 1 || t[i].len > DNS_TLSA_DATA_MAX)
            abort();
    char target[DNS_NAME_MAX + 1] = "x";
    bool aliased = dns_answer_cname(buf, len, target, sizeof(target));
    if (aliased != (target[0] != 0) || (aliased && !dns_name_ok(target)))
        abort();
}

/* c-ares' own A or AAAA reply parser, then ours on what it built: at most
 * as many addresses as there is room for, and none of another family. */
static void check_address_reply(const unsigned char *buf, int len, int family)
{
    struct hostent *he = NULL;
    int st = family == AF_INET ? ares_parse_a_reply(buf, len, &he, NULL, NULL)
                               : ares_parse_aaaa_reply(buf, len, &he, NULL, NULL);
    if (st == ARES_SUCCESS && he) {
        struct dns_addr a[3];
        int other = he->h_addrtype == AF_INET ? AF_INET6 : AF_INET;
        if (dns_hostent_addrs(he, he->h_addrtype, a, 3) > 3 || dns_hostent_addrs(he, other, a, 3) != 0)
            abort();
    }
    if (he)
        ares_free_hostent(he);
}

/* c-ares' PTR reply parser, then our names from what it built. */
static void check_ptr_reply(const unsigned char *buf, int len)
{
    static const unsigned char v4[4] = { 192, 0, 2, 1 };
    struct hostent *he = NULL;
    if (ares_parse_ptr_reply(buf, len, v4, sizeof(v4), AF_INET, &he) == ARES_SUCCESS && he) {
        char names[4][DNS_NAME_MAX + 1];
        size_t n = dns_hostent_names(he, names, 4);
        if (n > 4)
            abort();
        for (size_t i = 0; i < n; i++)
            if (!dns_name_ok(names[i]))
                abort();
    }
    if (he)
        ares_free_hostent(he);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65535)
        return 0;
    /* A copy of exactly size bytes, so that ASan sees any read past the end. */
    unsigned char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    int len = (int)size;
    check_mx(buf, len);
    check_addrs(buf, len, AF_INET);
    check_addrs(buf, len, AF_INET6);
    check_txt(buf, len);
    check_tlsa(buf, len);
    check_ptr_reply(buf, len);
    check_address_reply(buf, len, AF_INET);
    check_address_reply(buf, len, AF_INET6);
    free(buf);
    return 0;
}
