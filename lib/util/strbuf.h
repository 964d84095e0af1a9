/* strbuf.h: the one growable, bounded byte/string buffer used for every
 * string that comes from outside (network, queue files, maps, milters).
 * Every append checks against a hard limit chosen by the caller; the data
 * is always NUL-terminated so it can be used as a C string when it holds one. */
#ifndef TERN_STRBUF_H
#define TERN_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
    char *data;   /* NUL-terminated; NULL until the first append */
    size_t len;   /* bytes in use, not counting the terminator */
    size_t cap;   /* bytes allocated */
    size_t limit; /* most bytes len may ever reach; 0 means SIZE_MAX/2 */
};

#define STRBUF_INIT(lim) { NULL, 0, 0, (lim) }

void sb_init(struct strbuf *sb, size_t limit);
void sb_free(struct strbuf *sb);
void sb_reset(struct strbuf *sb);                  /* len = 0, keeps memory */
void sb_truncate(struct strbuf *sb, size_t len);   /* no-op if len >= sb->len */

/* All appenders return 0 on success and -1 when the result would exceed the
 * limit; on -1 the buffer is left exactly as it was. */
int sb_append(struct strbuf *sb, const void *p, size_t n);
int sb_appends(struct strbuf *sb, const char *s);
int sb_appendc(struct strbuf *sb, int c);
int sb_appendf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int sb_vappendf(struct strbuf *sb, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
int sb_set(struct strbuf *sb, const char *s);      /* reset + appends */

/* Room for n more bytes after the string, for a read(2) straight into the
 * buffer: a pointer to write them at, or NULL when that would pass the
 * limit. sb_added(sb, k) then takes the first k <= n of them in. */
char *sb_room(struct strbuf *sb, size_t n);
void sb_added(struct strbuf *sb, size_t k);

/* Always a valid C string ("" when empty or unallocated). */
const char *sb_str(const struct strbuf *sb);

/* Remove the first n bytes (n > len clears). */
void sb_consume(struct strbuf *sb, size_t n);

#endif
