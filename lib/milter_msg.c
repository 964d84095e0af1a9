/* milter_msg.c: the message as milters see and edit it: the header lines in
 * order (a folded header is one entry), then the body. Header edits follow
 * libmilter's definitions: smfi_insheader's index counts all headers from
 * the top (0 = first), smfi_chgheader's index counts the headers of that
 * name from 1, and an empty value deletes. */
#include <stdlib.h>
#include <string.h>

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

void milter_msg_parse(struct milter_msg *m, const char *content, size_t len, size_t limit)
{
    memset(m, 0, sizeof(*m));
    sb_init(&m->body, limit);
    size_t pos = 0, last_len = 0, last_cap = 0;   /* the last header's value */
    while (pos < len) {
        const char *line = content + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        size_t next = pos + n + (nl ? 1 : 0);
        size_t colon;
        if (n == 0) {                    /* the empty line: the body follows */
            m->blank_line = true;
            pos = next;
            break;
        }
        if ((line[0] == ' ' || line[0] == '\t') && m->nhdrs && !memchr(line, 0, n)) {
            /* grow geometrically: a header of many short folds stays linear */
            struct milter_header *h = &m->hdrs[m->nhdrs - 1];
            if (last_len + 1 + n + 1 > last_cap) {
                last_cap = 2 * (last_len + 1 + n + 1);
                h->value = xrealloc(h->value, last_cap);
            }
            h->value[last_len] = '\n';
            memcpy(h->value + last_len + 1, line, n);
            last_len += 1 + n;
            h->value[last_len] = 0;
        } else if (header_start(line, n, &colon) && m->nhdrs < MILTER_HEADERS_MAX) {
            push_header(m, m->nhdrs, xstrndup(line, colon), xstrndup(line + colon + 1, n - colon - 1));
            last_len = n - colon - 1;
            last_cap = last_len + 1;
        } else {
            break;                       /* not a header: the body starts here */
        }
        pos = next;
    }
    sb_append(&m->body, content + pos, len - pos);
}

int milter_msg_render(const struct milter_msg *m, struct strbuf *out)
{
    for (size_t i = 0; i < m->nhdrs; i++)
        if (sb_appendf(out, "%s:%s\n", m->hdrs[i].name, m->hdrs[i].value) < 0)
            return -1;
    /* without an empty line the body follows the headers as it did */
    if (m->blank_line && sb_appendc(out, '\n') < 0)
        return -1;
    return sb_append(out, m->body.data ? m->body.data : "", m->body.len);
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
    sb_free(&m->body);
    memset(m, 0, sizeof(*m));
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
