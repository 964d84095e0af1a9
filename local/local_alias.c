/* local_alias.c: alias_maps lookups, the identity that commands and files
 * named by an alias run as (the owner of the alias database, or
 * default_privs when root owns it), and :include: files, which a child
 * reads with the privileges of whoever named them. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "local.h"
#include "log.h"
#include "maps.h"
#include "util.h"

struct local_aliases {
    struct maplist *maps;
    uid_t *owners;               /* owner of each table's file; 0 for root or none */
    char *error;                 /* why the tables could not be opened */
};

/* The file a table's data lives in: NAME.db for compiled tables. */
static uid_t map_file_owner(const char *spec)
{
    const char *colon = strchr(spec, ':');
    if (!colon || strncmp(spec, "inline:", 7) == 0)
        return 0;
    struct strbuf path = STRBUF_INIT(4096);
    bool compiled = strncmp(spec, "hash:", 5) == 0 || strncmp(spec, "btree:", 6) == 0;
    sb_appendf(&path, "%s%s", colon + 1, compiled ? ".db" : "");
    struct stat st;
    uid_t owner = stat(sb_str(&path), &st) == 0 ? st.st_uid : 0;
    sb_free(&path);
    return owner;
}

/* Tables are opened per delivery request, so a rebuilt alias database is
 * seen at once; an unusable table defers instead of skipping aliases. */
struct local_aliases *local_aliases_open(void)
{
    struct local_aliases *a = xcalloc(1, sizeof(*a));
    struct strbuf err = STRBUF_INIT(4096);
    a->maps = maplist_open(local_cfg.alias_maps, &err);
    if (!a->maps) {
        msg_warn("alias_maps: %s", sb_str(&err));
        a->error = xstrdup(sb_str(&err));
        str_sanitize(a->error);
    } else {
        size_t n = maplist_size(a->maps);
        a->owners = xcalloc(n ? n : 1, sizeof(*a->owners));
        for (size_t i = 0; i < n; i++)
            a->owners[i] = map_file_owner(map_spec(maplist_map(a->maps, i)));
    }
    sb_free(&err);
    return a;
}

void local_aliases_close(struct local_aliases *a)
{
    if (a) {
        maplist_close(a->maps);
        FREE_ALL(a->owners, a->error);
    }
    free(a);
}

int local_default_privs(struct local_user *u, struct delivery_status *res)
{
    if (local_user_by_name(local_cfg.default_privs, u) < 0) {
        delivery_status_set(res, 4, "4.3.5", "default_privs account \"%s\" does not exist",
                            local_cfg.default_privs);
        return -1;
    }
    if (u->uid == 0) {
        local_user_free(u);
        delivery_status_set(res, 4, "4.3.5", "default_privs account \"%s\" is privileged",
                            local_cfg.default_privs);
        return -1;
    }
    return 0;
}

/* Commands and files of a table owned by an ordinary user run as that user. */
static int owner_identity(uid_t owner, struct local_user *u, struct delivery_status *res)
{
    if (owner != 0 && local_user_by_uid(owner, u) == 0)
        return 0;
    return local_default_privs(u, res);
}

int local_alias_lookup(struct local_aliases *a, const char *name, struct strbuf *value,
                       struct local_user *owner, struct delivery_status *res)
{
    if (a->error) {
        delivery_status_set(res, 4, "4.3.0", "alias database unavailable: %s", a->error);
        return -1;
    }
    size_t i;
    int rc = maplist_lookup_which(a->maps, name, value, &i);
    if (rc < 0) {
        delivery_status_set(res, 4, "4.3.0", "alias database %s: lookup error",
                            map_spec(maplist_map(a->maps, i)));
        return -1;
    }
    if (rc == 1)
        return owner_identity(a->owners[i], owner, res) < 0 ? -1 : 1;
    return 0;
}

/* ---- :include: ---- */

struct include_job {
    const char *path;
};

static void include_child(void *ctx, struct delivery_status *res, struct dest_list *dests)
{
    const struct include_job *job = ctx;
    struct strbuf text = STRBUF_INIT(LOCAL_FILE_MAX), err = STRBUF_INIT(1024);
    int fd = open(job->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    char buf[8192];
    ssize_t n = 0;
    if (fd < 0) {
        int status = errno == ENOENT ? 5 : 4;
        delivery_status_set(res, status, status == 5 ? "5.3.0" : "4.3.0",
                            "cannot open include file %s: %s",
                            job->path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        delivery_status_set(res, 4, "4.3.0", "cannot open include file %s: %s", job->path,
                            strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & S_IWOTH)) {
        delivery_status_set(res, 5, "5.3.0", "include file %s is %s", job->path,
                            !S_ISREG(st.st_mode) ? "not a regular file" : "writable by others");
        goto out;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0 && sb_append(&text, buf, (size_t)n) == 0)
        ;
    if (n != 0) {
        delivery_status_set(res, 4, "4.3.5", "cannot read include file %s: %s", job->path,
                            n < 0 ? strerror(errno) : "file too large");
        goto out;
    }
    if (local_expand_parse(sb_str(&text), text.len, LOCAL_PARSE_FILE, dests, &err) < 0) {
        local_dest_list_free(dests);
        delivery_status_set(res, 4, "4.3.5", "bad include file %s: %s", job->path, sb_str(&err));
        goto out;
    }
    delivery_status_set(res, 2, "2.0.0", "include file %s", job->path);
    res->aux = (long long)st.st_uid;   /* the owner of exactly what was read */
out:
    if (fd >= 0)
        close(fd);
    sb_free(&text);
    sb_free(&err);
}

int local_include_read(const struct local_message *msg, const char *path,
                       const struct local_user *as, struct dest_list *dests,
                       struct local_user *owner, struct delivery_status *res)
{
    struct include_job job = { .path = path };
    local_child_run(msg, as, 60, include_child, &job, res, dests);
    if (res->status != 2)
        return -1;
    /* Destinations in a file owned by an ordinary user act with that
     * user's privileges; a root-owned file keeps those of who named it. */
    if (res->aux > 0 && local_user_by_uid((uid_t)res->aux, owner) == 0)
        return 0;
    local_user_copy(owner, as);
    return 0;
}
