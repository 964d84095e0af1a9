/* header_section.c: finds the header section in content that arrives in
 * chunks cut anywhere, parses it into fields (name: value with folded
 * continuation lines), and writes the final header section: a Received:
 * first, the original fields byte for byte, then the Message-ID:, Date: and
 * From: that were missing. Pure functions: no configuration, no I/O. Used
 * by cleanup and by sendmail -t. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "header_section.h"
#include "util.h"

/* No field name is longer than a line may be (RFC 5322: 998 characters);
 * a longer run of name characters is body text. */
#define HEADER_NAME_MAX 998

enum line_kind { LINE_UNDECIDED, LINE_FIELD, LINE_CONTINUATION, LINE_BLANK, LINE_BODY };

void header_state_init(struct header_state *h, size_t limit)
{
    memset(h, 0, sizeof(*h));
    h->limit = limit;
    sb_init(&h->pending, 0);
    sb_init(&h->headers, 0);
}

void header_state_free(struct header_state *h)
{
    sb_free(&h->pending);
    sb_free(&h->headers);
    free(h->fields);
    h->fields = NULL;
    h->nfields = h->fields_cap = 0;
}

/* RFC 5322 field names are printable ASCII except the colon. */
static bool is_name_char(unsigned char c)
{
    return c > 32 && c < 127 && c != ':';
}

/* Length of the name when s starts "name:" (blanks allowed before the
 * colon, the obsolete syntax), 0 when it does not, and -1 when s ends
 * before that can be decided. */
static long field_name_len(const char *s, size_t len)
{
    size_t n = 0;
    while (n < len && is_name_char((unsigned char)s[n]))
        if (++n > HEADER_NAME_MAX)
            return 0;
    size_t colon = n;
    while (colon < len && (s[colon] == ' ' || s[colon] == '\t'))
        colon++;
    if (colon == len)
        return -1;
    return n > 0 && s[colon] == ':' ? (long)n : 0;
}

/* What the line in s is; complete says whether its LF was seen (the LF is
 * not part of len). An incomplete line is decided as early as possible so
 * that a long first body line is not held back as a possible header. */
static enum line_kind classify_line(const char *s, size_t len, bool complete, bool have_fields)
{
    if (len == 0 || (len == 1 && s[0] == '\r'))
        return complete ? LINE_BLANK : LINE_UNDECIDED;
    if (s[0] == ' ' || s[0] == '\t')
        return have_fields ? LINE_CONTINUATION : LINE_BODY;
    long n = field_name_len(s, len);
    if (n > 0)
        return LINE_FIELD;
    if (n == 0 || complete)
        return LINE_BODY;
    return LINE_UNDECIDED;
}

static void add_field(struct header_state *h, size_t offset, size_t len, size_t name_len)
{
    if (h->nfields == h->fields_cap) {
        h->fields_cap = h->fields_cap ? h->fields_cap * 2 : 16;
        h->fields = xrealloc(h->fields, h->fields_cap * sizeof(*h->fields));
    }
    h->fields[h->nfields++] = (struct header_field){ offset, len, name_len };
}

/* Move the pending line into the header section as kind. */
static void keep_line(struct header_state *h, enum line_kind kind)
{
    size_t offset = h->headers.len;
    sb_append(&h->headers, h->pending.data, h->pending.len);   /* within limit: checked */
    if (kind == LINE_FIELD)
        add_field(h, offset, h->pending.len,
                  (size_t)field_name_len(h->pending.data, h->pending.len));
    else
        h->fields[h->nfields - 1].len += h->pending.len;
    sb_reset(&h->pending);
}

static void end_section(struct header_state *h, enum line_kind kind)
{
    h->done = true;
    if (kind == LINE_BLANK) {
        h->saw_blank = true;
        sb_reset(&h->pending);
    } else {
        h->body_pending = true;      /* the body starts with the pending bytes */
    }
}

int header_feed(struct header_state *h, const char *data, size_t len, size_t *consumed)
{
    size_t i = 0;
    *consumed = 0;
    while (i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t take = nl ? (size_t)(nl - (data + i)) + 1 : len - i;
        sb_append(&h->pending, data + i, take);   /* grows by at most one chunk */
        i += take;
        size_t line_len = nl ? h->pending.len - 1 : h->pending.len;
        enum line_kind kind = classify_line(h->pending.data, line_len, nl != NULL, h->nfields > 0);
        if (kind == LINE_BLANK || kind == LINE_BODY) {
            end_section(h, kind);
            *consumed = i;
            return 1;
        }
        if (h->headers.len + h->pending.len > h->limit) {
            h->too_big = true;
            *consumed = i;
            return -1;
        }
        if (!nl)
            break;                   /* the rest of this line comes in the next chunk */
        keep_line(h, kind);
    }
    *consumed = len;
    return 0;
}

