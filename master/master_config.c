/* master_config.c: what master takes from its configuration: the main.cf
 * settings it needs (copied, so a failed reload leaves them intact), the
 * import_environment list for the daemons, and the service table from
 * master.cf with the checks that make a bad table fail before anything runs. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "queue.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

#define MASTER_ENV_MAX 64   /* import_environment entries kept */

/* import_environment: "NAME" passes master's own value (when set),
 * "NAME=value" sets one. */
static void load_environment(struct master_params *p)
{
    size_t n;
    char **words = cfg_list_split(cfg_str(P_import_environment), &n);
    p->env = xcalloc(MASTER_ENV_MAX + 1, sizeof(char *));
    for (size_t i = 0; i < n && p->nenv < MASTER_ENV_MAX; i++) {
        const char *w = words[i];
        if (strchr(w, '=')) {
            if (w[0] != '=')
                p->env[p->nenv++] = xstrdup(w);
            continue;
        }
        const char *value = getenv(w);
        if (!value)
            continue;
        struct strbuf sb = STRBUF_INIT(0);
        sb_appendf(&sb, "%s=%s", w, value);
        p->env[p->nenv++] = xstrdup(sb_str(&sb));
        sb_free(&sb);
    }
    cfg_list_free(words, n);
}

/* As root: the accounts the queue and the daemons belong to. */
static int load_accounts(struct master_params *p, struct strbuf *err)
{
    p->root = geteuid() == 0;
    if (!p->root) {
        /* Development mode: everything belongs to whoever runs master. */
        p->owner_uid = geteuid();
        p->owner_gid = p->setgid_gid = getegid();
        return 0;
    }
    if (user_ids(p->mail_owner, &p->owner_uid, &p->owner_gid) < 0) {
        sb_appendf(err, "mail_owner account \"%s\" does not exist; run `tern setup` to create it",
                   p->mail_owner);
        return -1;
    }
    if (p->owner_uid == 0 || p->owner_gid == 0) {
        sb_appendf(err, "mail_owner \"%s\" has uid or gid 0; it must be an unprivileged "
                   "account of its own (see `tern setup`)", p->mail_owner);
        return -1;
    }
    struct group *gr = getgrnam(p->setgid_group);
    if (!gr) {
        sb_appendf(err, "setgid_group \"%s\" does not exist; run `tern setup` to create it",
                   p->setgid_group);
        return -1;
    }
    p->setgid_gid = gr->gr_gid;
    return 0;
}

static int absolute_path(const char *name, const char *value, struct strbuf *err)
{
    if (value[0] == '/')
        return 0;
    sb_appendf(err, "%s/main.cf: %s = %s: must be an absolute path", cfg_confdir(), name, value);
    return -1;
}

/* Copy the settings master uses from the configuration just loaded. */
int master_load_params(struct master_params *p, struct strbuf *err)
{
    memset(p, 0, sizeof(*p));
    if (cfg_validate(err) > 0) {
        while (err->len && err->data[err->len - 1] == '\n')
            sb_truncate(err, err->len - 1);
        return -1;
    }
    p->queue_dir = xstrdup(cfg_str(P_queue_directory));
    p->daemon_dir = xstrdup(cfg_str(P_daemon_directory));
    p->data_dir = xstrdup(cfg_str(P_data_directory));
    p->mail_owner = xstrdup(cfg_str(P_mail_owner));
    p->setgid_group = xstrdup(cfg_str(P_setgid_group));
    p->throttle_time = cfg_time(P_service_throttle_time);
    if (p->throttle_time < 1)
        p->throttle_time = 1;
    load_environment(p);
    if (absolute_path("queue_directory", p->queue_dir, err) < 0
        || absolute_path("daemon_directory", p->daemon_dir, err) < 0
        || absolute_path("data_directory", p->data_dir, err) < 0
        || load_accounts(p, err) < 0) {
        master_free_params(p);
        return -1;
    }
    return 0;
}

void master_free_params(struct master_params *p)
{
    FREE_ALL(p->queue_dir, p->daemon_dir, p->data_dir, p->mail_owner, p->setgid_group);
    str_array_free(p->env, p->nenv);
    memset(p, 0, sizeof(*p));
}

