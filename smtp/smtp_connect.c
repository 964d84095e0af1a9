/* smtp_connect.c: from a next hop to a delivered (or decided) request: the
 * next hop is parsed ("[host]:port" and "[host]" skip the MX lookup, a
 * domain gets one), MX hosts are taken in preference order with random
 * order among equals, the domain's own addresses are used when it has no
 * MX, a null MX returns the mail, and each address is tried in turn (bound
 * to smtp_bind_address*, within smtp_connect_timeout) until a server's
 * session decides the recipients or the limits are reached. A session kept
 * by an earlier request for the same next hop (smtp_cache.c) goes first
 * when it satisfies the next hop's TLS policy. Under a dane policy each
 * server's DNSSEC status and TLSA records decide its session's TLS level
 * (smtp_dane.c); where none do, the next hop's MTA-STS policy decides
 * which MX hosts may be used (smtp_sts.c). In LMTP mode the next hop is
 * "unix:PATH" (one UNIX-domain socket) or a host, never an MX lookup. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dns.h"
#include "log.h"
#include "smtp.h"
#include "util.h"

#define SMTP_TARGETS_MAX 100      /* addresses considered per delivery, whatever the limits say */

struct smtp_target {
    char host[DNS_NAME_MAX + 1];
    char canonical[DNS_NAME_MAX + 1];   /* where host's CNAME records led, "" if none */
    struct dns_addr addr;
    bool secure;            /* the MX and address records that led here were validated */
};

struct target_list {
    struct smtp_target *t;
    size_t n, cap;
};

/* Why no server could be reached, for the recipients if nothing better turns up. */
struct failure {
    int status;
    char dsn[SMTP_DSN_SIZE];
    struct strbuf reason;
    char relay[SMTP_RELAY_MAX];
    bool site;              /* the site failed (connect, greeting, EHLO, DNS try-again),
                               not the domain (no such name) or the transaction */
};

static void failure_set(struct failure *f, bool site, int status, const char *dsn,
                        const char *relay, const char *reason)
{
    f->site = site;
    f->status = status;
    str_copy(f->dsn, sizeof(f->dsn), dsn);
    str_copy(f->relay, sizeof(f->relay), relay ? relay : "none");
    sb_set(&f->reason, reason);
}

/* ---- building the list of addresses ---- */

static void target_add(struct target_list *l, const char *host, const char *canonical,
                       const struct dns_addr *a, bool secure)
{
    if (l->n >= SMTP_TARGETS_MAX)
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->t = xrealloc(l->t, l->cap * sizeof(*l->t));
    }
    str_copy(l->t[l->n].host, sizeof(l->t[l->n].host), host);
    str_copy(l->t[l->n].canonical, sizeof(l->t[l->n].canonical), canonical);
    l->t[l->n].addr = *a;
    l->t[l->n].secure = secure;
    l->n++;
}

/* Whether family goes first for this host (smtp_address_preference). */
static bool family_first(int family)
{
    switch (smtp_cfg.family_pref) {
    case SMTP_PREF_IPV4: return family == AF_INET;
    case SMTP_PREF_IPV6: return family == AF_INET6;
    default: return false;
    }
}

/* Add host's addresses in the preferred family order. */
static void targets_of_host(struct target_list *l, const char *host, const char *canonical,
                            const struct dns_addr *a, size_t n, bool secure)
{
    int first = AF_INET6;
    if (family_first(AF_INET) || (smtp_cfg.family_pref == SMTP_PREF_ANY && random() % 2))
        first = AF_INET;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if ((a[i].family == first) == (pass == 0))
                target_add(l, host, canonical, &a[i], secure);
}

/* Random order among MX hosts of equal preference (already sorted). */
static void shuffle_equal_preferences(struct dns_mx *mx, size_t n)
{
    for (size_t start = 0; start < n;) {
        size_t end = start + 1;
        while (end < n && mx[end].preference == mx[start].preference)
            end++;
        for (size_t i = end - 1; i > start; i--) {
            size_t j = start + (size_t)random() % (i - start + 1);
            struct dns_mx tmp = mx[i];
            mx[i] = mx[j];
            mx[j] = tmp;
        }
        start = end;
    }
}

