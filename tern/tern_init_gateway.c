/* tern_init_gateway.c: `tern init DIR --gateway`: the options and the
 * configuration of a mail gateway in front of an internal server
 * (Exchange, Dovecot, Domino): relay for the given domains to the internal
 * server, recipients checked by probe or in LDAP, postscreen in front of
 * smtpd, policyd-spf through spawn, the users' lists and the correspondent
 * allowlist, outbound relay for the internal network, and the milters of
 * Debian's packages written commented, ready to be turned on. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strbuf.h"
#include "tern.h"
#include "util.h"

/* Debian's postfix-policyd-spf-python; its service is written active only
 * when it is installed (a spawn service of a missing program would refuse
 * every recipient with a policy server error). */
#define GATEWAY_POLICYD_SPF "/usr/bin/policyd-spf"

/* A domain name as relay_domains and the transport table take it: letters,
 * digits, '-' and '.', no leading dot or dash, bounded. */
static bool gateway_domain_ok(const char *d)
{
    size_t n = strlen(d);
    if (n == 0 || n > 253 || d[0] == '.' || d[0] == '-' || d[n - 1] == '.')
        return false;
    for (const char *p = d; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
              || *p == '-' || *p == '.'))
            return false;
    return strstr(d, "..") == NULL;
}

/* HOST:PORT, [HOST]:PORT or [IPV6]:PORT: host and port split into the
 * options; the host stays as given (brackets removed). */
static int gateway_parse_next_hop(struct init_gateway *g, const char *arg)
{
    const char *colon = strrchr(arg, ':');
    long port;
    if (!colon || colon == arg || parse_long(colon + 1, 1, 65535, &port) < 0)
        return -1;
    size_t hlen = (size_t)(colon - arg);
    const char *host = arg;
    if (host[0] == '[') {
        if (hlen < 3 || host[hlen - 1] != ']')
            return -1;
        host++;
        hlen -= 2;
    }
    if (hlen >= sizeof(g->next_hop_host))
        return -1;
    memcpy(g->next_hop_host, host, hlen);
    g->next_hop_host[hlen] = 0;
    for (const char *p = g->next_hop_host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
              || *p == '-' || *p == '.' || *p == ':'))
            return -1;
    g->next_hop_port = port;
    return 0;
}

/* A CIDR block mynetworks takes: address, optional /len; IPv6 in brackets
 * as mynetworks writes it. */
