/* smtp_tls.c: TLS for the SMTP client with OpenSSL 3, in Postfix's terms:
 * the security level of a next hop (smtp_tls_security_level, overridden by
 * smtp_tls_policy_maps), the handshake after STARTTLS within
 * smtp_starttls_timeout on the non-blocking socket, the protocols and
 * cipher grade of the level, SNI, the certificate checks of levels verify
 * and secure (a chain trusted by smtp_tls_CAfile / smtp_tls_CApath and a
 * name matched with X509_check_host, wildcards in the leftmost label only),
 * DANE authentication with the TLSA records smtp_dane.c found (OpenSSL's
 * DANE verifier: DANE-EE and DANE-TA, the MX host and the next hop as the
 * names a DANE-TA chain must match),
 * a client certificate for servers that ask (smtp_tls_cert_file or
 * smtp_tls_chain_files; a changed file makes the process restart),
 * the MTA-STS certificate check (smtp_sts.c),
 * the "... TLS connection established ..." log line, and a small cache of
 * TLS sessions inside the process so that later connections to the same
 * server resume instead of doing a full handshake. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include "config.h"
#include "dns.h"
#include "file_watch.h"
#include "log.h"
#include "maps.h"
#include "smtp.h"
#include "util.h"

#define TLS_CACHE_SLOTS 16          /* sessions kept for resumption */
#define TLS_CIPHERLIST_MAX 2048
#define TLS_MATCH_MAX 20            /* patterns checked per certificate */

/* ---- settings ---- */

static unsigned protocols_setting(enum param_id id)
{
    id = smtp_param(id);
    struct strbuf why = STRBUF_INIT(256);
    unsigned mask;
    if (smtp_tls_protocols_parse(cfg_str(id), &mask, &why) < 0)
        msg_fatal("%s = %s: %s (main.cf)", param_table()[id].name, cfg_str(id), sb_str(&why));
    sb_free(&why);
    return mask;
}

static const char *grade_setting(enum param_id id)
{
    id = smtp_param(id);
    const char *v = cfg_str(id);
    if (!smtp_tls_grade_valid(v))
        msg_fatal("%s = %s: expected high, medium, low, export or null (main.cf)",
                  param_table()[id].name, v);
    return xstrdup(v);
}

static const char *exclude_setting(enum param_id id)
{
    id = smtp_param(id);
    const char *v = cfg_str(id);
    if (!smtp_tls_exclude_valid(v))
        msg_fatal("%s = %s: not a list of cipher names (main.cf)", param_table()[id].name, v);
    return xstrdup(v);
}

/* A main.cf list of match patterns, as one colon-separated string. */
static const char *match_setting(enum param_id id)
{
    id = smtp_param(id);
    size_t n;
    char **words = cfg_list_split(cfg_str(id), &n);
    struct strbuf out = STRBUF_INIT(SMTP_TLS_ATTR_MAX - 1);
    for (size_t i = 0; i < n; i++)
        if ((out.len && sb_appendc(&out, ':') < 0) || sb_appends(&out, words[i]) < 0)
            msg_fatal("%s: value too long (main.cf)", param_table()[id].name);
    cfg_list_free(words, n);
    /* The same checks as a policy's match= attribute. */
    struct smtp_tls_policy probe;
    struct strbuf why = STRBUF_INIT(256), value = STRBUF_INIT(0);
    sb_appendf(&value, "verify match=%s", sb_str(&out));
    if (out.len && smtp_tls_policy_parse(sb_str(&value), &probe, &why) < 0)
        msg_fatal("%s = %s: %s (main.cf)", param_table()[id].name, cfg_str(id), sb_str(&why));
    sb_free(&why);
    sb_free(&value);
    const char *result = xstrdup(sb_str(&out));
    sb_free(&out);
    return result;
}

