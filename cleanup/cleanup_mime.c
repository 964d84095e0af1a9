/* cleanup_mime.c: the MIME state machine behind cleanup's content checks.
 * Lines are assembled (in pieces of at most line_limit bytes) and read in
 * one of two states: HEADERS (a header block of a multipart part or of an
 * attached message, whose logical headers are collected with their
 * continuation lines) and BODY. A line "--BOUNDARY" of any open multipart
 * level starts the next part of that level (closing the levels inside it),
 * "--BOUNDARY--" closes the level. When a header block ends, its
 * Content-Type decides what follows: a multipart type with a boundary opens a
 * level, message/rfc822 (not encoded) starts the attached message's header
 * block, anything else is body. Every decision looks at one line and at
 * most depth_limit open boundaries, so the work is linear in the input. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup_mime.h"
#include "util.h"

#define MIME_NAME_MAX 998          /* a longer run of name characters is no header name */
#define MIME_BOUNDARY_MAX 998      /* RFC 2046 allows 70; longer ones are not followed */
#define MIME_LINE_MIN 80
#define MIME_REDISPATCH_MAX 4      /* a line that ends a header block is looked at again */

static const char *const mime_headers[] = {
    "Content-Description", "Content-Disposition", "Content-ID",
    "Content-Transfer-Encoding", "Content-Type", "MIME-Version",
};

size_t cleanup_mime_header_name_len(const char *text, size_t len)
{
    size_t n = 0;
    while (n < len && (unsigned char)text[n] > 32 && (unsigned char)text[n] < 127 && text[n] != ':')
        if (++n > MIME_NAME_MAX)
            return 0;
    size_t colon = n;
    while (colon < len && (text[colon] == ' ' || text[colon] == '\t'))
        colon++;
    return n > 0 && colon < len && text[colon] == ':' ? n : 0;
}

static bool name_is(const char *text, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(text, name, n) == 0;
}

bool cleanup_mime_is_mime_header(const char *text, size_t len)
{
    size_t n = cleanup_mime_header_name_len(text, len);
    for (size_t i = 0; n && i < sizeof(mime_headers) / sizeof(mime_headers[0]); i++)
        if (name_is(text, n, mime_headers[i]))
            return true;
    return false;
}

/* ---- Content-Type and Content-Transfer-Encoding values (RFC 2045) ---- */

struct lex {
    const char *p, *end;
};

/* White space, line breaks and (nested) comments. */
static void skip_cfws(struct lex *x)
{
    long depth = 0;
    while (x->p < x->end) {
        char c = *x->p;
        if (depth == 0 && c != '(' && c != ' ' && c != '\t' && c != '\r' && c != '\n')
            return;
        if (c == '(') {
            depth++;
        } else if (c == ')' && depth > 0) {
            depth--;
        } else if (c == '\\' && depth > 0 && x->p + 1 < x->end) {
            x->p++;
        }
        x->p++;
    }
}

static bool is_token_char(unsigned char c)
{
    return c > 32 && c != 127 && !strchr("()<>@,;:\\\"/[]?=", c);
}

static size_t lex_token(struct lex *x, const char **start)
{
    *start = x->p;
    while (x->p < x->end && is_token_char((unsigned char)*x->p))
        x->p++;
    return (size_t)(x->p - *start);
}

/* A parameter value: a token or a quoted string (unquoted into out). */
static void lex_value(struct lex *x, struct strbuf *out)
{
    sb_reset(out);
    if (x->p < x->end && *x->p == '"') {
        x->p++;
        while (x->p < x->end && *x->p != '"') {
            if (*x->p == '\\' && x->p + 1 < x->end)
                x->p++;
            if (*x->p != '\r' && *x->p != '\n')
                sb_appendc(out, *x->p);     /* bounded by out's limit */
            x->p++;
        }
        if (x->p < x->end)
            x->p++;
        return;
    }
    const char *start;
    size_t n = lex_token(x, &start);
    sb_append(out, start, n);
}

static void type_reset(struct mime_part_type *t)
{
    free(t->boundary);
    memset(t, 0, sizeof(*t));
}

