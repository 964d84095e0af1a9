/* smtp_sts.c: MTA-STS (RFC 8461) in the SMTP client: for a next-hop domain,
 * the _mta-sts TXT record, the policy fetched over HTTPS from
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt (with libcurl, in the
 * module sts_fetch.so: smtp_sts_fetch.h), a cache of policies in
 * data_directory (one file per domain, kept until max_age runs out), and
 * the checks of a policy on each MX host and its certificate.
 *
 * The fetch runs in the smtp process itself, after the privilege drop,
 * inside any chroot and under its system call filter (doc/SECURITY.md):
 * everything it needs from the file system is taken as root before that
 * (the CA certificates, read into memory; the data_directory descriptor),
 * the server's address comes from Tern's own resolver (so libcurl never
 * resolves names or reads /etc), and libcurl is held to one HTTPS GET with
 * a verified certificate for mta-sts.DOMAIN, no redirects, no proxies,
 * at most 64 kB and smtp_mta_sts_fetch_timeout seconds. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "data_dir.h"
#include "dns.h"
#include "log.h"
#include "module.h"
#include "smtp.h"
#include "smtp_sts_fetch.h"
#include "util.h"

#define STS_CA_MAX (8 * 1024 * 1024)     /* bytes of CA certificates read */
#define STS_CACHE_FILE_MAX (STS_POLICY_SIZE_MAX + 512)

static struct {
    bool on;
    int data_fd;                /* data_directory, opened before any chroot */
    int cache_fd;               /* its smtp_mta_sts_cache directory, -1: no cache */
    char *ca;                   /* PEM: smtp_tls_CAfile, then the system's CA file */
    size_t ca_len;
    X509_STORE *store;          /* the same certificates, for MX host certificates */
    int timeout, port;
    sts_fetch_get_fn get;       /* the module's functions */
    sts_fetch_exit_fn exit;
} sts = { .data_fd = -1, .cache_fd = -1 };

/* ---- setup ---- */

/* A whole file appended to ca (at most STS_CA_MAX in all); false when it
 * cannot be read. */
static bool ca_append(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0 && sts.ca_len + (size_t)n + 1 < STS_CA_MAX) {
        sts.ca = realloc(sts.ca, sts.ca_len + (size_t)n + 2);
        if (!sts.ca)
            msg_fatal("out of memory reading %s", path);
        memcpy(sts.ca + sts.ca_len, buf, (size_t)n);
        sts.ca_len += (size_t)n;
        sts.ca[sts.ca_len++] = '\n';
        sts.ca[sts.ca_len] = 0;
    }
    close(fd);
    return n == 0;
}

static void store_load(void)
{
    sts.store = X509_STORE_new();
    BIO *bio = sts.ca_len ? BIO_new_mem_buf(sts.ca, (int)sts.ca_len) : NULL;
    STACK_OF(X509_INFO) *infos = bio ? PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL) : NULL;
    int added = 0;
    for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *xi = sk_X509_INFO_value(infos, i);
        if (xi->x509 && X509_STORE_add_cert(sts.store, xi->x509) == 1)
            added++;
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(bio);
    ERR_clear_error();
    if (!added)
        msg_warn("%s = yes: no CA certificates could be loaded from %s or %s; no MTA-STS "
                 "policy can be fetched", smtp_param_name(P_smtp_mta_sts),
                 smtp_param_name(P_smtp_tls_CAfile), X509_get_default_cert_file());
}

/* sts_fetch.so, whose libcurl only this process needs (as root, before
 * any chroot: the module's libraries are not there). */
static void load_fetch_module(void)
{
    static const char file[] = "sts_fetch.so";
    struct strbuf err = STRBUF_INIT(1024);
    void *h = module_load(file, &err);
    sts_fetch_init_fn init = NULL;
    if (h) {
        *(void **)&init = module_symbol(h, file, STS_FETCH_INIT_SYMBOL, &err);
        *(void **)&sts.get = module_symbol(h, file, STS_FETCH_GET_SYMBOL, &err);
        *(void **)&sts.exit = module_symbol(h, file, STS_FETCH_EXIT_SYMBOL, &err);
    }
    if (!init || !sts.get || !sts.exit)
        msg_fatal("MTA-STS (%s = yes): %s", param_table()[P_smtp_mta_sts].name, sb_str(&err));
    if (init() < 0)
        msg_fatal("cannot initialize libcurl for the MTA-STS policy fetch");
    sb_free(&err);
}

