/* smtpd_access.c: the restrictions that look things up in tables or in our
 * own domain lists: check_client_access, check_helo_access,
 * check_sender_access, check_recipient_access, check_etrn_access and
 * check_ccert_access (client certificate fingerprints) with access(5)'s
 * lookup order; reject_unlisted_recipient and reject_unlisted_sender
 * (local_recipient_maps, virtual_alias_maps, relay_recipient_maps); and the
 * relay decision (permit_auth_destination, reject_unauth_destination,
 * defer_unauth_destination). Both the relay decision and the recipient
 * tables look at the address as lib/global/resolve.c resolves it for delivery:
 * sender routing in the local part (%, !, a quoted @) followed to where
 * the mail would really go, address literals local only when they name
 * this host, so no routing trick makes a foreign destination look local
 * or an unknown local user look valid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "address.h"
#include "domains.h"
#include "resolve.h"
#include "rewrite.h"
#include "log.h"
#include "maps.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "strbuf.h"
#include "util.h"

#define KEY_MAX 1100

/* 1 found (the action applied, *res set), 0 not found, -1 error (*res set). */
static int try_key(struct smtpd_check_job *j, const struct smtpd_restriction *r, const char *key,
                   const char *name, const char *cls, enum smtpd_check_result *res)
{
    struct strbuf v = STRBUF_INIT(65536);
    int rc = map_lookup(r->map, key, &v);
    if (rc < 0) {
        sb_free(&v);
        msg_warn("%s: table %s: lookup of %s failed", j->s->client_desc, r->arg, key);
        *res = smtpd_check_reject(j, 451, "4.3.0", "<%s>: Temporary lookup failure", name);
        return -1;
    }
    if (rc == 0) {
        sb_free(&v);
        return 0;
    }
    char what[256];
    snprintf(what, sizeof(what), "%s %s", r->name, r->arg);
    *res = smtpd_check_apply_action(j, sb_str(&v), what, name, cls);
    sb_free(&v);
    return 1;
}

/* A host or domain name, then each parent domain ("a.b.c", "b.c", "c"):
 * Postfix's default, in which smtpd_access_maps is in
 * parent_domain_matches_subdomains. */
static int domain_keys(struct smtpd_check_job *j, const struct smtpd_restriction *r, const char *domain,
                       const char *name, const char *cls, enum smtpd_check_result *res)
{
    for (const char *d = domain; d && *d;) {
        int rc = try_key(j, r, d, name, cls, res);
        if (rc)
            return rc;
        d = strchr(d, '.');
        if (d)
            d++;
    }
    return 0;
}

/* The address, then shorter and shorter prefixes: "1.2.3.4", "1.2.3",
 * "1.2", "1"; IPv6 split at ':' the same way. */
static int addr_keys(struct smtpd_check_job *j, const struct smtpd_restriction *r, const char *addr,
                     const char *name, const char *cls, enum smtpd_check_result *res)
{
    char key[64];
    str_copy(key, sizeof(key), addr);
    char delim = strchr(key, ':') ? ':' : '.';
    for (;;) {
        int rc = try_key(j, r, key, name, cls, res);
        if (rc)
            return rc;
        char *cut = strrchr(key, delim);
        if (!cut)
            return 0;
        *cut = 0;
        while (cut > key && cut[-1] == delim)     /* "2001:db8::1" -> "2001:db8" */
            *--cut = 0;
        if (!*key)
            return 0;
    }
}

/* user@domain (and user@domain without its address extension), the domain
 * and its parents, then user@ (and without extension). The null sender is
 * looked up as smtpd_null_access_lookup_key. */
