/* master_listen.c: the listening sockets master opens itself, before any
 * daemon runs: TCP for inet services, UNIX-domain sockets (unix, pass) and
 * named pipes (fifo) under the queue directory's private/ and public/. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "strbuf.h"
#include "util.h"

#define MASTER_LISTEN_BACKLOG 1024

/* Which address families inet_protocols allows. */
static void inet_families(bool *v4, bool *v6)
{
    size_t n;
    char **words = cfg_list_split(cfg_str(P_inet_protocols), &n);
    *v4 = *v6 = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(words[i], "all") == 0)
            *v4 = *v6 = true;
        else if (strcmp(words[i], "ipv4") == 0)
            *v4 = true;
        else if (strcmp(words[i], "ipv6") == 0)
            *v6 = true;
    }
    cfg_list_free(words, n);
    if (!*v4 && !*v6)
        *v4 = *v6 = true;
}

static const char *bind_hint(int err)
{
    switch (err) {
    case EADDRINUSE: return " (another program listens there already)";
    case EACCES: return " (ports below 1024 need root)";
    case EADDRNOTAVAIL: return " (no such address on this host)";
    default: return "";
    }
}

/* socket, bind and listen on one address; -1 with errno set. */
static int listen_on(const struct sockaddr *sa, socklen_t salen, bool v6only)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1, only = v6only;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof(only));
    if (bind(fd, sa, salen) < 0 || listen(fd, MASTER_LISTEN_BACKLOG) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* No host: every address. One IPv6 socket takes IPv4 too; without IPv6 on
 * this host, fall back to IPv4 alone. */
static int listen_any(const char *name, unsigned short port, struct strbuf *err)
{
    bool v4, v6;
    inet_families(&v4, &v6);
    int fd = -1;
    if (v6) {
        struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
                                   .sin6_addr = IN6ADDR_ANY_INIT };
        fd = listen_on((struct sockaddr *)&a6, sizeof(a6), !v4);
        if (fd >= 0 || !v4 || (errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL))
            goto done;
    }
    struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_ANY) };
    fd = listen_on((struct sockaddr *)&a4, sizeof(a4), false);
done:
    if (fd < 0)
        sb_appendf(err, "cannot listen on %s: %s%s", name, strerror(errno), bind_hint(errno));
    return fd;
}

/* A host name or address: the first of its addresses that binds, IPv4
 * first (a client that finds both tries them all; one that has only IPv4
 * should not be left out). */
static int listen_host(const char *name, const char *host, const char *port, struct strbuf *err)
{
    bool v4, v6;
    inet_families(&v4, &v6);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                              .ai_family = v4 && v6 ? AF_UNSPEC : v4 ? AF_INET : AF_INET6 };
    struct addrinfo *res;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai) {
        sb_appendf(err, "cannot listen on %s: host %s: %s", name, host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, saved = 0, count = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        count++;
    for (int pass = 0; pass < 2 && fd < 0; pass++)
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            if ((ai->ai_family == AF_INET) != (pass == 0))
                continue;
            fd = listen_on(ai->ai_addr, ai->ai_addrlen, true);
            saved = errno;
            if (fd >= 0 && count > 1) {
                char addr[NI_MAXHOST] = "?";
                getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0,
                            NI_NUMERICHOST);
                msg_warn("service %s: host %s has %d addresses; listening on %s only "
                         "(write one line per address to use the others)", name, host, count,
                         addr);
            }
        }
    freeaddrinfo(res);
    if (fd < 0)
        sb_appendf(err, "cannot listen on %s: %s%s", name, strerror(saved), bind_hint(saved));
    return fd;
}

/* inet_interfaces for a service without an address of its own: "all"
 * (one socket for every address), "loopback-only", or addresses and host
 * names, one socket each ([::1] or ::1 for IPv6). Fills fds; their count,
 * or -1 with err (every socket opened so far is closed again). */