void smtp_sts_init(void)
{
    sts.on = !smtp_cfg.lmtp && cfg_bool(P_smtp_mta_sts);
    if (!sts.on)
        return;
    long t = cfg_time(P_smtp_mta_sts_fetch_timeout);
    sts.timeout = t < 1 ? 1 : t > 300 ? 300 : (int)t;
    long port = cfg_int(P_smtp_mta_sts_https_port);
    if (port < 1 || port > 65535)
        msg_fatal("%s = %ld: not a port number (main.cf)", param_table()[P_smtp_mta_sts_https_port].name,
                  port);
    sts.port = (int)port;
    (void)data_dir_folder_name(P_smtp_mta_sts_cache);
    load_fetch_module();
    /* The trusted CAs: the administrator's, then the system's. Read now:
     * inside a chroot neither file is there. */
    const char *cafile = cfg_str(smtp_param(P_smtp_tls_CAfile));
    if (*cafile && !ca_append(cafile))
        msg_warn("MTA-STS: cannot read %s = %s: %s", smtp_param_name(P_smtp_tls_CAfile), cafile,
                 strerror(errno));
    (void)ca_append(X509_get_default_cert_file());
    store_load();
    /* data_directory belongs to mail_owner: only its descriptor is taken
     * as root; the cache inside it is made after the privilege drop. */
    sts.data_fd = data_dir_open("MTA-STS", "policies are not cached");
}

void smtp_sts_post_init(void)
{
    if (sts.on)
        sts.cache_fd = data_dir_folder(&sts.data_fd, cfg_str(P_smtp_mta_sts_cache), "MTA-STS",
                                       "policies are not cached");
}

void smtp_sts_exit(void)
{
    if (!sts.on)
        return;
    if (sts.cache_fd >= 0)
        close(sts.cache_fd);
    if (sts.data_fd >= 0)
        close(sts.data_fd);
    sts.cache_fd = sts.data_fd = -1;
    X509_STORE_free(sts.store);
    sts.store = NULL;
    free(sts.ca);
    sts.ca = NULL;
    sts.ca_len = 0;
    sts.exit();
    sts.on = false;
}

/* ---- the cache ---- */

/* The cached policy of key: true with c and p filled (expired or not). */
static bool cache_read(const char *key, struct strbuf *text, struct sts_cached *c,
                       struct sts_policy *p)
{
    if (sts.cache_fd < 0)
        return false;
    int fd = openat(sts.cache_fd, key, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return false;
    struct stat st;
    char buf[8192];
    ssize_t n = 0;
    /* a plain file, read whole; a larger one than smtp ever writes is not
     * read in part */
    bool whole = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= STS_CACHE_FILE_MAX;
    while (whole && (n = read(fd, buf, sizeof(buf))) > 0)
        whole = text->len + (size_t)n <= STS_CACHE_FILE_MAX && sb_append(text, buf, (size_t)n) == 0;
    close(fd);
    struct strbuf why = STRBUF_INIT(256);
    bool ok = whole && n == 0 && text->len > 0
              && sts_cache_parse(text->data, text->len, c, &why) == 0
              && sts_policy_parse(c->policy, c->policy_len, p, &why) == 0;
    if (!ok && text->len)
        msg_warn("MTA-STS: ignoring the cached policy of %s: %s", key,
                 why.len ? sb_str(&why) : "too large");
    sb_free(&why);
    return ok;
}

/* Write the policy of key under a temporary name, then rename it over the
 * old one: a reader sees the old file or the new one, never half. */
static void cache_write(const char *key, const char *id, long long now, long max_age,
                        const struct strbuf *body)
{
    if (sts.cache_fd < 0)
        return;
    char tmp[DNS_NAME_MAX + 40];
    snprintf(tmp, sizeof(tmp), ".%s.%ld.tmp", key, (long)getpid());
    int fd = openat(sts.cache_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        msg_warn("MTA-STS: cannot cache the policy of %s: %s", key, strerror(errno));
        return;
    }
    struct strbuf head = STRBUF_INIT(256);
    sb_appendf(&head, "id: %s\nfetched: %lld\nexpires: %lld\n\n", id, now, now + max_age);
    bool ok = write_all(fd, head.data, head.len) == (ssize_t)head.len
              && write_all(fd, body->data, body->len) == (ssize_t)body->len;
    sb_free(&head);
    if (close(fd) < 0)
        ok = false;
    if (!ok || renameat(sts.cache_fd, tmp, sts.cache_fd, key) < 0) {
        msg_warn("MTA-STS: cannot cache the policy of %s: %s", key, strerror(errno));
        (void)unlinkat(sts.cache_fd, tmp, 0);
    }
}

/* ---- the TXT record ---- */

/* 1 with the id of the domain's one STS record, 0 when there is none (or
 * more than one, RFC 8461 section 3.1), -1 on a DNS failure. */
static int txt_lookup(const char *key, char id[STS_ID_MAX + 1], struct strbuf *why)
{
    char name[DNS_NAME_MAX + 16];
    snprintf(name, sizeof(name), "_mta-sts.%s", key);
    char (*txt)[DNS_TXT_MAX + 1];
    size_t n;
    enum dns_status st = dns_lookup_txt(smtp_cfg.dns, name, &txt, &n, why);
    if (st != DNS_OK)
        return st == DNS_TEMPFAIL ? -1 : 0;
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        char one[STS_ID_MAX + 1];
        struct strbuf err = STRBUF_INIT(256);
        int rc = sts_txt_parse(txt[i], one, &err);
        if (rc != 0)
            found++;
        if (rc > 0)
            str_copy(id, STS_ID_MAX + 1, one);
        else if (rc < 0)
            sb_set(why, sb_str(&err));
        sb_free(&err);
    }
    free(txt);
    if (found > 1)
        sb_set(why, "more than one MTA-STS TXT record");
    return found == 1 && id[0] ? 1 : 0;
}

