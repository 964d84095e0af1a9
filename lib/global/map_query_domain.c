/* map_query_domain.c: the "domain" parameter of the database tables'
 * query files: a list of domain names and type:name tables that limits
 * the keys a table queries to user@domain addresses in those domains, so
 * that most keys cost no round trip to the database server. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "map_query.h"
#include "maps.h"
#include "strbuf.h"
#include "util.h"

struct map_query_domains {
    char **names;          /* lower case, exact matches */
    size_t n;
    struct maplist *tables;
};

struct map_query_domains *map_query_domains_open(const char *value, struct strbuf *err)
{
    size_t n;
    char **words = cfg_list_split(value, &n);
    if (n == 0) {
        cfg_list_free(words, n);
        return NULL;
    }
    struct map_query_domains *d = xcalloc(1, sizeof(*d));
    d->names = xcalloc(n, sizeof(char *));
    struct strbuf specs = STRBUF_INIT(0);
    for (size_t i = 0; i < n; i++) {
        if (strchr(words[i], ':')) {
            sb_appendf(&specs, "%s%s", specs.len ? " " : "", words[i]);
        } else if (words[i][0] == '/') {
            /* Postfix reads a list of names from a file here; a table
             * does the same job with one lookup instead of a scan */
            sb_appendf(err, "domain: \"%.100s\": name a table (texthash:%.100s), not a file",
                       words[i], words[i]);
            cfg_list_free(words, n);
            sb_free(&specs);
            map_query_domains_free(d);
            return NULL;
        } else {
            d->names[d->n++] = str_lower(xstrdup(words[i]));
        }
    }
    cfg_list_free(words, n);
    if (specs.len && !(d->tables = maplist_open(sb_str(&specs), err))) {
        sb_free(&specs);
        map_query_domains_free(d);
        return NULL;
    }
    sb_free(&specs);
    return d;
}

int map_query_domains_allow(struct map_query_domains *d, const char *key)
{
    if (!d)
        return 1;
    const char *at = strrchr(key, '@');
    if (!at || at == key || !at[1])
        return 0;
    char *domain = str_lower(xstrdup(at + 1));
    int rc = 0;
    for (size_t i = 0; i < d->n && !rc; i++)
        rc = strcmp(d->names[i], domain) == 0;
    if (!rc && d->tables) {
        struct strbuf v = STRBUF_INIT(0);
        rc = maplist_lookup(d->tables, domain, &v);
        sb_free(&v);
    }
    free(domain);
    return rc;
}

void map_query_domains_free(struct map_query_domains *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->names[i]);
    free(d->names);
    maplist_close(d->tables);
    free(d);
}