static bool gateway_cidr_ok(const char *c, char *out, size_t outsz)
{
    char addr[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(c, '/');
    size_t alen = slash ? (size_t)(slash - c) : strlen(c);
    if (alen == 0 || alen >= sizeof(addr))
        return false;
    memcpy(addr, c, alen);
    addr[alen] = 0;
    unsigned char buf[16];
    long bits, max;
    bool v6 = strchr(addr, ':') != NULL;
    if (v6) {
        if (inet_pton(AF_INET6, addr, buf) != 1)
            return false;
        max = 128;
    } else {
        if (inet_pton(AF_INET, addr, buf) != 1)
            return false;
        max = 32;
    }
    if (slash && parse_long(slash + 1, 0, max, &bits) < 0)
        return false;
    if (!slash)
        bits = max;
    int n = snprintf(out, outsz, v6 ? "[%s]/%ld" : "%s/%ld", addr, bits);
    return n > 0 && (size_t)n < outsz;
}

int tern_init_gateway_option(struct init_gateway *g, int opt, const char *arg)
{
    switch (opt) {
    case INIT_GW_OPT_GATEWAY:
        g->enabled = true;
        return 0;
    case INIT_GW_OPT_NEXT_HOP:
        if (gateway_parse_next_hop(g, arg) < 0) {
            fprintf(stderr, "tern: bad --next-hop \"%s\" (expected host:port or [address]:port)\n", arg);
            return -1;
        }
        return 0;
    case INIT_GW_OPT_DOMAIN:
        if (!gateway_domain_ok(arg)) {
            fprintf(stderr, "tern: bad --domain \"%s\"\n", arg);
            return -1;
        }
        if (g->ndomains >= INIT_GW_DOMAINS_MAX) {
            fprintf(stderr, "tern: at most %d --domain options\n", INIT_GW_DOMAINS_MAX);
            return -1;
        }
        g->domains[g->ndomains++] = arg;
        return 0;
    case INIT_GW_OPT_INTERNAL_NET:
        if (!gateway_cidr_ok(arg, g->internal_net, sizeof(g->internal_net))) {
            fprintf(stderr, "tern: bad --internal-net \"%s\" (expected an address/length)\n", arg);
            return -1;
        }
        return 0;
    case INIT_GW_OPT_LDAP_URI:
        if ((strncmp(arg, "ldap://", 7) != 0 && strncmp(arg, "ldaps://", 8) != 0
            && strncmp(arg, "ldapi://", 8) != 0) || strpbrk(arg, "\r\n")) {
            fprintf(stderr, "tern: bad --ldap-uri \"%s\" (expected ldap://, ldaps:// or ldapi://)\n", arg);
            return -1;
        }
        g->ldap_uri = arg;
        return 0;
    case INIT_GW_OPT_LDAP_BASE:
        g->ldap_base = arg;
        return 0;
    case INIT_GW_OPT_LISTEN:
        g->listen = arg;
        return 0;
    default:
        return -1;
    }
}

int tern_init_gateway_check(struct init_gateway *g)
{
    bool any = g->next_hop_port || g->ndomains || g->internal_net[0] || g->ldap_uri || g->ldap_base
               || g->listen;
    if (!g->enabled) {
        if (any) {
            fprintf(stderr, "tern: --next-hop, --domain, --internal-net, --ldap-uri, --ldap-base "
                    "and --listen go with --gateway\n");
            return -1;
        }
        return 0;
    }
    if (!g->next_hop_port || !g->ndomains) {
        fprintf(stderr, "tern: --gateway needs --next-hop host:port and at least one --domain\n");
        return -1;
    }
    if (!g->ldap_uri != !g->ldap_base) {
        fprintf(stderr, "tern: --ldap-uri and --ldap-base go together\n");
        return -1;
    }
    for (const char *p = g->ldap_base ? g->ldap_base : ""; *p; p++)
        if (*p == '\n' || *p == '\r') {
            fprintf(stderr, "tern: bad --ldap-base\n");
            return -1;
        }
    /* the internal server's own address, when it is one, is its network */
    if (!g->internal_net[0] && !gateway_cidr_ok(g->next_hop_host, g->internal_net, sizeof(g->internal_net))) {
        fprintf(stderr, "tern: --next-hop names a host: give its network with --internal-net CIDR, "
                "so that its outbound mail is relayed\n");
        return -1;
    }
    if (!g->listen)
        g->listen = "smtp";
    if (strlen(g->listen) > 200 || strpbrk(g->listen, " \t\r\n")) {
        fprintf(stderr, "tern: bad --listen \"%s\"\n", g->listen);
        return -1;
    }
    return 0;
}

/* The internal server as a transport next hop: [host]:port, so that no MX
 * lookup is made for it. */
static void gateway_next_hop(struct strbuf *out, const struct init_gateway *g)
{
    sb_appendf(out, "[%s]:%ld", g->next_hop_host, g->next_hop_port);
}

static void gateway_main_cf(struct strbuf *out, const struct init_gateway *g, const char *dir,
                            bool spf)
{
    sb_appendf(out,
        "\n# ---- Mail gateway (tern init --gateway) --------------------------------\n"
        "# Mail for these domains is received from the internet, checked, and\n"
        "# handed to the internal server; mail from the internal network goes out.\n"
        "relay_domains =");
    for (int i = 0; i < g->ndomains; i++)
        sb_appendf(out, " %s", g->domains[i]);
    sb_appendf(out,
        "\n# the internal server for those domains (a text file: edit, then reload)\n"
        "transport_maps = texthash:%s/transport\n"
        "# this host, and the internal server's network, whose mail is relayed out\n"
        "mynetworks = 127.0.0.1/32 [::1]/128 %s\n"
        "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,\n"
        "    reject_unauth_destination\n", dir, g->internal_net);
    if (g->ldap_uri)
        sb_appendf(out,
            "# recipients the directory lists (ldap-recipients.cf); others get 550 at RCPT\n"
            "relay_recipient_maps = ldap:%s/ldap-recipients.cf\n", dir);
    else
        sb_appendf(out,
            "# recipients are checked by asking the internal server (a probe that ends\n"
            "# at RCPT); one it refuses gets 550 here at RCPT, never a bounce later\n"
            "unverified_recipient_reject_code = 550\n");
    sb_appendf(out,
        "# unknown recipients first; SPF (a forged sender fails here even when a\n"
        "# user allowlisted the address it forges); then the users' allow and deny\n"
        "# lists and the correspondents they wrote to (their replies skip the\n"
        "# checks after it)\n"
        "smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated,\n"
        "    reject_unauth_destination,%s%s\n"
        "    check_recipient_lists\n%s"
        "correspondent_allowlist = yes\n",
        g->ldap_uri ? "" : " reject_unverified_recipient,",
        spf ? "\n    check_policy_service unix:private/policyd-spf," : "",
        spf ? "" : "#   (with postfix-policyd-spf-python installed, add check_policy_service\n"
                   "#   unix:private/policyd-spf before check_recipient_lists, and its master.cf\n"
                   "#   service)\n");
    sb_appendf(out,
        "smtpd_policy_service_timeout = 20s\n"
        "smtpd_helo_required = yes\n"
        "disable_vrfy_command = yes\n"
        "# pre-queue screening: clients that talk before the greeting, and DNS\n"
        "# block lists with weights (the internal network is let through)\n"
        "postscreen_access_list = permit_mynetworks\n"
        "postscreen_greet_wait = 6s\n"
        "postscreen_greet_action = enforce\n"
        "postscreen_dnsbl_sites = zen.spamhaus.org=127.0.0.[2..11]*3, bl.spamcop.net*2,\n"
        "    list.dnswl.org=127.0.[0..255].[1..3]*-5\n"
        "postscreen_dnsbl_threshold = 3\n"
        "postscreen_dnsbl_action = enforce\n"
        "# Milters (Debian's packages and their sockets): uncomment the list, and\n"
        "# keep only the filters that are installed and running. rspamd's proxy\n"
        "# worker (rspamd), spamass-milter (spamass-milter, spamassassin; add tern\n"
        "# to the spamass-milter group), clamav-milter (clamav-milter,\n"
        "# clamav-daemon), opendmarc (opendmarc; add tern to the opendmarc group).\n"
        "#smtpd_milters = inet:127.0.0.1:11332,\n"
        "#    unix:/var/spool/postfix/spamass/spamass.sock,\n"
        "#    unix:/run/clamav/clamav-milter.ctl,\n"
        "#    unix:/run/opendmarc/opendmarc.sock\n"
        "#milter_default_action = tempfail\n"
        "#milter_command_timeout = 60s\n"
        "#milter_content_timeout = 120s\n"
        "message_size_limit = 52428800\n");
}

/* master.cf of the base instance with its smtpd line (the first service,
 * on the --port address) replaced by postscreen in front of an smtpd pass
 * service, and the policyd-spf spawn service added. */
static void gateway_master_cf(struct strbuf *out, const struct strbuf *base,
                              const struct init_gateway *g, bool spf)
{
    const char *p = sb_str(base);
    bool replaced = false;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
        const char *smtpd = "127.0.0.1:";
        if (!replaced && strncmp(p, smtpd, strlen(smtpd)) == 0 && len > 6
            && memcmp(p + len - (nl ? 7 : 6), " smtpd", 6) == 0) {
            sb_appendf(out,
                "# postscreen talks to every new client first; those that pass go to\n"
                "# the smtpd pass service with their connection\n"
                "%-14s inet  n       -       n       -       1       postscreen\n"
                "smtpd          pass  -       -       n       -       -       smtpd\n",
                g->listen);
            replaced = true;
        } else {
            sb_append(out, p, len);
        }
        p += len;
    }
    sb_appendf(out,
        "# SPF checks of the envelope sender by Debian's postfix-policyd-spf-python,\n"
        "# one process per connection, as nobody%s\n"
        "%spolicyd-spf    unix  -       n       n       -       0       spawn\n"
        "%s  -o policyd-spf_time_limit=3600\n"
        "%s  user=nobody argv=" GATEWAY_POLICYD_SPF "\n",
        spf ? "" : " (install the package, uncomment\n# these lines and the check in "
                   "smtpd_recipient_restrictions)",
        spf ? "" : "#", spf ? "" : "#", spf ? "" : "#");
}

