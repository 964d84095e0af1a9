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
#include "util.h"

#define FORWARD_PATHS_MAX 16
#define FORWARD_EXPAND_DEPTH 4

/* Characters of an address that may reach a file name; '/' never does, so
 * "$home/.forward+$extension" cannot leave the home directory. */
static void append_filtered(struct strbuf *out, const char *v)
{
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        bool ok = isalnum(c) || strchr("!@%-_=+:,.", c);
        sb_appendc(out, ok && c != 0 ? c : '_');
    }
}

static const char *forward_var(const char *name, size_t len, const struct local_delivery *d,
                               const struct local_user *user, bool *trusted)
{
    *trusted = false;
#define IS(s) (len == sizeof(s) - 1 && memcmp(name, s, len) == 0)
    if (IS("home")) {
        *trusted = true;
        return user->home;
    }
    if (IS("user")) {
        *trusted = true;
        return user->name;
    }
    if (IS("shell")) {
        *trusted = true;
        return user->shell;
    }
    if (IS("local"))
        return d->local;
    if (IS("extension"))
        return d->extension;
    if (IS("domain"))
        return d->domain;
    if (IS("recipient"))
        return d->address;
    if (IS("recipient_delimiter"))
        return local_cfg.recipient_delimiter;
#undef IS
    return NULL;
}

static int expand_into(const char *p, const struct local_delivery *d, const struct local_user *user,
                       struct strbuf *out, int depth)
{
    if (depth > FORWARD_EXPAND_DEPTH)
        return -1;
    while (*p) {
        if (*p != '$') {
            sb_appendc(out, *p++);
            continue;
        }
        p++;
        const char *name = p, *end = NULL, *text = NULL;
        char op = 0;
        size_t len;
        if (*p == '{') {
            name = p + 1;
            end = strchr(name, '}');
            if (!end)
                return -1;
            len = strcspn(name, "?:}");
            if (name + len < end) {
                op = name[len];
                text = name + len + 1;
            }
            p = end + 1;
        } else {
            len = 0;
            while (isalnum((unsigned char)p[len]) || p[len] == '_')
                len++;
            p += len;
        }
        bool trusted;
        const char *v = forward_var(name, len, d, user, &trusted);
        if (!v)
            return -1;
        if (op) {
            if ((op == '?') == (*v != 0)) {
                char *t = xstrndup(text, (size_t)(end - text));
                int rc = expand_into(t, d, user, out, depth + 1);
                free(t);
                if (rc < 0)
                    return -1;
            }
        } else if (trusted) {
            sb_appends(out, v);
        } else {
            append_filtered(out, v);
        }
    }
    return 0;
}

int local_forward_expand(const char *pattern, const struct local_delivery *d,
                         const struct local_user *user, struct strbuf *out)
{
    sb_reset(out);
    if (expand_into(pattern, d, user, out, 0) < 0)
        return -1;
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
                             struct local_result *res)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        local_result_set(res, 4, "4.3.0", "cannot open forward file %s: %s", path, strerror(errno));
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
            local_result_set(res, 4, "4.3.5", "forward file %s is larger than %d bytes", path,
                       LOCAL_FILE_MAX);
            return -1;
        }
    }
    int err = errno;
    close(fd);
    if (n < 0) {
        local_result_set(res, 4, "4.3.0", "cannot read forward file %s: %s", path, strerror(err));
        return -1;
    }
    return 1;
}

static void forward_child(void *ctx, struct local_result *res, struct dest_list *dests)
{
    const struct forward_job *job = ctx;
    struct strbuf text = STRBUF_INIT(LOCAL_FILE_MAX), err = STRBUF_INIT(1024);
    local_result_set(res, 2, "2.0.0", "no forward file");
    for (size_t i = 0; i < job->npaths; i++) {
        sb_reset(&text);
        int rc = forward_open_read(job->paths[i], job->uid, &text, res);
        if (rc < 0)
            break;
        if (rc == 0)
            continue;
        if (local_expand_parse(sb_str(&text), text.len, LOCAL_PARSE_FILE, dests, &err) < 0) {
            local_dest_list_free(dests);
            local_result_set(res, 4, "4.3.5", "bad forward file %s: %s", job->paths[i], sb_str(&err));
        } else {
            local_result_set(res, 2, "2.0.0", "forward file %s", job->paths[i]);
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
                       struct dest_list *dests, struct local_result *res)
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
