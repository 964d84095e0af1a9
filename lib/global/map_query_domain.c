/* map_query_domain.c: the "domain" parameter of the database tables'
 * query files: a list of domain names, /file/names and type:name tables
 * (a match list, lib/global/match_list.h, as sqlite_table(5) and
 * pgsql_table(5) describe it) that limits the keys a table queries to
 * user@domain addresses in those domains, so that most keys cost no round
 * trip to the database. */
#include <stdlib.h>
#include <string.h>

#include "map_query.h"
#include "match_list.h"
#include "strbuf.h"
#include "util.h"

struct match_list *map_query_domains_open(const char *value, struct strbuf *err)
{
    struct match_list *list = match_list_open("domain", value, MATCH_DOMAINS, 0, err);
    if (list && match_list_count(list) == 0) {
        match_list_free(list);
        list = NULL;
    }
    return list;
}

int map_query_domains_allow(const struct match_list *d, const char *key)
{
    if (!d)
        return 1;
    const char *at = strrchr(key, '@');
    if (!at || at == key || !at[1])
        return 0;
    char *domain = str_lower(xstrdup(at + 1));
    int rc = match_list_domain(d, domain);
    free(domain);
    return rc;
}
