/* pipe_attr.c: the command attributes of a pipe service in master.cf, as
 * Postfix's pipe(8) takes them: name=value words (flags=, user=, size=,
 * eol=, null_sender=, directory=), then argv= with the command, whose
 * remaining words are its arguments. Anything else is an error that names
 * the word, so that a typing mistake never runs a different command. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "pipe.h"
#include "pipe_command.h"
#include "util.h"

static const struct {
    char letter;
    unsigned bit;
} flag_letters[] = {
    { 'B', PIPE_FLAG_BLANK }, { 'D', PIPE_FLAG_DELIVERED }, { 'F', PIPE_FLAG_FROM },
    { 'O', PIPE_FLAG_ORIG }, { 'R', PIPE_FLAG_RETURN }, { 'X', PIPE_FLAG_FINAL },
    { 'h', PIPE_FLAG_FOLD_HOST }, { 'q', PIPE_FLAG_QUOTE }, { 'u', PIPE_FLAG_FOLD_USER },
    { '.', PIPE_FLAG_DOT }, { '>', PIPE_FLAG_QUOTE_FROM },
};

static int parse_flags(const char *value, unsigned *flags, struct strbuf *err)
{
    for (const char *p = value; *p; p++) {
        size_t i = 0;
        while (i < sizeof(flag_letters) / sizeof(flag_letters[0]) && flag_letters[i].letter != *p)
            i++;
        if (i == sizeof(flag_letters) / sizeof(flag_letters[0])) {
            sb_appendf(err, "flags=%s: unknown flag '%c' (use B, D, F, O, R, X, h, q, u, . and >)",
                       value, isprint((unsigned char)*p) ? *p : '?');
            return -1;
        }
        *flags |= flag_letters[i].bit;
    }
    return 0;
}

int pipe_attr_unescape(const char *in, struct strbuf *out)
{
    for (const char *p = in; *p; p++) {
        if (*p != '\\') {
            sb_appendc(out, *p);
            continue;
        }
        char c = *++p;
        switch (c) {
        case 'a': sb_appendc(out, '\a'); break;
        case 'b': sb_appendc(out, '\b'); break;
        case 'f': sb_appendc(out, '\f'); break;
        case 'n': sb_appendc(out, '\n'); break;
        case 'r': sb_appendc(out, '\r'); break;
        case 't': sb_appendc(out, '\t'); break;
        case 'v': sb_appendc(out, '\v'); break;
        case '\\': sb_appendc(out, '\\'); break;
        default:
            if (c >= '0' && c <= '7') {
                int v = 0, n = 0;
                while (n < 3 && p[0] >= '0' && p[0] <= '7') {
                    v = v * 8 + (p[0] - '0');
                    p++;
                    n++;
                }
                p--;
                if (v == 0 || v > 255)
                    return -1;
                sb_appendc(out, (char)v);
                break;
            }
            return -1;          /* a lone backslash at the end or an unknown escape */
        }
    }
    return out->len > 0 && out->len <= 8 ? 0 : -1;
}

static int parse_size(const char *value, unsigned long long *limit, struct strbuf *err)
{
    char *end;
    if (!isdigit((unsigned char)*value)) {
        sb_appendf(err, "size=%s: not a number of bytes", value);
        return -1;
    }
    unsigned long long v = strtoull(value, &end, 10);
    if (*end) {
        sb_appendf(err, "size=%s: not a number of bytes", value);
        return -1;
    }
    *limit = v;
    return 0;
}

static void attr_set(char **slot, const char *value)
{
    free(*slot);
    *slot = xstrdup(value);
}

int pipe_attr_parse(char **words, int nwords, struct pipe_attr *a, struct strbuf *err)
{
    memset(a, 0, sizeof(*a));
    a->eol = xstrdup("\n");
    a->null_sender = xstrdup("MAILER-DAEMON");
    for (int i = 0; i < nwords; i++) {
        const char *w = words[i], *eq = strchr(w, '=');
        size_t nlen = eq ? (size_t)(eq - w) : 0;
        const char *v = eq ? eq + 1 : "";
#define IS(name) (eq && nlen == strlen(name) && strncmp(w, name, nlen) == 0)
        if (IS("argv")) {
            if (pipe_command_parse_argv(words, nwords, i, (size_t)nwords, &a->argv, &a->argc, err) < 0)
                return -1;
            break;
        } else if (IS("flags")) {
            if (parse_flags(v, &a->flags, err) < 0)
                return -1;
        } else if (IS("user")) {
            if (pipe_command_parse_user(v, &a->user, &a->group, err) < 0)
                return -1;
        } else if (IS("size")) {
            if (parse_size(v, &a->size_limit, err) < 0)
                return -1;
        } else if (IS("eol")) {
            struct strbuf e = STRBUF_INIT(64);
            int rc = pipe_attr_unescape(v, &e);
            if (rc == 0)
                attr_set(&a->eol, sb_str(&e));
            sb_free(&e);
            if (rc < 0) {
                sb_appendf(err, "eol=%s: expected a short text with \\r, \\n and the like", v);
                return -1;
            }
        } else if (IS("null_sender")) {
            attr_set(&a->null_sender, v);
        } else if (IS("directory")) {
            if (*v != '/') {
                sb_appendf(err, "directory=%s: must be an absolute path", v);
                return -1;
            }
            attr_set(&a->directory, v);
        } else {
            sb_appendf(err, "unknown command attribute \"%s\" (expected flags=, user=, size=, "
                       "eol=, null_sender=, directory= and, last, argv=)", w);
            return -1;
        }
#undef IS
    }
    return pipe_command_parse_end(a->argv, a->user, err);
}

void pipe_attr_free(struct pipe_attr *a)
{
    FREE_ALL(a->user, a->group, a->eol, a->null_sender, a->directory);
    str_array_free(a->argv, a->argc);
    memset(a, 0, sizeof(*a));
}