static int mail_keys(struct smtpd_check_job *j, const struct smtpd_restriction *r, const struct address *a,
                     const char *cls, enum smtpd_check_result *res)
{
    if (a->flags & ADDR_F_NULL) {
        const char *null_key = cfg_str(P_smtpd_null_access_lookup_key);
        return try_key(j, r, null_key, null_key, cls, res);
    }
    char key[KEY_MAX];
    const char *delim = smtpd_check_cfg.recipient_delimiter;
    char *base_local = NULL;
    if (delim && *delim) {
        size_t n = strcspn(a->local_lc, delim);
        if (n > 0 && a->local_lc[n])
            base_local = xstrndup(a->local_lc, n);
    }
    int rc;
    const char *domain = (a->flags & ADDR_F_NODOMAIN) ? "" : a->domain;
    snprintf(key, sizeof(key), "%s%s%s", a->local_lc, *domain ? "@" : "", domain);
    rc = try_key(j, r, key, a->address, cls, res);
    if (!rc && base_local) {
        snprintf(key, sizeof(key), "%s%s%s", base_local, *domain ? "@" : "", domain);
        rc = try_key(j, r, key, a->address, cls, res);
    }
    if (!rc && *domain)
        rc = domain_keys(j, r, domain, a->address, cls, res);
    if (!rc) {
        snprintf(key, sizeof(key), "%s@", a->local_lc);
        rc = try_key(j, r, key, a->address, cls, res);
    }
    if (!rc && base_local) {
        snprintf(key, sizeof(key), "%s@", base_local);
        rc = try_key(j, r, key, a->address, cls, res);
    }
    free(base_local);
    return rc;
}

enum smtpd_check_result smtpd_access_check(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    struct smtpd_session *s = j->s;
    enum smtpd_check_result res = CHK_DUNNO;
    switch (r->type) {
    case R_CHECK_CLIENT_ACCESS: {
        const char *name = s->check ? s->check->name : "unknown";
        int rc = 0;
        if (strcmp(name, "unknown") != 0)
            rc = domain_keys(j, r, name, s->client_desc, "Client host", &res);
        if (!rc)
            addr_keys(j, r, s->client_addr, s->client_desc, "Client host", &res);
        return res;
    }
    case R_CHECK_HELO_ACCESS: {
        const char *h = j->helo_arg ? j->helo_arg : s->helo_name;
        if (!h)
            return CHK_DUNNO;
        char *lc = str_lower(xstrdup(h));
        size_t n = strlen(lc);
        if (n > 1 && lc[n - 1] == '.')
            lc[n - 1] = 0;
        domain_keys(j, r, lc, h, "Helo command", &res);
        free(lc);
        return res;
    }
    case R_CHECK_SENDER_ACCESS: {
        const struct address *a = smtpd_check_sender(j);
        if (a)
            mail_keys(j, r, a, "Sender address", &res);
        return res;
    }
    case R_CHECK_RCPT_ACCESS: {
        const struct address *a = smtpd_check_recipient(j);
        if (a)
            mail_keys(j, r, a, "Recipient address", &res);
        return res;
    }
    case R_CHECK_ETRN_ACCESS: {       /* the ETRN domain, then its parents */
        if (j->stage != STAGE_ETRN || !j->arg)
            return CHK_DUNNO;
        char *lc = str_lower(xstrdup(j->arg));
        size_t n = strlen(lc);
        if (n > 1 && lc[n - 1] == '.')
            lc[n - 1] = 0;
        domain_keys(j, r, lc, j->arg, "Etrn command", &res);
        free(lc);
        return res;
    }
    case R_CHECK_CCERT_ACCESS:
        /* the certificate's fingerprint, then its public key's (Postfix's
         * search order); a certificate need not be trusted to be named by
         * its fingerprint */
        if (!s->tls_ccert_present)
            return CHK_DUNNO;
        if (try_key(j, r, s->tls_ccert_fprint, s->client_desc, "Client certificate", &res) == 0)
            try_key(j, r, s->tls_ccert_pkey_fprint, s->client_desc, "Client certificate", &res);
        return res;
    default:
        return CHK_DUNNO;
    }
}

/* ---- relay control ---- */

/* Is a one of our destinations? The resolver (lib/global/resolve.h) decides, on
 * the address as delivery will see it: local (mydestination or an address
 * literal of this host) and virtual_mailbox_domains are ours;
 * relay_domains and virtual_alias_domains
 * are ours unless the address carries sender routing (Postfix's
 * allow_untrusted_routing = no). The bare "postmaster" is always accepted
 * (RFC 5321 section 4.5.1). 1 ours, 0 not, -1 a table could not answer. */
