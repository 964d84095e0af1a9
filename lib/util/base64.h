/* base64.h: RFC 4648 base64 for the SMTP AUTH exchange (RFC 4954): strict
 * decoding of what a client or an authentication server sends, and
 * encoding of challenges and responses. */
#ifndef TERN_BASE64_H
#define TERN_BASE64_H

#include <stddef.h>

struct strbuf;

/* Append the encoding of data[0..len) to out. 0 ok, -1 when out's limit is
 * reached. */
int base64_encode(struct strbuf *out, const void *data, size_t len);

/* Decode in[0..n) strictly (the standard alphabet, '=' padding only at the
 * end and only as much as needed, no white space) and append the bytes to
 * out. 0 ok, -1 malformed or out's limit reached. The empty string decodes
 * to nothing. */
int base64_decode(struct strbuf *out, const char *in, size_t n);

#endif
