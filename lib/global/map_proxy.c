/* map_proxy.c: the proxy: table type, proxy:TYPE:NAME, as Postfix's
 * proxy: client: the lookups of TYPE:NAME are asked of the proxymap
 * service (private/proxymap, proxymap/proxymap.c), which opens that table
 * once for all the processes of the instance and keeps its connection to
 * the database server; a process that would otherwise hold its own
 * PostgreSQL or LDAP connection holds one UNIX connection to proxymap.
 * Also the list of tables proxymap may open (proxy_read_maps).
 *
 * One connection per process, shared by all its proxy: tables, opened at
 * the first lookup and kept. A connection that breaks (proxymap restarted)
 * is opened again once and the question asked again. Anything else that
 * goes wrong (proxymap not running, no answer within
 * proxy_lookup_timeout, a malformed answer, a table proxymap may not open
 * or cannot open, its lookup failing) makes the lookup a temporary error
 * (-1), never "not found": the mail waits. Lookups block, as every
 * table's do. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "chroot.h"
#include "config.h"
#include "log.h"
#include "mail_owner.h"
#include "maps_impl.h"
#include "proxy_proto.h"
#include "queue.h"
#include "util.h"

static struct {
    int fd;                 /* -1: not connected */
    pid_t pid;              /* the process that connected (a child must not share it) */
    bool reused;            /* the connection has answered before */
} pc = { -1, 0, false };

static void pc_close(void)
{
    if (pc.fd >= 0)
        close(pc.fd);
    pc.fd = -1;
    pc.reused = false;
}

/* private/proxymap as this process reaches it: relative to "/" inside the
 * chroot (queue_directory), else by its full path, so that the tern
 * command reaches it from any working directory. */
static void pc_socket_path(struct strbuf *path)
{
    if (chroot_active())
        sb_appendf(path, "%s/%s", QDIR_PRIVATE, PROXY_SERVICE);
    else
        sb_appendf(path, "%s/%s/%s", cfg_str(P_queue_directory), QDIR_PRIVATE, PROXY_SERVICE);
}

static int pc_timeout(void)
{
    long t = cfg_time(P_proxy_lookup_timeout);
    return t < 1 ? 1 : t > 3600 ? 3600 : (int)t;
}

/* 0 connected (and greeted), or -1 with why. */
static int pc_connect(const char **why)
{
    struct strbuf path = STRBUF_INIT(4096);
    pc_socket_path(&path);
    int timeout = pc_timeout();
    pc.fd = mail_owner_connect(sb_str(&path), timeout);   /* local is root */
    sb_free(&path);
    if (pc.fd < 0) {
        *why = errno == ENOENT || errno == ECONNREFUSED
                   ? "the proxymap service is not running (is Tern started, with a proxymap "
                     "line in master.cf?)"
                   : strerror(errno);
        return -1;
    }
    pc.pid = getpid();
    pc.reused = false;
    if (attr_expect_protocol(pc.fd, PROXY_PROTOCOL, PROXY_FRAME_LIMIT, timeout) < 0) {
        *why = errno == ETIMEDOUT ? "no greeting from the proxymap service"
                                  : "the proxymap service does not speak its protocol";
        pc_close();
        return -1;
    }
    return 0;
}

/* One request and its reply frame on the open connection: 0, or -1 with
 * errno (ETIMEDOUT: no answer in time). */
static int pc_exchange(const struct strbuf *request, struct strbuf *reply)
{
    int timeout = pc_timeout();
    if (attr_write(pc.fd, request, timeout) < 0)
        return -1;
    return attr_read(pc.fd, reply, PROXY_FRAME_LIMIT, timeout);
}