static int destination_state(const struct address *a)
{
    if ((a->flags & ADDR_F_NODOMAIN) && !(a->flags & ADDR_F_ROUTED)
        && strcmp(a->local_lc, "postmaster") == 0)
        return 1;
    struct resolve_result r;
    if (resolve_address(a, &r) < 0)
        return -1;
    int ours = r.class == RESOLVE_LOCAL || r.class == RESOLVE_VIRTUAL
               || (r.class == RESOLVE_RELAY && !(r.flags & RESOLVE_F_ROUTED));
    if (!ours && r.class != RESOLVE_BAD && !(r.flags & RESOLVE_F_ROUTED))
        ours = rewrite_virtual_alias_domain(r.domain);
    resolve_result_free(&r);
    return ours;
}

bool smtpd_access_destination_ok(struct smtpd_session *s, const struct address *a)
{
    (void)s;
    return destination_state(a) == 1;
}

enum smtpd_check_result smtpd_access_relay(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    const struct address *a = smtpd_check_recipient(j);
    if (!j->rcpt)
        return CHK_DUNNO;
    int ours = a ? destination_state(a) : 0;
    if (ours < 0)
        return smtpd_check_reject(j, 451, "4.3.0", "<%s>: Temporary lookup failure", j->rcpt);
    if (ours > 0)
        return r->type == R_PERMIT_AUTH_DEST ? CHK_OK : CHK_DUNNO;
    if (r->type == R_PERMIT_AUTH_DEST)
        return CHK_DUNNO;
    int code = r->type == R_DEFER_UNAUTH_DEST ? cfg_reply_code(P_relay_domains_reject_code) - 100 : cfg_reply_code(P_relay_domains_reject_code);
    return smtpd_check_reject(j, code, "5.7.1", "<%s>: Relay access denied", j->rcpt);
}

/* ---- reject_unlisted_recipient / reject_unlisted_sender ---- */

/* 1 listed, 0 not, -1 lookup error. Keys: user@domain, then (local tables)
 * user, then (virtual and relay tables) @domain; each also without an
 * address extension. */
static int listed(struct maplist *l, const char *local_lc, const char *domain, bool local)
{
    struct strbuf v = STRBUF_INIT(65536);
    char key[KEY_MAX];
    const char *delim = smtpd_check_cfg.recipient_delimiter;
    char *locals[2] = { xstrdup(local_lc), NULL };
    if (delim && *delim) {
        size_t n = strcspn(local_lc, delim);
        if (n > 0 && local_lc[n])
            locals[1] = xstrndup(local_lc, n);
    }
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0 && locals[i]; i++) {
        snprintf(key, sizeof(key), "%s@%s", locals[i], domain);
        rc = maplist_lookup(l, key, &v);
        if (rc == 0 && local)
            rc = maplist_lookup(l, locals[i], &v);
    }
    if (rc == 0 && !local) {
        snprintf(key, sizeof(key), "@%s", domain);
        rc = maplist_lookup(l, key, &v);
    }
    free(locals[0]);
    free(locals[1]);
    sb_free(&v);
    return rc < 0 ? -1 : rc > 0;
}

/* Why delivery would refuse a resolved address as unknown: 0 it would not,
 * 1 it would (u filled), -1 a table could not answer. The tables are asked
 * about the address as the resolver leaves it (sender routing in a local
 * domain resolved: "nosuchuser%localhost@localhost" is
 * "nosuchuser@localhost"). */
struct unknown {
    int code;
    const char *dsn, *why;
};

/* show_user_unknown_table_name = no: "User unknown" without the table's
 * name (in local recipient table, ...) */
static const char *unknown_why(const char *why)
{
    if (strncmp(why, "User unknown in ", 16) == 0 && !cfg_bool(P_show_user_unknown_table_name))
        return "User unknown";
    return why;
}

