/* milter_msg.c: the message as milters see and edit it: the header lines in
 * order (a folded header is one entry) in memory, then the body, which
 * stays in its spool file and is read a piece at a time. Header edits follow
 * libmilter's definitions: smfi_insheader's index counts all headers from
 * the top (0 = first), smfi_chgheader's index counts the headers of that
 * name from 1, and an empty value deletes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "milter.h"
#include "util.h"

#define MILTER_HEADERS_MAX 10000

/* A header line: a name of printable ASCII, a colon, and no NUL anywhere
 * (the milter protocol carries values as C strings). */
static bool header_start(const char *line, size_t n, size_t *colon)
{
    if (memchr(line, 0, n))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (line[i] == ':') {
            *colon = i;
            return i > 0;
        }
        if ((unsigned char)line[i] <= ' ' || (unsigned char)line[i] >= 127)
            return false;
    }
    return false;
}

static int push_header(struct milter_msg *m, size_t at, char *name, char *value)
{
    if (m->nhdrs >= MILTER_HEADERS_MAX) {
        free(name);
        free(value);
        return -1;
    }
    if (m->nhdrs == m->caphdrs) {
        m->caphdrs = m->caphdrs ? m->caphdrs * 2 : 16;
        m->hdrs = xrealloc(m->hdrs, m->caphdrs * sizeof(*m->hdrs));
    }
    if (at > m->nhdrs)
        at = m->nhdrs;
    memmove(&m->hdrs[at + 1], &m->hdrs[at], (m->nhdrs - at) * sizeof(*m->hdrs));
    m->hdrs[at].name = name;
    m->hdrs[at].value = value;
    m->nhdrs++;
    return 0;
}

/* Split the header section (head[0..n), the start of a content of total
 * bytes) into headers; returns where the body starts. */
static size_t parse_headers(struct milter_msg *m, const char *head, size_t n, off_t total)
{
    size_t pos = 0, last_len = 0, last_cap = 0;   /* the last header's value */
    while (pos < n) {
        const char *line = head + pos;
        const char *nl = memchr(line, '\n', n - pos);
        if (!nl && (off_t)n < total)
            break;                       /* cut by the limit: the body starts here */
        size_t len = nl ? (size_t)(nl - line) : n - pos;
        size_t next = pos + len + (nl ? 1 : 0);
        size_t colon;
        if (len == 0) {                  /* the empty line: the body follows */
            m->blank_line = true;
            return next;
        }
        if ((line[0] == ' ' || line[0] == '\t') && m->nhdrs && !memchr(line, 0, len)) {
            /* grow geometrically: a header of many short folds stays linear */
            struct milter_header *h = &m->hdrs[m->nhdrs - 1];
            if (last_len + 1 + len + 1 > last_cap) {
                last_cap = 2 * (last_len + 1 + len + 1);
                h->value = xrealloc(h->value, last_cap);
            }
            h->value[last_len] = '\n';
            memcpy(h->value + last_len + 1, line, len);
            last_len += 1 + len;
            h->value[last_len] = 0;
        } else if (header_start(line, len, &colon) && m->nhdrs < MILTER_HEADERS_MAX) {
            push_header(m, m->nhdrs, xstrndup(line, colon), xstrndup(line + colon + 1, len - colon - 1));
            last_len = len - colon - 1;
            last_cap = last_len + 1;
        } else {
            break;                       /* not a header: the body starts here */
        }
        pos = next;
    }
    return pos;
}

int milter_msg_parse(struct milter_msg *m, int fd, off_t len, size_t header_limit, off_t body_limit)
{
    memset(m, 0, sizeof(*m));
    m->body_fd = fd;
    m->body_limit = body_limit;
    size_t n = (off_t)header_limit < len ? header_limit : (size_t)len;
    char *head = xmalloc(n);
    if (n && pread_all(fd, head, n, 0) < 0) {
        free(head);
        return -1;
    }
    m->body_off = (off_t)parse_headers(m, head, n, len);
    m->body_len = len - m->body_off;
    free(head);
    return 0;
}

ssize_t milter_msg_body_read(const struct milter_msg *m, off_t off, char *buf, size_t n)
{
    if (off >= m->body_len)
        return 0;
    if ((off_t)n > m->body_len - off)
        n = (size_t)(m->body_len - off);
    ssize_t got;
    do
        got = pread(m->body_fd, buf, n, m->body_off + off);
    while (got < 0 && errno == EINTR);
    if (got == 0) {
        errno = EIO;            /* the file is shorter than it was */
        return -1;
    }
    return got;
}

void milter_msg_set_body(struct milter_msg *m, int fd, off_t len)
{
    if (m->body_fd >= 0)
        close(m->body_fd);
    m->body_fd = fd;
    m->body_off = 0;
    m->body_len = len;
}

