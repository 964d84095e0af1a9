/* smtpd_check.c: smtpd's restriction engine, with Postfix's names and
 * meaning: smtpd_client_, _helo_, _sender_, _relay_, _recipient_, _data_
 * and _end_of_data_restrictions, each a list evaluated in order until a
 * restriction permits (the list is done) or rejects (the command is
 * refused). With smtpd_delay_reject the client, HELO and sender lists run
 * at RCPT TO, so a reject line names the recipient. A restriction that must
 * ask DNS or a policy server makes the evaluation wait without stopping the
 * event loop (the session stops reading input meanwhile) and go on with the
 * answer. A table, DNS or policy error never becomes an accept: it answers
 * 4xx, at once or (DNS) as defer_if_permit. Every refusal is logged as
 * "NOQUEUE: reject: RCPT from name[addr]: 554 5.7.1 ...; from=<> to=<>
 * proto=ESMTP helo=<>". */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attr.h"
#include "config.h"
#include "dns_event.h"
#include "resolve.h"
#include "log.h"
#include "maps.h"
#include "netlist.h"
#include "server.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "strbuf.h"
#include "util.h"

struct smtpd_check_config smtpd_check_cfg;

/* restriction classes (smtpd_restriction_classes) */
static struct rclass { char *name; struct smtpd_restriction_list list; } *classes;
static size_t nclasses;

static const char *const stage_params[STAGE_COUNT] = {
    "smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
    "smtpd_relay_restrictions", "smtpd_recipient_restrictions", "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions",
};

/* ---- compiling restriction lists ---- */

static const struct { const char *name; enum smtpd_restriction_type type; bool arg; } known[] = {
    { "permit", R_PERMIT, false }, { "reject", R_REJECT, false }, { "defer", R_DEFER, false },
    { "defer_if_permit", R_DEFER_IF_PERMIT, false }, { "defer_if_reject", R_DEFER_IF_REJECT, false },
    { "warn_if_reject", R_WARN_IF_REJECT, false }, { "dunno", R_DUNNO, false },
    { "permit_mynetworks", R_PERMIT_MYNETWORKS, false },
    { "permit_sasl_authenticated", R_PERMIT_SASL, false },
    { "permit_auth_destination", R_PERMIT_AUTH_DEST, false },
    { "reject_unauth_destination", R_REJECT_UNAUTH_DEST, false },
    { "defer_unauth_destination", R_DEFER_UNAUTH_DEST, false },
    { "reject_unlisted_recipient", R_REJECT_UNLISTED_RCPT, false },
    { "reject_unlisted_sender", R_REJECT_UNLISTED_SENDER, false },
    { "check_client_access", R_CHECK_CLIENT_ACCESS, true },
    { "check_helo_access", R_CHECK_HELO_ACCESS, true },
    { "check_sender_access", R_CHECK_SENDER_ACCESS, true },
    { "check_recipient_access", R_CHECK_RCPT_ACCESS, true },
    { "reject_rbl_client", R_RBL_CLIENT, true }, { "reject_rhsbl_client", R_RHSBL_CLIENT, true },
    { "reject_rhsbl_sender", R_RHSBL_SENDER, true }, { "reject_rhsbl_helo", R_RHSBL_HELO, true },
    { "reject_rhsbl_recipient", R_RHSBL_RCPT, true },
    { "reject_invalid_helo_hostname", R_INVALID_HELO, false },
    { "reject_invalid_hostname", R_INVALID_HELO, false },
    { "reject_non_fqdn_helo_hostname", R_NON_FQDN_HELO, false },
    { "reject_non_fqdn_hostname", R_NON_FQDN_HELO, false },
    { "reject_non_fqdn_sender", R_NON_FQDN_SENDER, false },
    { "reject_non_fqdn_recipient", R_NON_FQDN_RCPT, false },
    { "reject_unknown_sender_domain", R_UNKNOWN_SENDER_DOMAIN, false },
    { "reject_unknown_recipient_domain", R_UNKNOWN_RCPT_DOMAIN, false },
    { "reject_unknown_client_hostname", R_UNKNOWN_CLIENT, false },
    { "reject_unknown_client", R_UNKNOWN_CLIENT, false },
    { "reject_unknown_reverse_client_hostname", R_UNKNOWN_REVERSE_CLIENT, false },
    { "reject_unauth_pipelining", R_UNAUTH_PIPELINING, false },
    { "check_policy_service", R_POLICY, true },
    { "reject_sender_login_mismatch", R_SENDER_LOGIN_MISMATCH, false },
    { "reject_authenticated_sender_login_mismatch", R_AUTH_SENDER_LOGIN_MISMATCH, false },
    { "reject_unauthenticated_sender_login_mismatch", R_UNAUTH_SENDER_LOGIN_MISMATCH, false },
    { "reject_known_sender_login_mismatch", R_KNOWN_SENDER_LOGIN_MISMATCH, false },
};

/* Tables named by several restrictions are opened once. */
static struct map *open_table(const char *spec, const char *param)
{
    static struct { char *spec; struct map *map; } opened[64];
    static size_t nopened;
    for (size_t i = 0; i < nopened; i++)
        if (strcmp(opened[i].spec, spec) == 0)
            return opened[i].map;
    struct strbuf err = STRBUF_INIT(1024);
    struct map *m = map_open(spec, &err);
    if (!m)
        msg_warn("%s: cannot open table %s: %s", param, spec, sb_str(&err));
    sb_free(&err);
    if (m && nopened < sizeof(opened) / sizeof(opened[0])) {
        opened[nopened].spec = xstrdup(spec);
        opened[nopened++].map = m;
    }
    return m;
}

