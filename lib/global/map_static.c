/* map_static.c: the static: table type, as Postfix has it: every key is
 * found, and the value is the table's name. "static:{ text with spaces }"
 * gives the text between the braces with its surrounding white space
 * removed, so a value can hold spaces and commas inside a main.cf list. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "maps_impl.h"
#include "util.h"

static int static_lookup(struct map *m, const char *key, struct strbuf *result)
{
    (void)key;
    return sb_appends(result, m->priv) < 0 ? -1 : 1;
}

static void static_close(struct map *m)
{
    free(m->priv);
}

int map_static_open(struct map *m, struct strbuf *err)
{
    const char *name = m->name;
    size_t len = strlen(name);
    if (name[0] == '{') {
        if (len < 2 || name[len - 1] != '}') {
            sb_appendf(err, "static table \"%.100s\": missing '}' (static:{ text })", m->spec);
            return -1;
        }
        char *text = xstrndup(name + 1, len - 2);
        char *trimmed = str_trim(text);
        m->priv = xstrdup(trimmed);
        free(text);
    } else {
        m->priv = xstrdup(name);
    }
    m->lookup = static_lookup;
    m->close = static_close;
    return 0;
}
