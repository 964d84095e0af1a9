/* dovecot_auth.c: lines of Dovecot's authentication protocol, client side
 * (dovecot_auth.h): the strict parser of server lines and the formatting
 * of the client's requests. */
#include <stdlib.h>
#include <string.h>

#include "dovecot_auth.h"
#include "strbuf.h"
#include "util.h"

#define FIELDS_MAX 64     /* fields of one line we look at; more are ignored */

/* Dovecot's tab escaping: \001 then '1', 't', 'r' or 'n'. Undone in place,
 * control characters in the result becoming spaces; false for a bad
 * escape or a value over max bytes. */
static bool unescape_field(char *f, size_t max)
{
    char *w = f;
    for (const char *r = f; *r; r++) {
        char c = *r;
        if (c == '\001') {
            switch (*++r) {
            case '1': c = '\001'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'n': c = '\n'; break;
            default: return false;      /* also the terminator */
            }
        }
        if ((unsigned char)c < 32 || c == 127)
            c = ' ';
        if ((size_t)(w - f) >= max)
            return false;
        *w++ = c;
    }
    *w = 0;
    return true;
}

static bool parse_number(const char *s, unsigned long *out)
{
    unsigned long v = 0;
    if (!*s || strlen(s) > 9)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    *out = v;
    return true;
}

static bool mech_name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '-'
              || s[n] == '_'))
            return false;
    return n > 0 && n <= 20;      /* RFC 4422: at most 20 characters */
}

static bool base64_text_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z')
              || (s[n] >= '0' && s[n] <= '9') || s[n] == '+' || s[n] == '/' || s[n] == '='))
            return false;
    return n % 4 == 0;
}

static unsigned mech_flag(const char *f)
{
    static const struct { const char *name; unsigned flag; } flags[] = {
        { "anonymous", DOVECOT_MECH_ANONYMOUS }, { "plaintext", DOVECOT_MECH_PLAINTEXT },
        { "dictionary", DOVECOT_MECH_DICTIONARY }, { "active", DOVECOT_MECH_ACTIVE },
        { "forward-secrecy", DOVECOT_MECH_FORWARD_SECRECY },
        { "mutual-auth", DOVECOT_MECH_MUTUAL_AUTH }, { "private", DOVECOT_MECH_PRIVATE },
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (strcmp(f, flags[i].name) == 0)
            return flags[i].flag;
    return 0;      /* unknown properties are ignored, as Dovecot allows new ones */
}

/* OK/FAIL/CONT: the id, then name=value or flag fields. */
static int parse_reply(char **f, size_t nf, struct dovecot_line *out)
{
    if (nf < 2 || !parse_number(f[1], &out->id))
        return -1;
    if (out->type == DOVECOT_CONT) {
        if (nf < 3)
            out->data = "";
        else if (base64_text_ok(f[2]))
            out->data = f[2];
        else
            return -1;
        return 0;
    }
    for (size_t i = 2; i < nf; i++) {
        if (strcmp(f[i], "temp") == 0) {
            out->temp = true;
            continue;
        }
        const char **slot = strncmp(f[i], "user=", 5) == 0 ? &out->user
                            : strncmp(f[i], "reason=", 7) == 0 ? &out->reason : NULL;
        if (!slot)
            continue;          /* other fields (authz, resp, code, ...) are not used */
        char *v = strchr(f[i], '=') + 1;
        if (!unescape_field(v, DOVECOT_FIELD_MAX))
            return -1;
        *slot = v;
    }
    return 0;
}

int dovecot_parse_line(char *line, size_t len, struct dovecot_line *out)
{
    char *f[FIELDS_MAX];
    size_t nf = 0;
    memset(out, 0, sizeof(*out));
    out->type = DOVECOT_OTHER;
    if (len > DOVECOT_LINE_MAX || memchr(line, 0, len))
        return -1;
    line[len] = 0;
    for (char *p = line; nf < FIELDS_MAX;) {
        f[nf++] = p;
        char *tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = 0;
        p = tab + 1;
    }
    static const struct { const char *name; enum dovecot_line_type type; } types[] = {
        { "VERSION", DOVECOT_VERSION }, { "MECH", DOVECOT_MECH }, { "SPID", DOVECOT_SPID },
        { "CUID", DOVECOT_CUID }, { "COOKIE", DOVECOT_COOKIE }, { "DONE", DOVECOT_DONE },
        { "OK", DOVECOT_OK }, { "FAIL", DOVECOT_FAIL }, { "CONT", DOVECOT_CONT },
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(f[0], types[i].name) == 0)
            out->type = types[i].type;
    switch (out->type) {
    case DOVECOT_VERSION:
        if (nf < 3 || !parse_number(f[1], &out->major) || !parse_number(f[2], &out->minor))
            return -1;
        return 0;
    case DOVECOT_MECH:
        if (nf < 2 || !mech_name_ok(f[1]))
            return -1;
        out->mech = f[1];
        for (size_t i = 2; i < nf; i++)
            out->mech_flags |= mech_flag(f[i]);
        return 0;
    case DOVECOT_OK:
    case DOVECOT_FAIL:
    case DOVECOT_CONT:
        return parse_reply(f, nf, out);
    default:
        return 0;
    }
}

int dovecot_format_hello(struct strbuf *out, unsigned long pid)
{
    return sb_appendf(out, "VERSION\t1\t1\nCPID\t%lu\n", pid);
}

/* Printable ASCII without tabs: what may go into a request field. */
static bool field_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 32 || (unsigned char)*s >= 127)
            return false;
    return true;
}

int dovecot_format_auth(struct strbuf *out, unsigned long id, const char *mech,
                        const char *service, const char *local_ip, const char *remote_ip,
                        bool secured, const char *resp)
{
    if (!field_ok(mech) || !field_ok(service) || !field_ok(local_ip) || !field_ok(remote_ip)
        || (resp && !field_ok(resp)))
        return -1;
    size_t start = out->len;
    int rc = sb_appendf(out, "AUTH\t%lu\t%s\tservice=%s\tnologin", id, mech, service);
    if (rc == 0 && *local_ip)
        rc = sb_appendf(out, "\tlip=%s", local_ip);
    if (rc == 0 && *remote_ip)
        rc = sb_appendf(out, "\trip=%s", remote_ip);
    if (rc == 0 && secured)
        rc = sb_appends(out, "\tsecured");
    if (rc == 0 && resp)
        rc = sb_appendf(out, "\tresp=%s", resp);
    if (rc == 0)
        rc = sb_appendc(out, '\n');
    if (rc < 0)
        sb_truncate(out, start);
    return rc;
}

int dovecot_format_cont(struct strbuf *out, unsigned long id, const char *resp)
{
    if (!field_ok(resp) && *resp)
        return -1;
    return sb_appendf(out, "CONT\t%lu\t%s\n", id, resp);
}
