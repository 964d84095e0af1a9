/* tern.h: the administrator's command: shared helpers of its subcommands. */
#ifndef TERN_TERN_H
#define TERN_TERN_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

/* The accounts a system install (and `tern init` as root) uses. */
#define TERN_DEFAULT_OWNER "tern"
#define TERN_DEFAULT_GROUP "terndrop"

extern const char *tern_confdir;    /* -c DIR, or NULL for the default */

/* Load main.cf or exit 1 with the reason. */
void tern_load_config(void);
/* PID of the running master (from its lock), 0 when not running. */
pid_t tern_master_pid(void);
/* Run a program and wait; returns its exit status (or -1). */
int tern_run(const char *const argv[]);
/* true when a subcommand's arguments ask for --help (or -h). */
bool tern_wants_help(int argc, char **argv);
/* With --help (or -h) among the arguments: usage printed on stdout, true
 * (the command is done, exit status 0). */
bool tern_help(int argc, char **argv, const char *usage);
/* The start of a command that takes no arguments: with --help (or -h) it
 * prints usage on stdout and exits 0; with any argument it says "tern: NAME
 * takes no arguments" and then note on stderr, and exits 2; it returns
 * when the command goes on. */
void tern_no_arguments(int argc, char **argv, const char *usage, const char *note);
/* The start of a command with actions (tern quarantine ACTION ...): -1
 * when it goes on, else its exit status: 0 after --help (usage on
 * stdout), 2 with fewer than min arguments (usage on stderr). */
int tern_action_start(int argc, char **argv, const char *usage, int min);

/* The configuration check of `tern check` (and of `tern start`): writes each
 * problem to out, returns the number of errors; *warnings gets the number of
 * warnings (unknown parameters). Queue directories are checked only as root
 * and when check_queue_dirs. */
int tern_check_config(FILE *out, bool check_queue_dirs, int *warnings);
/* Certificates that have expired (errors when strict, else warnings) or
 * expire soon (warnings); tern_check_certs.c. */
void tern_check_certificates(FILE *out, bool strict, int *errors, int *warnings);
/* For `tern why`: the cached MTA-STS policies of the recipients' domains,
 * as text lines, or as the JSON member ', "mta_sts": [...]'; tern_sts.c. */
struct queued;
struct strbuf;
void tern_sts_why_text(const struct queued *q);
void tern_sts_why_json(const struct queued *q, struct strbuf *out);

/* Submit msg (a whole message, lines ending in LF) to rcpts through
 * command_directory/sendmail, as every local program submits mail: it
 * reaches maildrop/ even while Tern is stopped. what names the command
 * in messages ("report"). 0 ok, else 1 (said on stderr). */
int tern_sendmail(const char *what, const char *const *rcpts, size_t n, const struct strbuf *msg);
/* Whether a an address may be given to sendmail as a recipient (no
 * option, no blanks or list separators, printable, bounded). */
bool tern_sendmail_address_ok(const char *a);
#define TERN_SENDMAIL_RCPTS_MAX 1000

/* `tern init --gateway` (tern_init_gateway.c): its options, parsed by
 * tern init's getopt loop with the codes below. */
#define INIT_GW_DOMAINS_MAX 64
enum {
    INIT_GW_OPT_GATEWAY = 0x100, INIT_GW_OPT_NEXT_HOP, INIT_GW_OPT_DOMAIN, INIT_GW_OPT_INTERNAL_NET,
    INIT_GW_OPT_LDAP_URI, INIT_GW_OPT_LDAP_BASE, INIT_GW_OPT_LISTEN,
};
#define INIT_GW_LONG_OPTIONS                                                              \
    { "gateway", no_argument, NULL, INIT_GW_OPT_GATEWAY },                                \
    { "next-hop", required_argument, NULL, INIT_GW_OPT_NEXT_HOP },                        \
    { "domain", required_argument, NULL, INIT_GW_OPT_DOMAIN },                            \
    { "internal-net", required_argument, NULL, INIT_GW_OPT_INTERNAL_NET },                \
    { "ldap-uri", required_argument, NULL, INIT_GW_OPT_LDAP_URI },                        \
    { "ldap-base", required_argument, NULL, INIT_GW_OPT_LDAP_BASE },                      \
    { "listen", required_argument, NULL, INIT_GW_OPT_LISTEN }
struct init_gateway {
    bool enabled;
    char next_hop_host[256];
    long next_hop_port;
    const char *domains[INIT_GW_DOMAINS_MAX];
    int ndomains;
    char internal_net[64];         /* as mynetworks takes it */
    const char *ldap_uri, *ldap_base;
    const char *listen;            /* postscreen's master.cf service name */
};
struct strbuf;
/* Take one option (0, or -1 after saying why on stderr). */
int tern_init_gateway_option(struct init_gateway *g, int opt, const char *arg);
/* After all options: complete the defaults, or -1 after saying why. */
int tern_init_gateway_check(struct init_gateway *g);
/* Add the gateway's settings to main_cf, turn master_cf into the gateway's,
 * write its tables into dir; 0 or -1 (said on stderr). */
int tern_init_gateway_write(const struct init_gateway *g, const char *dir,
                            struct strbuf *main_cf, struct strbuf *master_cf);
/* Write text to dir/name (tern_init.c); 0 or -1 (said on stderr). */
int tern_init_write_file(const char *dir, const char *name, const char *text);

int tern_cmd_start(int argc, char **argv);
int tern_cmd_stop(int argc, char **argv);
int tern_cmd_abort(int argc, char **argv);
int tern_cmd_reload(int argc, char **argv);
int tern_cmd_status(int argc, char **argv);
int tern_cmd_check(int argc, char **argv);
int tern_cmd_init(int argc, char **argv);
int tern_cmd_setup(int argc, char **argv);
int tern_cmd_queue(int argc, char **argv);
int tern_cmd_show(int argc, char **argv);
int tern_cmd_why(int argc, char **argv);
int tern_cmd_tlsrpt(int argc, char **argv);
int tern_cmd_flush(int argc, char **argv);
int tern_cmd_delete(int argc, char **argv);
int tern_cmd_hold(int argc, char **argv);
int tern_cmd_release(int argc, char **argv);
int tern_cmd_requeue(int argc, char **argv);
int tern_cmd_conf(int argc, char **argv);
int tern_cmd_map(int argc, char **argv);
int tern_cmd_aliases(int argc, char **argv);
int tern_cmd_report(int argc, char **argv);
int tern_cmd_verify(int argc, char **argv);
int tern_cmd_quarantine(int argc, char **argv);
int tern_cmd_lists(int argc, char **argv);
/* Create mail_owner and setgid_group if missing (root only). 0 ok. */
int tern_ensure_accounts(const char *owner, const char *group);
/* groupadd --system GROUP when it is missing. */
int tern_ensure_group(const char *group);
/* The group of the mail spool directory, as on Debian. */
#define TERN_SPOOL_GROUP "mail"
/* Create mail_spool_directory root:mail 2775 when missing (as root);
 * warn when an existing one is world-writable. */
int tern_setup_spool(const char *dir);

#endif
