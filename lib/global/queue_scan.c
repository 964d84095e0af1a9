/* queue_scan.c: reading the queue without changing it, for the
 * administrator's commands (tern queue, show, why, ...) and for showq,
 * which lists the queue to users who may not read it themselves: the
 * directories that hold messages, loading a message by ID, walking a
 * state in ID (arrival) order, the filters of mailq, and the delivery
 * logs defer/ID and bounce/ID. Paths are relative to queue_directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue_scan.h"
#include "strbuf.h"
#include "util.h"

#define LOG_LINE_MAX 65536

static const struct {
    const char *dir, *name;
    char mark;
} states[QS_COUNT] = {
    [QS_INCOMING] = { QDIR_INCOMING, "incoming", ' ' },
    [QS_ACTIVE] = { QDIR_ACTIVE, "active", '*' },
    [QS_DEFERRED] = { QDIR_DEFERRED, "deferred", ' ' },
    [QS_HOLD] = { QDIR_HOLD, "hold", '!' },
};

const char *queue_state_dir(enum queue_state s)
{
    return states[s].dir;
}

const char *queue_state_name(enum queue_state s)
{
    return states[s].name;
}

char queue_state_mark(enum queue_state s)
{
    return states[s].mark;
}

int queue_state_parse(const char *name)
{
    for (int s = 0; s < QS_COUNT; s++)
        if (strcmp(name, states[s].name) == 0)
            return s;
    return -1;
}

const struct option queue_filter_options[] = {
    { "sender", required_argument, NULL, 's' },
    { "recipient", required_argument, NULL, 'r' },
    { "domain", required_argument, NULL, 'd' },
    { "state", required_argument, NULL, 'q' },
    { "json", no_argument, NULL, 'j' },
    { NULL, 0, NULL, 0 },
};

bool queue_filter_active(const struct queue_filter *f)
{
    return f->sender || f->recipient || f->domain || f->state >= 0;
}

static bool domain_matches(const char *address, const char *domain)
{
    const char *at = strrchr(address, '@');
    return at && strcasecmp(at + 1, domain) == 0;
}

bool queue_filter_match(const struct queue_filter *f, const struct queued *q)
{
    if (f->state >= 0 && (int)q->state != f->state)
        return false;
    if (f->sender && strcasecmp(q->m.sender, f->sender) != 0
        && !(strcmp(f->sender, "<>") == 0 && !*q->m.sender))
        return false;
    if (!f->recipient && !f->domain)
        return true;
    /* a pending recipient must match every recipient condition */
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        const char *a = q->m.rcpts[i].address;
        if (q->m.rcpts[i].done)
            continue;
        if ((!f->recipient || strcasecmp(a, f->recipient) == 0)
            && (!f->domain || domain_matches(a, f->domain)))
            return true;
    }
    return false;
}

static int load(struct queued *q, const char *id, enum queue_state s, struct strbuf *err)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", states[s].dir, id);
    memset(q, 0, sizeof(*q));
    if (lstat(path, &st) < 0)
        return -1;
    str_copy(q->id, sizeof(q->id), id);
    q->state = s;
    q->mtime = st.st_mtime;
    sb_reset(err);
    if (qmessage_load(path, &q->m, err) < 0) {
        qmessage_free(&q->m);
        return errno == ENOENT ? -1 : -2;
    }
    return 0;
}

void queued_free(struct queued *q)
{
    qmessage_free(&q->m);
}

int queue_find(const char *id, struct queued *q, struct strbuf *err)
{
    if (!queue_id_valid(id)) {
        sb_set(err, "not a queue ID");
        errno = EINVAL;
        return -1;
    }
    /* In the order qmgr moves a message, so that one moving on while we
     * look is still found (a second look covers the rest). */
    static const enum queue_state order[] = { QS_INCOMING, QS_ACTIVE, QS_DEFERRED, QS_HOLD };
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof(order) / sizeof(*order); i++) {
            int rc = load(q, id, order[i], err);
            if (rc == 0)
                return 0;
            if (rc == -2) {
                errno = EIO;            /* there but unreadable: not "gone" */
                return -1;
            }
        }
    sb_set(err, "no such message in the queue");
    errno = ENOENT;
    return -1;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One state's messages in ID order; true when fn asked to stop. */
static bool walk_state(enum queue_state s, int (*fn)(struct queued *q, void *ctx), void *ctx,
                       struct strbuf *err)
{
    DIR *d = opendir(states[s].dir);
    if (!d)
        return false;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!queue_id_valid(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 1)          /* names is NULL for an empty directory */
        qsort(names, n, sizeof(*names), compare_names);
    bool stop = false;
    for (size_t i = 0; i < n; i++) {
        struct queued q;
        if (!stop && load(&q, names[i], s, err) == 0) {
            stop = fn(&q, ctx) != 0;
            queued_free(&q);
        }
        free(names[i]);
    }
    free(names);
    return stop;
}

void queue_walk(int (*fn)(struct queued *q, void *ctx), void *ctx)
{
    struct strbuf err = STRBUF_INIT(1024);
    for (int s = 0; s < QS_COUNT; s++)
        if (walk_state((enum queue_state)s, fn, ctx, &err))
            break;
    sb_free(&err);
}

void queue_walk_state(enum queue_state s, int (*fn)(struct queued *q, void *ctx), void *ctx)
{
    struct strbuf err = STRBUF_INIT(1024);
    walk_state(s, fn, ctx, &err);
    sb_free(&err);
}

/* ---- delivery logs ---- */

static void parse_log_line(char *line, struct queue_log_entry *e)
{
    memset(e, 0, sizeof(*e));
    e->recipient = e->status = e->relay = e->reason = "";
    for (char *field = line; field;) {
        char *tab = strchr(field, '\t');
        if (tab)
            *tab = 0;
        char *eq = strchr(field, '=');
        if (eq) {
            *eq = 0;
            const char *v = eq + 1;
            if (strcmp(field, "time") == 0)
                e->time = atoll(v);
            else if (strcmp(field, "recipient") == 0)
                e->recipient = v;
            else if (strcmp(field, "status") == 0)
                e->status = v;
            else if (strcmp(field, "relay") == 0)
                e->relay = v;
            else if (strcmp(field, "reason") == 0)
                e->reason = v;
        }
        field = tab ? tab + 1 : NULL;
    }
}

void queue_read_log(const char *dir, const char *id,
                    void (*fn)(const struct queue_log_entry *e, void *ctx), void *ctx)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, id);
    /* defer/ and bounce/ are mail_owner's: no link followed, no fifo
     * waited on, only a plain file read */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || set_nonblock(fd, false) < 0)) {
        close(fd);
        fd = -1;
    }
    FILE *fp = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!fp) {
        if (fd >= 0)
            close(fd);
        return;
    }
    char *line = xmalloc(LOG_LINE_MAX);
    while (fgets(line, LOG_LINE_MAX, fp)) {
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n')
            line[--len] = 0;
        else if (!feof(fp)) {      /* an over-long line: skip its rest */
            int c;
            while ((c = getc(fp)) != EOF && c != '\n')
                ;
        }
        struct queue_log_entry e;
        parse_log_line(line, &e);
        if (*e.recipient)
            fn(&e, ctx);
    }
    free(line);
    fclose(fp);
}