void header_finish(struct header_state *h)
{
    if (h->done)
        return;
    h->done = true;
    if (h->pending.len == 0)
        return;
    enum line_kind kind = classify_line(h->pending.data, h->pending.len, true, h->nfields > 0);
    if (kind == LINE_FIELD || kind == LINE_CONTINUATION) {
        /* The last field lacks its LF; it gets one so that added fields
         * start on a line of their own. */
        sb_appendc(&h->pending, '\n');
        keep_line(h, kind);
    } else if (kind == LINE_BLANK) {
        sb_reset(&h->pending);
    } else {
        h->body_pending = true;
    }
}

static bool field_is(const struct header_state *h, const struct header_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(h->headers.data + f->offset, name, n) == 0;
}

size_t header_count(const struct header_state *h, const char *name)
{
    size_t count = 0;
    for (size_t i = 0; i < h->nfields; i++)
        count += field_is(h, &h->fields[i], name);
    return count;
}

const struct header_field *header_find(const struct header_state *h, const char *name)
{
    for (size_t i = 0; i < h->nfields; i++)
        if (field_is(h, &h->fields[i], name))
            return &h->fields[i];
    return NULL;
}

void header_value(const struct header_state *h, const struct header_field *f,
                  struct strbuf *out, size_t max)
{
    const char *s = h->headers.data + f->offset;
    const char *colon = memchr(s, ':', f->len);   /* always present in a field */
    size_t i = colon ? (size_t)(colon - s) + 1 : f->len;
    sb_reset(out);
    for (; i < f->len; i++) {
        if (s[i] == '\n' || (s[i] == '\r' && i + 1 < f->len && s[i + 1] == '\n'))
            continue;                /* unfold: drop line ends, keep the blanks */
        if (out->len == 0 && (s[i] == ' ' || s[i] == '\t'))
            continue;
        if (out->len >= max || sb_appendc(out, s[i]) < 0)
            break;
    }
    while (out->len && (out->data[out->len - 1] == ' ' || out->data[out->len - 1] == '\t'))
        sb_truncate(out, out->len - 1);
}

void header_remove(struct header_state *h, const char *name)
{
    header_remove_after(h, name, 0);
}

void header_remove_after(struct header_state *h, const char *name, size_t first)
{
    size_t kept = 0, end = 0;
    /* The fields lie in order, one after the other: each moves down over
     * the ones removed before it. */
    for (size_t i = 0; i < h->nfields; i++) {
        struct header_field f = h->fields[i];
        if (i >= first && field_is(h, &f, name))
            continue;
        memmove(h->headers.data + end, h->headers.data + f.offset, f.len);
        f.offset = end;
        end += f.len;
        h->fields[kept++] = f;
    }
    sb_truncate(&h->headers, end);
    h->nfields = kept;
}

void header_set_fields(struct header_state *h, const char *text, size_t len)
{
    struct strbuf fresh = STRBUF_INIT(0);
    sb_append(&fresh, text, len);
    sb_free(&h->headers);
    h->headers = fresh;
    h->nfields = 0;
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t line = nl ? (size_t)(nl - (text + off)) + 1 : len - off;
        bool folded = text[off] == ' ' || text[off] == '\t';
        long name = field_name_len(text + off, line);
        if (folded && h->nfields > 0)
            h->fields[h->nfields - 1].len += line;
        else
            add_field(h, off, line, name > 0 ? (size_t)name : 0);
        off += line;
    }
}

int header_emit(struct header_state *h, const struct header_additions *add, struct strbuf *out)
{
    int rc = 0;
    if (add->received)
        rc |= sb_appends(out, add->received);
    rc |= sb_append(out, sb_str(&h->headers), h->headers.len);
    if (add->message_id && !header_find(h, "message-id"))
        rc |= sb_appendf(out, "Message-ID: %s\n", add->message_id);
    if (add->date && !header_find(h, "date"))
        rc |= sb_appendf(out, "Date: %s\n", add->date);
    if (add->from && !header_find(h, "from"))
        rc |= sb_appendf(out, "From: %s\n", add->from);
    if (h->saw_blank) {
        rc |= sb_appendc(out, '\n');
    } else if (h->body_pending) {
        /* The body began without the empty line; it gets one, or its first
         * line could read as part of the header fields added above. */
        rc |= sb_appendc(out, '\n');
        rc |= sb_append(out, sb_str(&h->pending), h->pending.len);
        sb_reset(&h->pending);
        h->body_pending = false;
    }
    return rc ? -1 : 0;
}