static void read_settings(void)
{
    struct strbuf why = STRBUF_INIT(256);
    const char *level = cfg_str(smtp_param(P_smtp_tls_security_level));
    if (!*level)
        level = "none";         /* Postfix's empty default (lmtp_tls_security_level) */
    if (smtp_tls_level_parse(level, &smtp_cfg.tls_level, &why) < 0)
        msg_fatal("%s = %s: %s (main.cf)", smtp_param_name(P_smtp_tls_security_level), level,
                  sb_str(&why));
    if (smtp_cfg.tls_level == SMTP_TLS_DANE && !smtp_cfg.dnssec)
        msg_warn("%s = %s: DNSSEC-validated TLSA records are not available without "
                 "%s = dnssec; using level may", smtp_param_name(P_smtp_tls_security_level), level,
                 smtp_param_name(P_smtp_dns_support_level));
    smtp_cfg.tls_protocols = protocols_setting(P_smtp_tls_protocols);
    smtp_cfg.tls_mandatory_protocols = protocols_setting(P_smtp_tls_mandatory_protocols);
    smtp_cfg.tls_ciphers = grade_setting(P_smtp_tls_ciphers);
    smtp_cfg.tls_mandatory_ciphers = grade_setting(P_smtp_tls_mandatory_ciphers);
    smtp_cfg.tls_exclude_ciphers = exclude_setting(P_smtp_tls_exclude_ciphers);
    smtp_cfg.tls_mandatory_exclude_ciphers = exclude_setting(P_smtp_tls_mandatory_exclude_ciphers);
    smtp_cfg.tls_verify_cert_match = match_setting(P_smtp_tls_verify_cert_match);
    smtp_cfg.tls_secure_cert_match = match_setting(P_smtp_tls_secure_cert_match);
    const char *sni = cfg_str(smtp_param(P_smtp_tls_servername));
    struct smtp_tls_policy probe;
    sb_reset(&why);
    struct strbuf value = STRBUF_INIT(0);
    sb_appendf(&value, "may servername=%s", sni);
    if (*sni && (strpbrk(sni, ", \t") || smtp_tls_policy_parse(sb_str(&value), &probe, &why) < 0))
        msg_fatal("%s = %s: not a host name (main.cf)", smtp_param_name(P_smtp_tls_servername), sni);
    sb_free(&value);
    smtp_cfg.tls_servername = xstrdup(sni);
    long loglevel = cfg_int(smtp_param(P_smtp_tls_loglevel));
    smtp_cfg.tls_loglevel = loglevel < 0 ? 0 : loglevel > 4 ? 4 : (int)loglevel;
    long t = cfg_time(smtp_param(P_smtp_starttls_timeout));
    smtp_cfg.starttls_timeout = t < 1 ? 1 : t > 3600 ? 3600 : (int)t;
    t = cfg_time(smtp_param(P_smtp_tls_session_cache_timeout));
    smtp_cfg.tls_session_cache_timeout = t < 0 ? 0 : t > 86400 * 7 ? 86400 * 7 : (int)t;
    const char *maps = cfg_str(smtp_param(P_smtp_tls_policy_maps));
    if (*maps) {
        sb_reset(&why);
        smtp_cfg.tls_policy_maps = maplist_open(maps, &why);
        if (!smtp_cfg.tls_policy_maps)
            msg_fatal("%s: %s (main.cf)", smtp_param_name(P_smtp_tls_policy_maps), sb_str(&why));
    }
    sb_free(&why);
}

/* ---- the session cache ---- */

static struct {
    char *key;
    SSL_SESSION *sess;
    long long expires;
} tls_cache[TLS_CACHE_SLOTS];

static void cache_slot_clear(size_t i)
{
    free(tls_cache[i].key);
    if (tls_cache[i].sess)
        SSL_SESSION_free(tls_cache[i].sess);
    tls_cache[i].key = NULL;
    tls_cache[i].sess = NULL;
}

/* OpenSSL hands over each new session (for TLS 1.3: each ticket, after the
 * handshake); 1 means we keep the reference. */
static int cache_new_session(SSL *ssl, SSL_SESSION *sess)
{
    const char *key = SSL_get_app_data(ssl);
    if (!key || smtp_cfg.tls_session_cache_timeout <= 0 || !SSL_SESSION_is_resumable(sess))
        return 0;
    long long now = now_usec();
    /* The same key's slot, else a free one, else the one expiring first. */
    size_t slot = TLS_CACHE_SLOTS;
    for (size_t i = 0; i < TLS_CACHE_SLOTS && slot == TLS_CACHE_SLOTS; i++)
        if (tls_cache[i].key && strcmp(tls_cache[i].key, key) == 0)
            slot = i;
    for (size_t i = 0; i < TLS_CACHE_SLOTS && slot == TLS_CACHE_SLOTS; i++)
        if (!tls_cache[i].key)
            slot = i;
    if (slot == TLS_CACHE_SLOTS) {
        slot = 0;
        for (size_t i = 1; i < TLS_CACHE_SLOTS; i++)
            if (tls_cache[i].expires < tls_cache[slot].expires)
                slot = i;
    }
    cache_slot_clear(slot);
    tls_cache[slot].key = xstrdup(key);
    tls_cache[slot].sess = sess;
    tls_cache[slot].expires = now + (long long)smtp_cfg.tls_session_cache_timeout * 1000000;
    return 1;
}

static SSL_SESSION *cache_find(const char *key)
{
    long long now = now_usec();
    for (size_t i = 0; i < TLS_CACHE_SLOTS; i++) {
        if (!tls_cache[i].key)
            continue;
        if (tls_cache[i].expires <= now) {
            cache_slot_clear(i);
            continue;
        }
        if (strcmp(tls_cache[i].key, key) == 0)
            return tls_cache[i].sess;
    }
    return NULL;
}

/* ---- the engine ---- */

static void log_openssl_errors(const char *what)
{
    unsigned long code;
    char text[256];
    int n = 0;
    while ((code = ERR_get_error()) != 0 && n++ < 10) {
        ERR_error_string_n(code, text, sizeof(text));
        msg_warn("TLS library problem: %s: %s", what, text);
    }
    ERR_clear_error();
}

/* smtp_tls_chain_files: each file a private key followed by its
 * certificate chain (one key per file; an RSA and an ECDSA file may be
 * listed together). */
