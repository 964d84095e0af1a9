/* dns_answer.c: raw DNS answers to bounded, checked results (see
 * dns_answer.h). Whatever c-ares returns is distrusted as well: a NULL
 * name, an address of the wrong length or family, more records than asked
 * for. */
#include <ares.h>
#include <netdb.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "address.h"
#include "dns_answer.h"
#include "strbuf.h"
#include "util.h"

bool dns_name_ok(const char *host)
{
    size_t len = strlen(host);
    return len > 0 && len <= DNS_NAME_MAX && address_domain_valid(host, len, false)
           && host[0] != '[';
}

/* A c-ares parser failed: what it may have built is freed; "no data"
 * stays, anything else is a malformed answer. */
static int parse_failed(void *list, int st)
{
    ares_free_data(list);
    return st == ARES_ENODATA ? st : ARES_EBADRESP;
}

int dns_answer_mx(const unsigned char *abuf, int alen, struct dns_mx *out, size_t max,
                  size_t *n)
{
    struct ares_mx_reply *list = NULL;
    *n = 0;
    int st = ares_parse_mx_reply(abuf, alen, &list);
    if (st != ARES_SUCCESS)
        return parse_failed(list, st);
    for (const struct ares_mx_reply *p = list; p && *n < max; p = p->next) {
        const char *host = p->host ? p->host : "";
        if (strcmp(host, ".") == 0)
            host = "";
        if (*host && !dns_name_ok(host))
            continue;
        size_t at = *n;
        while (at > 0 && out[at - 1].preference > p->priority) {
            out[at] = out[at - 1];
            at--;
        }
        out[at].preference = p->priority;
        str_copy(out[at].host, sizeof(out[at].host), host);
        (*n)++;
    }
    ares_free_data(list);
    return *n ? ARES_SUCCESS : ARES_EBADRESP;   /* only unusable names: the zone is broken */
}

int dns_answer_addrs(const unsigned char *abuf, int alen, int family, struct dns_addr *out,
                     size_t max, size_t *n)
{
    int naddr = (int)(max < DNS_ADDR_MAX ? max : DNS_ADDR_MAX), st;
    *n = 0;
    if (family == AF_INET) {
        struct ares_addrttl ttls[DNS_ADDR_MAX];
        st = ares_parse_a_reply(abuf, alen, NULL, ttls, &naddr);
        for (int i = 0; st == ARES_SUCCESS && i < naddr && *n < max; i++)
            out[(*n)++] = (struct dns_addr){ .family = AF_INET, .u.v4 = ttls[i].ipaddr };
    } else {
        struct ares_addr6ttl ttls[DNS_ADDR_MAX];
        st = ares_parse_aaaa_reply(abuf, alen, NULL, ttls, &naddr);
        for (int i = 0; st == ARES_SUCCESS && i < naddr && *n < max; i++) {
            out[*n] = (struct dns_addr){ .family = AF_INET6 };
            memcpy(&out[*n].u.v6, &ttls[i].ip6addr, sizeof(out[*n].u.v6));
            (*n)++;
        }
    }
    if (st == ARES_SUCCESS && *n == 0)
        st = ARES_ENODATA;
    return st == ARES_SUCCESS || st == ARES_ENODATA ? st : ARES_EBADRESP;
}

#define DNS_HEADER_SIZE 12
#define DNS_TYPE_TLSA 52
#define DNS_CLASS_IN 1

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

int dns_answer_header(const unsigned char *abuf, int alen, bool *ad)
{
    *ad = false;
    if (!abuf || alen < DNS_HEADER_SIZE || !(abuf[2] & 0x80))   /* QR: a response */
        return ARES_EBADRESP;
    *ad = (abuf[3] & 0x20) != 0;
    switch (abuf[3] & 0x0f) {
    case 0: return ARES_SUCCESS;
    case 1: return ARES_EFORMERR;
    case 2: return ARES_ESERVFAIL;
    case 3: return ARES_ENOTFOUND;
    case 4: return ARES_ENOTIMP;
    case 5: return ARES_EREFUSED;
    default: return ARES_EBADRESP;
    }
}