static int proxy_lookup(struct map *m, const char *key, struct strbuf *result)
{
    struct strbuf request = STRBUF_INIT(PROXY_FRAME_LIMIT);
    struct strbuf reply = STRBUF_INIT(PROXY_FRAME_LIMIT + 4);
    struct proxy_request req = { m->name, key };
    const char *why = NULL;
    int rc = -1;
    if (proxy_encode_request(&request, &req) < 0) {
        msg_warn("%s: key \"%.100s...\" is longer than %d bytes: lookup failed", m->spec, key,
                 PROXY_KEY_MAX);
        goto done;
    }
    if (pc.fd >= 0 && pc.pid != getpid())
        pc_close();             /* inherited from the parent: its answers are not ours */
    for (int attempt = 0;; attempt++) {
        if (pc.fd < 0 && pc_connect(&why) < 0)
            goto failed;
        if (pc_exchange(&request, &reply) == 0)
            break;
        int saved = errno;
        bool retry = pc.reused && attempt == 0 && saved != ETIMEDOUT;
        pc_close();
        if (!retry) {
            why = saved == ETIMEDOUT ? "no answer from the proxymap service within "
                                       "proxy_lookup_timeout"
                                     : saved == EMSGSIZE ? "oversized answer"
                                     : "connection to the proxymap service lost";
            goto failed;
        }
        msg_info("%s: connection to the proxymap service lost; asking again", m->spec);
    }
    struct proxy_reply rep;
    if (proxy_decode_reply(reply.data, reply.len, &rep) < 0) {
        pc_close();
        why = "malformed answer from the proxymap service";
        goto failed;
    }
    pc.reused = true;
    switch (rep.status) {
    case PROXY_STAT_OK:
        rc = sb_appends(result, rep.value) < 0 ? -1 : 1;
        if (rc < 0)
            msg_warn("%s: the value of \"%.100s\" is too long: lookup failed", m->spec, key);
        goto done;
    case PROXY_STAT_NOKEY:
        rc = 0;
        goto done;
    case PROXY_STAT_DENY:
        msg_warn("%s: the proxymap service may not open table %s: add %s to proxy_read_maps "
                 "(in the main.cf proxymap reads) and run `tern reload`", m->spec, m->name,
                 m->spec);
        goto done;
    case PROXY_STAT_RETRY:
        why = "the table's lookup failed in the proxymap service (see its log lines)";
        goto failed;
    default:
        pc_close();
        why = "the proxymap service refused the request as malformed";
        goto failed;
    }
failed:
    msg_warn("%s: lookup of \"%.100s\" failed: %s", m->spec, key, why);
done:
    sb_free(&request);
    sb_free(&reply);
    return rc;
}

int map_proxy_open(struct map *m, struct strbuf *err)
{
    const char *colon = strchr(m->name, ':');
    if (strncmp(m->name, "proxy:", 6) == 0) {
        sb_appendf(err, "table \"%.100s\": a proxy: table cannot be proxied again", m->spec);
        return -1;
    }
    if (!colon || !proxy_table_ok(m->name)) {
        sb_appendf(err, "table \"%.100s\": expected proxy:TYPE:NAME", m->spec);
        return -1;
    }
    if (!map_type_known(m->name, (size_t)(colon - m->name))) {
        sb_appendf(err, "table \"%.100s\": unsupported table type \"%.*s\"", m->spec,
                   (int)(colon - m->name), m->name);
        return -1;
    }
    m->lookup = proxy_lookup;
    m->fold_case = false;       /* proxymap folds, as the table's type says */
    return 0;
}
/* ---- proxy_read_maps ---- */

struct proxy_allowed {
    char **tables;          /* TYPE:NAME, without "proxy:" */
    size_t n;
};

struct proxy_allowed *proxy_allowed_open(const char *value)
{
    size_t n;
    char **words = cfg_list_split(value, &n);
    struct proxy_allowed *a = xcalloc(1, sizeof(*a));
    a->tables = xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const char *table = words[i] + 6;
        if (strncmp(words[i], "proxy:", 6) != 0 || !proxy_table_ok(table)
            || strncmp(table, "proxy:", 6) == 0 || proxy_allowed_has(a, table))
            continue;
        a->tables[a->n++] = xstrdup(table);
    }
    cfg_list_free(words, n);
    return a;
}

bool proxy_allowed_has(const struct proxy_allowed *a, const char *table)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->tables[i], table) == 0)
            return true;
    return false;
}

size_t proxy_allowed_count(const struct proxy_allowed *a)
{
    return a->n;
}

void proxy_allowed_free(struct proxy_allowed *a)
{
    if (a)
        str_array_free(a->tables, a->n);
    free(a);
}
