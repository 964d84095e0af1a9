/* smtp.h: what the files of the SMTP client delivery agent share: its
 * settings, one delivery request with its recipients and their outcomes,
 * one SMTP session, and the functions each file offers the others:
 * smtp_request.c (the delivery protocol with qmgr, marking, logging),
 * smtp_connect.c (next hop, MX and address lookups, connecting),
 * smtp_cache.c (one session kept open between requests), smtp_io.c
 * (reply and command I/O with deadlines, in clear or through TLS),
 * smtp_proto.c (the SMTP dialogue), smtp_tls.c (STARTTLS: policy,
 * handshake, certificate checks), smtp_dane.c (what DNSSEC and TLSA
 * records make of the dane levels for each server), smtp_sts.c (MTA-STS
 * policies: fetch, cache, checks), smtp_tlsrpt.c (the TLS session
 * records of RFC 8460 reporting) and smtp_sasl.c (AUTH to a server).
 * The same binary is the LMTP client when run as "lmtp" (smtp_cfg.lmtp):
 * LHLO, no MX lookups, UNIX-domain next hops, one reply per recipient
 * after the content, and lmtp_* parameters (smtp_param()). */
#ifndef TERN_SMTP_H
#define TERN_SMTP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "config.h"
#include "deliver_request.h"
#include "queue.h"
#include "smtp_nexthop.h"
#include "smtp_reply.h"
#include "smtp_policy.h"
#include "sts_policy.h"
#include "strbuf.h"
#include "tlsrpt.h"

struct dns_resolver;
struct dns_tlsa;
struct maplist;
struct ssl_st;
struct ssl_ctx_st;

#define SMTP_REASON_MAX 4096     /* one recipient's reason text */
#define SMTP_RELAY_MAX 512       /* "host[addr]:port" */
#define SMTP_LINE_MAX 4096       /* one command we send */

enum smtp_family_pref { SMTP_PREF_ANY, SMTP_PREF_IPV4, SMTP_PREF_IPV6 };

struct smtp_settings {
    bool lmtp;                           /* LMTP mode: the program runs as "lmtp" */
    const char *myhostname;
    const char *helo_name;
    int port;                            /* default port of remote servers */
    bool bind4_set, bind6_set;
    struct sockaddr_in bind4;            /* smtp_bind_address */
    struct sockaddr_in6 bind6;           /* smtp_bind_address6 */
    int connect_timeout;                 /* 0: the kernel's own limit (lmtp_connect_timeout = 0) */
    int helo_timeout, mail_timeout, rcpt_timeout;
    int data_init_timeout, data_xfer_timeout, data_done_timeout, quit_timeout;
    int rset_timeout;
    bool cache_on_demand;                /* smtp_connection_cache_on_demand */
    int cache_time_limit;                /* idle seconds of a cached session */
    int reuse_time_limit;                /* seconds from connect after which it is not cached again */
    long reuse_count_limit;              /* reuses of one session, 0: no limit */
    long mx_address_limit, mx_session_limit;   /* 0: no limit */
    bool skip_5xx_greeting;
    bool want_v4, want_v6;               /* inet_protocols */
    enum smtp_family_pref family_pref;
    struct dns_resolver *dns;
    bool dnssec;                         /* smtp_dns_support_level = dnssec */
    size_t ipc_frame_limit;
    int ipc_timeout;
    /* TLS (smtp_tls.c) */
    struct ssl_ctx_st *tls_ctx;          /* NULL: not made yet, or unavailable (smtp_tls_ready) */
    enum smtp_tls_level tls_level;       /* smtp_tls_security_level */
    struct maplist *tls_policy_maps;
    unsigned tls_protocols, tls_mandatory_protocols;
    const char *tls_ciphers, *tls_mandatory_ciphers;
    const char *tls_exclude_ciphers, *tls_mandatory_exclude_ciphers;
    const char *tls_verify_cert_match, *tls_secure_cert_match;
    const char *tls_servername;
    int tls_loglevel;
    int starttls_timeout;
    int tls_session_cache_timeout;
    /* SASL (smtp_sasl.c) */
    bool sasl_enable;
    struct maplist *sasl_password_maps;
    unsigned sasl_mechanism_filter;      /* SMTP_AUTH_*; all when the filter is empty */
    unsigned sasl_options, sasl_tls_options, sasl_tls_verified_options;
    bool sasl_soft_bounce;
};
extern struct smtp_settings smtp_cfg;

