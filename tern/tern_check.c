/* tern_check.c: `tern check`, and the same configuration check `tern start`
 * runs first: configuration errors, unknown parameters, missing daemon
 * programs, and (as root) queue ownership and permissions, each with the fix
 * to apply. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "domains.h"
#include "mailbox.h"
#include "mastercf.h"
#include "match_list.h"
#include "milter.h"
#include "proxy_proto.h"
#include "queue.h"
#include "server.h"
#include "strbuf.h"
#include "syscall_filter.h"
#include "tern.h"
#include "util.h"

struct check_state {
    FILE *out;
    int warnings;
    int errors;
};

/* `tern check` itself (not the check `tern start` runs first): an unknown
 * name that looks like a misspelled known one, and a list entry that
 * cannot be used, are errors there. For start they are warnings: the
 * daemons defer what such a list decides, and the rest of the mail flows. */
static bool strict_names;

#define NAME_DISTANCE_MAX 2

/* The edit distance of a and b (insertions, deletions, substitutions and
 * swaps of two neighbours), or NAME_DISTANCE_MAX + 1 when it is larger. */
static int name_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    enum { LEN = 128 };
    if (la >= LEN || lb >= LEN || (la > lb ? la - lb : lb - la) > NAME_DISTANCE_MAX)
        return NAME_DISTANCE_MAX + 1;
    static int d[LEN][LEN];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* The service prefix of Postfix's per-service families (smtpd_tls_*,
 * smtp_tls_*, lmtp_tls_*), or NULL. */
static const char *service_prefix(const char *name)
{
    static const char *const prefixes[] = { "smtpd_", "smtp_", "lmtp_" };
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return prefixes[i];
    return NULL;
}

/* Postfix parameters that Tern does not have, a couple of edits away from
 * one it has: real names, not misspellings. */
