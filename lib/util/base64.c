/* base64.c: RFC 4648 base64 encoding and strict decoding (base64.h). */
#include <stdint.h>

#include "base64.h"
#include "strbuf.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_encode(struct strbuf *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    char quad[4];
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        quad[0] = alphabet[(v >> 18) & 63];
        quad[1] = alphabet[(v >> 12) & 63];
        quad[2] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        quad[3] = i + 2 < len ? alphabet[v & 63] : '=';
        if (sb_append(out, quad, 4) < 0)
            return -1;
    }
    return 0;
}

static int value_of(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int base64_decode(struct strbuf *out, const char *in, size_t n)
{
    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        size_t pad = 0;
        for (int k = 0; k < 4; k++) {
            if (in[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad)            /* a character after padding */
                return -1;
            v[k] = value_of(in[i + k]);
            if (v[k] < 0)
                return -1;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6
                     | (uint32_t)v[3];
        unsigned char b[3] = { (unsigned char)(w >> 16), (unsigned char)(w >> 8),
                               (unsigned char)w };
        /* the bits padding hides must be zero (canonical encoding) */
        if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
            return -1;
        if (sb_append(out, b, 3 - pad) < 0)
            return -1;
    }
    return 0;
}