static bool is_class(const char *name)
{
    const char *list = cfg_str(P_smtpd_restriction_classes);
    size_t n;
    char **words = cfg_list_split(list, &n);
    bool found = false;
    for (size_t i = 0; i < n && !found; i++)
        found = strcmp(words[i], name) == 0;
    cfg_list_free(words, n);
    return found;
}

static void add_item(struct smtpd_restriction_list *l, const struct smtpd_restriction *r)
{
    l->items = xrealloc(l->items, (l->n + 1) * sizeof(*l->items));
    l->items[l->n++] = *r;
}

void smtpd_restriction_list_parse(struct smtpd_restriction_list *l, const char *text, const char *param)
{
    size_t n;
    char **words = cfg_list_split(text, &n);
    memset(l, 0, sizeof(*l));
    for (size_t i = 0; i < n; i++) {
        struct smtpd_restriction r;
        memset(&r, 0, sizeof(r));
        r.name = xstrdup(words[i]);
        r.type = R_CONFIG_ERROR;
        size_t k;
        for (k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            if (str_ieq(words[i], known[k].name))
                break;
        if (k < sizeof(known) / sizeof(known[0])) {
            if (known[k].arg && i + 1 >= n) {
                msg_warn("%s: restriction %s needs an argument", param, words[i]);
            } else {
                r.type = known[k].type;
                if (known[k].arg)
                    r.arg = xstrdup(words[++i]);
            }
        } else if (is_class(words[i])) {
            r.type = R_CLASS;
            r.arg = xstrdup(words[i]);
        } else if (strchr(words[i], ':')) {
            msg_warn("%s: a table (%s) must follow a check_*_access restriction", param, words[i]);
        } else {
            msg_warn("%s: unknown smtpd restriction: \"%s\"", param, words[i]);
        }
        if (r.type >= R_CHECK_CLIENT_ACCESS && r.type <= R_CHECK_RCPT_ACCESS) {
            r.map = open_table(r.arg, param);
            if (!r.map)
                r.type = R_CONFIG_ERROR;
        } else if (r.type >= R_RBL_CLIENT && r.type <= R_RHSBL_RCPT) {
            char *eq = strchr(r.arg, '=');
            if (eq) {
                *eq = 0;
                r.rbl_filter = xstrdup(eq + 1);
            }
        } else if (r.type >= R_SENDER_LOGIN_MISMATCH && r.type <= R_KNOWN_SENDER_LOGIN_MISMATCH
                   && !*cfg_str(P_smtpd_sender_login_maps)) {
            msg_warn("%s: restriction %s requires that smtpd_sender_login_maps is set",
                     param, words[i]);
            r.type = R_CONFIG_ERROR;
        } else if (r.type == R_POLICY) {
            r.policy = smtpd_policy_service_get(r.arg);
            if (!r.policy) {
                msg_warn("%s: bad policy service \"%s\": expected inet:host:port or unix:path",
                         param, r.arg);
                r.type = R_CONFIG_ERROR;
            }
        }
        add_item(l, &r);
    }
    cfg_list_free(words, n);
}

void smtpd_restriction_list_free(struct smtpd_restriction_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].name);
        free(l->items[i].arg);
        free(l->items[i].rbl_filter);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static const struct smtpd_restriction_list *class_list(const char *name)
{
    for (size_t i = 0; i < nclasses; i++)
        if (strcmp(classes[i].name, name) == 0)
            return &classes[i].list;
    return NULL;
}

static struct maplist *open_maplist(enum param_id id, const char *name)
{
    const char *v = cfg_str(id);
    if (!*v)
        return NULL;
    struct strbuf err = STRBUF_INIT(1024);
    struct maplist *l = maplist_open(v, &err);
    if (!l)
        msg_fatal("main.cf: %s: %s", name, sb_str(&err));
    sb_free(&err);
    return l;
}

static int reply_code(enum param_id id, const char *name, int lo, int hi)
{
    long v = cfg_int(id);
    if (v < lo || v > hi)
        msg_fatal("main.cf: %s = %ld: expected a reply code from %d to %d", name, v, lo, hi);
    return (int)v;
}

/* Does the list hold something that can refuse a recipient? Postfix
 * refuses to run without one in the relay or the recipient list. */
static bool list_can_refuse(const struct smtpd_restriction_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        enum smtpd_restriction_type t = l->items[i].type;
        if (t == R_REJECT || t == R_DEFER || t == R_DEFER_IF_PERMIT || t == R_REJECT_UNAUTH_DEST
            || t == R_DEFER_UNAUTH_DEST)
            return true;
    }
    return false;
}

/* As root, before any chroot: tables and the resolver's configuration
 * (the address resolver reads this host's interface addresses here, before
 * the privilege drop). */