static int load_chain_files(SSL_CTX *ctx, const char *list)
{
    size_t n;
    char **files = cfg_list_split(list, &n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        file_watch_add(smtp_param_name(P_smtp_tls_chain_files), files[i]);
        if (SSL_CTX_use_PrivateKey_file(ctx, files[i], SSL_FILETYPE_PEM) != 1
            || SSL_CTX_use_certificate_chain_file(ctx, files[i]) != 1
            || SSL_CTX_check_private_key(ctx) != 1) {
            log_openssl_errors("loading the client certificate");
            msg_warn("cannot load a private key and its certificate chain from %s = %s: "
                     "disabling TLS support", smtp_param_name(P_smtp_tls_chain_files), files[i]);
            rc = -1;
        }
    }
    cfg_list_free(files, n);
    return rc;
}

/* The client context: CA certificates, client certificate, DANE, the
 * session cache. NULL (logged) when OpenSSL or the files refuse. */
static SSL_CTX *make_context(void)
{
    const char *cafile = cfg_str(smtp_param(P_smtp_tls_CAfile)), *capath = cfg_str(smtp_param(P_smtp_tls_CApath));
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        log_openssl_errors("cannot create the TLS client context");
        msg_warn("disabling TLS support in the SMTP client");
        return NULL;
    }
    /* A server's unclean close is an SMTP matter (replies carry their own
     * end); renegotiation and compression are not wanted. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                             | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* The chain is verified in every handshake, but the handshake goes on
     * whatever the result: the level decides afterwards what it requires. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if ((*cafile || *capath)
        && SSL_CTX_load_verify_locations(ctx, *cafile ? cafile : NULL, *capath ? capath : NULL) != 1) {
        log_openssl_errors("loading CA certificates");
        msg_warn("cannot load Certification Authority data, CAfile=\"%s\", CApath=\"%s\": "
                 "disabling TLS support", cafile, capath);
        SSL_CTX_free(ctx);
        return NULL;
    }
    const char *cert = cfg_str(smtp_param(P_smtp_tls_cert_file)), *key = cfg_str(smtp_param(P_smtp_tls_key_file));
    const char *chains = cfg_str(smtp_param(P_smtp_tls_chain_files));
    if (*chains) {
        if (load_chain_files(ctx, chains) < 0) {
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (*cert && (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1
                  || SSL_CTX_use_PrivateKey_file(ctx, *key ? key : cert, SSL_FILETYPE_PEM) != 1
                  || SSL_CTX_check_private_key(ctx) != 1)) {
        log_openssl_errors("loading the client certificate");
        msg_warn("cannot load the client certificate and key from %s = %s, %s = %s: "
                 "disabling TLS support", smtp_param_name(P_smtp_tls_cert_file), cert,
                 smtp_param_name(P_smtp_tls_key_file), key);
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* a changed certificate or key: the next process reads it (as root) */
    if (!*chains && *cert) {
        file_watch_add(smtp_param_name(P_smtp_tls_cert_file), cert);
        file_watch_add(smtp_param_name(P_smtp_tls_key_file), *key ? key : cert);
    }
    /* DANE's digests (RFC 6698: SHA2-256 and SHA2-512) for SSL_dane_enable(). */
    if (SSL_CTX_dane_enable(ctx) <= 0) {
        log_openssl_errors("enabling DANE");
        msg_warn("DANE support is unavailable: servers with TLSA records are not used");
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, cache_new_session);
    return ctx;
}

/* Created at the first STARTTLS (smtp_tls_ready) when no file is needed. */
static bool context_wanted;

void smtp_tls_init(void)
{
    read_settings();
    const char *files[] = { cfg_str(smtp_param(P_smtp_tls_CAfile)), cfg_str(smtp_param(P_smtp_tls_CApath)),
                            cfg_str(smtp_param(P_smtp_tls_cert_file)),
                            cfg_str(smtp_param(P_smtp_tls_chain_files)) };
    bool any_file = false;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        any_file |= *files[i] != 0;
    if (any_file) {
        /* the files are readable only now, as root and before a chroot */
        smtp_cfg.tls_ctx = make_context();
        return;
    }
    /* Without files, the context waits for a server that offers STARTTLS:
     * it costs each process 1.5 ms of CPU and 250 kB, and many processes
     * relay only to servers that offer none. OpenSSL's configuration
     * (system-wide protocol and cipher settings) is read now, while the
     * file is reachable. */
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL);
    context_wanted = true;
}

bool smtp_tls_ready(void)
{
    if (!smtp_cfg.tls_ctx && context_wanted) {
        context_wanted = false;         /* one try: a failure is logged once */
        smtp_cfg.tls_ctx = make_context();
    }
    return smtp_cfg.tls_ctx != NULL;
}

void smtp_tls_exit(void)
{
    for (size_t i = 0; i < TLS_CACHE_SLOTS; i++)
        cache_slot_clear(i);
    if (smtp_cfg.tls_ctx)
        SSL_CTX_free(smtp_cfg.tls_ctx);
    smtp_cfg.tls_ctx = NULL;
    maplist_close(smtp_cfg.tls_policy_maps);
    smtp_cfg.tls_policy_maps = NULL;
}

