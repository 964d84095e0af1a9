/* spawn.h: the spawn daemon's command attributes (spawn_attr.c): what its
 * master.cf service names after the command, user= and argv=, as in
 * Postfix's spawn(8). */
#ifndef TERN_SPAWN_H
#define TERN_SPAWN_H

#include <stddef.h>

#include "strbuf.h"

#define SPAWN_ARGS_MAX 256          /* words of argv= */

struct spawn_attr {
    char *user, *group;             /* user=USER[:GROUP]; group NULL: the user's */
    char **argv;                    /* argv=: command and arguments, NULL-terminated */
    size_t argc;
};

/* Parse the words after "spawn" in master.cf: user= (required) and argv=
 * (required, last: its remaining words are the command's arguments). 0 ok;
 * -1 with the reason in err (a missing or unknown attribute names itself). */
int spawn_attr_parse(char **words, int nwords, struct spawn_attr *a, struct strbuf *err);
void spawn_attr_free(struct spawn_attr *a);

#endif