/* Past the (possibly compressed) name at *pos: false when it does not
 * parse inside the message. */
static bool skip_name(const unsigned char *abuf, int alen, int *pos)
{
    char *name = NULL;
    long enclen = 0;
    if (*pos >= alen || ares_expand_name(abuf + *pos, abuf, alen, &name, &enclen) != ARES_SUCCESS) {
        ares_free_string(name);
        return false;
    }
    ares_free_string(name);
    if (enclen <= 0 || enclen > alen - *pos)
        return false;
    *pos += (int)enclen;
    return true;
}

/* The name at *pos into name (at most size - 1 bytes): false when it does
 * not parse or does not fit. */
static bool read_name(const unsigned char *abuf, int alen, int *pos, char *name, size_t size)
{
    char *text = NULL;
    long enclen = 0;
    if (*pos >= alen || ares_expand_name(abuf + *pos, abuf, alen, &text, &enclen) != ARES_SUCCESS
        || enclen <= 0 || enclen > alen - *pos || strlen(text) >= size) {
        ares_free_string(text);
        return false;
    }
    str_copy(name, size, text);
    ares_free_string(text);
    *pos += (int)enclen;
    return true;
}

#define DNS_TYPE_CNAME 5
#define DNS_CNAME_CHAIN_MAX 8

bool dns_answer_cname(const unsigned char *abuf, int alen, char *target, size_t size)
{
    char qname[DNS_NAME_MAX + 2], owner[DNS_NAME_MAX + 2], next[DNS_NAME_MAX + 2];
    bool ad;
    if (size)
        target[0] = 0;
    if (dns_answer_header(abuf, alen, &ad) != ARES_SUCCESS || get16(abuf + 4) != 1)
        return false;
    int pos = DNS_HEADER_SIZE;
    if (!read_name(abuf, alen, &pos, qname, sizeof(qname)) || alen - pos < 4)
        return false;
    pos += 4;
    int answers = pos;
    unsigned ancount = get16(abuf + 6);
    bool aliased = false;
    /* Follow the chain from the question's name, one link per pass. */
    for (int link = 0; link < DNS_CNAME_CHAIN_MAX; link++) {
        bool found = false;
        pos = answers;
        for (unsigned i = 0; i < ancount && !found; i++) {
            if (!read_name(abuf, alen, &pos, owner, sizeof(owner)) || alen - pos < 10)
                return false;
            unsigned type = get16(abuf + pos), rdlen = get16(abuf + pos + 8);
            pos += 10;
            if ((unsigned)(alen - pos) < rdlen)
                return false;
            int rd = pos;
            pos += (int)rdlen;
            if (type == DNS_TYPE_CNAME && strcasecmp(owner, qname) == 0) {
                if (!read_name(abuf, alen, &rd, next, sizeof(next)) || !dns_name_ok(next))
                    return false;
                str_copy(qname, sizeof(qname), next);
                found = aliased = true;
            }
        }
        if (!found)
            break;
    }
    if (!aliased || strlen(qname) >= size)
        return false;
    str_copy(target, size, qname);
    return true;
}