/* ---- policy ---- */

/* One table lookup: 1 found (p filled), 0 none, -1 with the recipients deferred. */
static int policy_lookup(struct smtp_request *rq, const char *key, struct strbuf *value)
{
    struct strbuf why = STRBUF_INIT(512);
    int rc = maplist_lookup(smtp_cfg.tls_policy_maps, key, value);
    if (rc < 0) {
        msg_warn("%s: TLS policy lookup for %s: table lookup error", rq->dr->queue_id, key);
        smtp_rcpt_set_all(rq, 4, "4.3.0", NULL, "TLS policy table lookup error");
    } else if (rc > 0 && smtp_tls_policy_parse(sb_str(value), &rq->tls, &why) < 0) {
        msg_warn("%s: TLS policy lookup for %s: %s", rq->dr->queue_id, key, sb_str(&why));
        smtp_rcpt_set_all(rq, 4, "4.7.5", NULL, "client TLS configuration problem");
        rc = -1;
    }
    sb_free(&why);
    return rc;
}

/* Without DNSSEC nothing can be known about TLSA records: dane is may, as
 * Postfix has it, and dane-only cannot be honoured (the mail waits). */
static int dane_without_dnssec(struct smtp_request *rq)
{
    if (smtp_cfg.dnssec || rq->tls.level < SMTP_TLS_DANE)
        return 0;
    if (rq->tls.level == SMTP_TLS_DANE) {
        rq->tls.level = SMTP_TLS_MAY;
        return 0;
    }
    msg_warn("%s: TLS policy dane-only for %s needs %s = dnssec", rq->dr->queue_id,
             rq->dr->nexthop, smtp_param_name(P_smtp_dns_support_level));
    smtp_rcpt_set_all(rq, 4, "4.7.5", NULL, "client TLS configuration problem");
    return -1;
}

/* RFC 8689 section 4.2.2: "TLS-Required: No" asks that no TLS requirement
 * (DANE, a policy, a verify level) hold this message back: STARTTLS when
 * offered, in clear otherwise. REQUIRETLS wins over it. */
static void tls_not_required(struct smtp_request *rq)
{
    if (!rq->content.tls_required_no || rq->requiretls || rq->tls.level <= SMTP_TLS_MAY)
        return;
    msg_info("%s: TLS-Required: No: TLS policy %s for %s lowered to may", rq->dr->queue_id,
             smtp_tls_level_name(rq->tls.level), rq->dr->nexthop);
    rq->tls.level = SMTP_TLS_MAY;
}

int smtp_tls_policy_find(struct smtp_request *rq)
{
    memset(&rq->tls, 0, sizeof(rq->tls));
    rq->tls.level = smtp_cfg.tls_level;
    if (!smtp_cfg.tls_policy_maps) {
        int rc = dane_without_dnssec(rq);
        if (rc == 0)
            tls_not_required(rq);
        return rc;
    }
    struct strbuf value = STRBUF_INIT(SMTP_TLS_POLICY_MAX * 2);
    /* The next hop as written; for a domain, then its parent domains as
     * ".example.com" (never the top-level domain alone). */
    int rc = policy_lookup(rq, rq->dr->nexthop, &value);
    if (rc == 0 && rq->nh.use_mx && !strchr(rq->dr->nexthop, ':')) {
        for (const char *dot = strchr(rq->nh.host, '.'); dot && rc == 0; dot = strchr(dot + 1, '.'))
            if (strchr(dot + 1, '.'))
                rc = policy_lookup(rq, dot, &value);
    }
    if (rc > 0 && smtp_cfg.tls_loglevel >= 2)
        msg_info("%s: TLS policy for %s: %s", rq->dr->queue_id, rq->dr->nexthop, sb_str(&value));
    sb_free(&value);
    if (rc == 0)
        rq->tls.level = smtp_cfg.tls_level;
    if (rc >= 0)
        rc = dane_without_dnssec(rq);
    if (rc >= 0)
        tls_not_required(rq);
    return rc < 0 ? -1 : 0;
}

/* ---- the handshake ---- */

/* 0 ready; -1 with the reason in detail (the deadline passed, or poll failed). */
static int wait_fd(int fd, short events, long long deadline_ms, struct strbuf *detail)
{
    for (;;) {
        long long left = deadline_ms - now_usec() / 1000;
        if (left <= 0) {
            sb_appends(detail, "timed out");
            return -1;
        }
        struct pollfd pfd = { fd, events, 0 };
        int rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR) {
            sb_appends(detail, strerror(errno));
            return -1;
        }
    }
}