static void parse_content_type(struct mime_part_type *t, const char *v, size_t len)
{
    struct lex x = { v, v + len };
    const char *type, *sub = "";
    size_t tlen, slen = 0;
    bool encoded = t->encoded;         /* Content-Transfer-Encoding may come first */
    type_reset(t);
    t->encoded = encoded;
    t->seen = true;
    skip_cfws(&x);
    tlen = lex_token(&x, &type);
    skip_cfws(&x);
    if (x.p < x.end && *x.p == '/') {
        x.p++;
        skip_cfws(&x);
        slen = lex_token(&x, &sub);
    }
    t->kind = MIME_CT_OTHER;
    if (name_is(type, tlen, "multipart")) {
        t->kind = MIME_CT_MULTIPART;
        t->digest = name_is(sub, slen, "digest");
    } else if (name_is(type, tlen, "message")
               && (name_is(sub, slen, "rfc822") || name_is(sub, slen, "global"))) {
        t->kind = MIME_CT_MESSAGE;
    }
    struct strbuf value = STRBUF_INIT(MIME_BOUNDARY_MAX + 1);
    while (x.p < x.end) {
        const char *before = x.p, *name;
        skip_cfws(&x);
        if (x.p >= x.end || *x.p != ';')
            break;
        x.p++;
        skip_cfws(&x);
        size_t nlen = lex_token(&x, &name);
        skip_cfws(&x);
        if (x.p >= x.end || *x.p != '=')
            continue;
        x.p++;
        skip_cfws(&x);
        lex_value(&x, &value);
        if (name_is(name, nlen, "boundary") && !t->boundary && value.len > 0
            && value.len <= MIME_BOUNDARY_MAX)
            t->boundary = xstrndup(value.data, value.len);
        if (x.p == before)
            break;
    }
    sb_free(&value);
}

static void parse_encoding(struct mime_part_type *t, const char *v, size_t len)
{
    struct lex x = { v, v + len };
    const char *enc;
    skip_cfws(&x);
    size_t n = lex_token(&x, &enc);
    t->encoded = !(name_is(enc, n, "7bit") || name_is(enc, n, "8bit") || name_is(enc, n, "binary"));
}

/* Content-Type and Content-Transfer-Encoding of the block being read. */
static void note_header(struct mime_state *m, const char *text, size_t len)
{
    size_t n = cleanup_mime_header_name_len(text, len);
    if (!n || m->lim.disabled)
        return;
    const char *colon = memchr(text, ':', len);
    const char *value = colon + 1;
    size_t vlen = len - (size_t)(value - text);
    if (name_is(text, n, "Content-Type"))
        parse_content_type(&m->type, value, vlen);
    else if (name_is(text, n, "Content-Transfer-Encoding"))
        parse_encoding(&m->type, value, vlen);
}

/* ---- the state machine ---- */

void cleanup_mime_init(struct mime_state *m, const struct mime_limits *lim, const struct mime_callbacks *cb)
{
    memset(m, 0, sizeof(*m));
    m->lim = *lim;
    if (m->lim.line_limit < MIME_LINE_MIN)
        m->lim.line_limit = MIME_LINE_MIN;
    if (m->lim.header_limit < m->lim.line_limit)
        m->lim.header_limit = m->lim.line_limit;
    if (m->lim.depth_limit < 1)
        m->lim.depth_limit = 1;
    m->cb = *cb;
    m->state = MIME_HEADERS;
    m->hclass = MIME_CLASS_PRIMARY;
    sb_init(&m->line, m->lim.line_limit);
    sb_init(&m->header, m->lim.header_limit);
    m->stack = xcalloc((size_t)m->lim.depth_limit, sizeof(*m->stack));
}

static void pop_to(struct mime_state *m, int keep)
{
    while (m->nstack > keep)
        free(m->stack[--m->nstack].text);
}

void cleanup_mime_free(struct mime_state *m)
{
    pop_to(m, 0);
    free(m->stack);
    m->stack = NULL;
    type_reset(&m->type);
    sb_free(&m->line);
    sb_free(&m->header);
}

/* Append to the pending header what fits within header_limit. */
static void header_append(struct mime_state *m, const char *s, size_t len, bool new_line)
{
    size_t room = m->lim.header_limit - m->header.len;
    if (new_line) {
        if (room == 0)
            return;
        sb_appendc(&m->header, '\n');
        room--;
    }
    sb_append(&m->header, s, len < room ? len : room);
}

static void header_flush(struct mime_state *m)
{
    if (!m->have_header)
        return;
    const char *text = sb_str(&m->header);
    size_t len = m->header.len;
    note_header(m, text, len);
    enum mime_class cls = cleanup_mime_is_mime_header(text, len) ? MIME_CLASS_MIME : m->hclass;
    m->cb.header(m->cb.ctx, cls, text, len);
    sb_reset(&m->header);
    m->have_header = false;
}

static void body_line(struct mime_state *m, const char *s, size_t len, bool eol)
{
    m->cb.body(m->cb.ctx, s, len, eol, m->offset);
    m->offset += len + (eol ? 1 : 0);
}

