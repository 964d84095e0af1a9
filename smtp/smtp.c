/* smtp.c: the SMTP client delivery agent. qmgr hands it one delivery
 * request per connection (doc/PROTOCOLS.md, "Delivery agents"); it looks
 * up the next hop, talks SMTP to the remote server, marks final recipients
 * done in the queue file and reports each recipient's outcome, keeping the
 * connection open for the next request to the same next hop for a short
 * while. STARTTLS and AUTH follow Postfix's smtp_tls_* and smtp_sasl_*
 * settings. This file reads the settings and starts the daemon; the work
 * is in smtp_*.c. Run as "lmtp" (master.cf's command, as Postfix's lmtp
 * is its smtp binary) it is the LMTP client: the same code, with the
 * lmtp_* parameters picked by smtp_param(). */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chroot.h"
#include "config.h"
#include "dns.h"
#include "log.h"
#include "resolve.h"
#include "server.h"
#include "smtp.h"
#include "util.h"

struct smtp_settings smtp_cfg;

enum param_id smtp_param(enum param_id id)
{
    const char *name = param_table()[id].name;
    if (!smtp_cfg.lmtp || strncmp(name, "smtp_", 5) != 0)
        return id;
    char twin[128];
    /* Postfix's LMTP names: lmtp_lhlo_name and lmtp_lhlo_timeout */
    if (strncmp(name + 5, "helo_", 5) == 0)
        snprintf(twin, sizeof(twin), "lmtp_lhlo_%s", name + 10);
    else
        snprintf(twin, sizeof(twin), "lmtp_%s", name + 5);
    const struct param_def *d = param_find(twin);
    return d ? (enum param_id)(d - param_table()) : id;
}

const char *smtp_param_name(enum param_id id)
{
    return param_table()[smtp_param(id)].name;
}

static int config_seconds(enum param_id id)
{
    long v = cfg_time(smtp_param(id));
    return v < 1 ? 1 : v > 86400 ? 86400 : (int)v;
}

/* smtp_tcp_port: a number, or a service name looked up now (before any chroot). */
static int default_port(void)
{
    const char *value = cfg_str(smtp_param(P_smtp_tcp_port));
    long port;
    if (parse_long(value, 1, 65535, &port) == 0)
        return (int)port;
    struct servent *se = getservbyname(value, "tcp");
    if (se)
        return ntohs((unsigned short)se->s_port);
    if (strcmp(value, "smtp") == 0)
        return 25;
    if (strcmp(value, "lmtp") == 0)
        return 24;
    msg_fatal("%s = %s: not a port number or a known TCP service name (main.cf)",
              smtp_param_name(P_smtp_tcp_port), value);
}

static void bind_addresses(void)
{
    const char *v4 = cfg_str(smtp_param(P_smtp_bind_address));
    const char *v6 = cfg_str(smtp_param(P_smtp_bind_address6));
    if (*v4) {
        smtp_cfg.bind4.sin_family = AF_INET;
        if (inet_pton(AF_INET, v4, &smtp_cfg.bind4.sin_addr) != 1)
            msg_fatal("%s = %s: not an IPv4 address (main.cf)", smtp_param_name(P_smtp_bind_address), v4);
        smtp_cfg.bind4_set = true;
    }
    if (*v6) {
        smtp_cfg.bind6.sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, v6, &smtp_cfg.bind6.sin6_addr) != 1)
            msg_fatal("%s = %s: not an IPv6 address (main.cf)", smtp_param_name(P_smtp_bind_address6), v6);
        smtp_cfg.bind6_set = true;
    }
}

