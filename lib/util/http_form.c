/* http_form.c: form fields and escaping for HTML pages (see http_form.h). */
#include <string.h>

#include "http_form.h"
#include "strbuf.h"

static int hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void decode(const char *p, size_t n, struct strbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i];
        if (c == '+')
            c = ' ';
        else if (c == '%' && i + 2 < n && hex(p[i + 1]) >= 0 && hex(p[i + 2]) >= 0) {
            c = hex(p[i + 1]) * 16 + hex(p[i + 2]);
            i += 2;
        }
        if (c == 0)
            return;
        if (sb_appendc(out, c) < 0)
            return;
    }
}

int http_form_value(const char *data, size_t len, const char *name, struct strbuf *out)
{
    size_t nlen = strlen(name);
    sb_reset(out);
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(data + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - data) : len;
        const char *field = data + i;
        size_t flen = end - i;
        if (flen > nlen && memcmp(field, name, nlen) == 0 && field[nlen] == '=') {
            decode(field + nlen + 1, flen - nlen - 1, out);
            return 1;
        }
        if (flen == nlen && memcmp(field, name, nlen) == 0)
            return 1;
        i = end + 1;
    }
    return 0;
}

void html_escape(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_appends(out, "&amp;"); break;
        case '<': sb_appends(out, "&lt;"); break;
        case '>': sb_appends(out, "&gt;"); break;
        case '"': sb_appends(out, "&quot;"); break;
        case '\'': sb_appends(out, "&#39;"); break;
        default: sb_appendc(out, *s);
        }
    }
}

void url_escape(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c))
            sb_appendc(out, c);
        else
            sb_appendf(out, "%%%02X", c);
    }
}