static int unknown_address(const struct resolve_result *r, bool sender, struct unknown *u)
{
    const char *dsn = sender ? "5.1.0" : "5.1.1";
    if (r->class == RESOLVE_BAD) {
        *u = (struct unknown){ cfg_reply_code(P_unknown_local_recipient_reject_code), sender ? "5.1.7" : "5.1.3", r->why };
        return 1;
    }
    int rc = rewrite_virtual_alias_domain(r->domain);
    if (rc != 0) {
        *u = (struct unknown){ cfg_reply_code(P_unknown_virtual_alias_reject_code), dsn,
                               "User unknown in virtual alias table" };
        return rc;
    }
    if (r->class == RESOLVE_LOCAL && smtpd_check_cfg.local_rcpt_maps) {
        rc = listed(smtpd_check_cfg.local_rcpt_maps, r->local_lc, r->domain, true);
        *u = (struct unknown){ cfg_reply_code(P_unknown_local_recipient_reject_code), dsn,
                               "User unknown in local recipient table" };
        return rc < 0 ? -1 : rc == 0;
    }
    if (r->class == RESOLVE_VIRTUAL && smtpd_check_cfg.virtual_mailbox_maps) {
        /* the virtual agent bounces what virtual_mailbox_maps does not list */
        rc = listed(smtpd_check_cfg.virtual_mailbox_maps, r->local_lc, r->domain, false);
        *u = (struct unknown){ cfg_reply_code(P_unknown_virtual_mailbox_reject_code), dsn,
                               "User unknown in virtual mailbox table" };
        return rc < 0 ? -1 : rc == 0;
    }
    if (r->class == RESOLVE_RELAY && smtpd_check_cfg.relay_rcpt_maps) {
        rc = listed(smtpd_check_cfg.relay_rcpt_maps, r->local_lc, r->domain, false);
        *u = (struct unknown){ cfg_reply_code(P_unknown_relay_recipient_reject_code), dsn,
                               "User unknown in relay recipient table" };
        return rc < 0 ? -1 : rc == 0;
    }
    return 0;
}

/* One address (after rewriting) in text form: 0, 1 or -1 as above. */
static int unknown_text(const char *addr, bool sender, struct unknown *u)
{
    struct resolve_result r;
    int rc = resolve_text(addr, &r);
    if (rc == 0)
        rc = unknown_address(&r, sender, u);
    resolve_result_free(&r);
    return rc;
}

/* The address is judged as cleanup will leave it (lib/global/rewrite.h):
 * canonical mapping, then virtual alias expansion. An address the alias
 * tables list is valid when at least one of its final targets is; one
 * they do not list is judged itself, and is unknown when its domain is a
 * virtual alias domain. So what delivery would bounce as unknown is
 * refused here, instead of bouncing to a sender who may be forged. */
enum smtpd_check_result smtpd_access_unlisted(struct smtpd_check_job *j, bool sender)
{
    const struct address *a = sender ? smtpd_check_sender(j) : smtpd_check_recipient(j);
    if (!a || (a->flags & ADDR_F_NULL))
        return CHK_DUNNO;
    if (!sender && (smtpd_check_cfg.receive_overrides & RECEIVE_NO_UNKNOWN_RCPT))
        return CHK_DUNNO;
    const char *cls = sender ? "Sender address" : "Recipient address";
    struct strbuf canon = STRBUF_INIT(0);
    struct rewrite_expansion x = { NULL, 0, false };
    struct unknown u = { 0, NULL, NULL };
    enum smtpd_check_result res = CHK_DUNNO;
    int rc = rewrite_address(a->address, sender ? REWRITE_ENV_SENDER : REWRITE_ENV_RCPT, &canon);
    if (rc == 0)
        rc = rewrite_virtual(sb_str(&canon), "NOQUEUE", &x);
    if (rc == REWRITE_LIMIT_EXCEEDED) {
        res = smtpd_check_reject(j, 451, "4.6.0", "<%s>: %s rejected: Alias expansion error",
                                 a->address, cls);
        goto out;
    }
    if (rc == 0 && !x.listed) {
        struct resolve_result r;
        /* the parsed address when rewriting left it as it was */
        rc = strcmp(sb_str(&canon), a->address) == 0 ? resolve_address(a, &r)
                                                     : resolve_text(sb_str(&canon), &r);
        if (rc == 0)
            rc = unknown_address(&r, sender, &u);
        resolve_result_free(&r);
    } else if (rc == 0) {
        struct unknown first = { 0, NULL, NULL };
        rc = 1;
        for (size_t i = 0; i < x.n && rc == 1; i++) {
            rc = unknown_text(x.addrs[i], sender, &u);
            if (i == 0)
                first = u;
        }
        u = first;
    }
    if (rc < 0)
        res = smtpd_check_reject(j, 451, "4.3.0", "<%s>: Temporary lookup failure", a->address);
    else if (rc > 0)
        res = smtpd_check_reject(j, u.code, u.dsn, "<%s>: %s rejected: %s", a->address, cls,
                                 unknown_why(u.why));
out:
    rewrite_expansion_free(&x);
    sb_free(&canon);
    return res;
}