/* inet_protocols (all, ipv4, ipv6, or a list) and smtp_address_preference. */
static void address_families(void)
{
    size_t n;
    char **words = cfg_list_split(cfg_str(P_inet_protocols), &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(words[i], "all") == 0)
            smtp_cfg.want_v4 = smtp_cfg.want_v6 = true;
        else if (strcmp(words[i], "ipv4") == 0)
            smtp_cfg.want_v4 = true;
        else if (strcmp(words[i], "ipv6") == 0)
            smtp_cfg.want_v6 = true;
        else
            msg_fatal("inet_protocols: unknown protocol \"%s\" (main.cf); use all, ipv4 or ipv6", words[i]);
    }
    cfg_list_free(words, n);
    if (!smtp_cfg.want_v4 && !smtp_cfg.want_v6)
        msg_fatal("inet_protocols is empty (main.cf)");
    static const struct name_code prefs[] = {
        { "any", SMTP_PREF_ANY }, { "ipv4", SMTP_PREF_IPV4 }, { "ipv6", SMTP_PREF_IPV6 },
        { NULL, -1 },
    };
    const char *pref = cfg_str(smtp_param(P_smtp_address_preference));
    int code = name_code(prefs, pref);
    if (code < 0)
        msg_fatal("%s = %s: expected any, ipv4 or ipv6 (main.cf)",
                  smtp_param_name(P_smtp_address_preference), pref);
    smtp_cfg.family_pref = (enum smtp_family_pref)code;
}