/* ---- the fetch ---- */

/* The resolve entry ("host:port:addr,...") for mta-sts.KEY: its addresses as Tern's
 * resolver finds them. -1 with why when there are none. */
static int fetch_resolve(const char *host, struct strbuf *entry, struct strbuf *why)
{
    struct dns_addr *addrs;
    size_t n;
    enum dns_status st = dns_lookup_addr(smtp_cfg.dns, host, smtp_cfg.want_v4, smtp_cfg.want_v6,
                                         &addrs, &n, NULL, NULL, why);
    if (st != DNS_OK)
        return -1;
    sb_appendf(entry, "%s:%d:", host, sts.port);
    for (size_t i = 0; i < n && i < 8; i++) {
        char text[INET6_ADDRSTRLEN];
        dns_addr_text(&addrs[i], text, sizeof(text));
        sb_appendf(entry, addrs[i].family == AF_INET6 ? "%s[%s]" : "%s%s", i ? "," : "", text);
    }
    free(addrs);
    return 0;
}

/* GET the policy of key into body: 0 ok, -1 with why and the TLS
 * report's result type in *kind. */
static int fetch(const char *key, struct strbuf *body, struct strbuf *why, enum tlsrpt_result *kind)
{
    *kind = TLSRPT_STS_POLICY_FETCH_ERROR;
    char host[DNS_NAME_MAX + 16], url[DNS_NAME_MAX + 80];
    snprintf(host, sizeof(host), "mta-sts.%s", key);
    if (sts.port == 443)
        snprintf(url, sizeof(url), "https://%s/.well-known/mta-sts.txt", host);
    else
        snprintf(url, sizeof(url), "https://%s:%d/.well-known/mta-sts.txt", host, sts.port);
    struct strbuf entry = STRBUF_INIT(1024), dnswhy = STRBUF_INIT(256);
    if (fetch_resolve(host, &entry, &dnswhy) < 0) {
        sb_appendf(why, "%s: %s", host, sb_str(&dnswhy));
        sb_free(&entry);
        sb_free(&dnswhy);
        return -1;
    }
    sb_free(&dnswhy);
    struct sts_fetch_request rq = {
        .url = url, .resolve = sb_str(&entry), .ca = sts.ca, .ca_len = sts.ca_len,
        .timeout = sts.timeout, .size_max = STS_POLICY_SIZE_MAX,
    };
    bool webpki_invalid = false;
    int rc = sts.get(&rq, body, why, &webpki_invalid);
    if (webpki_invalid)
        *kind = TLSRPT_STS_WEBPKI_INVALID;       /* RFC 8460 section 4.3.2.2 */
    sb_free(&entry);
    return rc;
}

/* ---- the policy of a next hop ---- */

static void policy_use(struct smtp_request *rq, const char *key, const char *id,
                       const struct sts_policy *p)
{
    if (p->mode == STS_NONE)
        return;
    rq->sts = xmalloc(sizeof(*rq->sts));
    *rq->sts = *p;
    str_copy(rq->sts_id, sizeof(rq->sts_id), id);
    str_copy(rq->sts_domain, sizeof(rq->sts_domain), key);
    /* enforce: TLS always; the certificate and the MX names are checked
     * per server (try_targets, smtp_tls_start) */
    if (p->mode == STS_ENFORCE && rq->tls.level < SMTP_TLS_ENCRYPT)
        rq->tls.level = SMTP_TLS_ENCRYPT;
}