static bool postfix_sibling(const char *name)
{
    static const char *const names[] = {
        "smtpd_tls_dcert_file", "smtpd_tls_dkey_file", "smtp_tls_dcert_file",
        "smtp_tls_dkey_file", "smtp_tls_eccert_file", "smtp_tls_eckey_file",
        "lmtp_tls_dcert_file", "lmtp_tls_dkey_file", "virtual_uid_maps", "virtual_gid_maps",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/* The known parameter an unknown name is most likely a misspelling of:
 * within 2 edits (1 for names shorter than 8), or NULL. A name of another
 * service's family (smtp_X for smtpd_X, lmtp_X for smtp_X) is a Postfix
 * parameter Tern does not support, not a misspelling. */
static const char *misspelling_of(const char *name)
{
    const struct param_def *t = param_table();
    const char *best = NULL;
    int best_d = strlen(name) < 8 ? 1 : NAME_DISTANCE_MAX;
    const char *prefix = service_prefix(name);
    if (postfix_sibling(name))
        return NULL;
    for (int i = 0; i < P__COUNT; i++) {
        const char *other = service_prefix(t[i].name);
        if (prefix && other && prefix != other)
            continue;
        int dist = name_distance(name, t[i].name);
        if (dist <= best_d && (!best || dist < best_d)) {
            best = t[i].name;
            best_d = dist;
        }
    }
    return best;
}

static void report_unknown(const char *name, const char *file, int line, void *ctx)
{
    struct check_state *cs = ctx;
    if (cfg_is_per_transport(name)) {
        const char *value = cfg_get(name);
        if (value && cfg_per_transport_check(name, value) < 0) {
            fprintf(cs->out, "tern: error: %s: %s = %s is not a %s\n",
                    strcmp(file, "main.cf") == 0 ? "main.cf" : file, name, value,
                    strcmp(cfg_per_transport_default(name), "command_time_limit") == 0
                    ? "time" : "number");
            cs->errors++;
        }
        return;
    }
    const char *known = misspelling_of(name);
    const char *dir = strcmp(file, "main.cf") == 0 ? cfg_confdir() : NULL;
    if (known) {
        fprintf(cs->out, "tern: %s: %s%s%s:%d: unknown parameter %s: did you mean %s?\n",
                strict_names ? "error" : "warning", dir ? dir : "", dir ? "/" : "", file, line,
                name, known);
        if (strict_names)
            cs->errors++;
        else
            cs->warnings++;
        return;
    }
    fprintf(cs->out, "tern: warning: %s%s%s:%d: unknown parameter %s (misspelled, or not "
            "supported by Tern)\n", dir ? dir : "", dir ? "/" : "", file, line, name);
    cs->warnings++;
}

/* The domain and network lists must be usable: every entry a name or
 * network, a readable /file/name or a table that opens. At run time a
 * domain list entry that cannot be used makes the daemons defer the mail
 * it decides; smtpd does not start without its network lists, so those
 * are errors for start too. */
static void list_problem(struct check_state *cs, const char *what, bool stops_smtpd)
{
    bool error = strict_names || stops_smtpd;
    fprintf(cs->out, "tern: %s: %s/main.cf: %s%s\n", error ? "error" : "warning",
            cfg_confdir(), what, error ? "" : " (the mail this list decides will wait)");
    if (error)
        cs->errors++;
    else
        cs->warnings++;
}

static void check_lists(struct check_state *cs)
{
    static const enum param_id domain_lists[] = {
        P_mydestination, P_relay_domains, P_virtual_alias_domains, P_virtual_mailbox_domains,
    };
    static const enum param_id network_lists[] = {
        P_mynetworks, P_smtpd_client_event_limit_exceptions,
    };
    struct strbuf err = STRBUF_INIT(4096);
    for (size_t i = 0; i < sizeof(domain_lists) / sizeof(domain_lists[0]); i++) {
        sb_reset(&err);
        if (domains_check(domain_lists[i], &err) < 0)
            list_problem(cs, sb_str(&err), false);
    }
    /* the flush service's own list (flush/flush.c): ETRN for its domains
     * answers 458 while it cannot be used */
    sb_reset(&err);
    struct match_list *ff = match_list_open("fast_flush_domains", cfg_str(P_fast_flush_domains),
                                            MATCH_DOMAINS, MATCH_F_PARENT, &err);
    if (!ff)
        list_problem(cs, sb_str(&err), false);
    match_list_free(ff);
    for (size_t i = 0; i < sizeof(network_lists) / sizeof(network_lists[0]); i++) {
        const char *name = param_table()[network_lists[i]].name;
        sb_reset(&err);
        struct match_list *l = match_list_open(name, cfg_str(network_lists[i]), MATCH_NETWORKS,
                                               0, &err);
        if (!l)
            list_problem(cs, sb_str(&err), true);
        match_list_free(l);
    }
    sb_free(&err);
}

/* A domain is in one class only (lib/global/resolve.h): one named in
 * virtual_alias_domains or virtual_mailbox_domains that mydestination
 * also lists is delivered locally, and one in both virtual lists is an
 * alias domain; neither is ever what was meant (Postfix warns the same).
 * Only names written in a list are compared; what a table holds is not
 * enumerated. */
static void warn_listed(struct check_state *cs, const char *listed_in, struct match_list *other,
                        const char *other_name, const char *what_happens)
{
    size_t n;
    const char *value = cfg_get(listed_in);
    char **words = cfg_list_split(value ? value : "", &n);
    for (size_t k = 0; k < n; k++) {
        const char *w = words[k];
        if (*w == '!' || *w == '/' || *w == '.' || strchr(w, ':'))
            continue;
        char *lc = str_lower(xstrdup(w));
        if (match_list_domain(other, lc) == 1) {
            fprintf(cs->out, "tern: warning: %s/main.cf: do not list domain %s in BOTH %s and "
                    "%s: %s\n", cfg_confdir(), lc, other_name, listed_in, what_happens);
            cs->warnings++;
        }
        free(lc);
    }
    cfg_list_free(words, n);
}

static void check_domain_overlap(struct check_state *cs)
{
    struct strbuf err = STRBUF_INIT(4096);
    struct match_list *mydest = match_list_open("mydestination", cfg_str(P_mydestination),
                                                MATCH_DOMAINS, 0, &err);
    struct match_list *alias = match_list_open("virtual_alias_domains",
                                               cfg_str(P_virtual_alias_domains), MATCH_DOMAINS, 0,
                                               &err);
    sb_free(&err);
    /* a list that does not open is reported by check_lists */
    if (mydest) {
        warn_listed(cs, "virtual_alias_domains", mydest, "mydestination",
                    "its mail is delivered locally");
        warn_listed(cs, "virtual_mailbox_domains", mydest, "mydestination",
                    "its mail is delivered locally");
    }
    if (alias)
        warn_listed(cs, "virtual_mailbox_domains", alias, "virtual_alias_domains",
                    "an address there that virtual_alias_maps does not list is unknown");
    match_list_free(mydest);
    match_list_free(alias);
}

/* What the virtual agent would refuse to start with (virtual/virtual.c). */
static void check_virtual(struct check_state *cs)
{
    struct strbuf why = STRBUF_INIT(256);
    if (mailbox_lock_styles(cfg_str(P_virtual_mailbox_lock), &why) < 0) {
        fprintf(cs->out, "tern: error: %s/main.cf: virtual_mailbox_lock: unknown lock style "
                "\"%s\" (use fcntl, dotlock or both)\n", cfg_confdir(), sb_str(&why));
        cs->errors++;
    }
    if (cfg_int(P_virtual_minimum_uid) < 1) {
        fprintf(cs->out, "tern: error: %s/main.cf: virtual_minimum_uid must be 1 or more (mail is "
                "never delivered as root)\n", cfg_confdir());
        cs->errors++;
    }
    sb_free(&why);
}

/* cfg_validate's lines are "main.cf:LINE: ..."; say which main.cf. */
static void check_parameters(struct check_state *cs)
{
    struct strbuf err = STRBUF_INIT(65536);
    if (cfg_validate(&err) > 0) {
        const char *p = sb_str(&err);
        while (*p) {
            size_t n = strcspn(p, "\n");
            const char *dir = strncmp(p, "main.cf:", 8) == 0 ? cfg_confdir() : NULL;
            fprintf(cs->out, "tern: error: %s%s%.*s\n", dir ? dir : "", dir ? "/" : "",
                    (int)n, p);
            cs->errors++;
            p += n + (p[n] == '\n');
        }
    }
    sb_free(&err);
    cfg_unknown(report_unknown, cs);
}

/* smtpd_milters and non_smtpd_milters must be usable lists. */
static void check_milters(struct check_state *cs)
{
    static const enum param_id lists[] = { P_smtpd_milters, P_non_smtpd_milters };
    for (size_t i = 0; i < sizeof(lists) / sizeof(*lists); i++) {
        struct milter_config mc;
        struct strbuf err = STRBUF_INIT(4096);
        if (milter_config_load(&mc, lists[i], &err) < 0) {
            fprintf(cs->out, "tern: error: %s/main.cf: %s: %s\n", cfg_confdir(),
                    i == 0 ? "smtpd_milters" : "non_smtpd_milters", sb_str(&err));
            cs->errors++;
        } else {
            milter_config_free(&mc);
        }
        sb_free(&err);
    }
}

/* ---- chroot = y ---- */

/* A chrooted daemon sees queue_directory as "/": a socket or directory it
 * opens by path at run time must be given relative to queue_directory, or
 * absolute as seen from inside (lib/global/chroot.c opens the rest before the
 * chroot). Paths of main.cf only; -o overrides are not looked at. */
static void check_chroot_path(struct check_state *cs, const struct master_service *svc,
                              const char *param, const char *path, size_t len)
{
    if (len == 0 || path[0] != '/')
        return;
    struct strbuf inside = STRBUF_INIT(4096);
    sb_appendf(&inside, "%s%.*s", cfg_str(P_queue_directory), (int)len, path);
    if (access(sb_str(&inside), F_OK) < 0) {
        fprintf(cs->out, "tern: warning: %s/master.cf:%d: service %s runs chrooted, but %s "
                "names %.*s, which it looks for as %s: make it exist there, or give a path "
                "relative to queue_directory (e.g. private/NAME for a socket)\n", cfg_confdir(), svc->lineno, svc->name,
                param, (int)len, path, sb_str(&inside));
        cs->warnings++;
    }
    sb_free(&inside);
}

/* Every "unix:/path" (milters, policy services) in the value of param. */
static void check_chroot_sockets(struct check_state *cs, const struct master_service *svc,
                                 enum param_id param)
{
    const char *value = cfg_str(param);
    for (const char *p = strstr(value, "unix:/"); p; p = strstr(p + 5, "unix:/")) {
        const char *path = p + 5;
        check_chroot_path(cs, svc, param_table()[param].name, path, strcspn(path, " \t\r\n,{}"));
    }
}

static void check_chroot_service(struct check_state *cs, const struct master_service *svc)
{
    static const enum param_id smtpd_params[] = {
        P_smtpd_milters, P_smtpd_client_restrictions, P_smtpd_helo_restrictions,
        P_smtpd_sender_restrictions, P_smtpd_relay_restrictions, P_smtpd_recipient_restrictions,
        P_smtpd_data_restrictions, P_smtpd_end_of_data_restrictions, P_smtpd_etrn_restrictions,
    };
    if (strcmp(svc->command, "local") == 0 || strcmp(svc->command, "virtual") == 0) {
        fprintf(cs->out, "tern: warning: %s/master.cf:%d: service %s: %s delivers as each "
                "recipient, outside the queue directory, and cannot run chrooted; set its chroot "
                "column to n\n", cfg_confdir(), svc->lineno, svc->name, svc->command);
        cs->warnings++;
    } else if (strcmp(svc->command, "smtpd") == 0) {
        for (size_t i = 0; i < sizeof(smtpd_params) / sizeof(smtpd_params[0]); i++)
            check_chroot_sockets(cs, svc, smtpd_params[i]);
        if (strcmp(cfg_str(P_smtpd_sasl_type), "dovecot") == 0)
            check_chroot_path(cs, svc, "smtpd_sasl_path", cfg_str(P_smtpd_sasl_path),
                              strlen(cfg_str(P_smtpd_sasl_path)));
    } else if (strcmp(svc->command, "pickup") == 0) {
        check_chroot_sockets(cs, svc, P_non_smtpd_milters);
    } else if (strcmp(svc->command, "smtp") == 0) {
        check_chroot_path(cs, svc, "smtp_tls_CApath", cfg_str(P_smtp_tls_CApath),
                          strlen(cfg_str(P_smtp_tls_CApath)));
    }
}

/* master.cf must parse, and every command must exist in daemon_directory;
 * chrooted services must find what they open at run time. */
static void check_services(struct check_state *cs)
{
    struct strbuf path = STRBUF_INIT(4096), err = STRBUF_INIT(4096);
    sb_appendf(&path, "%s/master", cfg_str(P_daemon_directory));
    if (access(path.data, X_OK) < 0) {
        fprintf(cs->out, "tern: error: %s is missing or not executable (check "
                "daemon_directory in %s/main.cf)\n", path.data, cfg_confdir());
        cs->errors++;
    }
    sb_reset(&path);
    sb_appendf(&path, "%s/master.cf", cfg_confdir());
    struct master_service *svcs;
    size_t n;
    if (mastercf_load(path.data, (int)cfg_int(P_default_process_limit), &svcs, &n, &err) < 0) {
        bool relative = strncmp(sb_str(&err), "master.cf:", 10) == 0;
        fprintf(cs->out, "tern: error: %s%s%s\n", relative ? cfg_confdir() : "",
                relative ? "/" : "", sb_str(&err));
        cs->errors++;
    } else {
        for (size_t i = 0; i < n; i++) {
            sb_reset(&path);
            sb_appendf(&path, "%s/%s", cfg_str(P_daemon_directory), svcs[i].command);
            if (access(path.data, X_OK) < 0) {
                fprintf(cs->out, "tern: error: %s/master.cf:%d: service %s: program %s is "
                        "missing or not executable (check daemon_directory)\n", cfg_confdir(),
                        svcs[i].lineno, svcs[i].name, path.data);
                cs->errors++;
            }
            if (svcs[i].chroot_)
                check_chroot_service(cs, &svcs[i]);
        }
        mastercf_free(svcs, n);
    }
    sb_free(&path);
    sb_free(&err);
}

/* 1 checked, 0 missing (master creates it), with the fix for a wrong one. */
static int check_queue_dir(struct check_state *cs, const char *path, unsigned mode,
                           uid_t uid, gid_t gid)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0;
    if (!S_ISDIR(st.st_mode)) {
        fprintf(cs->out, "tern: error: %s is not a directory; fix: move it away, then "
                "tern start creates it\n", path);
        cs->errors++;
        return 1;
    }
    if (st.st_uid != uid || st.st_gid != gid) {
        fprintf(cs->out, "tern: error: %s is owned by %ld:%ld, expected %ld:%ld; fix: chown "
                "%ld:%ld %s\n", path, (long)st.st_uid, (long)st.st_gid, (long)uid, (long)gid,
                (long)uid, (long)gid, path);
        cs->errors++;
    }
    if ((st.st_mode & 07777) != mode) {
        fprintf(cs->out, "tern: error: %s has mode %04o, expected %04o; fix: chmod %04o %s\n",
                path, (unsigned)(st.st_mode & 07777), mode, mode, path);
        cs->errors++;
    }
    return 1;
}

static void check_queue(struct check_state *cs)
{
    uid_t uid;
    gid_t gid;
    const char *owner = cfg_str(P_mail_owner), *group = cfg_str(P_setgid_group);
    if (user_ids(owner, &uid, &gid) < 0) {
        fprintf(cs->out, "tern: error: mail_owner %s does not exist; fix: tern setup\n", owner);
        cs->errors++;
        return;
    }
    struct group *gr = getgrnam(group);
    if (!gr) {
        fprintf(cs->out, "tern: error: setgid_group %s does not exist; fix: tern setup\n", group);
        cs->errors++;
        return;
    }
    if (uid == 0) {
        fprintf(cs->out, "tern: error: mail_owner %s is the super-user; fix: set mail_owner "
                "to an unprivileged account of its own\n", owner);
        cs->errors++;
    }
    gid_t setgid_gid = gr->gr_gid;
    struct strbuf path = STRBUF_INIT(4096);
    size_t missing = 0;
    for (size_t i = 0; i < queue_dirs_count; i++) {
        sb_reset(&path);
        sb_appendf(&path, "%s/%s", cfg_str(P_queue_directory), queue_dirs[i].name);
        if (!check_queue_dir(cs, path.data, queue_dirs[i].mode, uid,
                             queue_dirs[i].group_is_setgid ? setgid_gid : gid))
            missing++;
    }
    if (missing)
        fprintf(cs->out, "tern: %zu queue directories under %s do not exist yet; master "
                "creates them at start\n", missing, cfg_str(P_queue_directory));
    sb_free(&path);
}

/* tern-drop and tern-mailq serve users other than root only when they are
 * set-group-ID setgid_group and belong to root; without that, sendmail and
 * mailq still work for root, so this is a warning. */
static void check_setgid_programs(struct check_state *cs)
{
    struct group *gr = getgrnam(cfg_str(P_setgid_group));
    if (!gr)
        return;         /* reported by check_queue */
    static const struct {
        const char *name, *what;
    } progs[] = {
        { "tern-drop", "sendmail run by users other than root cannot submit mail" },
        { "tern-mailq", "mailq run by users other than root cannot list the queue" },
    };
    struct strbuf path = STRBUF_INIT(4096);
    for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
        struct stat st;
        sb_reset(&path);
        sb_appendf(&path, "%s/%s", cfg_str(P_daemon_directory), progs[i].name);
        if (stat(path.data, &st) < 0)
            continue;   /* a missing program is reported with the services */
        if (st.st_uid != 0 || st.st_gid != gr->gr_gid || (st.st_mode & 07777) != 02755) {
            fprintf(cs->out, "tern: warning: %s is not set-group-ID %s (mode %04o, owner %ld:%ld): "
                    "%s; fix: tern setup\n", path.data, gr->gr_name, (unsigned)(st.st_mode & 07777),
                    (long)st.st_uid, (long)st.st_gid, progs[i].what);
            cs->warnings++;
        }
    }
    sb_free(&path);
}