/* May a REQUIRETLS message go over a session at this level (a verified
 * certificate, RFC 8689 section 4.2.1)? smtp_connect.c */
bool smtp_requiretls_level_ok(enum smtp_tls_level level);

/* The parameter to read for the smtp_* parameter id: in LMTP mode its
 * lmtp_* twin (lmtp_lhlo_* for smtp_helo_*) when Tern has one, else id
 * itself (settings both share, such as smtp_dns_servers); and its name,
 * for messages. Every setting of this agent is read through these. */
enum param_id smtp_param(enum param_id id);
const char *smtp_param_name(enum param_id id);

/* A recipient of the request and what became of it. */
struct smtp_rcpt {
    const char *address, *orcpt, *notify;   /* into the request frame */
    char *rcpt_to;                          /* what RCPT TO names: the address with
                                               its sender routing resolved */
    off_t offset;                           /* of its R record */
    int status;                             /* 0 undecided, 2, 4 or 5 */
    char dsn[SMTP_DSN_SIZE];
    struct strbuf reason;
    struct strbuf relay;                    /* where the outcome came from, "none" */
    bool accepted;                          /* RCPT TO got 2xx in this session */
    bool notify_passed;                     /* ... with NOTIFY, to a server offering DSN */
    unsigned conn_use;                      /* >= 2: decided on the Nth use of a reused session */
    bool already_done;                      /* a D record already: never touched */
    char probe_dsn[SMTP_DSN_SIZE];          /* a probe's accepted RCPT TO: its DSN, */
    char *probe_reply;                      /* ... and its reply on one line */
};

/* What holds for one server while it is being tried: at level dane its
 * usable TLSA records (smtp_dane.c), their base domain (the host name, or
 * where its CNAME records led) and the host name; whether it is under the
 * next hop's MTA-STS policy (not authenticated by DANE, which wins); and
 * for TLS reporting (smtp_tlsrpt.c) a failure of that policy found before
 * its session (mode testing: an MX host the policy does not name),
 * reported with the session's outcome (TLSRPT_SUCCESS: none). All zero
 * between servers. */
struct smtp_attempt {
    const struct dns_tlsa *dane_tlsa;
    size_t dane_ntlsa;
    const char *dane_host;
    const char *dane_name;
    bool sts_session;
    enum tlsrpt_result tlsrpt_pending;
};

struct smtp_request {
    /* from qmgr: queue_id, queue_path, transport, nexthop and sender are
     * dr's; the recipients are the agent's own view of dr's */
    struct deliver_request *dr;
    struct smtp_rcpt *rcpts;
    size_t nrcpt;
    /* the next hop, parsed, and the TLS policy that applies to it */
    struct smtp_nexthop nh;
    struct smtp_tls_policy tls;
    /* what holds for the server being tried, reset after each */
    struct smtp_attempt attempt;
    /* whether the next hop's MX records were validated (then the next
     * hop's name is a reference identifier too) */
    bool dane_mx_secure;
    /* the next hop's MTA-STS policy (smtp_sts.c), NULL when it has none in
     * mode testing or enforce; sts_session: the server being tried is
     * under it (not authenticated by DANE, which wins) */
    struct sts_policy *sts;
    char sts_id[STS_ID_MAX + 1];
    char sts_domain[256];
    /* from the queue file */
    int qfd;                                /* dr's descriptor, -1 until opened */
    off_t content_offset;
    struct smtp_content_info content;
    bool body_8bitmime;                     /* declared BODY=8BITMIME */
    bool smtputf8;                          /* declared SMTPUTF8 */
    char *envid, *ret;                      /* DSN envelope parameters, NULL when absent */
    /* RFC 8689: the message came with MAIL FROM ... REQUIRETLS (passed on
     * to servers that offer it); for a sender other than <> that is also
     * a requirement (enforced): verified TLS to a server that offers
     * REQUIRETLS, or the message is returned (not in LMTP mode: final
     * delivery). "TLS-Required: No" in a
     * message without REQUIRETLS lowers the TLS policy to may. */
    bool requiretls;
    bool requiretls_enforced;
    long long arrival_usec;
    /* timing */
    long long start_usec;                   /* request read */
    long long xfer_start_usec;              /* MAIL FROM of the last session, 0 if none */
    /* for qmgr: every server failed before a transaction (or a temporary
     * DNS failure), and the recipients were deferred for it */
    bool site_failed;
};