void smtpd_check_pre_init(void)
{
    struct smtpd_check_config *c = &smtpd_check_cfg;
    resolve_init();
    c->delay_reject = cfg_bool(P_smtpd_delay_reject);
    c->null_key = cfg_str(P_smtpd_null_access_lookup_key);
    c->reject_unlisted_sender = cfg_bool(P_smtpd_reject_unlisted_sender);
    c->reject_unlisted_rcpt = cfg_bool(P_smtpd_reject_unlisted_recipient);
    c->peername_lookup = cfg_bool(P_smtpd_peername_lookup);
    c->recipient_delimiter = cfg_str(P_recipient_delimiter);
    c->reject_code = reply_code(P_reject_code, "reject_code", 400, 599);
    c->defer_code = reply_code(P_defer_code, "defer_code", 400, 499);
    c->relay_code = reply_code(P_relay_domains_reject_code, "relay_domains_reject_code", 400, 599);
    c->access_reject_code = reply_code(P_access_map_reject_code, "access_map_reject_code", 400, 599);
    c->access_defer_code = reply_code(P_access_map_defer_code, "access_map_defer_code", 400, 499);
    c->invalid_hostname_code = reply_code(P_invalid_hostname_reject_code,
                                          "invalid_hostname_reject_code", 400, 599);
    c->non_fqdn_code = reply_code(P_non_fqdn_reject_code, "non_fqdn_reject_code", 400, 599);
    c->unknown_address_code = reply_code(P_unknown_address_reject_code,
                                         "unknown_address_reject_code", 400, 599);
    c->unknown_client_code = reply_code(P_unknown_client_reject_code,
                                        "unknown_client_reject_code", 400, 599);
    c->rbl_code = reply_code(P_maps_rbl_reject_code, "maps_rbl_reject_code", 400, 599);
    c->unknown_local_code = reply_code(P_unknown_local_recipient_reject_code,
                                       "unknown_local_recipient_reject_code", 400, 599);
    c->unknown_relay_code = reply_code(P_unknown_relay_recipient_reject_code,
                                       "unknown_relay_recipient_reject_code", 400, 599);
    c->unknown_virtual_code = reply_code(P_unknown_virtual_alias_reject_code,
                                         "unknown_virtual_alias_reject_code", 400, 599);
    /* the template keeps its $rbl_* names: it is expanded per reply */
    c->default_rbl_reply = cfg_get_raw_set("default_rbl_reply");
    if (!c->default_rbl_reply)
        c->default_rbl_reply = param_table()[P_default_rbl_reply].default_value;
    c->local_rcpt_maps = open_maplist(P_local_recipient_maps, "local_recipient_maps");
    c->relay_rcpt_maps = open_maplist(P_relay_recipient_maps, "relay_recipient_maps");
    c->virtual_maps = open_maplist(P_virtual_alias_maps, "virtual_alias_maps");
    c->rbl_reply_maps = open_maplist(P_rbl_reply_maps, "rbl_reply_maps");
    c->sender_login_maps = open_maplist(P_smtpd_sender_login_maps, "smtpd_sender_login_maps");
    smtpd_policy_init();

    size_t n;
    char **names = cfg_list_split(cfg_str(P_smtpd_restriction_classes), &n);
    classes = xcalloc(n + 1, sizeof(*classes));
    for (size_t i = 0; i < n; i++) {
        const char *v = cfg_get(names[i]);
        classes[nclasses].name = xstrdup(names[i]);
        smtpd_restriction_list_parse(&classes[nclasses++].list, v ? v : "", names[i]);
    }
    cfg_list_free(names, n);
    for (int st = 0; st < STAGE_COUNT; st++) {
        const char *v = cfg_get(stage_params[st]);
        smtpd_restriction_list_parse(&c->lists[st], v ? v : "", stage_params[st]);
    }
    if (!list_can_refuse(&c->lists[STAGE_RELAY]) && !list_can_refuse(&c->lists[STAGE_RECIPIENT]))
        msg_fatal("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify "
                  "at least one working instance of: reject_unauth_destination, "
                  "defer_unauth_destination, reject, defer, defer_if_permit");
    struct strbuf err = STRBUF_INIT(1024);
    c->dns = dnsev_open(cfg_str(P_smtpd_dns_servers), (int)cfg_time(P_smtpd_dns_timeout), &err);
    if (!c->dns)
        msg_fatal("main.cf: smtpd_dns_servers: %s", sb_str(&err));
    sb_free(&err);
}

void smtpd_check_init(void)
{
    struct strbuf err = STRBUF_INIT(1024);
    smtpd_cfg.mynetworks = netlist_parse(cfg_str(P_mynetworks), &err);
    if (!smtpd_cfg.mynetworks)
        msg_fatal("main.cf: mynetworks: %s", sb_str(&err));
    sb_free(&err);
    resolve_init();
    if (!smtpd_check_cfg.dns)
        smtpd_check_pre_init();      /* started without the pre-init step */
    dnsev_attach(smtpd_check_cfg.dns, server_event_base());
}

bool smtpd_check_client_trusted(const struct sockaddr *sa)
{
    return netlist_match(smtpd_cfg.mynetworks, sa);
}

/* ---- per-session state ---- */

static struct smtpd_check_state *state_of(struct smtpd_session *s)
{
    if (!s->check) {
        s->check = xcalloc(1, sizeof(*s->check));
        str_copy(s->check->name, sizeof(s->check->name), "unknown");
        str_copy(s->check->reverse_name, sizeof(s->check->reverse_name), "unknown");
        s->check->name_status = s->check->reverse_status = 5;
        sb_init(&s->check->prepend, 16384);
    }
    return s->check;
}

void smtpd_check_mail_reset(struct smtpd_session *s)
{
    struct smtpd_check_state *c = s->check;
    if (!c)
        return;
    c->discard = c->hold = false;
    c->instance[0] = 0;
    free(c->filter);
    c->filter = NULL;
    sb_reset(&c->prepend);
}

static void job_free(struct smtpd_check_job *j);

void smtpd_check_session_end(struct smtpd_session *s)
{
    struct smtpd_check_state *c = s->check;
    if (!c)
        return;
    smtpd_resolve_client_cancel(s);
    if (c->job)
        job_free(c->job);
    smtpd_check_mail_reset(s);
    sb_free(&c->prepend);
    free(c->access_denied);
    free(c);
    s->check = NULL;
}

/* ---- log lines ---- */