/* A header block ended: its Content-Type says what comes next. */
static void end_block(struct mime_state *m)
{
    struct mime_part_type *t = &m->type;
    int kind = t->seen ? (int)t->kind : m->default_message ? MIME_CT_MESSAGE : MIME_CT_OTHER;
    m->state = MIME_BODY;
    if (m->lim.disabled) {
        kind = MIME_CT_OTHER;
    } else if ((kind == MIME_CT_MULTIPART && t->boundary)
               || (kind == MIME_CT_MESSAGE && !t->encoded)) {
        if (m->depth >= m->lim.depth_limit || m->nstack >= m->lim.depth_limit) {
            m->errors |= MIME_ERR_NESTING;
            kind = MIME_CT_OTHER;
        }
    } else {
        kind = MIME_CT_OTHER;
    }
    m->depth += kind != MIME_CT_OTHER;
    if (kind == MIME_CT_MULTIPART) {
        struct mime_boundary *b = &m->stack[m->nstack++];
        b->len = strlen(t->boundary);
        b->text = t->boundary;
        b->depth = m->depth;
        b->digest = t->digest;
        t->boundary = NULL;
    } else if (kind == MIME_CT_MESSAGE) {
        m->state = MIME_HEADERS;
        m->hclass = MIME_CLASS_NESTED;
    }
    m->default_message = false;
    type_reset(t);
    m->offset = 0;
}

/* The innermost open level whose boundary s is, or -1. */
static int boundary_level(const struct mime_state *m, const char *s, size_t len)
{
    if (m->nstack == 0 || len < 2 || s[0] != '-' || s[1] != '-')
        return -1;
    for (int k = m->nstack - 1; k >= 0; k--) {
        const struct mime_boundary *b = &m->stack[k];
        if (len - 2 >= b->len && memcmp(s + 2, b->text, b->len) == 0)
            return k;
    }
    return -1;
}

static void boundary_line(struct mime_state *m, int k, const char *s, size_t len, bool eol)
{
    const struct mime_boundary *b = &m->stack[k];
    bool close = len >= b->len + 4 && s[b->len + 2] == '-' && s[b->len + 3] == '-';
    body_line(m, s, len, eol);
    if (close) {
        m->depth = b->depth - 1;
        pop_to(m, k);
        m->state = MIME_BODY;            /* the epilogue of the level around it */
    } else {
        m->depth = b->depth;
        m->default_message = b->digest;
        pop_to(m, k + 1);
        m->state = MIME_HEADERS;
        m->hclass = MIME_CLASS_MIME;
    }
    type_reset(&m->type);
    m->offset = 0;
}

/* The first piece of a line. */
static void line_start(struct mime_state *m, const char *s, size_t len, bool eol)
{
    m->piece_was_header = false;
    for (int round = 0; round < MIME_REDISPATCH_MAX; round++) {
        int k = boundary_level(m, s, len);
        if (m->state == MIME_BODY) {
            if (k >= 0)
                boundary_line(m, k, s, len, eol);
            else
                body_line(m, s, len, eol);
            return;
        }
        if (len > 0 && (s[0] == ' ' || s[0] == '\t') && m->have_header) {
            header_append(m, s, len, true);
            m->piece_was_header = true;
            return;
        }
        if (k < 0 && len > 0 && cleanup_mime_header_name_len(s, len) > 0) {
            header_flush(m);
            m->have_header = true;
            header_append(m, s, len, false);
            m->piece_was_header = true;
            return;
        }
        header_flush(m);
        if (k >= 0) {                    /* an empty part: no header block at all */
            m->state = MIME_BODY;
            type_reset(&m->type);
            continue;
        }
        if (len == 0 && eol) {           /* the empty line that ends the block */
            body_line(m, s, len, eol);
            end_block(m);
            return;
        }
        end_block(m);                    /* a body line without the empty line */
    }
    body_line(m, s, len, eol);
}

static void hand_piece(struct mime_state *m, const char *s, size_t len, bool eol)
{
    if (!m->mid_line)
        line_start(m, s, len, eol);
    else if (m->piece_was_header)
        header_append(m, s, len, false);
    else
        body_line(m, s, len, eol);
    m->mid_line = !eol;
}

void cleanup_mime_primary_header(struct mime_state *m, const char *text, size_t len)
{
    note_header(m, text, len);
}

void cleanup_mime_primary_done(struct mime_state *m)
{
    end_block(m);
}

void cleanup_mime_feed(struct mime_state *m, const char *data, size_t len)
{
    while (len > 0) {
        size_t room = m->lim.line_limit - m->line.len;
        size_t look = len < room ? len : room;
        const char *nl = memchr(data, '\n', look);
        size_t take = nl ? (size_t)(nl - data) : look;
        sb_append(&m->line, data, take);
        data += take + (nl ? 1 : 0);
        len -= take + (nl ? 1 : 0);
        if (nl || m->line.len == m->lim.line_limit) {
            hand_piece(m, sb_str(&m->line), m->line.len, nl != NULL);
            sb_reset(&m->line);
        }
    }
}

void cleanup_mime_finish(struct mime_state *m)
{
    if (m->line.len > 0) {
        hand_piece(m, sb_str(&m->line), m->line.len, false);
        sb_reset(&m->line);
    }
    header_flush(m);
}
