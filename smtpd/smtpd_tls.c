/* smtpd_tls.c: the SMTP server's TLS context, built once per process while
 * it is still root (key files are usually readable by root only): the
 * security level, protocol versions and ciphers in Postfix's syntax, the
 * certificates (smtpd_tls_cert_file/key_file or smtpd_tls_chain_files with
 * RSA and ECDSA keys at once), certificates chosen by SNI through
 * tls_server_sni_maps, and stateless session tickets whose keys every smtpd
 * process of the instance derives from one secret in data_directory, so a
 * session resumes whichever process the client reaches. A broken
 * certificate never stops the process: TLS is then unavailable, which the
 * session code turns into "no STARTTLS", 454 or 421 by level. Client
 * certificates are asked for (smtpd_tls_ask_ccert) or required
 * (smtpd_tls_req_ccert) and verified against smtpd_tls_CAfile and
 * smtpd_tls_CApath; what the session makes of them is in smtpd_ccert.c.
 * The files read here are watched (lib/util/file_watch.h): once one
 * changes, the process finishes its sessions and a fresh one, started
 * by master as root, reads them again. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "chroot.h"
#include "config.h"
#include "file_watch.h"
#include "log.h"
#include "maps.h"
#include "safe_open.h"
#include "smtpd.h"
#include "strbuf.h"
#include "tls_certs.h"
#include "tls_protocols.h"
#include "util.h"

#define TICKET_SECRET_FILE "smtpd_tls_ticket.key"
#define TICKET_SECRET_LEN 32
#define TICKET_SECRET_MAX_AGE (24 * 3600)   /* seconds; then a new secret */
#define SNI_ENTRIES_MAX 1000
#define SNI_NAME_MAX 255
#define PEM_OBJECTS_MAX 64          /* keys and certificates in one chain list */

struct sni_entry {
    char *name;                     /* lower case; ".example.com" matches below it */
    SSL_CTX *ctx;
};

static struct {
    enum smtpd_tls_level level;
    bool wrappermode;
    bool received_header;
    bool ask_ccert, req_ccert;
    const EVP_MD *fprint_md;
    long loglevel;
    SSL_CTX *ctx;                   /* NULL: TLS is unavailable */
    struct strbuf why;              /* why it is unavailable */
    bool tickets;
    unsigned char secret[TICKET_SECRET_LEN];
    long ticket_period;
    struct sni_entry *sni;
    size_t nsni;
} tls = { .why = STRBUF_INIT(1024) };

/* ---- OpenSSL error text ---- */

/* Append OpenSSL's queued error reasons ("error:0A000086:SSL routines::...")
 * to out, separated by "; ", and clear the queue. */
void smtpd_tls_append_errors(struct strbuf *out)
{
    unsigned long e;
    const char *sep = "";
    for (int i = 0; i < 8 && (e = ERR_get_error()) != 0; i++) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        sb_appendf(out, "%s%s", sep, buf);
        sep = "; ";
    }
    ERR_clear_error();
}

/* ---- certificates ---- */

struct chain_group {
    EVP_PKEY *key;
    X509 *leaf;
    STACK_OF(X509) *chain;
};

static void group_clear(struct chain_group *g)
{
    EVP_PKEY_free(g->key);
    X509_free(g->leaf);
    sk_X509_pop_free(g->chain, X509_free);
    memset(g, 0, sizeof(*g));
}

/* Install one key with its certificate chain; the key must match. */
static int group_install(SSL_CTX *ctx, struct chain_group *g, const char *file, struct strbuf *err)
{
    int rc = 0;
    if (!g->key && !g->leaf)
        return 0;
    if (!g->key || !g->leaf) {
        sb_appendf(err, "%s: %s without %s (each private key must be followed by its certificate "
                   "chain)", file, g->key ? "a private key" : "a certificate",
                   g->key ? "a certificate" : "a private key before it");
        rc = -1;
    } else if (SSL_CTX_use_cert_and_key(ctx, g->leaf, g->key, g->chain, 1) != 1) {
        sb_appendf(err, "%s: the private key does not match its certificate, or it is "
                   "unusable: ", file);
        smtpd_tls_append_errors(err);
        rc = -1;
    }
    group_clear(g);
    return rc < 0 ? -1 : 1;
}