static const char *stage_where(const struct smtpd_check_job *j)
{
    return j->s->where ? j->s->where : "CONNECT";
}

/* "NOQUEUE: WHAT: VERB from name[addr]: TEXT; from=<> to=<> proto= helo=<>",
 * fields present as Postfix shows them. */
static void check_log(struct smtpd_check_job *j, const char *what, const char *text)
{
    struct smtpd_session *s = j->s;
    struct strbuf line = STRBUF_INIT(4096);
    sb_appendf(&line, "NOQUEUE: %s: %s from %s: %s;", what, stage_where(j), s->client_desc, text);
    const struct address *snd = smtpd_check_sender(j);
    if (snd)
        sb_appendf(&line, " from=<%s>", snd->address);
    if (j->rcpt)
        sb_appendf(&line, " to=<%s>", j->rcpt);
    else if ((j->stage == STAGE_DATA || j->stage == STAGE_EOD) && s->nrcpt == 1)
        sb_appendf(&line, " to=<%s>", s->rcpts[0].address);
    sb_appendf(&line, " proto=%s", s->esmtp ? "ESMTP" : "SMTP");
    const char *helo = j->helo_arg ? j->helo_arg : s->helo_name;
    if (helo)
        sb_appendf(&line, " helo=<%s>", helo);
    msg_info("%s", sb_str(&line));
    sb_free(&line);
}

/* ---- replies ---- */

__attribute__((format(printf, 4, 0)))
static void format_reply(struct smtpd_check_reply *out, int code, const char *dsn, const char *fmt,
                         va_list ap)
{
    char text[CHECK_TEXT_MAX];
    vsnprintf(text, sizeof(text), fmt, ap);
    /* keep replies on one line and printable */
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 32 || *p == 127)
            *p = ' ';
    char d[ACTION_DSN_MAX + 1];
    str_copy(d, sizeof(d), dsn && *dsn ? dsn : (code >= 500 ? "5.7.1" : "4.7.1"));
    d[0] = (char)('0' + code / 100);     /* the class follows the reply code */
    out->code = code;
    snprintf(out->text, sizeof(out->text), "%s %.1000s", d, text);
}

enum smtpd_check_result smtpd_check_reject(struct smtpd_check_job *j, int code, const char *dsn, const char *fmt, ...)
{
    struct smtpd_check_reply r;
    va_list ap;
    va_start(ap, fmt);
    format_reply(&r, code, dsn, fmt, ap);
    va_end(ap);
    if (code >= 500 && j->defer_if_reject) {
        r = j->dir;
    }
    if (j->warn_this) {
        char line[CHECK_TEXT_MAX + 8];
        snprintf(line, sizeof(line), "%d %s", r.code, r.text);
        check_log(j, "reject_warning", line);
        return CHK_DUNNO;
    }
    j->reply = r;
    return CHK_REJECT;
}

enum smtpd_check_result smtpd_check_defer_if_permit(struct smtpd_check_job *j, int code, const char *dsn,
                                        const char *fmt, ...)
{
    if (j->defer_if_permit)
        return CHK_DUNNO;
    va_list ap;
    va_start(ap, fmt);
    format_reply(&j->dip, code, dsn, fmt, ap);
    va_end(ap);
    j->defer_if_permit = true;
    return CHK_DUNNO;
}

/* ---- subjects ---- */

const struct address *smtpd_check_sender(const struct smtpd_check_job *j)
{
    struct smtpd_session *s = j->s;
    if (s->in_mail || j->stage == STAGE_SENDER)
        return &s->mail.sender;
    return NULL;
}

const struct address *smtpd_check_recipient(struct smtpd_check_job *j)
{
    if (!j->rcpt)
        return NULL;
    if (!j->have_rcpt_addr) {
        if (address_parse(j->rcpt, strlen(j->rcpt), ADDR_ALLOW_UTF8 | ADDR_ALLOW_NODOMAIN
                          | ADDR_ALLOW_BARE, &j->rcpt_addr, NULL) != ADDR_OK)
            return NULL;
        j->have_rcpt_addr = true;
    }
    return &j->rcpt_addr;
}

static const char *helo_of(const struct smtpd_check_job *j)
{
    return j->helo_arg ? j->helo_arg : j->s->helo_name;
}

const char *smtpd_check_reply_name(const struct smtpd_check_job *j)
{
    switch (j->stage) {
    case STAGE_CONNECT: return j->s->client_desc;
    case STAGE_HELO: return helo_of(j) ? helo_of(j) : "";
    case STAGE_SENDER: return smtpd_check_sender(j) ? smtpd_check_sender(j)->address : "";
    case STAGE_RELAY:
    case STAGE_RECIPIENT: return j->rcpt ? j->rcpt : "";
    case STAGE_DATA: return "DATA";
    default: return "END-OF-MESSAGE";
    }
}

const char *smtpd_check_reply_class(const struct smtpd_check_job *j)
{
    static const char *const names[STAGE_COUNT] = {
        "Client host", "Helo command", "Sender address", "Recipient address",
        "Recipient address", "Data command", "End-of-data",
    };
    return names[j->stage];
}

/* ---- access(5) results ---- */

static void push_list(struct smtpd_check_job *j, const struct smtpd_restriction_list *l,
                      struct smtpd_restriction_list *owned)
{
    if (j->depth + 1 >= CHECK_STACK_MAX) {
        if (owned) {
            smtpd_restriction_list_free(owned);
            free(owned);
        }
        return;
    }
    j->depth++;
    j->stack[j->depth].list = l;
    j->stack[j->depth].i = 0;
    j->stack[j->depth].owned = owned;
}

