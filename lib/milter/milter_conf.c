/* milter_conf.c: reading smtpd_milters / non_smtpd_milters in Postfix's
 * syntax: a list of unix:path and inet:host:port endpoints, each optionally
 * written as "{ endpoint, name=value, ... }" with per-milter settings
 * (default_action, connect_timeout, command_timeout, content_timeout,
 * protocol), and the milter_*_macros lists shared by all filters. */
#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "chroot.h"
#include "config.h"
#include "log.h"
#include "milter.h"
#include "rewrite.h"
#include "util.h"

#define MILTERS_MAX 32

static const char *action_names[] = { "accept", "reject", "tempfail", "quarantine", "shutdown" };

int milter_action_parse(const char *s, enum milter_action *a)
{
    for (size_t i = 0; i < sizeof(action_names) / sizeof(*action_names); i++) {
        if (str_ieq(s, action_names[i])) {
            *a = (enum milter_action)i;
            return 0;
        }
    }
    return -1;
}

const char *milter_action_name(enum milter_action a)
{
    return action_names[a];
}

/* A Postfix time value: digits with an optional s/m/h/d/w unit. */
static int parse_time(const char *v, long *out)
{
    char num[32];
    size_t n = strlen(v);
    long mult = 1;
    if (n == 0 || n >= sizeof(num))
        return -1;
    memcpy(num, v, n + 1);
    switch (num[n - 1]) {
    case 's': num[--n] = 0; break;
    case 'm': mult = 60; num[--n] = 0; break;
    case 'h': mult = 3600; num[--n] = 0; break;
    case 'd': mult = 86400; num[--n] = 0; break;
    case 'w': mult = 604800; num[--n] = 0; break;
    default: break;
    }
    long t;
    if (parse_long(num, 0, 365L * 86400, &t) < 0 || t * mult > 365L * 86400)
        return -1;
    *out = t * mult;
    return 0;
}

static int parse_endpoint(struct milter_spec *sp, const char *ep, struct strbuf *err)
{
    memset(&sp->addr, 0, sizeof(sp->addr));
    if (strncmp(ep, "unix:", 5) == 0 || ep[0] == '/') {
        const char *path = ep[0] == '/' ? ep : ep + 5;
        char full[sizeof(((struct sockaddr_un *)0)->sun_path)];
        struct sockaddr_un *sun = (struct sockaddr_un *)&sp->addr;
        /* relative to queue_directory, which is "/" inside a chroot */
        const char *qdir = chroot_active() ? "" : cfg_str(P_queue_directory);
        int n = path[0] == '/' ? snprintf(full, sizeof(full), "%s", path)
            : snprintf(full, sizeof(full), "%s/%s", qdir, path);
        if (!*path || n < 0 || (size_t)n >= sizeof(full)) {
            sb_appendf(err, "milter %s: bad or too long socket path", ep);
            return -1;
        }
        sun->sun_family = AF_UNIX;
        str_copy(sun->sun_path, sizeof(sun->sun_path), full);
        sp->addrlen = sizeof(*sun);
        return 0;
    }
    if (strncmp(ep, "inet:", 5) != 0) {
        sb_appendf(err, "milter %s: expected unix:path or inet:host:port", ep);
        return -1;
    }
    const char *hp = ep + 5, *port;
    char host[256];
    if (hostport_split(hp, host, sizeof(host), &port) < 0)
        goto bad;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    if (!*port || getaddrinfo(*host ? host : "localhost", port, &hints, &res) != 0 || !res)
        goto bad;
    memcpy(&sp->addr, res->ai_addr, res->ai_addrlen);
    sp->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
bad:
    sb_appendf(err, "milter %s: cannot use host:port", ep);
    return -1;
}

/* One list word: "endpoint" or "{ endpoint, name=value ... }". */
static int parse_one(struct milter_spec *sp, const char *word, const struct milter_spec *defaults,
                     struct strbuf *err)
{
    *sp = *defaults;
    sp->endpoint = NULL;
    size_t len = strlen(word);
    if (word[0] != '{') {
        sp->endpoint = xstrdup(word);
        return parse_endpoint(sp, word, err);
    }
    if (len < 2 || word[len - 1] != '}') {
        sb_appendf(err, "milter %s: missing '}'", word);
        return -1;
    }
    char *inner = xstrndup(word + 1, len - 2);
    size_t n;
    char **parts = cfg_list_split(inner, &n);
    free(inner);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *eq = strchr(parts[i], '=');
        if (i == 0) {
            if (eq) {
                sb_appendf(err, "milter %s: the endpoint must come first", word);
                rc = -1;
            } else {
                sp->endpoint = xstrdup(parts[i]);
                rc = parse_endpoint(sp, parts[i], err);
            }
            continue;
        }
        if (!eq) {
            sb_appendf(err, "milter %s: expected name=value, not \"%s\"", word, parts[i]);
            rc = -1;
            continue;
        }
        *eq++ = 0;
        long t, v;
        if (strcmp(parts[i], "default_action") == 0)
            rc = milter_action_parse(eq, &sp->default_action);
        else if (strcmp(parts[i], "connect_timeout") == 0 && (rc = parse_time(eq, &t)) == 0)
            sp->connect_timeout = t;
        else if (strcmp(parts[i], "command_timeout") == 0 && (rc = parse_time(eq, &t)) == 0)
            sp->command_timeout = t;
        else if (strcmp(parts[i], "content_timeout") == 0 && (rc = parse_time(eq, &t)) == 0)
            sp->content_timeout = t;
        else if (strcmp(parts[i], "protocol") == 0 && (rc = parse_long(eq, 2, 6, &v)) == 0)
            sp->protocol = (int)v;
        else if (rc == 0)
            rc = -1;
        if (rc < 0)
            sb_appendf(err, "milter %s: bad setting %s=%s", word, parts[i], eq);
    }
    if (rc == 0 && !sp->endpoint) {
        sb_appendf(err, "milter %s: no endpoint", word);
        rc = -1;
    }
    cfg_list_free(parts, n);
    return rc;
}

