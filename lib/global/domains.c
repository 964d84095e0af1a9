/* domains.c: the domain lists of main.cf (mydestination, relay_domains,
 * myorigin) normalized once, for the resolver (lib/global/resolve.c). */
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "config.h"
#include "domains.h"
#include "log.h"
#include "util.h"

static struct {
    char **mydestination;
    size_t nmydestination;
    char **relay_domains;
    size_t nrelay_domains;
    char *myorigin;
} dl;

/* Entries that are lookup tables or files are not supported yet and are
 * skipped with a warning. */
static char **domain_list(const char *param, const char *value, size_t *count)
{
    size_t n = 0;
    char **words = cfg_list_split(value, &n);
    char **out = xcalloc(n + 1, sizeof(*out));
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (strchr(words[i], ':') || words[i][0] == '/') {
            msg_warn("%s: entry \"%s\" ignored: lookup tables and files are not supported yet",
                     param, words[i]);
            continue;
        }
        out[used++] = address_domain_normalize(words[i]);
    }
    cfg_list_free(words, n);
    *count = used;
    return out;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        free(list[i]);
    free(list);
}

void domains_init(void)
{
    free_list(dl.mydestination, dl.nmydestination);
    free_list(dl.relay_domains, dl.nrelay_domains);
    free(dl.myorigin);
    dl.mydestination = domain_list("mydestination", cfg_str(P_mydestination), &dl.nmydestination);
    dl.relay_domains = domain_list("relay_domains", cfg_str(P_relay_domains), &dl.nrelay_domains);
    const char *o = cfg_str(P_myorigin);
    const char *at = strrchr(o, '@');
    dl.myorigin = address_domain_normalize(at ? at + 1 : o);
}

bool domain_is_local(const char *domain)
{
    for (size_t i = 0; i < dl.nmydestination; i++)
        if (strcmp(dl.mydestination[i], domain) == 0)
            return true;
    return false;
}

bool domain_is_relay(const char *domain)
{
    size_t dlen = strlen(domain);
    for (size_t i = 0; i < dl.nrelay_domains; i++) {
        const char *e = dl.relay_domains[i];
        bool sub_only = e[0] == '.';
        const char *base = sub_only ? e + 1 : e;
        size_t blen = strlen(base);
        if (blen == 0 || blen > dlen)
            continue;
        if (!sub_only && dlen == blen && strcmp(domain, base) == 0)
            return true;
        if (dlen > blen && domain[dlen - blen - 1] == '.' && strcmp(domain + dlen - blen, base) == 0)
            return true;
    }
    return false;
}

const char *domain_myorigin(void)
{
    return dl.myorigin ? dl.myorigin : "";
}