static enum smtpd_check_result config_error(struct smtpd_check_job *j)
{
    return smtpd_check_reject(j, 451, "4.3.5", "Server configuration error");
}

enum smtpd_check_result smtpd_check_apply_action(struct smtpd_check_job *j, const char *value, const char *what,
                                     const char *name, const char *cls)
{
    struct smtpd_access_action a;
    struct smtpd_check_state *c = state_of(j->s);
    smtpd_access_action_parse(value, &a);
    int tl = (int)a.text_len;
    const char *t = a.text;
    char line[CHECK_TEXT_MAX];
    switch (a.kind) {
    case ACT_OK:
        return CHK_OK;
    case ACT_DUNNO:
        return CHK_DUNNO;
    case ACT_REJECT:
        return smtpd_check_reject(j, smtpd_check_cfg.access_reject_code, a.dsn, "<%s>: %s rejected: %.*s",
                            name, cls, tl ? tl : 13, tl ? t : "Access denied");
    case ACT_DEFER:
        return smtpd_check_reject(j, smtpd_check_cfg.access_defer_code, a.dsn, "<%s>: %s rejected: %.*s",
                            name, cls, tl ? tl : 13, tl ? t : "Access denied");
    case ACT_CODE:
        return smtpd_check_reject(j, a.code, a.dsn, "<%s>: %s rejected: %.*s", name, cls, tl, t);
    case ACT_DEFER_IF_PERMIT:
        return smtpd_check_defer_if_permit(j, smtpd_check_cfg.access_defer_code, a.dsn,
                                     "<%s>: %s rejected: %.*s", name, cls, tl ? tl : 13,
                                     tl ? t : "Access denied");
    case ACT_DEFER_IF_REJECT:
        if (!j->defer_if_reject) {
            struct smtpd_check_reply *r = &j->dir;
            j->defer_if_reject = true;
            snprintf(line, sizeof(line), "<%s>: %s rejected: %.*s", name, cls, tl ? tl : 13,
                     tl ? t : "Access denied");
            r->code = smtpd_check_cfg.access_defer_code;
            snprintf(r->text, sizeof(r->text), "%s %.1000s", *a.dsn ? a.dsn : "4.7.1", line);
            r->text[0] = '4';
        }
        return CHK_DUNNO;
    case ACT_DISCARD:
        c->discard = true;
        snprintf(line, sizeof(line), "<%s>: %s %.*s", name, cls, tl ? tl : 23,
                 tl ? t : "triggers DISCARD action");
        check_log(j, "discard", line);
        return CHK_OK;
    case ACT_HOLD:
        if (j->stage == STAGE_EOD) {
            msg_warn("%s: HOLD at the end of the message is not supported; ignored", what);
            return CHK_DUNNO;
        }
        c->hold = true;
        snprintf(line, sizeof(line), "<%s>: %s %.*s", name, cls, tl ? tl : 20,
                 tl ? t : "triggers HOLD action");
        check_log(j, "hold", line);
        return CHK_DUNNO;
    case ACT_FILTER:
        free(c->filter);
        c->filter = xstrndup(t, a.text_len);
        snprintf(line, sizeof(line), "<%s>: %s triggers FILTER %s", name, cls, c->filter);
        check_log(j, "filter", line);
        return CHK_DUNNO;
    case ACT_PREPEND:
        if (j->stage == STAGE_EOD) {
            msg_warn("%s: PREPEND at the end of the message is ignored: %.*s", what, tl, t);
        } else if (sb_append(&c->prepend, t, a.text_len) < 0 || sb_appendc(&c->prepend, '\n') < 0) {
            msg_warn("%s: too many PREPEND actions; ignored: %.*s", what, tl, t);
        }
        return CHK_DUNNO;
    case ACT_WARN:
    case ACT_INFO:
        snprintf(line, sizeof(line), "<%s>: %s %.*s", name, cls, tl ? tl : 20,
                 tl ? t : a.kind == ACT_WARN ? "triggers WARN action" : "triggers INFO action");
        check_log(j, a.kind == ACT_WARN ? "warn" : "info", line);
        return CHK_DUNNO;
    case ACT_REDIRECT:
    case ACT_BCC:
        msg_warn("%s: action \"%.60s\" is not supported; ignored", what, value);
        return CHK_DUNNO;
    case ACT_RESTRICTIONS: {
        struct smtpd_restriction_list *l = xcalloc(1, sizeof(*l));
        smtpd_restriction_list_parse(l, value, what);
        for (size_t i = 0; i < l->n; i++)
            if (l->items[i].type == R_POLICY) {
                msg_warn("%s: check_policy_service is not allowed in a table result", what);
                l->items[i].type = R_CONFIG_ERROR;
            }
        push_list(j, l, l);
        return CHK_DUNNO;
    }
    case ACT_INVALID:
    default:
        msg_warn("%s: bad action \"%.100s\"", what, value);
        return config_error(j);
    }
}

/* ---- restrictions evaluated here ---- */

static enum smtpd_check_result helo_syntax(struct smtpd_check_job *j, bool fqdn)
{
    const char *h = helo_of(j);
    if (!h)
        return CHK_DUNNO;
    size_t n = strlen(h);
    bool literal = h[0] == '[';
    bool valid = address_domain_valid(h, n, false);
    if (!fqdn) {
        if (valid)
            return CHK_DUNNO;
        return smtpd_check_reject(j, smtpd_check_cfg.invalid_hostname_code, "5.5.2",
                            "<%s>: Helo command rejected: Invalid name", h);
    }
    if (!valid || literal)
        return CHK_DUNNO;
    const char *dot = strchr(h, '.');
    if (dot && dot[1])
        return CHK_DUNNO;
    return smtpd_check_reject(j, smtpd_check_cfg.non_fqdn_code, "5.5.2",
                        "<%s>: Helo command rejected: need fully-qualified hostname", h);
}