/* A world-writable mail spool lets any user plant another's mailbox or
 * dot-lock (doc/SECURITY.md, "Mail spool"). Only when mailboxes live there. */
static void check_spool(struct check_state *cs)
{
    const char *dir = cfg_str(P_mail_spool_directory);
    struct stat st;
    if (*cfg_str(P_home_mailbox) || *cfg_str(P_mailbox_command) || stat(dir, &st) < 0
        || !S_ISDIR(st.st_mode) || !(st.st_mode & S_IWOTH))
        return;
    fprintf(cs->out, "tern: warning: mail_spool_directory %s is world-writable (mode %04o): any "
            "user can block another's mail with a planted mailbox or lock file; fix: chown "
            "root:mail %s; chmod 2775 %s\n", dir, (unsigned)(st.st_mode & 07777), dir, dir);
    cs->warnings++;
}

/* A mail log every user can read gives away senders, recipients, client
 * addresses and SASL user names (doc/SECURITY.md, "Mail log"). */
static void check_maillog(struct check_state *cs)
{
    const char *path = cfg_str(P_maillog_file);
    struct stat st;
    if (!*path || lstat(path, &st) < 0 || !(st.st_mode & S_IROTH))
        return;
    fprintf(cs->out, "tern: warning: maillog_file %s is readable by every user (mode %04o); "
            "fix: chmod %s %s (master also sets it when it opens the file)\n", path,
            (unsigned)(st.st_mode & 07777), cfg_str(P_maillog_file_permissions), path);
    cs->warnings++;
}