void smtp_sts_find(struct smtp_request *rq)
{
    rq->sts = NULL;
    char key[DNS_NAME_MAX + 1];
    enum smtp_tls_level level = rq->tls.level;
    if (!sts.on || !rq->nh.use_mx || rq->nh.literal || rq->nh.path[0]
        || !(level == SMTP_TLS_MAY || level == SMTP_TLS_ENCRYPT || level == SMTP_TLS_DANE)
        || !sts_cache_key(rq->nh.host, key, sizeof(key)))
        return;
    const char *qid = rq->dr->queue_id;
    struct strbuf why = STRBUF_INIT(1024), cached_text = STRBUF_INIT(STS_CACHE_FILE_MAX),
                  body = STRBUF_INIT(STS_POLICY_SIZE_MAX);
    struct sts_cached c;
    struct sts_policy cached, fresh;
    long long now = now_usec() / 1000000;
    bool have_cache = cache_read(key, &cached_text, &c, &cached) && c.expires > now;
    char id[STS_ID_MAX + 1] = "";
    int txt = txt_lookup(key, id, &why);
    if (txt < 0)
        msg_info("%s: MTA-STS TXT lookup for %s failed: %s%s", qid, key, sb_str(&why),
                 have_cache ? "; using the cached policy" : "");
    /* A new id, no policy yet, or half its max_age gone: fetch (RFC 8461
     * section 5.1: refresh before the cached one expires). */
    bool refresh = have_cache && now >= c.fetched + (c.expires - c.fetched) / 2;
    if (txt > 0 && (!have_cache || strcmp(id, c.id) != 0 || refresh)) {
        sb_reset(&why);
        enum tlsrpt_result kind;
        int fetched = fetch(key, &body, &why, &kind);
        if (fetched == 0 && sts_policy_parse(body.data, body.len, &fresh, &why) == 0) {
            struct strbuf mx = STRBUF_INIT(4096);
            sts_mx_list(&fresh, &mx);
            msg_info("MTA-STS policy of %s fetched: id %s, mode %s, max_age %ld, mx: %s", key, id,
                     sts_mode_name(fresh.mode), fresh.max_age, sb_str(&mx));
            sb_free(&mx);
            cache_write(key, id, now, fresh.max_age, &body);
            policy_use(rq, key, id, &fresh);
            goto out;
        }
        msg_warn("%s: MTA-STS policy fetch for %s failed: %s%s", qid, key, sb_str(&why),
                 have_cache ? "; using the cached policy" : "");
        /* without a cached policy the domain goes without one: a failure
         * for its TLS report */
        if (!have_cache)
            smtp_tlsrpt_sts_failure(key, fetched == 0 ? TLSRPT_STS_POLICY_INVALID : kind,
                                    sb_str(&why));
    }
    if (have_cache)
        policy_use(rq, key, c.id, &cached);
out:
    if (rq->sts)
        msg_debug("%s: MTA-STS policy of %s: mode %s", qid, key, sts_mode_name(rq->sts->mode));
    sb_free(&why);
    sb_free(&cached_text);
    sb_free(&body);
}

void smtp_sts_describe(const struct smtp_request *rq, struct strbuf *out)
{
    if (!rq->sts)
        return;
    sb_appendf(out, "MTA-STS policy of %s: mode %s, id %s, mx: ", rq->sts_domain,
               sts_mode_name(rq->sts->mode), rq->sts_id);
    sts_mx_list(rq->sts, out);
}

/* ---- the checks on one server ---- */

bool smtp_sts_cert_valid(struct ssl_st *ssl, const char *host, struct strbuf *why,
                         long *verify_error)
{
    *verify_error = 0;
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert) {
        sb_appends(why, "no server certificate");
        return false;
    }
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    bool ok = false;
    if (ctx && sts.store && X509_STORE_CTX_init(ctx, sts.store, cert, SSL_get_peer_cert_chain(ssl)) == 1) {
        X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
        X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        X509_VERIFY_PARAM_set1_host(param, host, 0);
        ok = X509_verify_cert(ctx) == 1;
        if (!ok) {
            *verify_error = X509_STORE_CTX_get_error(ctx);
            sb_appends(why, X509_verify_cert_error_string(*verify_error));
        }
    } else {
        sb_appends(why, "cannot verify the certificate");
    }
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}