static bool pem_is_key(const char *name)
{
    size_t n = strlen(name);
    return n >= 11 && strcmp(name + n - 11, "PRIVATE KEY") == 0;
}

/* Read the PEM objects of one file into groups of key + chain. Returns the
 * number of groups installed, or -1. */
static int load_chain_file(SSL_CTX *ctx, const char *file, const char *param, struct strbuf *err)
{
    file_watch_add(param, file);
    BIO *bio = BIO_new_file(file, "r");
    if (!bio) {
        sb_appendf(err, "cannot open %s: %s", file, strerror(errno));
        ERR_clear_error();
        return -1;
    }
    struct chain_group g = { 0 };
    int installed = 0, rc = 0;
    for (int n = 0; n < PEM_OBJECTS_MAX && rc == 0; n++) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        long len = 0;
        if (!PEM_read_bio(bio, &name, &header, &data, &len)) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_REASON(e) != PEM_R_NO_START_LINE || n == 0) {
                sb_appendf(err, "%s: no usable PEM data: ", file);
                smtpd_tls_append_errors(err);
                rc = -1;
            }
            ERR_clear_error();
            break;
        }
        const unsigned char *p = data;
        if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0) {
            sb_appendf(err, "%s: the private key is encrypted (a server key needs no passphrase)", file);
            rc = -1;
        } else if (pem_is_key(name)) {
            int r = group_install(ctx, &g, file, err);
            if (r < 0)
                rc = -1;
            installed += r > 0;
            g.key = d2i_AutoPrivateKey(NULL, &p, len);
            if (!g.key) {
                sb_appendf(err, "%s: cannot decode the private key: ", file);
                smtpd_tls_append_errors(err);
                rc = -1;
            }
        } else if (strcmp(name, "CERTIFICATE") == 0 || strcmp(name, "TRUSTED CERTIFICATE") == 0) {
            X509 *x = strcmp(name, "CERTIFICATE") == 0 ? d2i_X509(NULL, &p, len)
                                                        : d2i_X509_AUX(NULL, &p, len);
            if (!x) {
                sb_appendf(err, "%s: cannot decode a certificate: ", file);
                smtpd_tls_append_errors(err);
                rc = -1;
            } else if (!g.leaf) {
                g.leaf = x;
            } else {
                if (!g.chain)
                    g.chain = sk_X509_new_null();
                if (!g.chain || !sk_X509_push(g.chain, x)) {
                    X509_free(x);
                    sb_appends(err, "out of memory");
                    rc = -1;
                }
            }
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
    }
    if (rc == 0) {
        int r = group_install(ctx, &g, file, err);
        if (r < 0)
            rc = -1;
        installed += r > 0;
    }
    group_clear(&g);
    BIO_free(bio);
    return rc < 0 ? -1 : installed;
}

/* A list of chain files (smtpd_tls_chain_files or an SNI table value,
 * named by param in the log). */
static int load_chain_files(SSL_CTX *ctx, const char *list, const char *param, struct strbuf *err)
{
    char file[4096];
    int total = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ", \t\r\n");
        if (n >= sizeof(file)) {
            sb_appends(err, "a file name in the chain file list is too long");
            return -1;
        }
        if (n > 0) {
            memcpy(file, p, n);
            file[n] = 0;
            int r = load_chain_file(ctx, file, param, err);
            if (r < 0)
                return -1;
            total += r;
        }
        p += n;
        p += strspn(p, ", \t\r\n");
    }
    if (total == 0) {
        sb_appendf(err, "no private key and certificate in \"%.200s\"", list);
        return -1;
    }
    return 0;
}

