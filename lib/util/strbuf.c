/* strbuf.c: the bounded growable buffer (see strbuf.h). Growth doubles the
 * allocation; every size computation is checked against the caller's limit
 * before any memory is touched. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "util.h"

#define SB_ABSOLUTE_MAX (SIZE_MAX / 4)

static size_t sb_limit(const struct strbuf *sb)
{
    return sb->limit ? sb->limit : SB_ABSOLUTE_MAX;
}

void sb_init(struct strbuf *sb, size_t limit)
{
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->limit = limit;
}

void sb_free(struct strbuf *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}

void sb_reset(struct strbuf *sb)
{
    sb->len = 0;
    if (sb->data)
        sb->data[0] = 0;
}

void sb_truncate(struct strbuf *sb, size_t len)
{
    if (len < sb->len) {
        sb->len = len;
        sb->data[len] = 0;
    }
}

/* Make room for n more bytes plus the terminator; -1 if over the limit. */
static int sb_reserve(struct strbuf *sb, size_t n)
{
    if (n > sb_limit(sb) || sb->len > sb_limit(sb) - n)
        return -1;
    size_t need = sb->len + n + 1;
    if (need <= sb->cap)
        return 0;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need)
        cap *= 2;
    sb->data = xrealloc(sb->data, cap);
    sb->cap = cap;
    return 0;
}

int sb_append(struct strbuf *sb, const void *p, size_t n)
{
    if (sb_reserve(sb, n) < 0)
        return -1;
    if (n)
        memcpy(sb->data + sb->len, p, n);
    sb->len += n;
    sb->data[sb->len] = 0;
    return 0;
}

char *sb_room(struct strbuf *sb, size_t n)
{
    return sb_reserve(sb, n) < 0 ? NULL : sb->data + sb->len;
}

void sb_added(struct strbuf *sb, size_t k)
{
    if (k > sb->cap - sb->len - 1)      /* never past what sb_room gave */
        k = sb->cap - sb->len - 1;
    sb->len += k;
    sb->data[sb->len] = 0;
}

int sb_appends(struct strbuf *sb, const char *s)
{
    return sb_append(sb, s, strlen(s));
}

int sb_appendc(struct strbuf *sb, int c)
{
    char ch = (char)c;
    return sb_append(sb, &ch, 1);
}

int sb_vappendf(struct strbuf *sb, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || sb_reserve(sb, (size_t)n) < 0)
        return -1;
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
    return 0;
}

int sb_appendf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sb_vappendf(sb, fmt, ap);
    va_end(ap);
    return rc;
}

int sb_set(struct strbuf *sb, const char *s)
{
    sb_reset(sb);
    return sb_appends(sb, s);
}

const char *sb_str(const struct strbuf *sb)
{
    return sb->data ? sb->data : "";
}

void sb_consume(struct strbuf *sb, size_t n)
{
    if (n >= sb->len) {
        sb_reset(sb);
        return;
    }
    memmove(sb->data, sb->data + n, sb->len - n);
    sb->len -= n;
    sb->data[sb->len] = 0;
}