/* OpenSSL's cipher list for a grade, less the exclusions. */
static int build_cipherlist(const char *grade, const char *const excl[], size_t nexcl, struct strbuf *out)
{
    const char *base = "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH";
    if (str_ieq(grade, "high"))
        base = "aNULL:-aNULL:HIGH:@STRENGTH";
    else if (str_ieq(grade, "null"))
        base = "eNULL:!aNULL";
    if (sb_appends(out, base) < 0)
        return -1;
    for (size_t k = 0; k < nexcl; k++) {
        const char *p = excl[k];
        while (*p) {
            p += strspn(p, ":, \t");
            size_t n = strcspn(p, ":, \t");
            if (n && sb_appendf(out, ":!%.*s", (int)n, p) < 0)
                return -1;
            p += n;
        }
    }
    return 0;
}

static const int proto_versions[][2] = {
    { SMTP_TLS_PROTO_SSLV3, SSL3_VERSION }, { SMTP_TLS_PROTO_TLSV1, TLS1_VERSION },
    { SMTP_TLS_PROTO_TLSV1_1, TLS1_1_VERSION }, { SMTP_TLS_PROTO_TLSV1_2, TLS1_2_VERSION },
    { SMTP_TLS_PROTO_TLSV1_3, TLS1_3_VERSION },
};

static int proto_version(unsigned bit)
{
    for (size_t i = 0; i < sizeof(proto_versions) / sizeof(proto_versions[0]); i++)
        if ((unsigned)proto_versions[i][0] == bit)
            return proto_versions[i][1];
    return 0;
}

/* The protocols of mask on ssl: its bounds, and the gaps between them off. */
static void set_protocols(SSL *ssl, unsigned mask)
{
    unsigned low = smtp_tls_protocols_lowest(mask), high = smtp_tls_protocols_highest(mask);
    SSL_set_min_proto_version(ssl, proto_version(low));
    SSL_set_max_proto_version(ssl, proto_version(high));
    long off = 0;
    if (!(mask & SMTP_TLS_PROTO_TLSV1) && low < SMTP_TLS_PROTO_TLSV1 && high > SMTP_TLS_PROTO_TLSV1)
        off |= SSL_OP_NO_TLSv1;
    if (!(mask & SMTP_TLS_PROTO_TLSV1_1) && low < SMTP_TLS_PROTO_TLSV1_1 && high > SMTP_TLS_PROTO_TLSV1_1)
        off |= SSL_OP_NO_TLSv1_1;
    if (!(mask & SMTP_TLS_PROTO_TLSV1_2) && low < SMTP_TLS_PROTO_TLSV1_2 && high > SMTP_TLS_PROTO_TLSV1_2)
        off |= SSL_OP_NO_TLSv1_2;
    if (off)
        SSL_set_options(ssl, (uint64_t)off);
}

