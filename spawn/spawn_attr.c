/* spawn_attr.c: the command attributes of a spawn service in master.cf:
 * user=USER[:GROUP], then argv= with the command, an absolute path,
 * whose remaining words are its arguments. Anything else is an error that
 * names the word, so that a typing mistake never runs a different command
 * or runs it as someone else. */
#include <stdlib.h>
#include <string.h>

#include "pipe_command.h"
#include "spawn.h"
#include "util.h"

int spawn_attr_parse(char **words, int nwords, struct spawn_attr *a, struct strbuf *err)
{
    memset(a, 0, sizeof(*a));
    for (int i = 0; i < nwords; i++) {
        const char *w = words[i];
        if (strncmp(w, "argv=", 5) == 0) {
            if (pipe_command_parse_argv(words, nwords, i, SPAWN_ARGS_MAX, &a->argv, &a->argc, err) < 0)
                return -1;
            break;
        } else if (strncmp(w, "user=", 5) == 0) {
            if (pipe_command_parse_user(w + 5, &a->user, &a->group, err) < 0)
                return -1;
        } else {
            sb_appendf(err, "unknown attribute \"%.100s\" (spawn takes user= and argv=)", w);
            return -1;
        }
    }
    return pipe_command_parse_end(a->argv, a->user, err);
}

void spawn_attr_free(struct spawn_attr *a)
{
    FREE_ALL(a->user, a->group);
    str_array_free(a->argv, a->argc);
    memset(a, 0, sizeof(*a));
}
