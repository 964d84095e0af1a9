/* smtpd_ccert.c: the TLS client certificates of smtpd's sessions, with
 * Postfix's meaning: after the handshake the certificate's subject and
 * issuer common names and its fingerprints (smtpd_tls_fingerprint_digest)
 * are kept in the session and logged ("Trusted TLS connection established
 * from ...", "Untrusted" when it did not verify against smtpd_tls_CAfile /
 * smtpd_tls_CApath, "Anonymous" without one); the Received: header says
 * what was presented; smtpd_tls_req_ccert refuses a session whose
 * certificate is not trusted; and the relay restrictions
 * permit_tls_all_clientcerts (any trusted certificate) and
 * permit_tls_clientcerts (a certificate or public key fingerprint listed in
 * relay_clientcerts, trusted or not: the fingerprint is the trust). */
#include <stdio.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"
#include "log.h"
#include "maps.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "strbuf.h"
#include "tls_certs.h"
#include "util.h"

bool smtpd_ccert_handshake_done(struct smtpd_session *s)
{
    SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
    X509 *peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    const EVP_MD *md = smtpd_tls_server_fprint_digest();
    long verify = peer ? SSL_get_verify_result(ssl) : X509_V_OK;
    s->tls_ccert_present = peer != NULL;
    s->tls_ccert_trusted = peer && verify == X509_V_OK;
    if (peer) {
        tls_subject_cn(peer, s->tls_ccert_subject, sizeof(s->tls_ccert_subject));
        tls_issuer_cn(peer, s->tls_ccert_issuer, sizeof(s->tls_ccert_issuer));
        tls_cert_fprint(peer, md, s->tls_ccert_fprint, sizeof(s->tls_ccert_fprint));
        tls_pkey_fprint(peer, md, s->tls_ccert_pkey_fprint, sizeof(s->tls_ccert_pkey_fprint));
    }
    const char *trust = !peer ? "Anonymous" : s->tls_ccert_trusted ? "Trusted" : "Untrusted";
    if (smtpd_tls_server_loglevel() >= 1) {
        if (peer && !s->tls_ccert_trusted)
            msg_info("%s: client certificate verification failed: num=%ld:%s", s->client_desc,
                     verify, X509_verify_cert_error_string(verify));
        if (peer)
            msg_info("%s: %s: subject_CN=%s, issuer=%s, fingerprint=%s, pkey_fingerprint=%s",
                     s->client_desc, trust, s->tls_ccert_subject, s->tls_ccert_issuer,
                     s->tls_ccert_fprint, s->tls_ccert_pkey_fprint);
        char summary[160];
        smtpd_tls_session_summary(s, summary, sizeof(summary));
        msg_info("%s TLS connection established from %s: %s", trust, s->client_desc, summary);
    }
    /* The handshake itself refuses a missing or untrusted certificate when
     * one is required; a resumed session is checked here once more. */
    if (smtpd_tls_server_req_ccert() && !s->tls_ccert_trusted) {
        msg_info("NOQUEUE: abort: TLS from %s: %s", s->client_desc,
                 peer ? "client certificate not trusted" : "no client certificate");
        return false;
    }
    return true;
}

const char *smtpd_ccert_received(const struct smtpd_session *s, char *buf, size_t bufsz)
{
    if (s->tls_ccert_present)
        snprintf(buf, bufsz, "Client CN \"%s\", Issuer \"%s\" (%s)", s->tls_ccert_subject,
                 s->tls_ccert_issuer, s->tls_ccert_trusted ? "verified OK" : "not verified");
    else if (smtpd_tls_server_ask_ccert())
        snprintf(buf, bufsz, "Client did not present a certificate");
    else
        return NULL;
    return buf;
}

enum smtpd_check_result smtpd_ccert_check(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    struct smtpd_session *s = j->s;
    if (!s->tls_active || !s->tls_ccert_present)
        return CHK_DUNNO;
    if (r->type == R_PERMIT_TLS_ALL_CLIENTCERTS)
        return s->tls_ccert_trusted ? CHK_OK : CHK_DUNNO;
    if (!smtpd_check_cfg.relay_clientcerts)
        return CHK_DUNNO;
    const char *prints[2] = { s->tls_ccert_fprint, s->tls_ccert_pkey_fprint };
    struct strbuf v = STRBUF_INIT(4096);
    enum smtpd_check_result res = CHK_DUNNO;
    for (int i = 0; i < 2 && res == CHK_DUNNO; i++) {
        if (!*prints[i])
            continue;
        int rc = maplist_lookup(smtpd_check_cfg.relay_clientcerts, prints[i], &v);
        if (rc > 0) {
            res = CHK_OK;
        } else if (rc < 0) {
            msg_warn("relay_clientcerts: lookup error for fingerprint '%s', pkey fingerprint %s",
                     prints[0], prints[1]);
            res = smtpd_check_reject(j, 451, "4.3.0", "<%s>: Temporary lookup failure",
                                     s->client_desc);
        }
    }
    sb_free(&v);
    return res;
}