static bool is_ip_literal(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* The SNI name: smtp_tls_servername (or the policy's servername=); empty
 * means the host name at levels verify and secure. NULL: none. */
static const char *server_name(const struct smtp_session *s, const struct smtp_request *rq)
{
    const char *v = rq->tls.has_servername ? rq->tls.servername : smtp_cfg.tls_servername;
    const char *name = NULL;
    if (rq->tls.level == SMTP_TLS_DANE && rq->attempt.dane_name)
        name = rq->attempt.dane_name;       /* RFC 7672 section 8.1: the TLSA base domain */
    else if (!*v)
        name = rq->tls.level >= SMTP_TLS_VERIFY ? s->host : NULL;
    else if (str_ieq(v, "hostname"))
        name = s->host;
    else if (str_ieq(v, "nexthop"))
        name = rq->nh.host;
    else
        name = v;
    /* RFC 6066: never an address. */
    return name && *name && !is_ip_literal(name) ? name : NULL;
}

/* The certificate names the level asks for, checked against the peer's
 * certificate; the patterns tried are appended to tried for the log. */
static bool name_matches(X509 *cert, const struct smtp_session *s, const struct smtp_request *rq,
                         struct strbuf *tried)
{
    const char *list = rq->tls.has_match ? rq->tls.match
                       : rq->tls.level == SMTP_TLS_SECURE ? smtp_cfg.tls_secure_cert_match
                                                          : smtp_cfg.tls_verify_cert_match;
    const char *item;
    size_t len;
    for (size_t i = 0; i < TLS_MATCH_MAX && smtp_tls_match_item(list, i, &item, &len); i++) {
        char name[DNS_NAME_MAX + 2];
        if (len == 8 && strncasecmp(item, "hostname", 8) == 0)
            str_copy(name, sizeof(name), s->host);
        else if (len == 7 && strncasecmp(item, "nexthop", 7) == 0)
            str_copy(name, sizeof(name), rq->nh.host);
        else if (len == 11 && strncasecmp(item, "dot-nexthop", 11) == 0)
            snprintf(name, sizeof(name), ".%s", rq->nh.host);
        else if (len < sizeof(name))
            snprintf(name, sizeof(name), "%.*s", (int)len, item);
        else
            continue;
        sb_appendf(tried, "%s%s", tried->len ? ", " : "", name);
        /* A leading dot: any subdomain. Wildcards only as the whole
         * leftmost label of the certificate's name. */
        if (!is_ip_literal(name)
            && X509_check_host(cert, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1)
            return true;
    }
    return false;
}

/* "TLSv1.3 with cipher X (256/256 bits) key-exchange X25519 server-signature
 * RSA-PSS (2048 bits) server-digest SHA256", as Postfix logs it. */
static void describe(SSL *ssl, X509 *cert, struct strbuf *out)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    int alg_bits = 0, bits = c ? SSL_CIPHER_get_bits(c, &alg_bits) : 0;
    sb_appendf(out, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
               c ? SSL_CIPHER_get_name(c) : "unknown", bits, alg_bits);
    int group = SSL_get_negotiated_group(ssl);
    const char *gname = group > 0 ? OBJ_nid2sn(group & ~TLSEXT_nid_unknown) : NULL;
    if (gname && !(group & TLSEXT_nid_unknown))
        sb_appendf(out, " key-exchange %s", gname);
    int nid;
    EVP_PKEY *key = cert ? X509_get0_pubkey(cert) : NULL;
    if (key && SSL_get_peer_signature_type_nid(ssl, &nid) == 1) {
        const char *sig = nid == EVP_PKEY_RSA ? "RSA" : nid == EVP_PKEY_RSA_PSS ? "RSA-PSS"
                          : nid == EVP_PKEY_EC ? "ECDSA" : nid == EVP_PKEY_ED25519 ? "ED25519"
                          : nid == EVP_PKEY_ED448 ? "ED448" : OBJ_nid2sn(nid);
        sb_appendf(out, " server-signature %s (%d bits)", sig ? sig : "unknown", EVP_PKEY_get_bits(key));
        if (SSL_get_peer_signature_nid(ssl, &nid) == 1 && nid != NID_undef && OBJ_nid2sn(nid))
            sb_appendf(out, " server-digest %s", OBJ_nid2sn(nid));
    }
}

/* The detail of a failed handshake, for the log and the reason. */
static void handshake_error(SSL *ssl, int rc, struct strbuf *detail)
{
    int err = SSL_get_error(ssl, rc);
    unsigned long code = ERR_peek_last_error();
    if (code) {
        const char *reason = ERR_reason_error_string(code);
        sb_appends(detail, reason ? reason : "TLS protocol error");
    } else if (err == SSL_ERROR_SYSCALL && errno != 0) {
        sb_appends(detail, strerror(errno));
    } else if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
        sb_appends(detail, "lost connection");
    } else {
        sb_appendf(detail, "TLS error %d", err);
    }
    ERR_clear_error();
}

/* The server's usable TLSA records for OpenSSL's DANE verifier. The TLSA
 * base domain, the MX host's name when it differs (an alias) and the next
 * hop's domain when its MX records were validated are the names a DANE-TA
 * chain must match (RFC 7672 section 3.2.2); DANE-EE matches the key
 * alone, whatever the names (section 3.2.1). 0 ok, -1 when no record could
 * be used. */
static int dane_setup(SSL *ssl, const struct smtp_request *rq)
{
    if (!rq->attempt.dane_name || !rq->attempt.dane_host || SSL_dane_enable(ssl, rq->attempt.dane_name) <= 0) {
        log_openssl_errors("enabling DANE for a session");
        return -1;
    }
    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    if (!str_ieq(rq->attempt.dane_host, rq->attempt.dane_name))
        SSL_add1_host(ssl, rq->attempt.dane_host);
    if (rq->dane_mx_secure && rq->nh.use_mx && !str_ieq(rq->nh.host, rq->attempt.dane_host)
        && !str_ieq(rq->nh.host, rq->attempt.dane_name))
        SSL_add1_host(ssl, rq->nh.host);
    int added = 0;
    for (size_t i = 0; i < rq->attempt.dane_ntlsa; i++) {
        const struct dns_tlsa *t = &rq->attempt.dane_tlsa[i];
        int rc = SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data, t->len);
        if (rc > 0)
            added++;
        else if (rc < 0)
            log_openssl_errors("adding a TLSA record");
    }
    ERR_clear_error();
    return added > 0 ? 0 : -1;
}

/* A new SSL for s with the policy's protocols, ciphers, SNI and a cached
 * session to resume. NULL (logged) when OpenSSL refuses the settings. */