int dns_answer_tlsa(const unsigned char *abuf, int alen, struct dns_tlsa *out, size_t max,
                    size_t *n)
{
    *n = 0;
    bool ad;
    if (dns_answer_header(abuf, alen, &ad) != ARES_SUCCESS)
        return ARES_EBADRESP;
    unsigned qdcount = get16(abuf + 4), ancount = get16(abuf + 6);
    int pos = DNS_HEADER_SIZE;
    for (unsigned i = 0; i < qdcount; i++) {
        if (!skip_name(abuf, alen, &pos) || alen - pos < 4)
            return ARES_EBADRESP;
        pos += 4;                                   /* QTYPE, QCLASS */
    }
    for (unsigned i = 0; i < ancount; i++) {
        if (!skip_name(abuf, alen, &pos) || alen - pos < 10)
            goto bad;
        unsigned type = get16(abuf + pos), class = get16(abuf + pos + 2);
        unsigned rdlen = get16(abuf + pos + 8);
        pos += 10;
        if ((unsigned)(alen - pos) < rdlen)
            goto bad;
        const unsigned char *rd = abuf + pos;
        pos += (int)rdlen;
        /* Three octets of parameters and at least one of data (RFC 6698
         * section 2.1); a record too large to keep is skipped. */
        if (type != DNS_TYPE_TLSA || class != DNS_CLASS_IN || rdlen < 4
            || rdlen - 3 > DNS_TLSA_DATA_MAX || *n >= max)
            continue;
        struct dns_tlsa *t = &out[(*n)++];
        t->usage = rd[0];
        t->selector = rd[1];
        t->mtype = rd[2];
        t->len = rdlen - 3;
        memcpy(t->data, rd + 3, t->len);
    }
    return *n ? ARES_SUCCESS : ARES_ENODATA;
bad:
    *n = 0;             /* a message cut short: none of it counts */
    return ARES_EBADRESP;
}

int dns_answer_txt(const unsigned char *abuf, int alen, char *txt, size_t size)
{
    struct ares_txt_ext *list = NULL;
    if (size == 0)
        return ARES_EBADRESP;
    txt[0] = 0;
    int st = ares_parse_txt_reply_ext(abuf, alen, &list);
    if (st != ARES_SUCCESS)
        return parse_failed(list, st);
    size_t len = 0;
    bool first = true;
    for (const struct ares_txt_ext *p = list; p; p = p->next) {
        if (p->record_start && !first)
            break;          /* one record only */
        first = false;
        for (size_t i = 0; p->txt && i < p->length && len < size - 1; i++) {
            unsigned char c = p->txt[i];
            txt[len++] = c >= 32 && c < 127 ? (char)c : '?';
        }
    }
    txt[len] = 0;
    ares_free_data(list);
    return ARES_SUCCESS;
}

int dns_answer_txts(const unsigned char *abuf, int alen, char (*out)[DNS_TXT_MAX + 1], size_t max,
                    size_t *n)
{
    struct ares_txt_ext *list = NULL;
    *n = 0;
    int st = ares_parse_txt_reply_ext(abuf, alen, &list);
    if (st != ARES_SUCCESS)
        return parse_failed(list, st);
    size_t len = 0;
    char *txt = NULL;
    for (const struct ares_txt_ext *p = list; p; p = p->next) {
        if (p->record_start || !txt) {
            if (*n >= max)
                break;
            txt = out[(*n)++];
            txt[0] = 0;
            len = 0;
        }
        for (size_t i = 0; p->txt && i < p->length && len < DNS_TXT_MAX; i++) {
            unsigned char c = p->txt[i];
            txt[len++] = c >= 32 && c < 127 ? (char)c : '?';
        }
        txt[len] = 0;
    }
    ares_free_data(list);
    return *n ? ARES_SUCCESS : ARES_ENODATA;
}

size_t dns_hostent_names(const struct hostent *he, char (*names)[DNS_NAME_MAX + 1], size_t max)
{
    size_t n = 0;
    if (!he)
        return 0;
    if (he->h_name && n < max && dns_name_ok(he->h_name))
        str_copy(names[n++], DNS_NAME_MAX + 1, he->h_name);
    for (char **al = he->h_aliases; al && *al && n < max; al++)
        if (dns_name_ok(*al))
            str_copy(names[n++], DNS_NAME_MAX + 1, *al);
    return n;
}

size_t dns_hostent_addrs(const struct hostent *he, int family, struct dns_addr *out, size_t max)
{
    size_t n = 0;
    size_t len = family == AF_INET ? 4 : 16;
    if (!he || he->h_addrtype != family || he->h_length != (int)len)
        return 0;
    for (char **p = he->h_addr_list; p && *p && n < max; p++) {
        out[n] = (struct dns_addr){ .family = family };
        memcpy(family == AF_INET ? (void *)&out[n].u.v4 : (void *)&out[n].u.v6, *p, len);
        n++;
    }
    return n;
}
