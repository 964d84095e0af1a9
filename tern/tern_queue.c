/* tern_queue.c: the queue as the administrator's commands see it: the
 * directories that hold messages, loading a message by ID, the filters
 * of the command line, the delivery logs defer/ID and bounce/ID, JSON
 * strings, and the administration requests sent to qmgr over public/qmgr
 * (doc/PROTOCOLS.md). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "strbuf.h"
#include "tern.h"
#include "tern_queue.h"
#include "util.h"

#define QMGR_REPLY_LIMIT 1024
#define QMGR_TIMEOUT 10
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

/* ---- options and filters ---- */

int queue_options(int argc, char **argv, struct queue_filter *f, bool *json, int *first)
{
    static const struct option longopts[] = {
        { "sender", required_argument, NULL, 's' },
        { "recipient", required_argument, NULL, 'r' },
        { "domain", required_argument, NULL, 'd' },
        { "state", required_argument, NULL, 'q' },
        { "json", no_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 },
    };
    *f = (struct queue_filter){ .state = -1 };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+s:r:d:q:j", longopts, NULL)) != -1) {
        switch (c) {
        case 's': f->sender = optarg; break;
        case 'r': f->recipient = optarg; break;
        case 'd': f->domain = optarg; break;
        case 'q':
            f->state = queue_state_parse(optarg);
            if (f->state < 0) {
                fprintf(stderr, "tern %s: unknown state \"%s\" (incoming, active, deferred or hold)\n",
                        argv[0], optarg);
                return -1;
            }
            break;
        case 'j':
            if (!json)
                goto bad;
            *json = true;
            break;
        default:
        bad:
            fprintf(stderr, "tern %s: unknown option %s (see tern %s --help)\n", argv[0],
                    argv[optind - 1], argv[0]);
            return -1;
        }
    }
    *first = optind;
    return 0;
}

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

/* ---- the queue directories ---- */

void queue_enter(void)
{
    tern_load_config();
    /* what tern does to the queue is logged where the daemons log */
    log_configure(cfg_str(P_syslog_name), cfg_str(P_syslog_facility), cfg_str(P_maillog_file));
    const char *qdir = cfg_str(P_queue_directory);
    if (chdir(qdir) < 0) {
        fprintf(stderr, "tern: cannot enter the queue directory %s: %s\n", qdir, strerror(errno));
        exit(1);
    }
    for (int s = 0; s < QS_COUNT; s++)
        if (access(states[s].dir, R_OK | X_OK) < 0) {
            if (errno == EACCES)
                fprintf(stderr, "tern: %s/%s: permission denied: the queue is readable only "
                        "by root and %s\n", qdir, states[s].dir, cfg_str(P_mail_owner));
            else
                fprintf(stderr, "tern: %s/%s: %s (has Tern been started once?)\n", qdir,
                        states[s].dir, strerror(errno));
            exit(1);
        }
}

static int load(struct queued *q, const char *id, enum queue_state s, struct strbuf *err)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", states[s].dir, id);
    memset(q, 0, sizeof(*q));
    if (stat(path, &st) < 0)
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
            if (rc == -2)
                return -1;
        }
    sb_set(err, "no such message in the queue");
    return -1;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void queue_walk(int (*fn)(struct queued *q, void *ctx), void *ctx)
{
    struct strbuf err = STRBUF_INIT(1024);
    for (int s = 0; s < QS_COUNT; s++) {
        DIR *d = opendir(states[s].dir);
        if (!d)
            continue;
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
            if (!stop && load(&q, names[i], (enum queue_state)s, &err) == 0) {
                stop = fn(&q, ctx) != 0;
                queued_free(&q);
            }
            free(names[i]);
        }
        free(names);
        if (stop)
            break;
    }
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
    FILE *fp = fopen(path, "r");
    if (!fp)
        return;
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

/* ---- qmgr ---- */

bool queue_tern_running(void)
{
    return tern_master_pid() > 0;
}

static int qmgr_connect(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/qmgr", QDIR_PUBLIC);
    return unix_connect(path, QMGR_TIMEOUT);
}

int queue_ask_qmgr(const char *op, const char *id)
{
    int fd = -1;
    /* qmgr may be restarting: a few tries, a second apart */
    for (int i = 0; i < 5 && fd < 0; i++) {
        fd = qmgr_connect();
        if (fd < 0)
            sleep(1);
    }
    if (fd < 0)
        return -1;
    struct strbuf out = STRBUF_INIT(QMGR_REPLY_LIMIT), in = STRBUF_INIT(QMGR_REPLY_LIMIT);
    struct attr_writer w;
    struct attr_reader r;
    long long status = -1;
    attr_begin(&w, &out);
    attr_put_str(&w, "admin", op);
    attr_put_str(&w, "id", id);
    if (attr_end(&w) < 0 || attr_expect_protocol(fd, "qmgr", QMGR_REPLY_LIMIT, QMGR_TIMEOUT) < 0
        || attr_write(fd, &out, QMGR_TIMEOUT) < 0
        || attr_read(fd, &in, QMGR_REPLY_LIMIT, QMGR_TIMEOUT) < 0
        || attr_reader_init(&r, in.data, in.len) < 0
        || attr_get_int(&r, "status", 0, 100, &status) < 0)
        status = -1;
    close(fd);
    sb_free(&out);
    sb_free(&in);
    return (int)status;
}

void queue_wake_qmgr(const char *queue)
{
    if (!queue_tern_running())
        return;
    int fd = qmgr_connect();
    if (fd < 0)
        return;
    struct strbuf out = STRBUF_INIT(QMGR_REPLY_LIMIT);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_str(&w, "wakeup", queue);
    if (attr_end(&w) == 0)
        (void)attr_write(fd, &out, QMGR_TIMEOUT);
    close(fd);
    sb_free(&out);
}

void queue_log(const char *fmt, ...)
{
    va_list ap;
    log_to_stderr(0);
    va_start(ap, fmt);
    msg_vlog(LOG_INFO, fmt, ap);
    va_end(ap);
    log_to_stderr(1);
}

/* ---- JSON ---- */

/* Length of the valid UTF-8 sequence at s (1-4), or 0. */
static size_t utf8_length(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned min;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) { n = 2; cp = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { n = 3; cp = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { n = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void json_string(struct strbuf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    sb_appendc(out, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            sb_appendc(out, '\\');
            sb_appendc(out, (char)c);
            i++;
        } else if (c == '\n') {
            sb_appends(out, "\\n");
            i++;
        } else if (c == '\t') {
            sb_appends(out, "\\t");
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            sb_appendf(out, "\\u%04x", c);
            i++;
        } else {
            size_t n = utf8_length(p + i, len - i);
            if (n == 0) {
                sb_appends(out, "\\ufffd");
                i++;
            } else {
                sb_append(out, s + i, n);
                i += n;
            }
        }
    }
    sb_appendc(out, '"');
}

void json_str(struct strbuf *out, const char *s)
{
    json_string(out, s ? s : "", s ? strlen(s) : 0);
}

void json_print(struct strbuf *out)
{
    sb_appendc(out, '\n');
    fwrite(out->data, 1, out->len, stdout);
    sb_free(out);
}