static enum smtpd_check_result address_fqdn(struct smtpd_check_job *j, const struct address *a, const char *cls)
{
    if (!a || (a->flags & ADDR_F_NULL))
        return CHK_DUNNO;
    if (!(a->flags & ADDR_F_NODOMAIN) && ((a->flags & ADDR_F_LITERAL) || strchr(a->domain, '.')))
        return CHK_DUNNO;
    return smtpd_check_reject(j, smtpd_check_cfg.non_fqdn_code, "5.5.2",
                        "<%s>: %s rejected: need fully-qualified address", a->address, cls);
}

static enum smtpd_check_result unknown_client(struct smtpd_check_job *j, bool reverse)
{
    struct smtpd_check_state *c = state_of(j->s);
    int st = reverse ? c->reverse_status : c->name_status;
    if (st == 2)
        return CHK_DUNNO;
    return smtpd_check_reject(j, st == 4 ? 450 : smtpd_check_cfg.unknown_client_code, "4.7.25",
                        "Client host rejected: cannot find your %shostname, [%s]",
                        reverse ? "reverse " : "", j->s->client_addr);
}

static enum smtpd_check_result eval_one(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    struct smtpd_session *s = j->s;
    switch (r->type) {
    case R_PERMIT:
        return CHK_OK;
    case R_DUNNO:
        return CHK_DUNNO;
    case R_REJECT:
        return smtpd_check_reject(j, smtpd_check_cfg.reject_code, "5.7.1", "<%s>: %s rejected: Access denied",
                            smtpd_check_reply_name(j), smtpd_check_reply_class(j));
    case R_DEFER:
        return smtpd_check_reject(j, smtpd_check_cfg.defer_code, "4.3.2", "<%s>: %s rejected: Try again later",
                            smtpd_check_reply_name(j), smtpd_check_reply_class(j));
    case R_DEFER_IF_PERMIT:
        return smtpd_check_defer_if_permit(j, smtpd_check_cfg.defer_code, "4.7.1",
                                     "<%s>: %s rejected: defer_if_permit requested",
                                     smtpd_check_reply_name(j), smtpd_check_reply_class(j));
    case R_DEFER_IF_REJECT:
        if (!j->defer_if_reject) {
            j->defer_if_reject = true;
            j->dir.code = smtpd_check_cfg.defer_code;
            snprintf(j->dir.text, sizeof(j->dir.text), "4.7.1 <%s>: %s rejected: "
                     "defer_if_reject requested", smtpd_check_reply_name(j), smtpd_check_reply_class(j));
        }
        return CHK_DUNNO;
    case R_WARN_IF_REJECT:
        j->warn_next = true;
        return CHK_DUNNO;
    case R_PERMIT_MYNETWORKS:
        return s->client_trusted ? CHK_OK : CHK_DUNNO;
    case R_PERMIT_SASL:
        return s->sasl_username && *s->sasl_username ? CHK_OK : CHK_DUNNO;
    case R_PERMIT_AUTH_DEST:
    case R_REJECT_UNAUTH_DEST:
    case R_DEFER_UNAUTH_DEST:
        return smtpd_access_relay(j, r);
    case R_REJECT_UNLISTED_RCPT:
        return smtpd_access_unlisted(j, false);
    case R_REJECT_UNLISTED_SENDER:
        return smtpd_access_unlisted(j, true);
    case R_CHECK_CLIENT_ACCESS:
    case R_CHECK_HELO_ACCESS:
    case R_CHECK_SENDER_ACCESS:
    case R_CHECK_RCPT_ACCESS:
        return smtpd_access_check(j, r);
    case R_RBL_CLIENT:
    case R_RHSBL_CLIENT:
    case R_RHSBL_SENDER:
    case R_RHSBL_HELO:
    case R_RHSBL_RCPT:
        return smtpd_rbl_check(j, r);
    case R_UNKNOWN_SENDER_DOMAIN:
    case R_UNKNOWN_RCPT_DOMAIN:
        return smtpd_rbl_unknown_domain(j, r);
    case R_INVALID_HELO:
        return helo_syntax(j, false);
    case R_NON_FQDN_HELO:
        return helo_syntax(j, true);
    case R_NON_FQDN_SENDER:
        return address_fqdn(j, smtpd_check_sender(j), "Sender address");
    case R_NON_FQDN_RCPT:
        return address_fqdn(j, smtpd_check_recipient(j), "Recipient address");
    case R_UNKNOWN_CLIENT:
        return unknown_client(j, false);
    case R_UNKNOWN_REVERSE_CLIENT:
        return unknown_client(j, true);
    case R_UNAUTH_PIPELINING:
        if (smtpd_session_input_pending(s) && (!s->esmtp || j->stage == STAGE_DATA))
            return smtpd_check_reject(j, 503, "5.5.0", "<%s>: %s rejected: Improper use of SMTP "
                                "command pipelining", smtpd_check_reply_name(j), smtpd_check_reply_class(j));
        return CHK_DUNNO;
    case R_SENDER_LOGIN_MISMATCH:
    case R_AUTH_SENDER_LOGIN_MISMATCH:
    case R_UNAUTH_SENDER_LOGIN_MISMATCH:
    case R_KNOWN_SENDER_LOGIN_MISMATCH:
        return smtpd_access_sender_login(j, r);
    case R_POLICY:
        return smtpd_policy_check(j, r);
    case R_CLASS: {
        const struct smtpd_restriction_list *l = class_list(r->arg);
        if (l)
            push_list(j, l, NULL);
        return CHK_DUNNO;
    }
    case R_CONFIG_ERROR:
    default:
        msg_warn("restriction \"%s\" cannot be used: see the warning at startup", r->name);
        return config_error(j);
    }
}