static bool helo_name_ok(const char *s)
{
    if (!*s || strlen(s) > DNS_NAME_MAX)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* smtp_dns_support_level: with dnssec, queries ask for validation. A
 * resolver that is not on this host is not believed unless the
 * administrator says the path to it is safe. */
static void dnssec_init(void)
{
    const char *level = cfg_str(smtp_param(P_smtp_dns_support_level));
    if (!*level || strcmp(level, "enabled") == 0)
        return;
    if (strcmp(level, "dnssec") != 0)
        msg_fatal("%s = %s: expected enabled or dnssec (disabled is not supported) (main.cf)",
                  smtp_param_name(P_smtp_dns_support_level), level);
    smtp_cfg.dnssec = true;
    if (!dns_set_dnssec(smtp_cfg.dns, cfg_bool(smtp_param(P_smtp_dns_trust_remote_resolver))))
        msg_warn("%s = dnssec: the DNS resolver is not on this host, so its DNSSEC validation "
                 "is not believed and no answer counts as secure; use a validating resolver on "
                 "a loopback address, or set %s = yes", smtp_param_name(P_smtp_dns_support_level),
                 smtp_param_name(P_smtp_dns_trust_remote_resolver));
}

/* As root, before any chroot: the resolver's configuration and the
 * services database are reachable only now. */
static void smtp_pre_init(void)
{
    struct strbuf err = STRBUF_INIT(1024);
    smtp_cfg.dns = dns_open(cfg_str(smtp_param(P_smtp_dns_servers)), config_seconds(P_smtp_dns_timeout),
                            &err);
    if (!smtp_cfg.dns)
        msg_fatal("%s: %s (main.cf)", smtp_param_name(P_smtp_dns_servers), sb_str(&err));
    sb_free(&err);
    dnssec_init();
    smtp_cfg.port = default_port();
    resolve_init();
    /* CA certificates and password tables are readable only now. */
    smtp_tls_init();
    smtp_sts_init();
    smtp_tlsrpt_init();
    smtp_sasl_init();
}

static void smtp_post_init(struct event_base *base)
{
    /* OpenSSL reads a CApath directory during each handshake, by path:
     * inside the chroot that is a path under queue_directory. */
    const char *capath = cfg_str(smtp_param(P_smtp_tls_CApath));
    if (chroot_active() && *capath && access(capath, X_OK) < 0)
        msg_warn("%s %s is not inside queue_directory, which is this chrooted "
                 "service's root: certificates there cannot be verified; use %s "
                 "(read before the chroot) or a copy under queue_directory",
                 smtp_param_name(P_smtp_tls_CApath), capath, smtp_param_name(P_smtp_tls_CAfile));
    smtp_cfg.myhostname = xstrdup(cfg_str(P_myhostname));
    smtp_cfg.helo_name = xstrdup(cfg_str(smtp_param(P_smtp_helo_name)));
    if (!helo_name_ok(smtp_cfg.helo_name))
        msg_fatal("%s = \"%s\": not a host name (main.cf)", smtp_param_name(P_smtp_helo_name),
                  smtp_cfg.helo_name);
    /* 0 (lmtp_connect_timeout's default): as long as the kernel tries */
    smtp_cfg.connect_timeout = smtp_cfg.lmtp && cfg_time(smtp_param(P_smtp_connect_timeout)) == 0
                               ? 0 : config_seconds(P_smtp_connect_timeout);
    smtp_cfg.helo_timeout = config_seconds(P_smtp_helo_timeout);
    smtp_cfg.mail_timeout = config_seconds(P_smtp_mail_timeout);
    smtp_cfg.rcpt_timeout = config_seconds(P_smtp_rcpt_timeout);
    smtp_cfg.data_init_timeout = config_seconds(P_smtp_data_init_timeout);
    smtp_cfg.data_xfer_timeout = config_seconds(P_smtp_data_xfer_timeout);
    smtp_cfg.data_done_timeout = config_seconds(P_smtp_data_done_timeout);
    smtp_cfg.quit_timeout = config_seconds(P_smtp_quit_timeout);
    smtp_cfg.rset_timeout = config_seconds(P_smtp_rset_timeout);
    smtp_cfg.cache_on_demand = cfg_bool(smtp_param(P_smtp_connection_cache_on_demand));
    smtp_cfg.cache_time_limit = config_seconds(P_smtp_connection_cache_time_limit);
    smtp_cfg.reuse_time_limit = config_seconds(P_smtp_connection_reuse_time_limit);
    smtp_cfg.reuse_count_limit = cfg_int(smtp_param(P_smtp_connection_reuse_count_limit));
    smtp_cfg.mx_address_limit = cfg_int(smtp_param(P_smtp_mx_address_limit));
    smtp_cfg.mx_session_limit = cfg_int(smtp_param(P_smtp_mx_session_limit));
    smtp_cfg.skip_5xx_greeting = cfg_bool(smtp_param(P_smtp_skip_5xx_greeting));
    smtp_cfg.ipc_frame_limit = (size_t)cfg_size(P_ipc_frame_limit);
    smtp_cfg.ipc_timeout = (int)cfg_time(P_ipc_timeout);
    bind_addresses();
    address_families();
    smtp_sts_post_init();
    smtp_tlsrpt_post_init();
    /* Random order among equal MX preferences needs no strong randomness. */
    srandom((unsigned)(now_usec() ^ ((long long)getpid() << 16)));
}

static void smtp_pre_exit(void)
{
    smtp_cache_close();
    smtp_tls_exit();
    smtp_sts_exit();
    smtp_tlsrpt_exit();
    smtp_sasl_exit();
    dns_close(smtp_cfg.dns);
    smtp_cfg.dns = NULL;
}

/* Postfix's rule: the program's name says the protocol. */
static bool named_lmtp(const char *argv0)
{
    const char *base = strrchr(argv0, '/');
    return strcmp(base ? base + 1 : argv0, "lmtp") == 0;
}

int main(int argc, char **argv)
{
    smtp_cfg.lmtp = argc > 0 && named_lmtp(argv[0]);
    static const struct server_ops ops = {
        .mode = SERVER_SINGLE, .serve = smtp_serve,
        .pre_init = smtp_pre_init, .post_init = smtp_post_init, .pre_exit = smtp_pre_exit,
        .idle_deadline_usec = smtp_cache_deadline, .idle_deadline = smtp_cache_expire,
        .syscall_filter = SYSCALL_PROFILE_SMTP,
    };
    server_main(argc, argv, smtp_cfg.lmtp ? "lmtp" : "smtp", &ops);
}