/* One connection to a remote server. */
struct smtp_session {
    int fd;
    char host[256];                         /* the name we looked up, or the address */
    char addr[SMTP_UNIX_PATH_MAX];          /* the address, or a UNIX-domain socket's path */
    int port;                               /* 0: a UNIX-domain socket */
    char name[SMTP_RELAY_MAX];              /* "host[addr]", for reasons */
    char desc[SMTP_RELAY_MAX];              /* "host[addr]:port" or "host[path]", the relay= field */
    struct strbuf in;                       /* bytes read, not yet parsed */
    struct strbuf out;                      /* commands waiting to be written */
    struct smtp_reply reply;                /* the last reply read */
    unsigned features;                      /* SMTP_FEAT_* from EHLO */
    unsigned auth_mechs;                    /* SMTP_AUTH_* the server offers */
    unsigned long long size_limit;          /* SIZE from EHLO, 0 = none */
    const char *io_error;                   /* why the last read/write failed (static text) */
    bool timed_out;
    bool skip_to_lf;                        /* dropping the tail of a cut reply line */
    bool server_closing;                    /* the server answered 421 */
    bool reusable;                          /* the last transaction ended cleanly, every
                                               reply read: another one may follow */
    long long connected_usec;               /* when the connection was made */
    unsigned uses;                          /* requests it served, the current one included */
    /* TLS */
    struct ssl_st *ssl;                     /* non-NULL once STARTTLS succeeded */
    bool tls_off;                           /* plaintext retry after a failed handshake */
    bool tls_retry_plain;                   /* the handshake failed where plaintext may follow */
    bool tls_dead;                          /* a TLS error: no further TLS I/O, no shutdown */
    bool tls_trusted;                       /* the chain verified against our CAs */
    bool tls_matched;                       /* ... and a name matched the policy's */
    enum smtp_tls_level tls_level;          /* the policy the session was checked under */
    enum smtp_tls_level tls_policy;         /* the next hop's policy level when it was made
                                               (dane levels: the cache reuses it only for
                                               the same policy) */
    bool tls_dane;                          /* authenticated by DANE TLSA records */
    bool tls_sts;                           /* the certificate passed the MTA-STS checks */
    bool authenticated;                     /* AUTH succeeded */
    /* TLS reporting (smtp_tlsrpt.c): the session's TLS outcome under a
     * policy: the first failure with its reason, or a TLS session that
     * passed the policy's checks */
    enum tlsrpt_result rpt_result;
    char rpt_reason[TLSRPT_REASON_MAX + 1];
    bool rpt_tls_ok;
};

/* ---- smtp_request.c ---- */
void smtp_serve(int fd);
/* Give recipient i an outcome unless it already has one: status 2/4/5,
 * dsn X.Y.Z, relay (NULL: "none") and the reason text. */