static int load_cert_key(SSL_CTX *ctx, const char *cert, const char *key, bool ec,
                         struct strbuf *err)
{
    file_watch_add(ec ? "smtpd_tls_eccert_file" : "smtpd_tls_cert_file", cert);
    file_watch_add(ec ? "smtpd_tls_eckey_file" : "smtpd_tls_key_file", key);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        sb_appendf(err, "cannot load the certificate from smtpd_tls_%scert_file %s: ",
                   ec ? "ec" : "", cert);
        smtpd_tls_append_errors(err);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        sb_appendf(err, "cannot load the private key from smtpd_tls_%skey_file %s: ",
                   ec ? "ec" : "", key);
        smtpd_tls_append_errors(err);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        sb_appendf(err, "the private key in %s does not match the certificate in %s: ", key, cert);
        smtpd_tls_append_errors(err);
        return -1;
    }
    return 0;
}

static int load_certificates(SSL_CTX *ctx, struct strbuf *err)
{
    const char *chain = cfg_str(P_smtpd_tls_chain_files);
    const char *cert = cfg_str(P_smtpd_tls_cert_file), *key = cfg_str(P_smtpd_tls_key_file);
    const char *eccert = cfg_str(P_smtpd_tls_eccert_file), *eckey = cfg_str(P_smtpd_tls_eckey_file);
    if (*chain)
        return load_chain_files(ctx, chain, "smtpd_tls_chain_files", err);
    if (!*cert && !*eccert) {
        sb_appends(err, "no certificate: set smtpd_tls_chain_files, or smtpd_tls_cert_file "
                   "and smtpd_tls_key_file");
        return -1;
    }
    if (*cert && load_cert_key(ctx, cert, *key ? key : cert, false, err) < 0)
        return -1;
    if (*eccert && load_cert_key(ctx, eccert, *eckey ? eckey : eccert, true, err) < 0)
        return -1;
    return 0;
}

/* ---- session tickets ---- */

struct ticket_key {
    unsigned char name[16], aes[32], hmac[32];
};

/* The keys of period `epoch`: HMAC-SHA256 of the secret over a label. */
static int ticket_key_derive(long epoch, struct ticket_key *k)
{
    unsigned char out[3][32];
    for (int i = 0; i < 3; i++) {
        char label[64];
        size_t outlen = 0;
        int n = snprintf(label, sizeof(label), "tern smtpd ticket %ld %d", epoch, i);
        if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, tls.secret, sizeof(tls.secret),
                       (unsigned char *)label, (size_t)n, out[i], sizeof(out[i]), &outlen)
            || outlen != 32)
            return -1;
    }
    memcpy(k->name, out[0], sizeof(k->name));
    memcpy(k->aes, out[1], sizeof(k->aes));
    memcpy(k->hmac, out[2], sizeof(k->hmac));
    OPENSSL_cleanse(out, sizeof(out));
    return 0;
}