/* ---- smtpd_sender_login_maps ---- */

/* The owners of a sender address: 1 found (in owners), 0 not, -1 lookup
 * error. Keys: user@domain, user@domain without the address extension,
 * then @domain. */
static int sender_owners(const struct address *a, struct strbuf *owners)
{
    char key[KEY_MAX];
    const char *domain = (a->flags & ADDR_F_NODOMAIN) ? domain_myorigin() : a->domain;
    const char *delim = smtpd_check_cfg.recipient_delimiter;
    snprintf(key, sizeof(key), "%s@%s", a->local_lc, domain);
    int rc = maplist_lookup(smtpd_check_cfg.sender_login_maps, key, owners);
    if (rc == 0 && delim && *delim) {
        size_t n = strcspn(a->local_lc, delim);
        if (n > 0 && a->local_lc[n]) {
            snprintf(key, sizeof(key), "%.*s@%s", (int)n, a->local_lc, domain);
            rc = maplist_lookup(smtpd_check_cfg.sender_login_maps, key, owners);
        }
    }
    if (rc == 0) {
        snprintf(key, sizeof(key), "@%s", domain);
        rc = maplist_lookup(smtpd_check_cfg.sender_login_maps, key, owners);
    }
    return rc;
}

/* Is user one of the comma or space separated names (case-insensitive)? */
static bool owner_listed(const char *owners, const char *user)
{
    size_t ulen = strlen(user);
    for (const char *p = owners; *p;) {
        p += strspn(p, ", \t");
        size_t n = strcspn(p, ", \t");
        if (n == ulen && n > 0 && strncasecmp(p, user, n) == 0)
            return true;
        p += n;
    }
    return false;
}

/* As Postfix: the authenticated variants refuse a client logged in as a
 * user who does not own the sender address (an address the tables do not
 * list included, except for reject_known_sender_login_mismatch); the
 * unauthenticated one refuses a client not logged in that uses an address
 * the tables give an owner. The null sender is never checked. */
enum smtpd_check_result smtpd_access_sender_login(struct smtpd_check_job *j,
                                                  const struct smtpd_restriction *r)
{
    const struct address *a = smtpd_check_sender(j);
    const char *user = j->s->sasl_username;
    if (!a || (a->flags & ADDR_F_NULL) || !smtpd_check_cfg.sender_login_maps)
        return CHK_DUNNO;
    bool check_auth = r->type != R_UNAUTH_SENDER_LOGIN_MISMATCH;
    bool check_unauth = r->type == R_SENDER_LOGIN_MISMATCH
                        || r->type == R_UNAUTH_SENDER_LOGIN_MISMATCH
                        || r->type == R_KNOWN_SENDER_LOGIN_MISMATCH;
    if (user ? !check_auth : !check_unauth)
        return CHK_DUNNO;
    struct strbuf owners = STRBUF_INIT(65536);
    int rc = sender_owners(a, &owners);
    enum smtpd_check_result res = CHK_DUNNO;
    if (rc < 0) {
        msg_warn("%s: smtpd_sender_login_maps: lookup of %s failed", j->s->client_desc,
                 a->address);
        res = smtpd_check_reject(j, 451, "4.3.0", "<%s>: Temporary lookup failure", a->address);
    } else if (!user) {
        if (rc > 0)
            res = smtpd_check_reject(j, 553, "5.7.1", "<%s>: Sender address rejected: not logged in",
                                     a->address);
    } else if (rc == 0 ? r->type != R_KNOWN_SENDER_LOGIN_MISMATCH
                       : !owner_listed(sb_str(&owners), user)) {
        res = smtpd_check_reject(j, 553, "5.7.1", "<%s>: Sender address rejected: not owned by user %s",
                                 a->address, user);
    }
    sb_free(&owners);
    return res;
}