/* Addresses of one host; the failure is remembered when nothing is found.
 * mx_secure: the records that named the host were validated. */
static void resolve_host(struct target_list *l, const char *host, bool mx_secure, struct failure *f)
{
    bool secure = false;
    char canonical[DNS_NAME_MAX + 1];
    struct dns_addr *addrs;
    size_t n;
    struct strbuf why = STRBUF_INIT(512), text = STRBUF_INIT(1024);
    enum dns_status st = dns_lookup_addr(smtp_cfg.dns, host, smtp_cfg.want_v4, smtp_cfg.want_v6,
                                         &addrs, &n, &secure, canonical, &why);
    if (st == DNS_OK) {
        targets_of_host(l, host, canonical, addrs, n, mx_secure && secure);
        free(addrs);
    } else if (f->status == 0 || st == DNS_TEMPFAIL) {
        sb_appendf(&text, "Host or domain name not found. Name service error for name=%s type=%s: %s",
                   host, smtp_cfg.want_v4 ? "A" : "AAAA", sb_str(&why));
        failure_set(f, st == DNS_TEMPFAIL, 4, st == DNS_TEMPFAIL ? "4.4.3" : "4.4.4", NULL,
                    sb_str(&text));
    }
    sb_free(&why);
    sb_free(&text);
}

/* MX lookup for a domain. 0 with targets; -1 when the recipients got their outcome. */
static int resolve_mx(struct smtp_request *rq, const struct smtp_nexthop *nh, struct target_list *l,
                      struct failure *f)
{
    struct dns_mx *mx;
    size_t n;
    struct strbuf why = STRBUF_INIT(512);
    bool secure = false;
    enum dns_status st = dns_lookup_mx(smtp_cfg.dns, nh->host, &mx, &n, &secure, &why);
    rq->dane_mx_secure = secure;
    int rc = 0;
    if (st == DNS_OK) {
        size_t usable = 0;
        shuffle_equal_preferences(mx, n);
        for (size_t i = 0; i < n; i++)
            if (mx[i].host[0]) {
                usable++;
                resolve_host(l, mx[i].host, secure, f);
            }
        if (usable == 0) {
            smtp_rcpt_set_all(rq, 5, "5.1.10", NULL, "Domain %s does not accept mail (nullMX)", nh->host);
            rc = -1;
        }
        free(mx);
    } else if (st == DNS_NODATA) {
        resolve_host(l, nh->host, secure, f);   /* no MX: the domain's own address */
        if (l->n == 0 && f->status && strcmp(f->dsn, "4.4.4") == 0) {
            smtp_rcpt_set_all(rq, 5, "5.4.4", NULL, "%s", sb_str(&f->reason));
            rc = -1;
        }
    } else {
        rq->site_failed = st == DNS_TEMPFAIL;
        smtp_rcpt_set_all(rq, st == DNS_NOTFOUND ? 5 : 4, st == DNS_NOTFOUND ? "5.1.2" : "4.4.3", NULL,
                          "Host or domain name not found. Name service error for name=%s type=MX: %s",
                          nh->host, sb_str(&why));
        rc = -1;
    }
    sb_free(&why);
    return rc;
}

/* ---- connecting ---- */

static int bind_source(int fd, int family)
{
    if (family == AF_INET && smtp_cfg.bind4_set)
        return bind(fd, (const struct sockaddr *)&smtp_cfg.bind4, sizeof(smtp_cfg.bind4));
    if (family == AF_INET6 && smtp_cfg.bind6_set)
        return bind(fd, (const struct sockaddr *)&smtp_cfg.bind6, sizeof(smtp_cfg.bind6));
    return 0;
}

