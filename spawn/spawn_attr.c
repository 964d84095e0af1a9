/* spawn_attr.c: the command attributes of a spawn service in master.cf:
 * user=USER[:GROUP], then argv= with the command, an absolute path,
 * whose remaining words are its arguments. Anything else is an error that
 * names the word, so that a typing mistake never runs a different command
 * or runs it as someone else. */
#include <stdlib.h>
#include <string.h>

#include "spawn.h"
#include "util.h"

static int parse_user(const char *value, struct spawn_attr *a, struct strbuf *err)
{
    const char *colon = strchr(value, ':');
    if (!*value || colon == value || (colon && !colon[1])) {
        sb_appendf(err, "user=%s: expected user=USER or user=USER:GROUP", value);
        return -1;
    }
    free(a->user);
    free(a->group);
    a->user = colon ? xstrndup(value, (size_t)(colon - value)) : xstrdup(value);
    a->group = colon ? xstrdup(colon + 1) : NULL;
    return 0;
}

int spawn_attr_parse(char **words, int nwords, struct spawn_attr *a, struct strbuf *err)
{
    memset(a, 0, sizeof(*a));
    for (int i = 0; i < nwords; i++) {
        const char *w = words[i];
        if (strncmp(w, "argv=", 5) == 0) {
            const char *v = w + 5;
            if (!*v) {
                sb_appends(err, "argv= names no command");
                return -1;
            }
            if (*v != '/') {
                sb_appendf(err, "argv=%s: the command must be an absolute path (it is executed "
                           "directly, without a shell or a PATH search)", v);
                return -1;
            }
            if (nwords - i > SPAWN_ARGS_MAX) {
                sb_appendf(err, "argv=%s: more than %d words", v, SPAWN_ARGS_MAX);
                return -1;
            }
            a->argc = (size_t)(nwords - i);
            a->argv = xcalloc(a->argc + 1, sizeof(char *));
            a->argv[0] = xstrdup(v);
            for (int j = i + 1; j < nwords; j++)
                a->argv[j - i] = xstrdup(words[j]);
            break;
        } else if (strncmp(w, "user=", 5) == 0) {
            if (parse_user(w + 5, a, err) < 0)
                return -1;
        } else {
            sb_appendf(err, "unknown attribute \"%.100s\" (spawn takes user= and argv=)", w);
            return -1;
        }
    }
    if (!a->user) {
        sb_appends(err, "user= is required: name the unprivileged account the command runs as");
        return -1;
    }
    if (!a->argv) {
        sb_appends(err, "argv= is required: name the command, as the last attribute");
        return -1;
    }
    return 0;
}

void spawn_attr_free(struct spawn_attr *a)
{
    free(a->user);
    free(a->group);
    for (size_t i = 0; a->argv && i < a->argc; i++)
        free(a->argv[i]);
    free(a->argv);
    memset(a, 0, sizeof(*a));
}
