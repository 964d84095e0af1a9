/* smtpd_check_config.c: the configuration of smtpd's restriction engine:
 * the restriction lists (smtpd_client_, _helo_, _sender_, _relay_,
 * _recipient_, _data_, _end_of_data_ and _etrn_restrictions, and the classes of
 * smtpd_restriction_classes) compiled once from main.cf, the tables they
 * name opened once, the reply codes, and the resolver. The evaluation is in
 * smtpd_check_engine.c, the commands' entry points in smtpd_check_command.c. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dns_event.h"
#include "resolve.h"
#include "rewrite.h"
#include "log.h"
#include "maps.h"
#include "match_list.h"
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
    "smtpd_end_of_data_restrictions", "smtpd_etrn_restrictions",
};

/* ---- compiling restriction lists ---- */

static const struct { const char *name; enum smtpd_restriction_type type; bool arg; } known[] = {
#define RESTRICTION(type, takes_argument, name, evaluator) { name, type, takes_argument },
#define SYNONYM(type, name) { name, type, false },
#include "smtpd_restrictions.def"
#undef RESTRICTION
#undef SYNONYM
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
    return cfg_list_has(cfg_str(P_smtpd_restriction_classes), name);
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
        if ((r.type >= R_CHECK_CLIENT_ACCESS && r.type <= R_CHECK_ETRN_ACCESS)
            || r.type == R_CHECK_CCERT_ACCESS) {
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

const struct smtpd_restriction_list *smtpd_check_class_list(const char *name)
{
    for (size_t i = 0; i < nclasses; i++)
        if (strcmp(classes[i].name, name) == 0)
            return &classes[i].list;
    return NULL;
}

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

/* mynetworks: networks, files and tables (lib/global/match_list.h), opened
 * in the pre-init step while their files can be read. */
static void open_mynetworks(void)
{
    struct strbuf err = STRBUF_INIT(4096);
    smtpd_cfg.mynetworks = match_list_open("mynetworks", cfg_str(P_mynetworks), MATCH_NETWORKS,
                                           0, &err);
    if (!smtpd_cfg.mynetworks)
        msg_fatal("main.cf: %s", sb_str(&err));
    sb_free(&err);
}

/* As root, before any chroot: tables and the resolver's configuration
 * (the address resolver reads this host's interface addresses here, before
 * the privilege drop). */
void smtpd_check_pre_init(void)
{
    struct smtpd_check_config *c = &smtpd_check_cfg;
    resolve_init();
    open_mynetworks();
    c->delay_reject = cfg_bool(P_smtpd_delay_reject);
    c->reject_unlisted_sender = cfg_bool(P_smtpd_reject_unlisted_sender);
    c->reject_unlisted_rcpt = cfg_bool(P_smtpd_reject_unlisted_recipient);
    c->recipient_delimiter = cfg_str(P_recipient_delimiter);
    /* the template keeps its $rbl_* names: it is expanded per reply */
    c->default_rbl_reply = cfg_get_raw_set("default_rbl_reply");
    if (!c->default_rbl_reply)
        c->default_rbl_reply = param_table()[P_default_rbl_reply].default_value;
    c->local_rcpt_maps = maplist_open_param(P_local_recipient_maps);
    c->relay_rcpt_maps = maplist_open_param(P_relay_recipient_maps);
    c->virtual_mailbox_maps = maplist_open_param(P_virtual_mailbox_maps);
    /* virtual_alias_maps and the other rewriting tables: lib/global/rewrite.h */
    rewrite_init();
    c->receive_overrides = rewrite_receive_overrides(cfg_str(P_receive_override_options));
    c->content_filter = rewrite_content_filter();
    c->rbl_reply_maps = maplist_open_param(P_rbl_reply_maps);
    c->sender_login_maps = maplist_open_param(P_smtpd_sender_login_maps);
    c->relay_clientcerts = maplist_open_param(P_relay_clientcerts);
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

static bool list_uses(const struct smtpd_restriction_list *l, enum smtpd_restriction_type type)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->items[i].type == type)
            return true;
    return false;
}

bool smtpd_check_uses(enum smtpd_restriction_type type)
{
    for (int st = 0; st < STAGE_COUNT; st++)
        if (list_uses(&smtpd_check_cfg.lists[st], type))
            return true;
    for (size_t i = 0; i < nclasses; i++)
        if (list_uses(&classes[i].list, type))
            return true;
    return false;
}

void smtpd_check_init(void)
{
    resolve_init();
    if (!smtpd_check_cfg.dns)
        smtpd_check_pre_init();      /* started without the pre-init step */
    dnsev_attach(smtpd_check_cfg.dns, server_event_base());
}

int smtpd_check_client_trusted(const struct sockaddr *sa)
{
    char text[INET6_ADDRSTRLEN];
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, text, sizeof(text));
    else if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
        inet_ntop(AF_INET, in6->sin6_addr.s6_addr + 12, text, sizeof(text));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    else
        return 0;
    return match_list_addr(smtpd_cfg.mynetworks, text);
}