/* AUTH that smtpd could not start with (main.cf only: master.cf -o
 * settings may complete it per service). */
static void check_sasl(struct check_state *cs)
{
    if (!cfg_bool(P_smtpd_sasl_auth_enable))
        return;
    const char *type = cfg_str(P_smtpd_sasl_type);
    if (strcmp(type, "tern") != 0 && strcmp(type, "dovecot") != 0) {
        fprintf(cs->out, "tern: warning: smtpd_sasl_type = %s: expected tern or dovecot; smtpd "
                "will not start\n", type);
        cs->warnings++;
    } else if (strcmp(type, "tern") == 0 && !*cfg_str(P_smtpd_sasl_password_maps)) {
        fprintf(cs->out, "tern: warning: smtpd_sasl_auth_enable = yes with smtpd_sasl_type = "
                "tern needs smtpd_sasl_password_maps (user -> crypt(3) hash); smtpd will not "
                "start\n");
        cs->warnings++;
    }
}

/* syscall_filter = yes on a kernel that cannot filter: smtpd, smtp and
 * cleanup would stop at start-up rather than run unfiltered. */
static void check_syscall_filter(struct check_state *cs)
{
    if (!cfg_bool(P_syscall_filter))
        return;
    struct strbuf why = STRBUF_INIT(512);
    if (syscall_filter_supported(&why) < 0) {
        fprintf(cs->out, "tern: warning: syscall_filter = yes, but %s; smtpd, smtp and cleanup "
                "will not start (set syscall_filter = no to run them without a filter)\n",
                sb_str(&why));
        cs->warnings++;
    }
    sb_free(&why);
}