static int listen_interfaces(const char *name, const char *port, unsigned short num,
                             int fds[], struct strbuf *err)
{
    bool v4, v6;
    inet_families(&v4, &v6);
    size_t n;
    char **words = cfg_list_split(cfg_str(P_inet_interfaces), &n);
    int count = 0;
    if (n == 0 || (n == 1 && strcmp(words[0], "all") == 0)) {
        fds[0] = listen_any(name, num, err);
        count = fds[0] < 0 ? -1 : 1;
        goto done;
    }
    if (n == 1 && strcmp(words[0], "loopback-only") == 0) {
        const char *list[2];
        size_t k = 0;
        if (v4)
            list[k++] = "127.0.0.1";
        if (v6)
            list[k++] = "::1";
        for (size_t i = 0; i < k; i++) {
            struct strbuf why = STRBUF_INIT(1024);
            char label[300];
            snprintf(label, sizeof(label), strchr(list[i], ':') ? "[%s]:%s" : "%s:%s", list[i],
                     port);
            int fd = listen_host(label, list[i], port, &why);
            /* a host without IPv6 still listens on 127.0.0.1 */
            if (fd < 0 && i == 1 && count == 1 && v4) {
                msg_warn("inet_interfaces = loopback-only: %s; IPv4 only", sb_str(&why));
                sb_free(&why);
                break;
            }
            if (fd < 0) {
                sb_appends(err, sb_str(&why));
                sb_free(&why);
                count = -1;
                goto done;
            }
            sb_free(&why);
            fds[count++] = fd;
        }
        goto done;
    }
    if (n > MASTER_LISTEN_MAX) {
        sb_appendf(err, "inet_interfaces: more than %d addresses", MASTER_LISTEN_MAX);
        count = -1;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        char *host = words[i];
        size_t len = strlen(host);
        if (host[0] == '[' && len > 2 && host[len - 1] == ']') {
            host[len - 1] = 0;
            host++;
        }
        if (strcmp(host, "all") == 0 || strcmp(host, "loopback-only") == 0) {
            sb_appendf(err, "inet_interfaces: \"%s\" must stand alone", host);
            count = -1;
            goto done;
        }
        /* named as "address:port" in messages: the service name has no address */
        char label[300];
        snprintf(label, sizeof(label), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
        int fd = listen_host(label, host, port, err);
        if (fd < 0) {
            count = -1;
            goto done;
        }
        fds[count++] = fd;
    }
done:
    if (count < 0)
        for (int i = 0; i < MASTER_LISTEN_MAX && fds[i] >= 0; i++) {
            close(fds[i]);
            fds[i] = -1;
        }
    cfg_list_free(words, n);
    return count;
}

static int open_inet(struct service *svc, struct strbuf *err)
{
    char host[256], port[16];
    const char *name = svc->cfg.name;
    long num;
    if (mastercf_inet_split(name, host, sizeof(host), port, sizeof(port)) < 0
        || parse_long(port, 1, 65535, &num) < 0) {
        sb_appendf(err, "master.cf:%d: service %s: bad inet address", svc->cfg.lineno, name);
        return -1;
    }
    if (*host) {
        svc->listen_fds[0] = listen_host(name, host, port, err);
        return svc->listen_fds[0] < 0 ? -1 : 1;
    }
    for (int i = 0; i < MASTER_LISTEN_MAX; i++)
        svc->listen_fds[i] = -1;
    return listen_interfaces(name, port, (unsigned short)num, svc->listen_fds, err);
}

/* The names below live in private/ and public/, which mail_owner owns, so
 * everything done to them by name runs as mail_owner (master_privs.c) and
 * every socket and fifo is created with its final owner and mode (the
 * umask): root never chmods, chowns or opens a name there, where a link
 * could be put in place of a new socket between its bind() and a chmod().
 * The directory (private/ 0700, public/ 0710) is the protection, so the
 * socket or fifo itself is open to all. */
#define LISTEN_UMASK 0111     /* sockets 0666, fifos 0622 */

/* A stale socket or fifo from an earlier run is removed, and so is a
 * symbolic link (never one of ours: removing it as mail_owner is harmless
 * and keeps a planted one from blocking the start); anything else at that
 * name is left alone and reported. */
static int remove_stale(const char *path, struct strbuf *err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        sb_appendf(err, "cannot stat %s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISLNK(st.st_mode))
        msg_warn("%s is a symbolic link, which Tern never makes there; removing it", path);
    else if (!S_ISSOCK(st.st_mode) && !S_ISFIFO(st.st_mode)) {
        sb_appendf(err, "%s exists and is not a socket or fifo; remove it", path);
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        sb_appendf(err, "cannot remove stale %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int open_unix(const char *path, struct strbuf *err)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (str_copy(sun.sun_path, sizeof(sun.sun_path), path) >= sizeof(sun.sun_path)) {
        sb_appendf(err, "socket path %s is too long", path);
        return -1;
    }
    if (remove_stale(path, err) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0
        || listen(fd, MASTER_LISTEN_BACKLOG) < 0) {
        sb_appendf(err, "cannot listen on %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Opened read-write so that the pipe never reports end-of-file when the
 * last writer goes away (which would make it readable for ever); never
 * through a link, and only the fifo mail_owner just made. */
static int open_fifo(const struct master_params *p, const char *path, struct strbuf *err)
{
    if (remove_stale(path, err) < 0)
        return -1;
    if (mkfifo(path, 0622) < 0) {
        sb_appendf(err, "cannot create fifo %s: %s", path, strerror(errno));
        return -1;
    }
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        sb_appendf(err, "cannot open fifo %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode) || st.st_uid != p->owner_uid) {
        sb_appendf(err, "fifo %s was replaced while it was being opened; not using it", path);
        close(fd);
        return -1;
    }
    return fd;
}

static int open_local(const struct master_params *p, const struct service *svc,
                      const char *path, struct strbuf *err)
{
    master_owner_begin(p);
    mode_t old = umask(LISTEN_UMASK);
    int fd = svc->cfg.kind == SVC_FIFO ? open_fifo(p, path, err) : open_unix(path, err);
    umask(old);
    master_owner_end(p);
    return fd;
}

int master_open_listener(const struct master_params *p, struct service *svc, struct strbuf *err)
{
    const char *path = strchr(svc->listen_id, ':') + 1;
    int count = -1;
    switch (svc->cfg.kind) {
    case SVC_INET:
        count = open_inet(svc, err);
        break;
    case SVC_UNIX:
    case SVC_PASS:
    case SVC_FIFO:
        svc->listen_fds[0] = open_local(p, svc, path, err);
        count = svc->listen_fds[0] < 0 ? -1 : 1;
        break;
    }
    if (count <= 0)
        return -1;
    svc->nlisten = count;
    /* Several children wait on one listener; the losers must not block. */
    for (int i = 0; i < count; i++)
        set_nonblock(svc->listen_fds[i], true);
    msg_debug("service %s: listening on %s (%d socket%s)", svc->key, svc->listen_id, count,
              count == 1 ? "" : "s");
    return 0;
}

/* The file is removed as mail_owner too, with the settings master runs on. */
void master_close_listener(struct service *svc, bool remove_file)
{
    if (svc->nlisten == 0)
        return;
    for (int i = 0; i < svc->nlisten; i++)
        close(svc->listen_fds[i]);
    svc->nlisten = 0;
    if (remove_file && svc->cfg.kind != SVC_INET) {
        master_owner_begin(&ms.p);
        unlink(strchr(svc->listen_id, ':') + 1);
        master_owner_end(&ms.p);
    }
}
