/* endpoint.c: the address of a service as a configuration names it
 * (a policy server, a proxy filter), resolved once so that each later
 * connection is made without a lookup. */
#include <netdb.h>
#include <string.h>
#include <sys/un.h>

#include "endpoint.h"
#include "util.h"

bool endpoint_resolve(const char *spec, const char *local_host, struct sockaddr_storage *addr,
                      socklen_t *addrlen)
{
    memset(addr, 0, sizeof(*addr));
    const char *path = strncmp(spec, "unix:", 5) == 0 ? spec + 5 : spec[0] == '/' ? spec : NULL;
    if (path) {
        struct sockaddr_un *sun = (struct sockaddr_un *)addr;
        sun->sun_family = AF_UNIX;
        if (!*path || str_copy(sun->sun_path, sizeof(sun->sun_path), path) >= sizeof(sun->sun_path))
            return false;
        *addrlen = sizeof(*sun);
        return true;
    }
    if (strncmp(spec, "inet:", 5) == 0)
        spec += 5;
    char host[256] = "";
    const char *port = spec;
    if (strchr(spec, ':') && hostport_split(spec, host, sizeof(host), &port) < 0)
        return false;
    if (!*port)
        return false;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    if (getaddrinfo(*host ? host : local_host, port, &hints, &res) != 0 || !res)
        return false;
    bool fits = res->ai_addrlen <= sizeof(*addr);
    if (fits) {
        memcpy(addr, res->ai_addr, res->ai_addrlen);
        *addrlen = res->ai_addrlen;
    }
    freeaddrinfo(res);
    return fits;
}