/* ---- proxy: tables ---- */

struct proxy_check {
    struct check_state *cs;
    struct proxy_allowed *allowed;
    char **seen;            /* tables already reported, or found allowed */
    size_t nseen;
};

/* Every proxy:TYPE:NAME word in the value of a parameter set in main.cf
 * must be allowed by proxy_read_maps: proxymap refuses the others, and
 * their lookups fail (the mail they decide waits). */
static void check_proxy_param(const char *name, const char *raw, void *ctx)
{
    struct proxy_check *pc = ctx;
    const char *value = strcmp(name, "proxy_read_maps") == 0 ? NULL : cfg_get(name);
    if (!value || !strstr(value, "proxy:"))
        return;
    size_t n;
    char **words = cfg_list_split(value, &n);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(words[i], "proxy:", 6) != 0)
            continue;
        bool seen = false;
        for (size_t j = 0; j < pc->nseen && !seen; j++)
            seen = strcmp(pc->seen[j], words[i]) == 0;
        if (seen)
            continue;
        pc->seen = xrealloc(pc->seen, (pc->nseen + 1) * sizeof(char *));
        pc->seen[pc->nseen++] = xstrdup(words[i]);
        if (proxy_allowed_has(pc->allowed, words[i] + 6))
            continue;
        fprintf(pc->cs->out, "tern: warning: %s/main.cf: %s names %s, which proxy_read_maps "
                "does not list: the proxymap service will refuse it and its lookups will fail "
                "(add %s to proxy_read_maps)\n", cfg_confdir(), name, words[i], words[i]);
        pc->cs->warnings++;
    }
    cfg_list_free(words, n);
}