/* What a service listens on; a reload keeps a listener whose id is unchanged. */
static char *listen_id(const struct master_params *p, const struct master_service *cfg)
{
    struct strbuf sb = STRBUF_INIT(0);
    char host[256], port[16];
    if (cfg->kind == SVC_INET && mastercf_inet_split(cfg->name, host, sizeof(host), port,
                                                     sizeof(port)) == 0 && !*host)
        /* the addresses come from main.cf: a change there is a new listener */
        sb_appendf(&sb, "inet:%s interfaces=%s protocols=%s", cfg->name,
                   cfg_str(P_inet_interfaces), cfg_str(P_inet_protocols));
    else if (cfg->kind == SVC_INET)
        sb_appendf(&sb, "inet:%s", cfg->name);
    else
        sb_appendf(&sb, "%s:%s/%s/%s", mastercf_kind_name(cfg->kind), p->queue_dir,
                   cfg->private_ ? QDIR_PRIVATE : QDIR_PUBLIC, cfg->name);
    char *id = xstrdup(sb_str(&sb));
    sb_free(&sb);
    return id;
}

int master_load_services(const struct master_params *p, struct service **out, size_t *n,
                         struct strbuf *err)
{
    struct strbuf path = STRBUF_INIT(0);
    sb_appendf(&path, "%s/master.cf", ms.confdir);
    struct master_service *cfgs;
    size_t count;
    int rc = mastercf_load(path.data, (int)cfg_int(P_default_process_limit), &cfgs, &count, err);
    sb_free(&path);
    if (rc < 0)
        return -1;
    struct service *svcs = xcalloc(count ? count : 1, sizeof(*svcs));
    for (size_t i = 0; i < count; i++) {
        svcs[i].cfg = cfgs[i];   /* the strings now belong to svcs */
        struct strbuf key = STRBUF_INIT(0);
        sb_appendf(&key, "%s/%s", cfgs[i].name, mastercf_kind_name(cfgs[i].kind));
        svcs[i].key = xstrdup(sb_str(&key));
        sb_free(&key);
        svcs[i].listen_id = listen_id(p, &cfgs[i]);
    }
    free(cfgs);
    *out = svcs;
    *n = count;
    return 0;
}

void master_free_services(struct service *svcs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct master_service *c = &svcs[i].cfg;
        free(c->name);
        free(c->command);
        for (int j = 0; j < c->argc; j++)
            free(c->args[j]);
        free(c->args);
        free(svcs[i].key);
        free(svcs[i].listen_id);
    }
    free(svcs);
}

/* One service: its program must be there, its address must make sense. */
static int check_service(const struct master_params *p, const struct service *svc,
                         struct strbuf *err)
{
    const struct master_service *c = &svc->cfg;
    struct strbuf prog = STRBUF_INIT(0);
    sb_appendf(&prog, "%s/%s", p->daemon_dir, c->command);
    int problems = 0;
    if (access(prog.data, X_OK) < 0) {
        sb_appendf(err, "master.cf:%d: service %s: cannot run %s: %s (check daemon_directory)\n",
                   c->lineno, c->name, prog.data, strerror(errno));
        problems++;
    }
    sb_free(&prog);
    char host[256], port[16];
    if (c->kind == SVC_INET
        && mastercf_inet_split(c->name, host, sizeof(host), port, sizeof(port)) < 0) {
        sb_appendf(err, "master.cf:%d: service %s: bad inet address: expected port, host:port "
                   "or [address]:port (the port a number or a name in /etc/services)\n",
                   c->lineno, c->name);
        problems++;
    }
    const char *path = strchr(svc->listen_id, ':') + 1;
    if (c->kind != SVC_INET && strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        sb_appendf(err, "master.cf:%d: service %s: socket path %s is too long\n",
                   c->lineno, c->name, path);
        problems++;
    }
    return problems;
}

/* Every problem of the table, one line each in err; returns how many. */
int master_check_services(const struct master_params *p, const struct service *svcs, size_t n,
                          struct strbuf *err)
{
    int problems = 0;
    for (size_t i = 0; i < n; i++)
        problems += check_service(p, &svcs[i], err);
    if (err->len && err->data[err->len - 1] == '\n')
        sb_truncate(err, err->len - 1);
    return problems;
}

static void warn_one_unknown(const char *name, const char *file, int line, void *ctx)
{
    if (cfg_is_per_transport(name))
        return;                     /* qmgr reads TRANSPORT_destination_*_limit */
    msg_warn("%s:%d: unknown parameter %s is ignored", file ? file : "main.cf", line, name);
}

void master_warn_unknown(void)
{
    cfg_unknown(warn_one_unknown, NULL);
}
