/* smtpd.c: entry point of the SMTP server: the event-driven server skeleton
 * runs many sessions per process; this file reads smtpd's parameters once
 * after the privilege drop and hands each accepted connection to a session. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "netlist.h"
#include "queue.h"
#include "server.h"
#include "smtpd.h"
#include "smtpd_milter.h"
#include "smtpd_limits.h"
#include "smtpd_proxy.h"
#include "smtpd_sasl.h"
#include "strbuf.h"
#include "util.h"

struct smtpd_config smtpd_cfg;

static enum smtpd_bare_lf_policy read_bare_policy(const char *name, const char *v)
{
    if (str_ieq(v, "normal") || str_ieq(v, "yes"))
        return BARE_LF_NORMAL;
    if (str_ieq(v, "reject"))
        return BARE_LF_REJECT;
    if (str_ieq(v, "no"))
        return BARE_LF_ALLOW;
    msg_fatal("main.cf: %s = %s: expected normal, reject or no", name, v);
}

/* The cleanup socket relative to the queue directory, the working
 * directory the skeleton entered: that path works whether or not the skeleton chrooted
 * into the queue directory (after a chroot "/" is the queue directory). */
static char *cleanup_socket_path(void)
{
    struct strbuf path = STRBUF_INIT(4096);
    if (sb_appendf(&path, "%s/%s", QDIR_PRIVATE, cfg_str(P_cleanup_service_name)) < 0)
        msg_fatal("cleanup_service_name is too long");
    char *p = xstrdup(sb_str(&path));
    sb_free(&path);
    return p;
}

/* The settings smtpd reads as they are, and the bounds it puts on some. */
static void read_settings(struct smtpd_config *c)
{
    c->myhostname = cfg_str(P_myhostname);
    c->banner = cfg_str(P_smtpd_banner);
    c->timeout = cfg_time(P_smtpd_timeout);
    c->greet_pause = cfg_time(P_smtpd_greet_pause);
    c->error_sleep = cfg_time(P_smtpd_error_sleep_time);
    c->soft_error_limit = cfg_int(P_smtpd_soft_error_limit);
    c->hard_error_limit = cfg_int(P_smtpd_hard_error_limit);
    c->recipient_limit = cfg_int(P_smtpd_recipient_limit);
    c->client_limit = cfg_int(P_smtpd_client_limit_per_process);
    c->size_limit = cfg_size(P_message_size_limit);
    c->ipc_timeout = cfg_time(P_ipc_timeout);
    c->forbid_unauth_pipelining = cfg_bool(P_smtpd_forbid_unauth_pipelining);
    c->disable_vrfy = cfg_bool(P_disable_vrfy_command);
    c->smtputf8 = cfg_bool(P_smtputf8_enable);
    c->requiretls = cfg_bool(P_requiretls_enable);
    c->strict_rfc821 = cfg_bool(P_strict_rfc821_envelopes);
    c->helo_required = cfg_bool(P_smtpd_helo_required);
    long long line = cfg_size(P_line_length_limit);
    c->line_limit = line < 80 ? 80 : line > 1000000 ? 1000000 : (size_t)line;
    long long frame = cfg_size(P_ipc_frame_limit);
    c->ipc_frame_limit = frame < 4096 ? 4096 : (size_t)frame;
    if (c->timeout <= 0)
        c->timeout = 1;
    if (c->hard_error_limit <= 0)
        c->hard_error_limit = 1;
}

static void smtpd_post_init(struct event_base *base)
{
    struct smtpd_config *c = &smtpd_cfg;
    read_settings(c);
    c->bare_lf = read_bare_policy("smtpd_forbid_bare_newline", cfg_str(P_smtpd_forbid_bare_newline));
    c->bare_cr = read_bare_policy("smtpd_forbid_bare_cr", cfg_str(P_smtpd_forbid_bare_cr));
    c->cleanup_path = cleanup_socket_path();
    smtpd_check_init();
    smtpd_user_lists_init();
    smtpd_limits_init(base);
    smtpd_sasl_init(base);
    smtpd_milter_init();
    smtpd_proxy_init();
    smtpd_tls_server_post_init();
}

/* As root: the restriction engine's tables, the password tables, then
 * the TLS certificates. */
static void smtpd_pre_init(void)
{
    smtpd_check_pre_init();
    smtpd_user_lists_pre_init();
    smtpd_limits_pre_init();
    smtpd_sasl_pre_init();
    smtpd_tls_server_pre_init();
}

static void smtpd_accept(int fd, struct event_base *base)
{
    smtpd_session_accept(fd, base);
}

static int smtpd_client_limit(void)
{
    long n = smtpd_cfg.client_limit;
    return n < 0 ? 0 : n > 100000 ? 100000 : (int)n;
}

SERVER_MAIN("smtpd", .mode = SERVER_EVENT, .accept_event = smtpd_accept,
            .client_limit = smtpd_client_limit, .pre_init = smtpd_pre_init,
            .post_init = smtpd_post_init, .pre_exit = smtpd_user_lists_flush,
            .syscall_filter = SYSCALL_PROFILE_SMTPD)