/* ---- running a job ---- */

static void pop_frame(struct smtpd_check_job *j)
{
    struct frame *f = &j->stack[j->depth];
    if (f->owned) {
        smtpd_restriction_list_free(f->owned);
        free(f->owned);
    }
    f->owned = NULL;
    j->depth--;
}

static void job_free(struct smtpd_check_job *j)
{
    while (j->depth > 0)
        pop_frame(j);
    dnsev_cancel(j->dns);
    smtpd_policy_request_cancel(j->preq);
    if (j->have_rcpt_addr)
        address_free(&j->rcpt_addr);
    if (j->s->check && j->s->check->job == j)
        j->s->check->job = NULL;
    free(j->arg);
    free(j->helo_arg);
    free((char *)j->rcpt);
    free(j);
}

/* Everything is decided: log a refusal and hand the verdict over. */
static void job_done(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    struct smtpd_session *s = j->s;
    if (r != CHK_REJECT && j->defer_if_permit) {
        j->reply = j->dip;
        r = CHK_REJECT;
    }
    if (r == CHK_REJECT && j->stages[0] != STAGE_EOD) {   /* smtpd_data.c logs those */
        char line[CHECK_TEXT_MAX + 8];
        snprintf(line, sizeof(line), "%d %s", j->reply.code, j->reply.text);
        check_log(j, "reject", line);
    }
    bool waited = j->waiting;
    j->waiting = false;
    s->check->job = NULL;
    j->finish(j, r);
    job_free(j);
    if (waited) {
        smtpd_session_resume(s, PAUSE_CHECK);
        smtpd_session_finish_if_done(s);
    }
}

static void job_run(struct smtpd_check_job *j)
{
    for (;;) {
        if (j->depth == 0) {
            if (j->stage_i >= j->nstages) {
                job_done(j, CHK_OK);
                return;
            }
            j->stage = j->stages[j->stage_i];
            j->depth = 1;
            j->stack[1].list = &smtpd_check_cfg.lists[j->stage];
            j->stack[1].i = 0;
            j->stack[1].owned = NULL;
            j->warn_next = false;
        }
        struct frame *f = &j->stack[j->depth];
        if (f->i >= f->list->n) {
            pop_frame(j);
            if (j->depth == 0)
                j->stage_i++;
            continue;
        }
        size_t idx = f->i++;
        const struct smtpd_restriction *r = &f->list->items[idx];
        j->warn_this = j->warn_next && r->type != R_WARN_IF_REJECT;
        if (r->type != R_WARN_IF_REJECT)
            j->warn_next = false;
        enum smtpd_check_result res = eval_one(j, r);
        if (res == CHK_WAIT) {
            f->i = idx;
            j->warn_next = j->warn_this;
            if (!j->waiting) {
                j->waiting = true;
                j->s->pause |= PAUSE_CHECK;
            }
            return;
        }
        j->resumed = false;
        if (res == CHK_REJECT) {
            job_done(j, CHK_REJECT);
            return;
        }
        if (res == CHK_OK) {        /* this stage's list is done */
            while (j->depth > 0)
                pop_frame(j);
            j->stage_i++;
        }
    }
}

void smtpd_check_job_continue(struct smtpd_check_job *j)
{
    j->resumed = true;
    j->dns = NULL;
    j->preq = NULL;
    job_run(j);
}

static struct smtpd_check_job *job_new(struct smtpd_session *s, void (*finish)(struct smtpd_check_job *,
                                                                          enum smtpd_check_result))
{
    struct smtpd_check_state *c = state_of(s);
    struct smtpd_check_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->finish = finish;
    c->job = j;
    return j;
}

static void job_add(struct smtpd_check_job *j, enum smtpd_check_stage st)
{
    j->stages[j->nstages++] = st;
}

static bool list_empty(enum smtpd_check_stage st)
{
    return smtpd_check_cfg.lists[st].n == 0;
}

/* ---- connection ---- */

static void (*connected_fn)(struct smtpd_session *s);

static void connect_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    struct smtpd_check_state *c = state_of(j->s);
    if (r == CHK_REJECT) {
        char line[CHECK_TEXT_MAX + 8];
        snprintf(line, sizeof(line), "%d %s", j->reply.code, j->reply.text);
        c->access_denied = xstrdup(line);
    }
    connected_fn(j->s);
}

/* Without smtpd_delay_reject the client restrictions decide now; a refused
 * client gets the refusal instead of the greeting. */
static void connect_checks(struct smtpd_session *s)
{
    if (!smtpd_check_cfg.delay_reject && !list_empty(STAGE_CONNECT)) {
        struct smtpd_check_job *j = job_new(s, connect_finish);
        job_add(j, STAGE_CONNECT);
        job_run(j);
        return;
    }
    connected_fn(s);
}

static void name_known(struct smtpd_session *s)
{
    struct smtpd_check_state *c = state_of(s);
    s->client_name = c->name;
    snprintf(s->client_desc, sizeof(s->client_desc), "%s[%s]", s->client_name, s->client_addr);
    connect_checks(s);
}

void smtpd_check_connect(struct smtpd_session *s, void (*connected)(struct smtpd_session *s))
{
    connected_fn = connected;
    state_of(s);
    if (smtpd_resolve_client_start(s, name_known))
        return;
    name_known(s);
}