static int ticket_hmac_init(EVP_MAC_CTX *hctx, struct ticket_key *k)
{
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k->hmac, sizeof(k->hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/* OpenSSL's ticket callback: encrypt with this period's key; decrypt with
 * this period's or the previous one's (then ask for a fresh ticket). */
static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    long epoch = (long)(time(NULL) / tls.ticket_period);
    struct ticket_key k;
    int rc = 0;
    if (enc) {
        if (ticket_key_derive(epoch, &k) < 0 || RAND_bytes(iv, 16) != 1
            || EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1
            || ticket_hmac_init(hctx, &k) < 0)
            rc = -1;
        else {
            memcpy(key_name, k.name, 16);
            rc = 1;
        }
    } else {
        for (int age = 0; age < 2 && rc == 0; age++) {
            if (ticket_key_derive(epoch - age, &k) < 0) {
                rc = -1;
                break;
            }
            if (CRYPTO_memcmp(key_name, k.name, 16) != 0)
                continue;
            if (ticket_hmac_init(hctx, &k) < 0
                || EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
                rc = -1;
            else
                rc = age == 0 ? 1 : 2;
        }
    }
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

/* A fresh random secret at path, through tmp: linked (the first of several
 * processes wins) or, to replace an old one, renamed over it. */
static int ticket_secret_create(const char *tmp, const char *path, bool replace,
                                struct strbuf *err)
{
    unsigned char fresh[TICKET_SECRET_LEN];
    int w = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = 0;
    if (w < 0 || RAND_bytes(fresh, sizeof(fresh)) != 1
        || write(w, fresh, sizeof(fresh)) != (ssize_t)sizeof(fresh) || fsync(w) < 0) {
        sb_appendf(err, "cannot create %s: %s", tmp, strerror(errno));
        rc = -1;
    } else if (replace ? rename(tmp, path) < 0 : (link(tmp, path) < 0 && errno != EEXIST)) {
        sb_appendf(err, "cannot create %s: %s", path, strerror(errno));
        rc = -1;
    }
    OPENSSL_cleanse(fresh, sizeof(fresh));
    if (w >= 0)
        close(w);
    unlink(tmp);
    return rc;
}

/* Read the instance's ticket secret, creating it when it does not exist
 * and replacing it once it is older than TICKET_SECRET_MAX_AGE, so that a
 * stolen file opens only the tickets of a bounded time. */
static int ticket_secret_load(struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT(4096), tmp = STRBUF_INIT(4096);
    struct stat st;
    int rc = -1;
    if (sb_appendf(&path, "%s/%s", cfg_str(P_data_directory), TICKET_SECRET_FILE) < 0
        || sb_appendf(&tmp, "%s.%ld", sb_str(&path), (long)getpid()) < 0) {
        sb_appends(err, "data_directory is too long");
        goto out;
    }
    if (lstat(sb_str(&path), &st) < 0) {
        if (errno != ENOENT || ticket_secret_create(sb_str(&tmp), sb_str(&path), false, err) < 0)
            goto out;
    } else if (S_ISREG(st.st_mode) && time(NULL) - st.st_mtime > TICKET_SECRET_MAX_AGE) {
        struct strbuf why = STRBUF_INIT(1024);
        if (ticket_secret_create(sb_str(&tmp), sb_str(&path), true, &why) < 0)
            msg_warn("cannot replace the TLS session ticket secret: %s", sb_str(&why));
        else
            msg_info("new TLS session ticket secret in %s", sb_str(&path));
        sb_free(&why);
    }
    /* data_directory is mail_owner's and this runs before the privilege
     * drop: only a plain file of our own with one link is read, never a
     * link to another file of root's (a second link for a moment is
     * another process's fresh secret before it removes its temporary name) */
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 3; tries++) {
        size_t mark = err->len;
        fd = safe_open(sb_str(&path), O_RDONLY, 0, geteuid(), &st, err);
        if (fd < 0 && errno != EMLINK)
            goto out;
        if (fd < 0 && tries < 2) {
            sb_truncate(err, mark);
            usleep(20000);
        }
    }
    if (fd < 0)
        goto out;
    if ((st.st_mode & 077)
        || read(fd, tls.secret, sizeof(tls.secret)) != (ssize_t)sizeof(tls.secret))
        sb_appendf(err, "%s is not a %d-byte file readable by its owner only", sb_str(&path),
                   TICKET_SECRET_LEN);
    else
        rc = 0;
    close(fd);
out:
    sb_free(&path);
    sb_free(&tmp);
    return rc;
}

/* ---- contexts ---- */

static const char *cipher_list(const char *grade_param, const char *grade)
{
    if (str_ieq(grade, "high"))
        return cfg_str(P_tls_high_cipherlist);
    if (str_ieq(grade, "medium"))
        return cfg_str(P_tls_medium_cipherlist);
    msg_fatal("main.cf: %s = %s: expected high or medium", grade_param, grade);
}

/* ---- client certificates ---- */

/* smtpd_tls_ask_ccert without req_ccert: any certificate, trusted or not,
 * lets the handshake go on; the verification result stays in the session
 * (SSL_get_verify_result) for the log, Received: and the restrictions. */
static int verify_tolerant(int ok, X509_STORE_CTX *store)
{
    (void)ok;
    (void)store;
    return 1;
}

/* The trusted CAs, the CA names sent with the certificate request, the
 * verification depth and mode. A CA file that cannot be read makes TLS
 * unavailable rather than silently trusting nobody. */
static int client_verify_setup(SSL_CTX *ctx, struct strbuf *err)
{
    const char *cafile = cfg_str(P_smtpd_tls_CAfile), *capath = cfg_str(P_smtpd_tls_CApath);
    if ((*cafile || *capath)
        && SSL_CTX_load_verify_locations(ctx, *cafile ? cafile : NULL, *capath ? capath : NULL) != 1) {
        sb_appendf(err, "cannot load the CA certificates of smtpd_tls_CAfile %s / smtpd_tls_CApath "
                   "%s: ", *cafile ? cafile : "(none)", *capath ? capath : "(none)");
        smtpd_tls_append_errors(err);
        return -1;
    }
    if (*cafile) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cafile);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        ERR_clear_error();
    }
    long depth = cfg_int(P_smtpd_tls_ccert_verifydepth);
    SSL_CTX_set_verify_depth(ctx, depth < 1 ? 1 : depth > 100 ? 100 : (int)depth);
    if (tls.req_ccert)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    else
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_tolerant);
    return 0;
}

