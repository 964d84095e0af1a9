/* local_forward.c: the recipient's .forward file (forward_path): found,
 * checked and parsed by a child running as the recipient, never by root.
 * A .forward counts only when it is a plain file owned by the recipient that
 * neither its group nor others may write; anything else is ignored with a
 * warning, and the mail goes to the mailbox. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "local.h"
#include "log.h"
#include "mac_expand.h"
#include "util.h"

#define FORWARD_PATHS_MAX 16
#define FORWARD_EXPAND_DEPTH 4

struct forward_vars {
    const struct local_delivery *d;
    const struct local_user *user;
};

static const char *forward_var(const char *name, size_t len, void *context)
{
    const struct forward_vars *v = context;
    const struct mac_var vars[] = {
        { "home", v->user->home }, { "user", v->user->name }, { "shell", v->user->shell },
        { "local", v->d->local }, { "extension", v->d->extension }, { "domain", v->d->domain },
        { "recipient", v->d->address }, { "recipient_delimiter", local_cfg.recipient_delimiter },
    };
    return mac_var_find(vars, sizeof(vars) / sizeof(vars[0]), name, len);
}

/* The values from the password file are trusted as they are; those from the
 * address keep only characters that may reach a file name, and '/' is not
 * one of them, so "$home/.forward+$extension" cannot leave the home
 * directory. */
static int forward_filter(struct strbuf *out, const char *name, size_t len, const char *value,
                          void *context)
{
    (void)context;
#define IS(s) (len == sizeof(s) - 1 && memcmp(name, s, len) == 0)
    if (IS("home") || IS("user") || IS("shell"))
        return sb_appends(out, value);
#undef IS
    for (; *value; value++) {
        unsigned char c = (unsigned char)*value;
        bool ok = isalnum(c) || strchr("!@%-_=+:,.", c);
        if (sb_appendc(out, ok ? c : '_') < 0)
            return -1;
    }
    return 0;
}

int local_forward_expand(const char *pattern, const struct local_delivery *d,
                         const struct local_user *user, struct strbuf *out)
{
    struct forward_vars v = { d, user };
    const struct mac_expand_spec spec = {
        .lookup = forward_var, .filter = forward_filter, .context = &v,
        .depth_max = FORWARD_EXPAND_DEPTH,
    };
    sb_reset(out);
    if (mac_expand(out, pattern, &spec) != MAC_EXP_OK)
        return -1;             /* bad syntax or an undefined name: no file name */
    return out->len > 0 ? 0 : -1;
}

/* ---- the child, as the recipient ---- */

struct forward_job {
    char *paths[FORWARD_PATHS_MAX];
    size_t npaths;
    uid_t uid;
};

/* 1 usable (contents in text), 0 absent or unsafe, -1 error (res set). */
static int forward_open_read(const char *path, uid_t uid, struct strbuf *text,
                             struct delivery_status *res)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        delivery_status_set(res, 4, "4.3.0", "cannot open forward file %s: %s", path,
                            strerror(errno));
        return -1;
    }
    struct stat st;
    const char *bad = fstat(fd, &st) < 0 ? strerror(errno)
                      : !S_ISREG(st.st_mode) ? "not a regular file"
                      : st.st_uid != uid ? "not owned by the recipient"
                      : (st.st_mode & (S_IWGRP | S_IWOTH)) ? "writable by group or others" : NULL;
    if (bad) {
        msg_warn("ignoring forward file %s: %s", path, bad);
        close(fd);
        return 0;
    }
    char buf[8192];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (sb_append(text, buf, (size_t)n) < 0) {
            close(fd);
            delivery_status_set(res, 4, "4.3.5", "forward file %s is larger than %d bytes", path,
                                LOCAL_FILE_MAX);
            return -1;
        }
    }
    int err = errno;
    close(fd);
    if (n < 0) {
        delivery_status_set(res, 4, "4.3.0", "cannot read forward file %s: %s", path,
                            strerror(err));
        return -1;
    }
    return 1;
}

static void forward_child(void *ctx, struct delivery_status *res, struct dest_list *dests)
{
    const struct forward_job *job = ctx;
    struct strbuf text = STRBUF_INIT(LOCAL_FILE_MAX), err = STRBUF_INIT(1024);
    delivery_status_set(res, 2, "2.0.0", "no forward file");
    for (size_t i = 0; i < job->npaths; i++) {
        sb_reset(&text);
        int rc = forward_open_read(job->paths[i], job->uid, &text, res);
        if (rc < 0)
            break;
        if (rc == 0)
            continue;
        if (local_expand_parse(sb_str(&text), text.len, LOCAL_PARSE_FILE, dests, &err) < 0) {
            local_dest_list_free(dests);
            delivery_status_set(res, 4, "4.3.5", "bad forward file %s: %s", job->paths[i],
                                sb_str(&err));
        } else {
            delivery_status_set(res, 2, "2.0.0", "forward file %s", job->paths[i]);
        }
        break;                  /* the first forward file found is the one */
    }
    sb_free(&text);
    sb_free(&err);
}

/* forward_path as written (its $home etc. mean nothing to main.cf). */
static const char *forward_path_raw(void)
{
    const char *raw = cfg_get_raw_set("forward_path");
    if (raw)
        return raw;
    const struct param_def *p = param_find("forward_path");
    return p ? p->default_value : "";
}

int local_forward_read(const struct local_delivery *d, const struct local_user *user,
                       struct dest_list *dests, struct delivery_status *res)
{
    struct forward_job job = { .npaths = 0, .uid = user->uid };
    size_t n;
    char **words = cfg_list_split(forward_path_raw(), &n);
    struct strbuf path = STRBUF_INIT(4096);
    for (size_t i = 0; i < n && job.npaths < FORWARD_PATHS_MAX; i++) {
        if (local_forward_expand(words[i], d, user, &path) < 0) {
            msg_warn("forward_path element \"%s\" does not expand to a file name; skipped", words[i]);
            continue;
        }
        bool repeated = false;   /* without an extension both defaults are one file */
        for (size_t k = 0; k < job.npaths; k++)
            repeated |= strcmp(job.paths[k], sb_str(&path)) == 0;
        if (sb_str(&path)[0] == '/' && !repeated)
            job.paths[job.npaths++] = xstrdup(sb_str(&path));
    }
    cfg_list_free(words, n);
    sb_free(&path);
    int rc = 0;
    if (job.npaths > 0) {
        local_child_run(d->msg, user, 60, forward_child, &job, res, dests);
        rc = res->status != 2 ? -1 : dests->n > 0 ? 1 : 0;
    }
    for (size_t i = 0; i < job.npaths; i++)
        free(job.paths[i]);
    return rc;
}
