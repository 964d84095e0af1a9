/* endpoint.h: the address of a service as a configuration names it, for
 * a client to connect to. */
#ifndef TERN_ENDPOINT_H
#define TERN_ENDPOINT_H

#include <stdbool.h>
#include <sys/socket.h>

/* spec as "unix:PATH" or "/PATH" (a UNIX-domain socket; a relative PATH is
 * taken from the working directory), "inet:HOST:PORT", "HOST:PORT",
 * "[HOST]:PORT", or a PORT alone or with an empty HOST (then on
 * local_host), resolved now into *addr and *addrlen. false when it is
 * malformed, too long or does not resolve. */
bool endpoint_resolve(const char *spec, const char *local_host, struct sockaddr_storage *addr,
                      socklen_t *addrlen);

#endif