static const enum param_id macro_params[MILTER_STAGE_COUNT + 1] = {
    [MILTER_STAGE_CONNECT] = P_milter_connect_macros,
    [MILTER_STAGE_HELO] = P_milter_helo_macros,
    [MILTER_STAGE_MAIL] = P_milter_mail_macros,
    [MILTER_STAGE_RCPT] = P_milter_rcpt_macros,
    [MILTER_STAGE_DATA] = P_milter_data_macros,
    [MILTER_STAGE_EOM] = P_milter_end_of_data_macros,
    [MILTER_STAGE_EOH] = P_milter_end_of_header_macros,
    [MILTER_MACRO_UNKNOWN] = P_milter_unknown_command_macros,
};

int milter_config_load(struct milter_config *mc, enum param_id which, struct strbuf *err)
{
    memset(mc, 0, sizeof(*mc));
    struct milter_spec defaults;
    memset(&defaults, 0, sizeof(defaults));
    long proto = cfg_int(P_milter_protocol);
    if (proto < 2 || proto > 6) {
        sb_appendf(err, "milter_protocol: %ld is not between 2 and 6", proto);
        return -1;
    }
    defaults.protocol = (int)proto;
    if (milter_action_parse(cfg_str(P_milter_default_action), &defaults.default_action) < 0) {
        sb_appendf(err, "milter_default_action: unknown action \"%s\"",
                   cfg_str(P_milter_default_action));
        return -1;
    }
    defaults.connect_timeout = cfg_time(P_milter_connect_timeout);
    defaults.command_timeout = cfg_time(P_milter_command_timeout);
    defaults.content_timeout = cfg_time(P_milter_content_timeout);
    size_t n;
    char **words = cfg_list_split(cfg_str(which), &n);
    if (n > MILTERS_MAX) {
        sb_appendf(err, "more than %d milters", MILTERS_MAX);
        cfg_list_free(words, n);
        return -1;
    }
    mc->specs = xcalloc(n ? n : 1, sizeof(*mc->specs));
    for (size_t i = 0; i < n; i++) {
        if (parse_one(&mc->specs[mc->n], words[i], &defaults, err) < 0) {
            free(mc->specs[mc->n].endpoint);
            cfg_list_free(words, n);
            milter_config_free(mc);
            return -1;
        }
        struct milter_spec *sp = &mc->specs[mc->n++];
        if (sp->connect_timeout < 1) sp->connect_timeout = 1;
        if (sp->command_timeout < 1) sp->command_timeout = 1;
        if (sp->content_timeout < 1) sp->content_timeout = 1;
    }
    cfg_list_free(words, n);
    for (int s = 0; s <= MILTER_MACRO_UNKNOWN; s++)
        mc->macros[s] = cfg_list_split(cfg_str(macro_params[s]), &mc->nmacros[s]);
    return 0;
}

bool milter_config_load_or_warn(struct milter_config *mc, enum param_id which,
                                const char *consequence)
{
    struct strbuf err = STRBUF_INIT(1024);
    bool ok = milter_config_load(mc, which, &err) == 0;
    if (!ok)
        msg_warn("%s: %s; %s", param_table()[which].name, sb_str(&err), consequence);
    sb_free(&err);
    return ok;
}

bool milter_config_load_receiver(struct milter_config *mc, enum param_id which,
                                 const char *consequence)
{
    if (rewrite_receive_overrides(cfg_str(P_receive_override_options)) & RECEIVE_NO_MILTERS) {
        memset(mc, 0, sizeof(*mc));
        return true;
    }
    return milter_config_load_or_warn(mc, which, consequence);
}

void milter_config_free(struct milter_config *mc)
{
    for (size_t i = 0; i < mc->n; i++)
        free(mc->specs[i].endpoint);
    free(mc->specs);
    for (int s = 0; s <= MILTER_MACRO_UNKNOWN; s++)
        if (mc->macros[s])
            cfg_list_free(mc->macros[s], mc->nmacros[s]);
    memset(mc, 0, sizeof(*mc));
}