bool smtpd_check_greet_denied(struct smtpd_session *s)
{
    struct smtpd_check_state *c = s->check;
    if (!c || !c->access_denied)
        return false;
    int code = atoi(c->access_denied);
    smtpd_session_reply(s, code, "%s", c->access_denied + 4);
    return true;
}

bool smtpd_check_command_denied(struct smtpd_session *s, enum smtp_verb v)
{
    struct smtpd_check_state *c = s->check;
    if (!c || !c->access_denied || v == SMTP_QUIT)
        return false;
    smtpd_session_reply(s, 503, "5.7.0 Error: access denied for %s", s->client_desc);
    return true;
}

/* ---- HELO ---- */

static void helo_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    char *name = j->helo_arg;
    j->helo_arg = NULL;
    if (r == CHK_REJECT) {
        smtpd_session_reply(j->s, j->reply.code, "%s", j->reply.text);
        free(name);
    } else {
        smtpd_command_helo_accept(j->s, name, j->ehlo);
    }
}

bool smtpd_check_helo_wait(struct smtpd_session *s, char *name, bool ehlo)
{
    if (smtpd_check_cfg.delay_reject || list_empty(STAGE_HELO))
        return false;
    struct smtpd_check_job *j = job_new(s, helo_finish);
    j->helo_arg = name;
    j->ehlo = ehlo;
    job_add(j, STAGE_HELO);
    job_run(j);
    return true;
}

/* ---- MAIL ---- */

static void mail_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    struct smtpd_session *s = j->s;
    if (r == CHK_REJECT) {
        smtp_mail_args_free(&s->mail);
        smtpd_session_reply(s, j->reply.code, "%s", j->reply.text);
    } else {
        smtpd_command_mail_accept(s);
    }
}

bool smtpd_check_mail_wait(struct smtpd_session *s)
{
    if (smtpd_check_cfg.delay_reject || list_empty(STAGE_SENDER))
        return false;
    struct smtpd_check_job *j = job_new(s, mail_finish);
    job_add(j, STAGE_SENDER);
    job_run(j);
    return true;
}

/* ---- RCPT ---- */

static void rcpt_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    struct smtpd_session *s = j->s;
    if (r == CHK_REJECT) {
        smtpd_session_reply(s, j->reply.code, "%s", j->reply.text);
        return;
    }
    if (smtpd_check_cfg.reject_unlisted_rcpt || smtpd_check_cfg.reject_unlisted_sender) {
        /* the implicit checks, once the lists have accepted */
        enum smtpd_check_result u = CHK_DUNNO;
        j->stage = STAGE_RECIPIENT;
        j->warn_this = false;
        if (smtpd_check_cfg.reject_unlisted_sender)
            u = smtpd_access_unlisted(j, true);
        if (u != CHK_REJECT && smtpd_check_cfg.reject_unlisted_rcpt)
            u = smtpd_access_unlisted(j, false);
        if (u == CHK_REJECT) {
            char line[CHECK_TEXT_MAX + 8];
            snprintf(line, sizeof(line), "%d %s", j->reply.code, j->reply.text);
            check_log(j, "reject", line);
            smtpd_session_reply(s, j->reply.code, "%s", j->reply.text);
            return;
        }
    }
    smtpd_command_rcpt_accept(s, j->arg);
}

void smtpd_check_rcpt(struct smtpd_session *s, const char *arg, const struct smtp_rcpt_args *r)
{
    struct smtpd_check_job *j = job_new(s, rcpt_finish);
    j->arg = xstrdup(arg);
    j->rcpt = xstrdup(r->rcpt.address);
    if (smtpd_check_cfg.delay_reject) {
        job_add(j, STAGE_CONNECT);
        job_add(j, STAGE_HELO);
        job_add(j, STAGE_SENDER);
    }
    job_add(j, STAGE_RELAY);
    job_add(j, STAGE_RECIPIENT);
    job_run(j);
}

/* ---- DATA and end of data ---- */

static void data_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    if (r == CHK_REJECT)
        smtpd_session_reply(j->s, j->reply.code, "%s", j->reply.text);
    else
        smtpd_data_accept(j->s);
}

bool smtpd_check_data_wait(struct smtpd_session *s)
{
    if (list_empty(STAGE_DATA))
        return false;
    struct smtpd_check_job *j = job_new(s, data_finish);
    job_add(j, STAGE_DATA);
    job_run(j);
    return true;
}

static void eod_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    if (r == CHK_REJECT)
        smtpd_data_eod_checked(j->s, j->reply.code, j->reply.text);
    else
        smtpd_data_eod_checked(j->s, 0, "");
}

bool smtpd_check_eod_wait(struct smtpd_session *s)
{
    if (list_empty(STAGE_EOD))
        return false;
    struct smtpd_check_job *j = job_new(s, eod_finish);
    job_add(j, STAGE_EOD);
    job_run(j);
    return true;
}

/* ---- what the restrictions ask of the message ---- */

bool smtpd_check_discarding(struct smtpd_session *s)
{
    return s->check && s->check->discard;
}

bool smtpd_check_holding(struct smtpd_session *s)
{
    return s->check && s->check->hold && !s->check->discard;
}

void smtpd_check_content_start(struct smtpd_session *s, struct strbuf *content)
{
    if (s->check && s->check->prepend.len)
        sb_append(content, s->check->prepend.data, s->check->prepend.len);
}

int smtpd_check_cleanup_attrs(struct smtpd_session *s, struct attr_writer *w)
{
    if (!s->check || !s->check->filter)
        return 0;
    if (w) {
        attr_put_str(w, "name", "filter");
        attr_put_str(w, "value", s->check->filter);
    }
    return 1;
}
