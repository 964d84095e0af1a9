/* smtp_sts_fetch.h: the HTTPS GET of an MTA-STS policy, with libcurl,
 * built as the loadable module sts_fetch.so in daemon_directory
 * (smtp_sts_fetch.c). libcurl brings some thirty libraries (GnuTLS,
 * Kerberos, LDAP, SSH, ...) that cost every smtp process CPU at its start
 * and memory all its life; only a process with smtp_mta_sts = yes loads
 * them, before its chroot and system call filter. */
#ifndef TERN_SMTP_STS_FETCH_H
#define TERN_SMTP_STS_FETCH_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;

/* What one fetch is allowed and given. */
struct sts_fetch_request {
    const char *url;            /* https://mta-sts.DOMAIN[:port]/.well-known/mta-sts.txt */
    const char *resolve;        /* "host:port:addr[,addr...]": the only addresses used */
    const char *ca;             /* PEM of the trusted CAs */
    size_t ca_len;
    int timeout;                /* seconds, for connecting and in all */
    size_t size_max;            /* the largest body taken */
};

/* The module's symbols, looked up by these names (STS_FETCH_*_SYMBOL). */
#define STS_FETCH_INIT_SYMBOL "sts_fetch_init"
#define STS_FETCH_GET_SYMBOL "sts_fetch_get"
#define STS_FETCH_EXIT_SYMBOL "sts_fetch_exit"

/* Once, as root before any chroot: 0, or -1 (libcurl cannot start). */
typedef int (*sts_fetch_init_fn)(void);
/* GET the policy into body: 0 when the server gave 200 and text/plain
 * within the bounds; else -1 with why, and *webpki_invalid set when the
 * certificate did not verify (RFC 8460's sts-webpki-invalid). */
typedef int (*sts_fetch_get_fn)(const struct sts_fetch_request *rq, struct strbuf *body,
                                struct strbuf *why, bool *webpki_invalid);
typedef void (*sts_fetch_exit_fn)(void);

int sts_fetch_init(void);
int sts_fetch_get(const struct sts_fetch_request *rq, struct strbuf *body, struct strbuf *why,
                  bool *webpki_invalid);
void sts_fetch_exit(void);

#endif