off_t milter_msg_size(const struct milter_msg *m)
{
    off_t n = m->blank_line ? 1 : 0;
    for (size_t i = 0; i < m->nhdrs; i++)
        n += (off_t)(strlen(m->hdrs[i].name) + strlen(m->hdrs[i].value) + 2);
    return n + m->body_len;
}

/* Append what fits of src[0..n) to buf, after skipping *skip bytes of it
 * (the part an earlier piece of the rendering already carried). */
static void render_piece(const char *src, size_t n, size_t *skip, char *buf, size_t size, size_t *len)
{
    if (*skip >= n) {
        *skip -= n;
        return;
    }
    size_t k = n - *skip;
    if (k > size - *len)
        k = size - *len;
    memcpy(buf + *len, src + *skip, k);
    *len += k;
    *skip = 0;
}

int milter_msg_render_next(const struct milter_msg *m, struct milter_render *r, char *buf,
                           size_t size, size_t *len)
{
    *len = 0;
    while (*len < size && r->hdr < m->nhdrs) {
        const struct milter_header *h = &m->hdrs[r->hdr];
        size_t nl = strlen(h->name), vl = strlen(h->value), skip = r->hoff, before = *len;
        render_piece(h->name, nl, &skip, buf, size, len);
        render_piece(":", 1, &skip, buf, size, len);
        render_piece(h->value, vl, &skip, buf, size, len);
        render_piece("\n", 1, &skip, buf, size, len);
        r->hoff += *len - before;
        if (r->hoff == nl + vl + 2) {
            r->hdr++;
            r->hoff = 0;
        }
    }
    if (*len < size && !r->head_done) {
        /* without an empty line the body follows the headers as it did */
        if (m->blank_line)
            buf[(*len)++] = '\n';
        r->head_done = true;
    }
    while (*len < size && r->body_pos < m->body_len) {
        ssize_t got = milter_msg_body_read(m, r->body_pos, buf + *len, size - *len);
        if (got < 0)
            return -1;
        r->body_pos += got;
        *len += (size_t)got;
    }
    return 0;
}

int milter_msg_render(const struct milter_msg *m, int (*out)(const char *data, size_t len, void *arg),
                      void *arg)
{
    struct milter_render r = MILTER_RENDER_INIT;
    char *buf = xmalloc(MILTER_RENDER_PIECE);
    size_t len;
    int rc;
    while ((rc = milter_msg_render_next(m, &r, buf, MILTER_RENDER_PIECE, &len)) == 0 && len > 0)
        if (out(buf, len, arg) < 0) {
            rc = -1;
            break;
        }
    free(buf);
    return rc;
}

void milter_msg_free(struct milter_msg *m)
{
    for (size_t i = 0; i < m->nhdrs; i++) {
        free(m->hdrs[i].name);
        free(m->hdrs[i].value);
    }
    free(m->hdrs);
    for (size_t i = 0; i < m->nenv; i++) {
        free(m->env[i].addr);
        free(m->env[i].args);
    }
    free(m->env);
    free(m->quarantine);
    if (m->body_fd >= 0)
        close(m->body_fd);
    memset(m, 0, sizeof(*m));
    m->body_fd = -1;
}

/* A filter's value as stored: folds as "\n", a space after the colon
 * unless the filter negotiated to supply its own leading space. */
static char *stored_value(const char *value, bool leadspc)
{
    size_t n = strlen(value);
    char *v = xmalloc(n + 2), *o = v;
    if (!leadspc)
        *o++ = ' ';
    for (const char *p = value; *p; p++)
        if (!(*p == '\r' && p[1] == '\n'))
            *o++ = *p;
    *o = 0;
    return v;
}

int milter_msg_add_header(struct milter_msg *m, const char *name, const char *value, bool leadspc)
{
    return push_header(m, m->nhdrs, xstrdup(name), stored_value(value, leadspc));
}

int milter_msg_insert_header(struct milter_msg *m, size_t index, const char *name,
                             const char *value, bool leadspc)
{
    return push_header(m, index, xstrdup(name), stored_value(value, leadspc));
}

int milter_msg_change_header(struct milter_msg *m, size_t index, const char *name,
                             const char *value, bool leadspc)
{
    size_t seen = 0;
    if (index == 0)
        index = 1;
    for (size_t i = 0; i < m->nhdrs; i++) {
        if (!str_ieq(m->hdrs[i].name, name) || ++seen != index)
            continue;
        if (!*value) {
            free(m->hdrs[i].name);
            free(m->hdrs[i].value);
            memmove(&m->hdrs[i], &m->hdrs[i + 1], (m->nhdrs - i - 1) * sizeof(*m->hdrs));
            m->nhdrs--;
        } else {
            free(m->hdrs[i].value);
            m->hdrs[i].value = stored_value(value, leadspc);
        }
        return 0;
    }
    /* no such header: a change adds it (libmilter), a delete does nothing */
    return *value ? milter_msg_add_header(m, name, value, leadspc) : 0;
}