static SSL *new_ssl(struct smtp_session *s, const struct smtp_request *rq)
{
    bool mandatory = rq->tls.level >= SMTP_TLS_ENCRYPT;
    unsigned protocols = rq->tls.has_protocols ? rq->tls.protocols
                         : mandatory ? smtp_cfg.tls_mandatory_protocols : smtp_cfg.tls_protocols;
    const char *grade = rq->tls.has_ciphers ? rq->tls.ciphers
                        : mandatory ? smtp_cfg.tls_mandatory_ciphers : smtp_cfg.tls_ciphers;
    const char *excl[3] = { smtp_cfg.tls_exclude_ciphers,
                            mandatory ? smtp_cfg.tls_mandatory_exclude_ciphers : "",
                            rq->tls.has_exclude ? rq->tls.exclude : "" };
    struct strbuf ciphers = STRBUF_INIT(TLS_CIPHERLIST_MAX), key = STRBUF_INIT(TLS_CIPHERLIST_MAX * 2);
    const char *sni = server_name(s, rq);
    SSL *ssl = SSL_new(smtp_cfg.tls_ctx);
    if (!ssl || build_cipherlist(grade, excl, 3, &ciphers) < 0
        || SSL_set_cipher_list(ssl, sb_str(&ciphers)) != 1 || SSL_set_fd(ssl, s->fd) != 1
        || (sni && SSL_set_tlsext_host_name(ssl, sni) != 1)) {
        log_openssl_errors("setting up a TLS session");
        msg_warn("cannot set up TLS with %s: protocols, ciphers \"%s\" or server name rejected",
                 s->desc, sb_str(&ciphers));
        SSL_free(ssl);
        sb_free(&ciphers);
        sb_free(&key);
        return NULL;
    }
    set_protocols(ssl, protocols);
    if (rq->tls.level == SMTP_TLS_DANE && dane_setup(ssl, rq) < 0) {
        msg_warn("cannot set up DANE authentication of %s", s->desc);
        SSL_free(ssl);
        sb_free(&ciphers);
        sb_free(&key);
        return NULL;
    }
    /* Sessions are resumed only with the very same server and settings;
     * never under DANE, where each handshake checks the TLSA records of
     * the moment. */
    sb_appendf(&key, "%s:%d|%s|%s|%x|%s", s->addr, s->port, sni ? sni : "",
               smtp_tls_level_name(rq->tls.level), protocols, sb_str(&ciphers));
    SSL_SESSION *cached = rq->tls.level == SMTP_TLS_DANE ? NULL : cache_find(sb_str(&key));
    if (cached)
        SSL_set_session(ssl, cached);
    SSL_set_app_data(ssl, xstrdup(sb_str(&key)));
    sb_free(&ciphers);
    sb_free(&key);
    return ssl;
}

static void ssl_free(SSL *ssl)
{
    free(SSL_get_app_data(ssl));
    SSL_set_app_data(ssl, NULL);
    SSL_free(ssl);
}

/* SSL_connect within smtp_starttls_timeout: 0 done, -1 failed (detail set). */
static int handshake(SSL *ssl, int fd, struct strbuf *detail)
{
    long long deadline = now_usec() / 1000 + (long long)smtp_cfg.starttls_timeout * 1000;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_connect(ssl);
        if (rc == 1)
            return 0;
        int err = SSL_get_error(ssl, rc);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
            handshake_error(ssl, rc, detail);
            return -1;
        }
        if (wait_fd(fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, detail) < 0)
            return -1;
    }
}

/* MTA-STS (RFC 8461 section 4.2): a chain valid for the MX host's name.
 * false (why set) when the policy is enforce and it is not; in mode
 * testing the failure is only logged. */
static bool sts_check(struct smtp_session *s, const struct smtp_request *rq, struct strbuf *why)
{
    struct strbuf detail = STRBUF_INIT(512);
    long verify_error = 0;
    s->tls_sts = smtp_sts_cert_valid(s->ssl, s->host, &detail, &verify_error);
    bool enforce = rq->sts->mode == STS_ENFORCE;
    if (!s->tls_sts) {
        enum tlsrpt_result r = tlsrpt_result_of_x509(verify_error);
        smtp_tlsrpt_fail(s, r == TLSRPT_SUCCESS ? TLSRPT_VALIDATION_FAILURE : r, sb_str(&detail));
        msg_info("%s: %s: server certificate not valid for %s: %s%s", rq->dr->queue_id, s->desc,
                 s->host, sb_str(&detail), enforce ? "" : "; delivering anyway (mode testing)");
        if (enforce)
            sb_appendf(why, "Server certificate not valid for %s under the MTA-STS policy (%s)",
                       s->host, sb_str(&detail));
    }
    sb_free(&detail);
    return s->tls_sts || !enforce;
}

