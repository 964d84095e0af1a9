/* local_expand.c: the parser of destination lists as found in alias values,
 * .forward files and :include: files: addresses, "|command", "/file",
 * ":include:/file" and "\user", separated by commas or newlines, with
 * double quotes around anything that contains commas or white space.
 * Everything parsed here is hostile text: every item and count is bounded. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "local.h"
#include "util.h"

void local_dest_list_add(struct dest_list *l, enum local_dest_kind kind, const char *value, bool direct)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->items = xrealloc(l->items, l->cap * sizeof(*l->items));
    }
    l->items[l->n].kind = kind;
    l->items[l->n].value = xstrdup(value);
    l->items[l->n].direct = direct;
    l->n++;
}

void local_dest_list_free(struct dest_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].value);
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

const char *local_dest_kind_name(enum local_dest_kind kind)
{
    switch (kind) {
    case DEST_ADDRESS: return "address";
    case DEST_FILE: return "file";
    case DEST_COMMAND: return "command";
    case DEST_INCLUDE: return "include";
    }
    return "?";
}

static const char *trim_span(const char *s, size_t *len)
{
    while (*len > 0 && isspace((unsigned char)*s)) {
        s++;
        (*len)--;
    }
    while (*len > 0 && isspace((unsigned char)s[*len - 1]))
        (*len)--;
    return s;
}

/* The item is one quoted string from its first to its last byte. */
static bool wholly_quoted(const char *s, size_t len)
{
    if (len < 2 || s[0] != '"' || s[len - 1] != '"')
        return false;
    for (size_t i = 1; i < len - 1; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return false;
    }
    return true;
}

/* Remove the quotes and backslash escapes of a wholly quoted string. */
static void unquote(const char *s, size_t len, struct strbuf *out)
{
    sb_reset(out);
    for (size_t i = 1; i + 1 < len; i++) {
        if (s[i] == '\\' && i + 2 < len)
            i++;
        sb_appendc(out, s[i]);
    }
}

static int add_address(const char *s, size_t len, bool direct, struct dest_list *out,
                       struct strbuf *err)
{
    struct address a;
    const char *why = NULL;
    if (len == 0)
        return 0;
    if (address_parse(s, len, ADDR_ALLOW_BARE | ADDR_ALLOW_NODOMAIN | ADDR_ALLOW_UTF8, &a, &why)
        != ADDR_OK) {
        sb_appendf(err, "bad address \"%.*s\": %s", (int)(len > 200 ? 200 : len), s,
                   why ? why : "syntax error");
        return -1;
    }
    if (direct && *a.domain) {
        sb_appendf(err, "\"\\%s\": a backslash names a local user, without a domain", a.address);
        address_free(&a);
        return -1;
    }
    /* counted here, not per item: one item may hold many addresses
     * separated by white space */
    if (out->n >= LOCAL_DEST_MAX) {
        sb_appendf(err, "more than %d destinations", LOCAL_DEST_MAX);
        address_free(&a);
        return -1;
    }
    local_dest_list_add(out, DEST_ADDRESS, a.address, direct);
    address_free(&a);
    return 0;
}

/* An item that is neither a command, a file nor an include: one address,
 * "Name <address>", or addresses separated by white space. */
static int parse_addresses(const char *s, size_t len, struct dest_list *out, struct strbuf *err)
{
    bool direct = len > 0 && s[0] == '\\';
    if (direct) {
        s++;
        len--;
        if (len == 0) {     /* a lone backslash: nothing to look at after it */
            sb_appends(err, "a backslash without a user name");
            return -1;
        }
    }
    const char *lt = memchr(s, '<', len);
    if (lt && s[0] != '"') {
        const char *gt = memchr(lt, '>', len - (size_t)(lt - s));
        if (!gt) {
            sb_appendf(err, "unbalanced <> in \"%.*s\"", (int)(len > 200 ? 200 : len), s);
            return -1;
        }
        return add_address(lt, (size_t)(gt - lt + 1), direct, out, err);
    }
    if (s[0] == '"')   /* a quoted local part: white space belongs to it */
        return add_address(s, len, direct, out, err);
    while (len > 0) {
        size_t word = 0;
        while (word < len && !isspace((unsigned char)s[word]))
            word++;
        if (add_address(s, word, direct, out, err) < 0)
            return -1;
        s += word;
        len -= word;
        s = trim_span(s, &len);
    }
    return 0;
}

static int reject_controls(const char *s, size_t len, struct strbuf *err)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            sb_appendf(err, "control character 0x%02x in a destination", c);
            return -1;
        }
    }
    return 0;
}