/* A context with everything but the certificates. */
static SSL_CTX *context_new(struct strbuf *err)
{
    bool mandatory = tls.level == TLS_ENCRYPT || tls.wrappermode;
    enum param_id proto_param = mandatory ? P_smtpd_tls_mandatory_protocols : P_smtpd_tls_protocols;
    enum param_id grade_param = mandatory ? P_smtpd_tls_mandatory_ciphers : P_smtpd_tls_ciphers;
    const char *grade_name = mandatory ? "smtpd_tls_mandatory_ciphers" : "smtpd_tls_ciphers";
    int lo, hi;
    unsigned long no_options;
    struct strbuf perr = STRBUF_INIT(512);
    if (tls_protocols_parse(cfg_str(proto_param), &lo, &hi, &no_options, &perr) < 0)
        msg_fatal("main.cf: %s: %s", mandatory ? "smtpd_tls_mandatory_protocols"
                                                : "smtpd_tls_protocols", sb_str(&perr));
    sb_free(&perr);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        sb_appends(err, "cannot create a TLS context: ");
        smtpd_tls_append_errors(err);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, lo);
    SSL_CTX_set_max_proto_version(ctx, hi);
    if (no_options)
        SSL_CTX_set_options(ctx, no_options);
    const char *list = cipher_list(grade_name, cfg_str(grade_param));
    if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
        sb_appendf(err, "%s: cipher list \"%.200s\" selects no cipher: ", grade_name, list);
        smtpd_tls_append_errors(err);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION
                        | SSL_OP_NO_COMPRESSION);
    /* Sessions live in tickets only: no per-process cache that another
     * process could not see anyway. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"tern-smtpd", 10);
    SSL_CTX_set_timeout(ctx, tls.ticket_period);
    if (tls.tickets) {
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
        SSL_CTX_set_num_tickets(ctx, 1);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (tls.ask_ccert && client_verify_setup(ctx, err) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* ---- SNI ---- */

static SSL_CTX *sni_find(const char *name)
{
    for (size_t i = 0; i < tls.nsni; i++)
        if (strcmp(tls.sni[i].name, name) == 0)
            return tls.sni[i].ctx;
    return NULL;
}

/* The client named a server: its own certificate when the table has one
 * (the name, else .parent for each parent domain), else the default. */
static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char name[SNI_NAME_MAX + 2];
    if (!sni || tls.nsni == 0 || !tls_server_name_key(sni, name, sizeof(name)))
        return SSL_TLSEXT_ERR_NOACK;
    SSL_CTX *ctx = sni_find(name);
    for (const char *dot = strchr(name, '.'); !ctx && dot; dot = strchr(dot + 1, '.'))
        ctx = sni_find(dot);
    if (!ctx)
        return SSL_TLSEXT_ERR_NOACK;
    SSL_set_SSL_CTX(ssl, ctx);
    return SSL_TLSEXT_ERR_OK;
}

struct sni_load {
    const char *table;
    int errors;
};