void smtp_rcpt_set(struct smtp_request *rq, size_t i, int status, const char *dsn,
                   const char *relay, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The same for every recipient still undecided. */
void smtp_rcpt_set_all(struct smtp_request *rq, int status, const char *dsn, const char *relay,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
size_t smtp_undecided(const struct smtp_request *rq);

/* ---- smtp_connect.c ---- */
/* Resolve the next hop and try its servers in order until one session
 * decides; every recipient has an outcome afterwards. */
void smtp_deliver(struct smtp_request *rq);

/* ---- smtp_cache.c ---- */
/* The session kept by an earlier request for rq's transport and next hop,
 * if it is still open: true and *s filled (its use count raised). A cached
 * session for another key is closed with QUIT. */
bool smtp_cache_take(const struct smtp_request *rq, struct smtp_session *s);
/* The session that decided rq's recipients; the cache owns it afterwards
 * and frees it unless it is reusable. */
void smtp_cache_offer(const struct smtp_request *rq, struct smtp_session *s);
/* After the results are reported: keep the offered session (RSET) when the
 * limits allow, else QUIT. */
void smtp_cache_settle(void);
/* When the idle cached session must be closed (now_usec() time, 0: none),
 * closing it then, and closing it before exit. */
long long smtp_cache_deadline(void);
void smtp_cache_expire(void);
void smtp_cache_close(void);

/* ---- smtp_proto.c ---- */
enum smtp_session_result {
    SMTP_SESSION_DONE,       /* every recipient was decided by this server */
    SMTP_SESSION_NEXT,       /* this server failed before the transaction: try the next */
};
/* The dialogue on a connected session. For SMTP_SESSION_NEXT, *why and
 * dsn describe the failure (the outcome if no other server does better). */
enum smtp_session_result smtp_session_run(struct smtp_session *s, struct smtp_request *rq,
                                          struct strbuf *why, char dsn[SMTP_DSN_SIZE]);
/* The same on a session that already carried a transaction: straight to
 * MAIL FROM with the features it offered. */
enum smtp_session_result smtp_session_reuse(struct smtp_session *s, struct smtp_request *rq,
                                            struct strbuf *why, char dsn[SMTP_DSN_SIZE]);
/* RSET: true when the server answered 2xx within smtp_rset_timeout. */
bool smtp_session_reset(struct smtp_session *s);
/* QUIT and its reply, within timeout seconds; best effort. */
void smtp_session_quit(struct smtp_session *s, int timeout);

/* ---- smtp_tls.c ---- */
/* As root, before chroot: the OpenSSL context and the CA certificates.
 * A CA file that cannot be loaded leaves the TLS engine unavailable. */
void smtp_tls_init(void);
/* The TLS engine can start a session (its context is made at the first
 * call when no file was needed at start-up). */
bool smtp_tls_ready(void);
void smtp_tls_exit(void);
/* The policy for rq's next hop (rq->nh parsed): smtp_tls_security_level,
 * overridden by smtp_tls_policy_maps. 0 ok; -1 when the recipients were
 * deferred for a table or policy problem. */
int smtp_tls_policy_find(struct smtp_request *rq);
/* The TLS handshake on s after the server's 2XX to STARTTLS, then the
 * certificate checks the policy demands. 0 ok (s->ssl set, the
 * connection logged); -1 with the reason in why, dsn set: the handshake
 * failed (s->tls_dead: no QUIT), or the certificate did not pass (QUIT
 * is still possible). */
int smtp_tls_start(struct smtp_session *s, const struct smtp_request *rq, struct strbuf *why,
                   char dsn[SMTP_DSN_SIZE]);
/* Whether a cached session s is good enough for the policy of rq. */
bool smtp_tls_session_fits(const struct smtp_session *s, const struct smtp_request *rq);
/* Close TLS on s: close_notify when the connection is healthy, then free. */
void smtp_tls_stop(struct smtp_session *s);

/* ---- smtp_dane.c ---- */
/* What one server's DNS makes of a dane or dane-only policy (RFC 7672),
 * kept per host name for the addresses of one delivery. */
struct smtp_dane_host {
    char host[256];                 /* "": nothing looked up yet */
    char base[256];                 /* the TLSA base domain: host, or where its CNAMEs led */
    int status;                     /* 0 usable; 4: this server must not be used */
    enum smtp_tls_level level;      /* the session's level: may, encrypt or dane */
    struct dns_tlsa *tlsa;          /* usable records (level dane) */
    size_t ntlsa;
    char dsn[SMTP_DSN_SIZE];
    struct strbuf reason;           /* why not (status 4) */
    enum tlsrpt_result rpt;         /* TLS reporting: a refusal's result type, or
                                       tlsa-invalid for records that exist but are
                                       unusable (level encrypt); SUCCESS: none */
};
void smtp_dane_host_init(struct smtp_dane_host *d);
void smtp_dane_host_free(struct smtp_dane_host *d);
/* Decide for host (secure: its MX and address records were validated;
 * canonical: where its CNAME records led, "" or NULL for none) under rq's
 * dane policy, looking up _PORT._tcp TLSA records once per host.
 * d->status 4 means: skip this server (the reason says why; never a
 * fall-back to clear text). */
void smtp_dane_decide(struct smtp_request *rq, const char *host, const char *canonical, int port,
                      bool secure, struct smtp_dane_host *d);
/* Whether TLSA record t can authenticate an SMTP server (RFC 7672
 * section 3.1: DANE-TA(2) or DANE-EE(3), selector Cert(0) or SPKI(1),
 * matching Full(0), SHA2-256(1) or SHA2-512(2) with the digest's length). */
bool smtp_dane_usable(const struct dns_tlsa *t);

/* ---- smtp_sts.c ---- */
/* As root, before any chroot: libcurl, the CA certificates (read into
 * memory) and the data_directory descriptor; after the privilege drop:
 * the policy cache directory inside it. */
void smtp_sts_init(void);
void smtp_sts_post_init(void);
void smtp_sts_exit(void);
/* The MTA-STS policy of rq's next-hop domain (smtp_mta_sts = yes, a
 * domain with MX lookup, TLS level may, encrypt or dane): rq->sts from the
 * cache or fetched anew; mode enforce raises the level to encrypt. */
void smtp_sts_find(struct smtp_request *rq);
/* "MTA-STS policy of DOMAIN: mode M, id ID, mx: P1, P2" for reasons. */
void smtp_sts_describe(const struct smtp_request *rq, struct strbuf *out);
/* Whether the server's certificate chain is valid (PKIX: smtp_tls_CAfile
 * and the system's CA certificates) for host; why says what failed. */
bool smtp_sts_cert_valid(struct ssl_st *ssl, const char *host, struct strbuf *why,
                         long *verify_error);

/* ---- smtp_tlsrpt.c ---- */
/* As root, before any chroot (smtp_tls_report_enable = yes, not LMTP):
 * the data_directory descriptor; after the privilege drop: the records
 * directory inside it. */
void smtp_tlsrpt_init(void);
void smtp_tlsrpt_post_init(void);
void smtp_tlsrpt_exit(void);
/* The first TLS failure of session s under a policy, with its reason
 * (cut to TLSRPT_REASON_MAX); later ones do not replace it. */
void smtp_tlsrpt_fail(struct smtp_session *s, enum tlsrpt_result result, const char *reason);
/* The TLS outcome of session s (to rq's server, under the policy that
 * applied to it: DANE TLSA records or MTA-STS), appended to the day's
 * records; nothing when no policy applied or TLS was never tried. */
void smtp_tlsrpt_session(const struct smtp_request *rq, const struct smtp_session *s);
/* A failure before any session: for server host[addr] (NULL: none was
 * tried), under DANE (tlsa: the records found, may be none) or under
 * rq's MTA-STS policy. */
void smtp_tlsrpt_failure(const struct smtp_request *rq, enum tlsrpt_policy_type type,
                         const struct dns_tlsa *tlsa, size_t ntlsa, const char *host,
                         const char *addr, int port, enum tlsrpt_result result, const char *reason);

/* A failure to get the MTA-STS policy of domain (fetch error, invalid
 * policy, HTTPS certificate not valid) when no cached policy stands in. */
void smtp_tlsrpt_sts_failure(const char *domain, enum tlsrpt_result result, const char *reason);

/* ---- smtp_sasl.c ---- */
/* As root, before chroot: the settings and the password tables. */
void smtp_sasl_init(void);
void smtp_sasl_exit(void);
enum smtp_sasl_result {
    SMTP_SASL_SKIPPED,      /* no AUTH wanted or possible: go on without it */
    SMTP_SASL_OK,           /* authenticated */
    SMTP_SASL_FAILED,       /* *why, dsn and status (4 or 5) say why; the session is finished */
};
/* The credentials for s (remote host name, then the next hop as written):
 * 1 found (*user and *password are allocated; free with smtp_sasl_free),
 * 0 none, -1 table lookup error. */
int smtp_sasl_lookup(const struct smtp_session *s, const struct smtp_request *rq, char **user,
                     char **password);
void smtp_sasl_free(char *user, char *password);
/* AUTH on a session whose EHLO reply is in s->reply (features parsed). */
enum smtp_sasl_result smtp_sasl_authenticate(struct smtp_session *s, const struct smtp_request *rq,
                                             struct strbuf *why, char dsn[SMTP_DSN_SIZE],
                                             int *status);

/* ---- smtp_io.c ---- */
void smtp_session_init(struct smtp_session *s, int fd, const char *host, const char *addr, int port);
void smtp_session_free(struct smtp_session *s);
/* Read one whole reply into s->reply within timeout seconds. 0 ok; -1 on
 * timeout, EOF, error or a malformed reply (s->io_error says which). */
int smtp_read_reply(struct smtp_session *s, int timeout);
/* Queue a command line (CRLF added) / write everything queued. */
int smtp_queue_command(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for a line that carries a secret: debug logs show only "shown". */
int smtp_queue_secret(struct smtp_session *s, const char *shown, const char *line);
int smtp_flush(struct smtp_session *s, int timeout);
/* Write len bytes within timeout seconds (content). 0 ok, -1 as above. */
int smtp_write(struct smtp_session *s, const void *data, size_t len, int timeout);

#endif