int smtp_tls_start(struct smtp_session *s, const struct smtp_request *rq, struct strbuf *why,
                   char dsn[SMTP_DSN_SIZE])
{
    struct strbuf detail = STRBUF_INIT(512), tried = STRBUF_INIT(1024), text = STRBUF_INIT(1024);
    struct strbuf sts_why = STRBUF_INIT(1024);
    int rc = -1;
    str_copy(dsn, SMTP_DSN_SIZE, "4.7.5");
    /* Whatever came in clear after the 220 is no part of the TLS session. */
    sb_reset(&s->in);
    s->skip_to_lf = false;
    SSL *ssl = new_ssl(s, rq);
    if (!ssl) {
        s->tls_dead = true;
        sb_set(why, "client TLS configuration problem");
        goto out;
    }
    if (handshake(ssl, s->fd, &detail) < 0) {
        msg_info("SSL_connect error to %s: %s", s->desc, sb_str(&detail));
        smtp_tlsrpt_fail(s, TLSRPT_VALIDATION_FAILURE, sb_str(&detail));
        ssl_free(ssl);
        s->tls_dead = true;
        sb_reset(why);
        sb_appendf(why, "Cannot start TLS: handshake failure (%s)", sb_str(&detail));
        goto out;
    }
    s->ssl = ssl;
    s->tls_level = rq->tls.level;
    X509 *cert = SSL_get1_peer_certificate(ssl);
    long verify = SSL_get_verify_result(ssl);
    s->tls_trusted = cert && verify == X509_V_OK;
    if (rq->tls.level == SMTP_TLS_DANE) {
        /* OpenSSL's verifier matched the chain against the TLSA records
         * (and, for DANE-TA, the names): its result is the verdict. */
        s->tls_dane = s->tls_trusted && SSL_get0_dane_authority(ssl, NULL, NULL) >= 0;
        s->tls_trusted = s->tls_matched = s->tls_dane;
    } else if (s->tls_trusted && rq->tls.level >= SMTP_TLS_VERIFY) {
        s->tls_matched = name_matches(cert, s, rq, &tried);
    }
    bool sts_ok = !rq->attempt.sts_session || sts_check(s, rq, &sts_why);
    if (smtp_cfg.tls_loglevel >= 2 && SSL_session_reused(ssl))
        msg_info("%s: TLS session resumed", s->desc);
    if (smtp_cfg.tls_loglevel >= 1) {
        describe(ssl, cert, &text);
        msg_info("%s TLS connection established to %s: %s",
                 !cert ? "Anonymous" : s->tls_matched || s->tls_sts ? "Verified"
                                     : s->tls_trusted ? "Trusted" : "Untrusted",
                 s->desc, sb_str(&text));
    }
    sb_reset(why);
    if (rq->tls.level == SMTP_TLS_DANE && !s->tls_dane) {
        const char *reason = !cert ? "no server certificate" : verify != X509_V_OK
                             ? X509_verify_cert_error_string(verify) : "no matching DANE TLSA records";
        msg_info("server certificate verification failed for %s: num=%ld:%s", s->desc,
                 cert ? verify : 0L, reason);
        msg_warn("%s: the DANE TLSA records of %s do not authenticate the server: %s",
                 s->desc, rq->attempt.dane_name, reason);
        sb_appendf(why, "Server certificate not verified by the DANE TLSA records of %s: %s",
                   rq->attempt.dane_name, reason);
        smtp_tlsrpt_fail(s, !cert ? TLSRPT_VALIDATION_FAILURE : verify != X509_V_OK
                         ? tlsrpt_result_of_x509(verify) : TLSRPT_TLSA_INVALID, reason);
    } else if (rq->tls.level >= SMTP_TLS_VERIFY && !s->tls_trusted) {
        const char *reason = cert ? X509_verify_cert_error_string(verify) : "no server certificate";
        msg_info("server certificate verification failed for %s: num=%ld:%s", s->desc,
                 cert ? verify : 0L, reason);
        sb_appendf(why, "Server certificate not trusted (%s)", reason);
        smtp_tlsrpt_fail(s, cert ? tlsrpt_result_of_x509(verify) : TLSRPT_VALIDATION_FAILURE, reason);
    } else if (rq->tls.level >= SMTP_TLS_VERIFY && !s->tls_matched) {
        msg_info("server certificate verification failed for %s: no name matches %s", s->desc,
                 sb_str(&tried));
        sb_appendf(why, "Server certificate not verified (no certificate name matches %s)",
                   sb_str(&tried));
        smtp_tlsrpt_fail(s, TLSRPT_CERTIFICATE_HOST_MISMATCH, "no certificate name matches");
    } else if (!sts_ok) {
        sb_appends(why, sb_str(&sts_why));      /* MTA-STS enforce: the certificate did not pass */
    } else {
        rc = 0;
        s->rpt_tls_ok = true;
    }
    X509_free(cert);
out:
    sb_free(&detail);
    sb_free(&tried);
    sb_free(&text);
    sb_free(&sts_why);
    return rc;
}

bool smtp_tls_session_fits(const struct smtp_session *s, const struct smtp_request *rq)
{
    /* Made for this next hop under the same dane policy: the servers'
     * TLSA records were looked at then. */
    if (rq->tls.level >= SMTP_TLS_DANE)
        return s->tls_policy == rq->tls.level;
    /* MTA-STS enforce: a session whose certificate passed its checks */
    if (rq->sts && rq->sts->mode == STS_ENFORCE && !(s->ssl && s->tls_sts))
        return false;
    switch (rq->tls.level) {
    case SMTP_TLS_NONE:
    case SMTP_TLS_MAY:
        return true;
    case SMTP_TLS_ENCRYPT:
        return s->ssl != NULL;
    default:
        return s->ssl && s->tls_trusted && s->tls_matched && s->tls_level >= rq->tls.level;
    }
}

void smtp_tls_stop(struct smtp_session *s)
{
    if (!s->ssl)
        return;
    if (!s->tls_dead && s->fd >= 0) {
        /* close_notify, once: nobody waits for the server's. */
        ERR_clear_error();
        (void)SSL_shutdown(s->ssl);
        ERR_clear_error();
    }
    ssl_free(s->ssl);
    s->ssl = NULL;
}