/* Connect within smtp_connect_timeout. The socket stays non-blocking. */
static int connect_addr(const struct dns_addr *a, int port)
{
    struct sockaddr_storage ss = { 0 };
    socklen_t len;
    if (a->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((unsigned short)port);
        sin->sin_addr = a->u.v4;
        len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((unsigned short)port);
        sin6->sin6_addr = a->u.v6;
        len = sizeof(*sin6);
    }
    int fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    /* Every write here is a whole command batch or a large content chunk;
     * without this the final "." waits for the delayed ACK of the content
     * (Nagle), about 40 ms per message. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind_source(fd, a->family) < 0)
        goto fail;
    if (connect(fd, (struct sockaddr *)&ss, len) == 0)
        return fd;
    if (errno != EINPROGRESS)
        goto fail;
    struct pollfd pfd = { fd, POLLOUT, 0 };
    int rc;
    int wait_ms = smtp_cfg.connect_timeout > 0 ? smtp_cfg.connect_timeout * 1000 : -1;
    while ((rc = poll(&pfd, 1, wait_ms)) < 0 && errno == EINTR)
        ;
    if (rc == 0)
        errno = ETIMEDOUT;
    int err = 0;
    socklen_t elen = sizeof(err);
    if (rc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)
        return fd;
    if (rc > 0)
        errno = err ? err : ECONNREFUSED;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* A session on the connected fd. true when it decided the recipients
 * (the session then goes to the cache); otherwise the failure is
 * remembered, *reached tells whether it got as far as a transaction and
 * *retry_plain whether the same server may be tried again without TLS. */
static bool try_session(struct smtp_request *rq, int fd, const char *host, const char *addr,
                        int port, bool plain, struct failure *f, bool *reached, bool *retry_plain)
{
    struct smtp_session s;
    char dsn[SMTP_DSN_SIZE];
    struct strbuf why = STRBUF_INIT(SMTP_REASON_MAX);
    smtp_session_init(&s, fd, host, addr, port);
    s.tls_off = plain;
    s.tls_policy = rq->tls.level;
    long long before = rq->xfer_start_usec;
    enum smtp_session_result r = smtp_session_run(&s, rq, &why, dsn);
    smtp_tlsrpt_session(rq, &s);
    *reached = rq->xfer_start_usec != before;
    *retry_plain = false;
    if (r == SMTP_SESSION_DONE) {
        smtp_cache_offer(rq, &s);
    } else {
        *retry_plain = s.tls_retry_plain && !plain;
        if (rq->attempt.sts_session && rq->sts->mode == STS_ENFORCE) {
            sb_appends(&why, " (");
            smtp_sts_describe(rq, &why);
            sb_appends(&why, ")");
        }
        msg_info("%s: %s%s", rq->dr->queue_id, sb_str(&why),
                 *retry_plain ? "; trying again without TLS" : "");
        /* a 5.X.X here is REQUIRETLS's (smtp_proto.c): this server can never
         * take the message; the next one may */
        int status = dsn[0] == '5' ? 5 : 4;
        failure_set(f, !*reached && status == 4, status, dsn, s.desc, sb_str(&why));
        smtp_session_free(&s);
    }
    sb_free(&why);
    return r == SMTP_SESSION_DONE;
}

/* Under an MTA-STS policy (and not DANE, which wins where a server has
 * usable TLSA records, RFC 8461 section 2): in mode enforce only MX hosts
 * the policy names, with TLS; in mode testing the same checks are only
 * logged. -1 when this server must not be used (the failure set). */
static int sts_check_host(struct smtp_request *rq, const char *host, const char *addr, int port,
                          struct failure *f)
{
    rq->attempt.sts_session = rq->sts && rq->tls.level != SMTP_TLS_DANE;
    if (!rq->attempt.sts_session)
        return 0;
    bool enforce = rq->sts->mode == STS_ENFORCE;
    if (enforce && rq->tls.level < SMTP_TLS_ENCRYPT)
        rq->tls.level = SMTP_TLS_ENCRYPT;      /* a dane policy's server without TLSA records */
    if (sts_mx_match(rq->sts, host))
        return 0;
    struct strbuf why = STRBUF_INIT(SMTP_REASON_MAX);
    sb_appendf(&why, "MX host %s does not match the ", host);
    smtp_sts_describe(rq, &why);
    if (!enforce) {
        msg_info("%s: %s; delivering anyway (mode testing)", rq->dr->queue_id, sb_str(&why));
        rq->attempt.tlsrpt_pending = TLSRPT_VALIDATION_FAILURE;     /* reported with the session */
        sb_free(&why);
        return 0;
    }
    msg_info("%s: %s", rq->dr->queue_id, sb_str(&why));
    smtp_tlsrpt_failure(rq, TLSRPT_POLICY_STS, NULL, 0, host, addr, port, TLSRPT_VALIDATION_FAILURE,
                        "MX host not named by the MTA-STS policy");
    failure_set(f, true, 4, "4.7.5", NULL, sb_str(&why));
    rq->attempt.sts_session = false;
    sb_free(&why);
    return -1;
}

/* Try the addresses in order; stop when a session decided the recipients.
 * When opportunistic TLS fails in the handshake, the same address is
 * tried once more without TLS, as Postfix does; that second try counts
 * against no limit. */
static void try_targets(struct smtp_request *rq, const struct target_list *l, int port,
                        struct failure *f)
{
    long sessions = 0;
    bool plain_retry = false;
    struct strbuf why = STRBUF_INIT(SMTP_REASON_MAX);
    enum smtp_tls_level policy = rq->tls.level;
    bool dane = policy == SMTP_TLS_DANE || policy == SMTP_TLS_DANE_ONLY;
    struct smtp_dane_host dh;
    smtp_dane_host_init(&dh);
    for (size_t i = 0; i < l->n; i += plain_retry ? 0 : 1) {
        if (!plain_retry && smtp_cfg.mx_address_limit > 0 && (long)i >= smtp_cfg.mx_address_limit)
            break;
        if (!plain_retry && smtp_cfg.mx_session_limit > 0 && sessions >= smtp_cfg.mx_session_limit)
            break;
        char addr[INET6_ADDRSTRLEN];
        dns_addr_text(&l->t[i].addr, addr, sizeof(addr));
        rq->attempt.tlsrpt_pending = TLSRPT_SUCCESS;
        if (dane) {
            /* The session's level for this server; the policy comes back after it. */
            smtp_dane_decide(rq, l->t[i].host, l->t[i].canonical, port, l->t[i].secure, &dh);
            if (dh.rpt != TLSRPT_SUCCESS)
                smtp_tlsrpt_failure(rq, TLSRPT_POLICY_TLSA, dh.tlsa, dh.ntlsa, l->t[i].host, addr,
                                    port, dh.rpt, dh.status ? sb_str(&dh.reason)
                                    : "no usable DANE TLSA records");
            if (dh.status) {
                msg_info("%s: %s", rq->dr->queue_id, sb_str(&dh.reason));
                failure_set(f, true, 4, dh.dsn, NULL, sb_str(&dh.reason));
                plain_retry = false;
                continue;
            }
            if (rq->requiretls_enforced && !smtp_requiretls_level_ok(dh.level)) {
                sb_reset(&why);
                sb_appendf(&why, "REQUIRETLS: host %s has no DANE TLSA records to authenticate it",
                           l->t[i].host);
                msg_info("%s: %s", rq->dr->queue_id, sb_str(&why));
                failure_set(f, false, 5, "5.7.10", NULL, sb_str(&why));
                plain_retry = false;
                continue;
            }
            rq->tls.level = dh.level;
            rq->attempt.dane_tlsa = dh.tlsa;
            rq->attempt.dane_ntlsa = dh.ntlsa;
            rq->attempt.dane_host = dh.host;
            rq->attempt.dane_name = dh.base;
        }
        if (sts_check_host(rq, l->t[i].host, addr, port, f) < 0) {
            plain_retry = false;
            rq->tls.level = policy;
            continue;
        }
        int fd = connect_addr(&l->t[i].addr, port);
        if (fd < 0) {
            sb_reset(&why);
            sb_appendf(&why, "connect to %s[%s]:%d: %s", l->t[i].host, addr, port, strerror(errno));
            msg_info("%s: %s", rq->dr->queue_id, sb_str(&why));
            failure_set(f, true, 4, "4.4.1", NULL, sb_str(&why));
            plain_retry = false;
            continue;
        }
        bool reached;
        bool done = try_session(rq, fd, l->t[i].host, addr, port, plain_retry, f, &reached,
                                &plain_retry);
        rq->tls.level = policy;
        rq->attempt = (struct smtp_attempt){ .tlsrpt_pending = TLSRPT_SUCCESS };
        if (done)
            break;
        if (reached)
            sessions++;
    }
    rq->tls.level = policy;
    smtp_dane_host_free(&dh);
    sb_free(&why);
}

/* Connect to an LMTP server's UNIX-domain socket (a relative path is under
 * queue_directory, the working directory). The socket stays non-blocking. */
static int connect_unix(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    /* A UNIX-domain connect does not wait: it succeeds or fails at once
     * (EAGAIN when the server's backlog is full: try again later). */
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
        return fd;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* LMTP over a UNIX-domain socket: the server is this host, named
 * myhostname in the logs ("relay=myhostname[private/dovecot-lmtp]"). */
static void try_unix(struct smtp_request *rq, const char *path, struct failure *f)
{
    bool plain = false, reached, retry_plain = false;
    if (rq->tls.level >= SMTP_TLS_DANE) {
        /* No DNS names this server: no TLSA records can apply to it. */
        struct smtp_dane_host dh;
        smtp_dane_host_init(&dh);
        smtp_dane_decide(rq, smtp_cfg.myhostname, NULL, 0, false, &dh);
        rq->tls.level = dh.level;
        if (dh.status) {
            msg_info("%s: %s", rq->dr->queue_id, sb_str(&dh.reason));
            failure_set(f, true, 4, dh.dsn, NULL, sb_str(&dh.reason));
        }
        smtp_dane_host_free(&dh);
        if (f->status)
            return;
    }
    for (int attempt = 0; attempt < 2 && (attempt == 0 || retry_plain); attempt++) {
        int fd = connect_unix(path);
        if (fd < 0) {
            struct strbuf why = STRBUF_INIT(SMTP_REASON_MAX);
            sb_appendf(&why, "connect to %s[%s]: %s", smtp_cfg.myhostname, path, strerror(errno));
            msg_info("%s: %s", rq->dr->queue_id, sb_str(&why));
            failure_set(f, true, 4, "4.4.1", NULL, sb_str(&why));
            sb_free(&why);
            return;
        }
        if (try_session(rq, fd, smtp_cfg.myhostname, path, 0, plain, f, &reached, &retry_plain))
            return;
        plain = true;
    }
}

/* The session an earlier request for this transport and next hop left
 * open: straight to MAIL FROM. true when it decided the recipients. When it
 * fails before any recipient is decided (mostly: the server closed it just
 * now), it is as if it had never been there and a fresh connection follows. */
static bool deliver_cached(struct smtp_request *rq)
{
    struct smtp_session s;
    if (!smtp_cache_take(rq, &s))
        return false;     /* none, or not good enough for this request's TLS policy */
    for (size_t i = 0; i < rq->nrcpt; i++)
        if (!rq->rcpts[i].status)
            rq->rcpts[i].conn_use = s.uses;
    struct strbuf why = STRBUF_INIT(SMTP_REASON_MAX);
    char dsn[SMTP_DSN_SIZE];
    bool done = smtp_session_reuse(&s, rq, &why, dsn) == SMTP_SESSION_DONE;
    if (done) {
        smtp_cache_offer(rq, &s);
    } else {
        msg_debug("%s: cached session failed: %s; trying a new connection", rq->dr->queue_id,
                  sb_str(&why));
        smtp_session_free(&s);
        for (size_t i = 0; i < rq->nrcpt; i++)
            if (!rq->rcpts[i].status)
                rq->rcpts[i].conn_use = 0;
        rq->xfer_start_usec = 0;
    }
    sb_free(&why);
    return done;
}

bool smtp_requiretls_level_ok(enum smtp_tls_level level)
{
    return level == SMTP_TLS_VERIFY || level == SMTP_TLS_SECURE || level == SMTP_TLS_DANE
           || level == SMTP_TLS_DANE_ONLY;
}

/* RFC 8689 section 4.2.1: a REQUIRETLS message goes only to a server whose
 * certificate is verified. A policy that verifies none (none, may,
 * encrypt) can never carry it: the message is returned at once, without a
 * connection. The dane levels and MTA-STS in enforce mode decide per
 * server (try_targets, smtp_sts.c). LMTP is final delivery into a mailbox
 * store (RFC 2033), where the requirement passes to the protocols that
 * read the mailbox (RFC 8689 section 4.4): it is not held to it, and names
 * REQUIRETLS to a server that offers it. */
static bool requiretls_refused(struct smtp_request *rq)
{
    if (smtp_cfg.lmtp)
        rq->requiretls_enforced = false;
    if (!rq->requiretls_enforced || rq->nh.path[0] || smtp_requiretls_level_ok(rq->tls.level))
        return false;
    /* an MTA-STS policy in enforce mode lets only servers through whose
     * certificate verified for their MX name (smtp_sts.c) */
    if (rq->sts && rq->sts->mode == STS_ENFORCE)
        return false;
    msg_info("%s: REQUIRETLS: TLS security level %s for %s does not authenticate the server",
             rq->dr->queue_id, smtp_tls_level_name(rq->tls.level), rq->dr->nexthop);
    smtp_rcpt_set_all(rq, 5, "5.7.10", NULL,
                      "REQUIRETLS: TLS security level %s for %s does not authenticate the server",
                      smtp_tls_level_name(rq->tls.level), rq->dr->nexthop);
    return true;
}

/* The next hop's MTA-STS policy (which may raise its TLS level), then
 * whether a REQUIRETLS message can go there at all. */
static bool sts_then_requiretls_refused(struct smtp_request *rq)
{
    smtp_sts_find(rq);
    return requiretls_refused(rq);
}

void smtp_deliver(struct smtp_request *rq)
{
    struct smtp_nexthop *nh = &rq->nh;
    struct target_list l = { 0 };
    struct failure f = { .status = 0 };
    sb_init(&f.reason, SMTP_REASON_MAX);
    int parsed = smtp_cfg.lmtp ? smtp_lmtp_nexthop_parse(rq->dr->nexthop, smtp_cfg.port, nh)
                               : smtp_nexthop_parse(rq->dr->nexthop, smtp_cfg.port, nh);
    if (parsed < 0) {
        msg_warn("%s: malformed next hop \"%s\" from transport %s", rq->dr->queue_id,
                 rq->dr->nexthop, rq->dr->transport);
        smtp_rcpt_set_all(rq, 4, "4.3.5", NULL, "mail transport configuration error: malformed next hop \"%s\"",
                          rq->dr->nexthop);
    } else if (smtp_tls_policy_find(rq) < 0) {
        ;                                   /* deferred for a table or policy problem */
    } else if (sts_then_requiretls_refused(rq)) {
        ;                                   /* returned: no server could be authenticated */
    } else if (deliver_cached(rq)) {
        goto out;
    } else if (nh->path[0]) {
        try_unix(rq, nh->path, &f);
    } else if (nh->literal) {
        target_add(&l, nh->host, "", &nh->addr, false);
    } else if (!nh->use_mx) {
        resolve_host(&l, nh->host, true, &f);
    } else if (resolve_mx(rq, nh, &l, &f) < 0) {
        l.n = 0;
    }
    if (l.n > 0)
        try_targets(rq, &l, nh->port, &f);
    if (smtp_undecided(rq) > 0) {
        if (!f.status)
            failure_set(&f, true, 4, "4.4.3", NULL, "no server found for the next hop");
        /* No server's answer to a transaction decided: the site itself failed. */
        rq->site_failed = f.site && rq->xfer_start_usec == 0;
        smtp_rcpt_set_all(rq, f.status, f.dsn, f.relay, "%s", sb_str(&f.reason));
    }
out:
    free(l.t);
    sb_free(&f.reason);
}