int tern_init_gateway_write(const struct init_gateway *g, const char *dir,
                            struct strbuf *main_cf, struct strbuf *master_cf)
{
    bool spf = access(GATEWAY_POLICYD_SPF, X_OK) == 0;
    gateway_main_cf(main_cf, g, dir, spf);
    struct strbuf master = STRBUF_INIT(0);
    gateway_master_cf(&master, master_cf, g, spf);
    sb_free(master_cf);
    *master_cf = master;

    struct strbuf text = STRBUF_INIT(0);
    sb_appendf(&text, "# transport(5) of the gateway: the internal server of each domain\n");
    for (int i = 0; i < g->ndomains; i++) {
        sb_appendf(&text, "%-30s relay:", g->domains[i]);
        gateway_next_hop(&text, g);
        sb_appendf(&text, "\n");
    }
    int rc = tern_init_write_file(dir, "transport", sb_str(&text));
    if (g->ldap_uri) {
        sb_reset(&text);
        sb_appendf(&text,
            "# ldap_table(5): the recipients the directory knows (Active Directory:\n"
            "# mail and proxyAddresses); add bind = yes, bind_dn and bind_pw when the\n"
            "# directory wants a login\n"
            "server_host = %s\n"
            "search_base = %s\n"
            "query_filter = (|(mail=%%s)(proxyAddresses=smtp:%%s))\n"
            "result_attribute = mail\n", g->ldap_uri, g->ldap_base);
        rc |= tern_init_write_file(dir, "ldap-recipients.cf", sb_str(&text));
    }
    sb_free(&text);
    return rc;
}