/* Add the len bytes at s (not terminated) as one destination of kind. */
static void dest_add_span(struct dest_list *out, enum local_dest_kind kind, const char *s, size_t len)
{
    char *value = xstrndup(s, len);
    local_dest_list_add(out, kind, value, false);
    free(value);
}

/* Classify one trimmed item (its outer quotes already removed when it
 * was wholly quoted) and add it. */
static int parse_item(const char *s, size_t len, struct dest_list *out, struct strbuf *err)
{
    struct strbuf tmp = STRBUF_INIT(LOCAL_ITEM_MAX);
    int rc = 0;
    if (reject_controls(s, len, err) < 0)
        return -1;
    if (s[0] == '|') {
        size_t n = len - 1;
        const char *cmd = trim_span(s + 1, &n);
        if (wholly_quoted(cmd, n)) {
            unquote(cmd, n, &tmp);
            cmd = tmp.data ? tmp.data : "";
            n = tmp.len;
        }
        if (n == 0) {
            sb_appends(err, "empty command after '|'");
            rc = -1;
        } else {
            dest_add_span(out, DEST_COMMAND, cmd, n);
        }
    } else if (s[0] == '/') {
        dest_add_span(out, DEST_FILE, s, len);
    } else if (len >= 9 && strncasecmp(s, ":include:", 9) == 0) {
        size_t n = len - 9;
        const char *path = trim_span(s + 9, &n);
        if (n == 0 || path[0] != '/') {
            sb_appends(err, ":include: needs an absolute file name");
            rc = -1;
        } else {
            dest_add_span(out, DEST_INCLUDE, path, n);
        }
    } else {
        rc = parse_addresses(s, len, out, err);
    }
    sb_free(&tmp);
    return rc;
}

/* One item as written between separators: trim, unquote, parse. */
static int finish_item(const char *s, size_t len, struct dest_list *out, struct strbuf *err)
{
    s = trim_span(s, &len);
    if (len == 0)
        return 0;
    if (len > LOCAL_ITEM_MAX) {
        sb_appendf(err, "destination longer than %d bytes", LOCAL_ITEM_MAX);
        return -1;
    }
    if (out->n >= LOCAL_DEST_MAX) {
        sb_appendf(err, "more than %d destinations", LOCAL_DEST_MAX);
        return -1;
    }
    if (!wholly_quoted(s, len))
        return parse_item(s, len, out, err);
    struct strbuf inner = STRBUF_INIT(LOCAL_ITEM_MAX);
    unquote(s, len, &inner);
    size_t n = inner.len;
    const char *t = trim_span(sb_str(&inner), &n);
    int rc = 0;
    /* "|cmd", "/file", ":include:" lose their quotes; a quoted local part
     * such as "john doe" stays a quoted address. */
    if (n > 0 && (t[0] == '|' || t[0] == '/' || (n >= 9 && strncasecmp(t, ":include:", 9) == 0)))
        rc = parse_item(t, n, out, err);
    else if (n > 0)
        rc = add_address(s, len, false, out, err);
    sb_free(&inner);
    return rc;
}

/* Skip a comment line (in files): from '#' at a line start to the newline. */
static size_t skip_comment(const char *text, size_t len, size_t i)
{
    size_t j = i;
    while (j < len && (text[j] == ' ' || text[j] == '\t'))
        j++;
    if (j < len && text[j] == '#') {
        while (j < len && text[j] != '\n')
            j++;
        return j;
    }
    return i;
}

int local_expand_parse(const char *text, size_t len, int flags, struct dest_list *out,
                       struct strbuf *err)
{
    size_t start = 0;
    bool quoted = false, line_start = true;
    if (memchr(text, 0, len)) {
        sb_appends(err, "NUL byte in destination list");
        return -1;
    }
    for (size_t i = 0; i <= len; i++) {
        if (line_start && !quoted && (flags & LOCAL_PARSE_FILE) && i < len) {
            size_t j = skip_comment(text, len, i);
            if (j != i) {
                i = j;          /* at the newline (or the end) */
                start = j;
            }
        }
        line_start = false;
        char c = i < len ? text[i] : ',';
        if (quoted) {
            if (c == '\\' && i + 1 < len)
                i++;
            else if (c == '"')
                quoted = false;
            else if (c == '\n' || i == len) {
                sb_appends(err, "unterminated quoted string");
                return -1;
            }
            continue;
        }
        if (c == '"') {
            quoted = true;
        } else if (c == ',' || c == '\n') {
            if (finish_item(text + start, i - start, out, err) < 0)
                return -1;
            start = i + 1;
            line_start = c == '\n';
        }
    }
    return 0;
}
