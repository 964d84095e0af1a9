/* local_child.c: every mailbox, file, .forward and :include: access runs in
 * a child process that first takes the identity it is done for, so that
 * the root parent never opens a user's file or parses its contents. The
 * child reports its result (and any destinations it read) through a pipe
 * as one attribute frame, which the parent reads strictly. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attr.h"
#include "local.h"
#include "log.h"
#include "pipe_command.h"
#include "server.h"
#include "util.h"

#define CHILD_FRAME_LIMIT (LOCAL_DEST_MAX * (LOCAL_ITEM_MAX + 64) + 4096)

/* ---- identities ---- */

/* u from a password entry: 0, or -1 with u empty when there is none. */
static int user_from_passwd(const struct passwd *pw, struct local_user *u)
{
    memset(u, 0, sizeof(*u));
    if (!pw)
        return -1;
    u->name = xstrdup(pw->pw_name);
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    u->home = xstrdup(pw->pw_dir ? pw->pw_dir : "/");
    u->shell = xstrdup(pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh");
    return 0;
}

int local_user_by_name(const char *name, struct local_user *u)
{
    return user_from_passwd(getpwnam(name), u);
}

int local_user_by_uid(uid_t uid, struct local_user *u)
{
    return user_from_passwd(getpwuid(uid), u);
}

void local_user_copy(struct local_user *dst, const struct local_user *src)
{
    dst->name = xstrdup(src->name);
    dst->uid = src->uid;
    dst->gid = src->gid;
    dst->home = xstrdup(src->home);
    dst->shell = xstrdup(src->shell);
}

void local_user_free(struct local_user *u)
{
    free(u->name);
    free(u->home);
    free(u->shell);
    memset(u, 0, sizeof(*u));
}

void local_become_user(const struct local_user *u)
{
    pipe_command_become(u->name, u->uid, u->gid, true);
}

/* ---- the child's side ---- */

static void __attribute__((noreturn)) child_report(int fd, const struct delivery_status *res,
                                                   const struct dest_list *dests)
{
    struct strbuf out = STRBUF_INIT(CHILD_FRAME_LIMIT);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_int(&w, "status", res->status);
    attr_put_str(&w, "dsn", res->dsn);
    attr_put_str(&w, "reason", res->reason);
    attr_put_int(&w, "aux", res->aux);
    attr_put_int(&w, "ndest", (long long)dests->n);
    for (size_t i = 0; i < dests->n; i++) {
        attr_put_int(&w, "kind", dests->items[i].kind);
        attr_put_int(&w, "direct", dests->items[i].direct);
        attr_put_str(&w, "value", dests->items[i].value);
    }
    int rc = attr_end(&w) == 0 ? attr_write(fd, &out, 60) : -1;
    _exit(rc == 0 ? 0 : 1);
}

static int child_client_fd = -1;

void local_child_set_client(int fd)
{
    child_client_fd = fd;
}

/* A child needs the queue file's content and its own report pipe, nothing
 * of master's (status pipe, listen socket) nor the connection to qmgr. */
static void close_inherited(const struct local_message *msg, int keep_fd)
{
    const int fds[] = { MASTER_STATUS_FD, MASTER_ALIVE_FD, MASTER_LISTEN_FD, child_client_fd,
                        msg ? msg->mark_fd : -1 };
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] > 2 && fds[i] != keep_fd && (!msg || fds[i] != msg->fd))
            close(fds[i]);
}

void local_child_setup(const struct local_message *msg, const struct local_user *as, int keep_fd)
{
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    close_inherited(msg, keep_fd);
    if (as)
        local_become_user(as);
}

struct child_job {
    const struct local_message *msg;
    const struct local_user *as;
    local_child_fn fn;
    void *ctx;
};

static void __attribute__((noreturn)) child_main(void *ctx, int fd)
{
    const struct child_job *job = ctx;
    struct delivery_status res;
    struct dest_list dests = { 0 };
    local_child_setup(job->msg, job->as, fd);
    delivery_status_set(&res, 4, "4.3.0", "delivery process reported nothing");
    job->fn(job->ctx, &res, &dests);
    child_report(fd, &res, &dests);
}

/* ---- the parent's side ---- */

static int decode_report(const struct strbuf *in, struct delivery_status *res,
                         struct dest_list *dests)
{
    struct attr_reader r;
    long long status, ndest, aux;
    const char *dsn, *reason;
    if (attr_reader_init(&r, in->data, in->len) < 0
        || attr_get_int(&r, "status", 2, 5, &status) < 0 || status == 3
        || attr_get_str(&r, "dsn", &dsn) < 0 || attr_get_str(&r, "reason", &reason) < 0
        || strlen(dsn) >= sizeof(res->dsn) || dsn[0] != (char)('0' + status)
        || attr_get_int(&r, "aux", -1, 0xffffffffLL, &aux) < 0
        || attr_get_int(&r, "ndest", 0, LOCAL_DEST_MAX, &ndest) < 0)
        return -1;
    for (long long i = 0; i < ndest; i++) {
        long long kind, direct;
        const char *value;
        if (attr_get_int(&r, "kind", DEST_ADDRESS, DEST_INCLUDE, &kind) < 0
            || attr_get_int(&r, "direct", 0, 1, &direct) < 0
            || attr_get_str(&r, "value", &value) < 0 || strlen(value) > LOCAL_ITEM_MAX)
            return -1;
        if (dests)
            local_dest_list_add(dests, (enum local_dest_kind)kind, value, direct != 0);
    }
    if (attr_reader_done(&r) < 0)
        return -1;
    delivery_status_set(res, (int)status, dsn, "%s", reason);
    res->aux = aux;
    return 0;
}

void local_child_run(const struct local_message *msg, const struct local_user *as, int timeout,
                     local_child_fn fn, void *ctx, struct delivery_status *res,
                     struct dest_list *dests)
{
    struct child_job job = { msg, as, fn, ctx };
    struct strbuf in = STRBUF_INIT(0);
    char why[DELIVERY_REASON_MAX];
    int wstatus;
    if (pipe_command_child(child_main, &job, CHILD_FRAME_LIMIT, timeout, &in, &wstatus, why,
                           sizeof(why)) < 0) {
        delivery_status_set(res, 4, "4.3.0", "%s", why);
    } else if (decode_report(&in, res, dests) < 0) {
        delivery_status_set(res, 4, "4.3.0", "malformed result from the delivery process");
        if (dests)
            local_dest_list_free(dests);
    }
    sb_free(&in);
}