/* Whether master.cf runs the proxymap service (unreadable: say nothing,
 * check_services reports it). */
static bool proxymap_in_master_cf(void)
{
    struct strbuf path = STRBUF_INIT(4096), err = STRBUF_INIT(4096);
    struct master_service *svcs;
    size_t n;
    bool found = true;
    sb_appendf(&path, "%s/master.cf", cfg_confdir());
    if (mastercf_load(path.data, (int)cfg_int(P_default_process_limit), &svcs, &n, &err) == 0) {
        found = false;
        for (size_t i = 0; i < n && !found; i++)
            found = svcs[i].kind == SVC_UNIX && svcs[i].private_
                    && strcmp(svcs[i].name, "proxymap") == 0
                    && strcmp(svcs[i].command, "proxymap") == 0;
        mastercf_free(svcs, n);
    }
    sb_free(&path);
    sb_free(&err);
    return found;
}

static void check_proxy_tables(struct check_state *cs)
{
    struct proxy_check pc = { cs, proxy_allowed_open(cfg_str(P_proxy_read_maps)), NULL, 0 };
    cfg_each_set(check_proxy_param, &pc);
    if (pc.nseen > 0 && !proxymap_in_master_cf()) {
        fprintf(cs->out, "tern: warning: %s/main.cf names %s, but %s/master.cf has no proxymap "
                "service: the lookups of proxy: tables will fail (add \"proxymap unix - - n - - "
                "proxymap\")\n", cfg_confdir(), pc.seen[0], cfg_confdir());
        cs->warnings++;
    }
    for (size_t i = 0; i < pc.nseen; i++)
        free(pc.seen[i]);
    free(pc.seen);
    proxy_allowed_free(pc.allowed);
}

