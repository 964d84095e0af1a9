/* json.h: JSON strings for the machine-readable output of the
 * administrator's commands (json.c). */
#ifndef TERN_JSON_H
#define TERN_JSON_H

#include <stddef.h>

struct strbuf;

/* s as a JSON string (quoted); bytes that are not UTF-8 become U+FFFD. */
void json_string(struct strbuf *out, const char *s, size_t len);
void json_str(struct strbuf *out, const char *s);

#endif