static int sni_add(const char *key, const char *value, int line, void *arg)
{
    struct sni_load *ld = arg;
    struct strbuf err = STRBUF_INIT(2048);
    char name[SNI_NAME_MAX + 2];
    const char *k = key[0] == '.' ? key + 1 : key;
    if (tls.nsni >= SNI_ENTRIES_MAX) {
        msg_warn("tls_server_sni_maps %s: more than %d entries; the rest are ignored",
                 ld->table, SNI_ENTRIES_MAX);
        return -1;
    }
    if (!tls_server_name_key(k, name + (key[0] == '.'), sizeof(name) - 1)) {
        msg_warn("tls_server_sni_maps %s:%d: \"%.100s\" is not a host name; entry ignored",
                 ld->table, line, key);
        ld->errors++;
        return 0;
    }
    if (key[0] == '.')
        name[0] = '.';
    SSL_CTX *ctx = context_new(&err);
    if (!ctx || load_chain_files(ctx, value, "tls_server_sni_maps", &err) < 0) {
        msg_warn("tls_server_sni_maps %s:%d: %s: %s; that name gets the default certificate",
                 ld->table, line, name, sb_str(&err));
        SSL_CTX_free(ctx);
        ld->errors++;
        sb_free(&err);
        return 0;
    }
    sb_free(&err);
    tls.sni = xrealloc(tls.sni, (tls.nsni + 1) * sizeof(*tls.sni));
    tls.sni[tls.nsni].name = xstrdup(name);
    tls.sni[tls.nsni].ctx = ctx;
    tls.nsni++;
    return 0;
}

/* Every table is read now, as root, with the files it names: after the
 * privilege drop the key files could not be read any more. */
static void sni_load(const char *tables)
{
    char spec[4096];
    const char *p = tables;
    while (*p) {
        size_t n = strcspn(p, ", \t\r\n");
        if (n > 0 && n < sizeof(spec)) {
            memcpy(spec, p, n);
            spec[n] = 0;
            const char *colon = strchr(spec, ':');
            struct strbuf err = STRBUF_INIT(1024);
            struct sni_load ld = { spec, 0 };
            if (!colon || !(strncmp(spec, "texthash:", 9) == 0 || strncmp(spec, "hash:", 5) == 0
                            || strncmp(spec, "btree:", 6) == 0))
                msg_warn("tls_server_sni_maps: %s: only texthash:, hash: and btree: tables "
                         "(read from their source file) are supported; ignored", spec);
            else if (map_read_source(colon + 1, 0, sni_add, &ld, &err) < 0 && err.len)
                msg_warn("tls_server_sni_maps: %s", sb_str(&err));
            else
                file_watch_add("tls_server_sni_maps", colon + 1);   /* its source is what is read */
            sb_free(&err);
        }
        p += n;
        p += strspn(p, ", \t\r\n");
    }
}

/* ---- the process's TLS ---- */

static enum smtpd_tls_level read_level(void)
{
    const char *v = cfg_str(P_smtpd_tls_security_level);
    if (!*v || str_ieq(v, "none"))
        return TLS_NONE;
    if (str_ieq(v, "may"))
        return TLS_MAY;
    if (str_ieq(v, "encrypt"))
        return TLS_ENCRYPT;
    msg_fatal("main.cf: smtpd_tls_security_level = %s: expected none, may or encrypt", v);
}

static void read_ccert_settings(void)
{
    const char *digest = cfg_str(P_smtpd_tls_fingerprint_digest);
    tls.fprint_md = tls_fprint_digest(digest);
    if (!tls.fprint_md)
        msg_fatal("main.cf: smtpd_tls_fingerprint_digest = %s: expected md5, sha1, sha224, sha256, "
                  "sha384 or sha512", digest);
    tls.ask_ccert = cfg_bool(P_smtpd_tls_ask_ccert);
    tls.req_ccert = cfg_bool(P_smtpd_tls_req_ccert);
    if (tls.req_ccert && tls.level != TLS_ENCRYPT && !tls.wrappermode) {
        /* Postfix's rule: a certificate is required only where TLS itself is */
        msg_warn("Can't require client certs unless TLS is required");
        tls.req_ccert = false;
    }
    if (tls.req_ccert)
        tls.ask_ccert = true;
    if (tls.ask_ccert) {
        file_watch_add("smtpd_tls_CAfile", cfg_str(P_smtpd_tls_CAfile));
        file_watch_add("smtpd_tls_CApath", cfg_str(P_smtpd_tls_CApath));
        if (!*cfg_str(P_smtpd_tls_CAfile) && !*cfg_str(P_smtpd_tls_CApath))
            msg_warn("smtpd_tls_%s_ccert = yes without smtpd_tls_CAfile or smtpd_tls_CApath: no "
                     "client certificate can be verified", tls.req_ccert ? "req" : "ask");
    }
}