int tern_check_config(FILE *out, bool check_queue_dirs, int *warnings)
{
    struct check_state cs = { out, 0, 0 };
    check_parameters(&cs);
    if (cs.errors == 0) {
        check_sasl(&cs);
        check_syscall_filter(&cs);
    }
    check_lists(&cs);
    check_proxy_tables(&cs);
    check_domain_overlap(&cs);
    check_virtual(&cs);
    check_milters(&cs);
    check_services(&cs);
    check_spool(&cs);
    check_maillog(&cs);
    tern_check_certificates(cs.out, strict_names, &cs.errors, &cs.warnings);
    if (check_queue_dirs && geteuid() == 0) {
        check_queue(&cs);
        check_setgid_programs(&cs);
    }
    if (warnings)
        *warnings = cs.warnings;
    return cs.errors;
}

int tern_cmd_check(int argc, char **argv)
{
    static const char usage[] =
        "usage: tern [-c CONFDIR] check\n  report configuration errors, unknown "
        "parameters, missing daemons and (as root) queue ownership and permission\n"
        "  problems, each with its fix; exit 1 on errors, 0 with only warnings.\n"
        "  Entries of mydestination, relay_domains, virtual_alias_domains, mynetworks\n"
        "  and smtpd_client_event_limit_exceptions that cannot be used (a bad name or\n"
        "  network, a file or table that cannot be opened) are errors, and so is an\n"
        "  unknown parameter within two edits of a known name (a likely misspelling).\n"
        "  A proxy: table that proxy_read_maps does not list, or without a proxymap\n"
        "  service in master.cf, is a warning: its lookups would fail. A configured\n"
        "  certificate that expires within 30 days is a warning, an expired one an error\n";
    tern_no_arguments(argc, argv, usage, "");
    tern_load_config();
    int warnings;
    strict_names = true;
    int errors = tern_check_config(stdout, true, &warnings);
    if (errors) {
        printf("tern: %d error(s), %d warning(s)\n", errors, warnings);
        return 1;
    }
    if (warnings)
        printf("tern: %d warning(s)\n", warnings);
    return 0;
}
