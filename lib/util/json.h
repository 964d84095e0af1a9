/* json.h: JSON strings for the machine-readable output of the
 * administrator's commands (json.c). */
#ifndef TERN_JSON_H
#define TERN_JSON_H

#include <stddef.h>

struct strbuf;

/* s as a JSON string (quoted); bytes that are not UTF-8 become U+FFFD. */
void json_string(struct strbuf *out, const char *s, size_t len);
void json_str(struct strbuf *out, const char *s);
/* Bytes of the valid UTF-8 character at s (1 for ASCII, 2 to 4), within
 * avail bytes; 0 when it is not one (overlong, surrogate, cut short). */
size_t utf8_sequence_length(const unsigned char *s, size_t avail);

#endif
