/* map_module.c: the table types whose client libraries are large (pgsql:
 * libpq with Kerberos and OpenSSL; ldap: libldap with GnuTLS, SASL and
 * their dependencies) live in the loadable modules map_pgsql.so and
 * map_ldap.so (module.h), loaded the first time a process opens such a
 * table, as with Postfix's dynamic maps. Tables are opened before a
 * chroot and before the system call filter, so the loading happens
 * outside both. */
#include <stdio.h>

#include "maps_impl.h"
#include "module.h"

typedef int (*map_open_fn)(struct map *m, struct strbuf *err);

int map_module_open(const char *type, struct map *m, struct strbuf *err)
{
    char file[64], symbol[64];
    snprintf(file, sizeof(file), "map_%s.so", type);
    snprintf(symbol, sizeof(symbol), "map_%s_open", type);
    void *handle = module_load(file, err);
    if (!handle)
        return -1;
    map_open_fn open_fn;
    *(void **)&open_fn = module_symbol(handle, file, symbol, err);
    return open_fn ? open_fn(m, err) : -1;
}