void smtpd_tls_server_pre_init(void)
{
    tls.wrappermode = cfg_bool(P_smtpd_tls_wrappermode);
    tls.received_header = cfg_bool(P_smtpd_tls_received_header);
    tls.loglevel = cfg_int(P_smtpd_tls_loglevel);
    tls.level = read_level();
    if (tls.wrappermode && tls.level == TLS_NONE)
        tls.level = TLS_ENCRYPT;    /* implicit TLS is mandatory TLS */
    if (tls.level == TLS_NONE)
        return;
    read_ccert_settings();
    tls.ticket_period = cfg_time(P_smtpd_tls_session_cache_timeout);
    if (tls.ticket_period < 60)
        tls.ticket_period = 60;
    struct strbuf err = STRBUF_INIT(1024);
    tls.tickets = ticket_secret_load(&err) == 0;
    if (!tls.tickets)
        msg_warn("TLS session tickets are off (no session resumption): %s", sb_str(&err));
    sb_reset(&err);
    SSL_CTX *ctx = context_new(&tls.why);
    if (ctx && load_certificates(ctx, &tls.why) < 0) {
        SSL_CTX_free(ctx);
        ctx = NULL;
    }
    tls.ctx = ctx;
    if (!ctx) {
        msg_warn("TLS is not available: %s", sb_str(&tls.why));
        if (tls.wrappermode)
            msg_warn("smtpd_tls_wrappermode: every connection will be refused with 421 until "
                     "the certificate problem is fixed");
        else if (tls.level == TLS_ENCRYPT)
            msg_warn("smtpd_tls_security_level = encrypt: STARTTLS will be refused with 454, "
                     "and no mail accepted, until the certificate problem is fixed");
        else
            msg_warn("STARTTLS is not offered");
        sb_free(&err);
        return;
    }
    const char *sni = cfg_str(P_tls_server_sni_maps);
    if (*sni) {
        sni_load(sni);
        SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    }
    sb_free(&err);
}

/* OpenSSL reads a CApath directory during each handshake, by path and
 * with mail_owner's rights: inside a chroot that is a path under
 * queue_directory. */
void smtpd_tls_server_post_init(void)
{
    const char *capath = cfg_str(P_smtpd_tls_CApath);
    if (tls.ask_ccert && *capath && access(capath, X_OK) < 0)
        msg_warn("smtpd_tls_CApath %s cannot be searched by this %sservice: client certificates "
                 "issued by its CAs cannot be verified; use smtpd_tls_CAfile (read before the "
                 "privilege drop)%s", capath, chroot_active() ? "chrooted " : "",
                 chroot_active() ? " or a copy under queue_directory" : "");
}

enum smtpd_tls_level smtpd_tls_server_level(void)
{
    return tls.level;
}

bool smtpd_tls_server_wrappermode(void)
{
    return tls.wrappermode;
}

long smtpd_tls_server_loglevel(void)
{
    return tls.loglevel;
}

bool smtpd_tls_server_received_header(void)
{
    return tls.received_header;
}

bool smtpd_tls_server_ask_ccert(void)
{
    return tls.ask_ccert;
}

bool smtpd_tls_server_req_ccert(void)
{
    return tls.req_ccert;
}

const EVP_MD *smtpd_tls_server_fprint_digest(void)
{
    return tls.fprint_md ? tls.fprint_md : EVP_sha256();
}

bool smtpd_tls_server_available(void)
{
    return tls.ctx != NULL;
}

const char *smtpd_tls_server_unavailable_reason(void)
{
    return sb_str(&tls.why);
}

SSL *smtpd_tls_server_new_ssl(struct strbuf *err)
{
    SSL *ssl = tls.ctx ? SSL_new(tls.ctx) : NULL;
    if (!ssl) {
        sb_appends(err, "cannot create a TLS session: ");
        smtpd_tls_append_errors(err);
    }
    return ssl;
}
