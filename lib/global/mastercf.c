/* mastercf.c: reads master.cf, Postfix's service table: one service per
 * logical line (continuation lines begin with white space, '#' comments),
 * columns service type private unpriv chroot wakeup maxproc command args. */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mastercf.h"
#include "strbuf.h"
#include "util.h"

#define MASTERCF_LINE_LIMIT 65536   /* one logical line, continuations included */
#define MASTERCF_MAX_SERVICES 1000
#define MASTERCF_MAX_WORDS 264      /* 8 columns and up to 256 arguments */
#define MASTERCF_NAME_MAX 200

/* The words of one logical line, each an allocated string. */
struct words {
    char *w[MASTERCF_MAX_WORDS];
    int n;
};

static void words_free(struct words *ws)
{
    for (int i = 0; i < ws->n; i++)
        free(ws->w[i]);
    ws->n = 0;
}

static const char *skip_space(const char *p)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    return p;
}

/* One "{ ... }" group (Postfix 3 syntax, so that a value may contain white
 * space): the text between the braces with surrounding space trimmed. */
static const char *take_group(const char *p, int lineno, char **out, struct strbuf *err)
{
    const char *close = strchr(p + 1, '}');
    if (!close) {
        sb_appendf(err, "master.cf:%d: \"{\" without a closing \"}\"", lineno);
        return NULL;
    }
    if (close[1] && !isspace((unsigned char)close[1])) {
        sb_appendf(err, "master.cf:%d: text after \"}\" must be separated by white space", lineno);
        return NULL;
    }
    const char *start = skip_space(p + 1);
    const char *end = close;
    while (end > start && isspace((unsigned char)end[-1]))
        end--;
    *out = xstrndup(start, (size_t)(end - start));
    return close + 1;
}

/* Split a logical line into words; -1 with a message in err. */
static int split_words(const char *line, int lineno, struct words *ws, struct strbuf *err)
{
    ws->n = 0;
    for (const char *p = skip_space(line); *p; p = skip_space(p)) {
        if (ws->n >= MASTERCF_MAX_WORDS) {
            sb_appendf(err, "master.cf:%d: too many arguments (at most %d)", lineno,
                       MASTERCF_MAX_WORDS - 8);
            words_free(ws);
            return -1;
        }
        char *word;
        if (*p == '{') {
            p = take_group(p, lineno, &word, err);
            if (!p) {
                words_free(ws);
                return -1;
            }
        } else {
            const char *start = p;
            while (*p && !isspace((unsigned char)*p))
                p++;
            word = xstrndup(start, (size_t)(p - start));
        }
        ws->w[ws->n++] = word;
    }
    return 0;
}

static int parse_yes_no(const char *word, bool def, bool *out)
{
    if (strcmp(word, "-") == 0)
        *out = def;
    else if (strcmp(word, "y") == 0)
        *out = true;
    else if (strcmp(word, "n") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

/* The words of the type column, by kind. */
static const char *const kind_names[] = {
    [SVC_INET] = "inet", [SVC_UNIX] = "unix", [SVC_PASS] = "pass", [SVC_FIFO] = "fifo",
};

static int parse_kind(const char *word, enum service_kind *kind)
{
    for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
        if (strcmp(word, kind_names[i]) == 0) {
            *kind = (enum service_kind)i;
            return 0;
        }
    return -1;
}

const char *mastercf_kind_name(enum service_kind kind)
{
    return (size_t)kind < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[kind] : "unknown";
}

/* A UNIX-domain name becomes a file name under private/ or public/. */
static bool service_name_ok(const char *name, enum service_kind kind)
{
    size_t len = strlen(name);
    if (len == 0 || len > MASTERCF_NAME_MAX)
        return false;
    if (kind == SVC_INET)
        return true;
    return !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* The wakeup column: seconds, '-' for none; a trailing '?' (Postfix: wake
 * only when in use) is accepted and ignored. */
static int parse_wakeup(const char *word, int *out)
{
    char buf[32];
    if (str_copy(buf, sizeof(buf), word) >= sizeof(buf))
        return -1;
    size_t len = strlen(buf);
    if (len > 1 && buf[len - 1] == '?')
        buf[len - 1] = 0;
    long v = 0;
    if (strcmp(buf, "-") != 0 && parse_long(buf, 0, 86400L * 7, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* "-o name = value" from a brace group becomes "name=value". */
static char *normalize_override(const char *arg)
{
    const char *eq = strchr(arg, '=');
    const char *name_end = eq;
    while (name_end > arg && isspace((unsigned char)name_end[-1]))
        name_end--;
    const char *value = skip_space(eq + 1);
    struct strbuf sb = STRBUF_INIT(0);
    sb_append(&sb, arg, (size_t)(name_end - arg));
    sb_appendc(&sb, '=');
    sb_appends(&sb, value);
    char *out = xstrdup(sb_str(&sb));
    sb_free(&sb);
    return out;
}

/* The command arguments; every "-o" must be followed by name=value. */
static int parse_args(struct words *ws, int lineno, struct master_service *svc, struct strbuf *err)
{
    svc->argc = ws->n - 8;
    svc->args = xcalloc((size_t)svc->argc + 1, sizeof(char *));
    for (int i = 0; i < svc->argc; i++) {
        const char *arg = ws->w[8 + i];
        bool after_o = i > 0 && strcmp(svc->args[i - 1], "-o") == 0;
        if (after_o) {
            const char *eq = strchr(arg, '=');
            size_t name_len = eq ? (size_t)(eq - arg) : 0;
            while (name_len > 0 && isspace((unsigned char)arg[name_len - 1]))
                name_len--;
            if (!eq || name_len == 0 || strcspn(arg, " \t") < name_len) {
                sb_appendf(err, "master.cf:%d: \"-o %.60s\": expected -o name=value", lineno, arg);
                svc->argc = i;
                return -1;
            }
            svc->args[i] = normalize_override(arg);
        } else {
            svc->args[i] = xstrdup(arg);
        }
    }
    if (svc->argc > 0 && strcmp(svc->args[svc->argc - 1], "-o") == 0) {
        sb_appendf(err, "master.cf:%d: \"-o\" at the end of the line: expected -o name=value",
                   lineno);
        return -1;
    }
    return 0;
}

/* Parse the columns of one logical line into svc (zeroed first). */
static int parse_columns(struct words *ws, int lineno, int default_maxproc,
                         struct master_service *svc, struct strbuf *err)
{
    char **w = ws->w;
    memset(svc, 0, sizeof(*svc));
    svc->lineno = lineno;
    if (ws->n < 8) {
        sb_appendf(err, "master.cf:%d: expected at least 8 columns (service type private "
                   "unpriv chroot wakeup maxproc command), found %d", lineno, ws->n);
        return -1;
    }
    if (parse_kind(w[1], &svc->kind) < 0) {
        sb_appendf(err, "master.cf:%d: service %.60s: unknown type \"%.40s\" "
                   "(expected inet, unix, pass or fifo)", lineno, w[0], w[1]);
        return -1;
    }
    if (!service_name_ok(w[0], svc->kind)) {
        sb_appendf(err, "master.cf:%d: bad service name \"%.60s\"", lineno, w[0]);
        return -1;
    }
    if (parse_yes_no(w[2], true, &svc->private_) < 0 || parse_yes_no(w[3], true, &svc->unpriv) < 0
        || parse_yes_no(w[4], false, &svc->chroot_) < 0) {
        sb_appendf(err, "master.cf:%d: service %.60s: the private, unpriv and chroot columns "
                   "must be y, n or -", lineno, w[0]);
        return -1;
    }
    if (parse_wakeup(w[5], &svc->wakeup) < 0) {
        sb_appendf(err, "master.cf:%d: service %.60s: bad wakeup time \"%.40s\" "
                   "(expected seconds or -)", lineno, w[0], w[5]);
        return -1;
    }
    long maxproc = default_maxproc;
    if (strcmp(w[6], "-") != 0 && parse_long(w[6], 0, 100000, &maxproc) < 0) {
        sb_appendf(err, "master.cf:%d: service %.60s: bad process limit \"%.40s\" "
                   "(expected a number, 0 for no limit, or -)", lineno, w[0], w[6]);
        return -1;
    }
    svc->maxproc = (int)maxproc;
    if (strchr(w[7], '/') || strcmp(w[7], ".") == 0 || strcmp(w[7], "..") == 0) {
        sb_appendf(err, "master.cf:%d: service %.60s: the command \"%.60s\" must be a program "
                   "name in daemon_directory, not a path", lineno, w[0], w[7]);
        return -1;
    }
    svc->name = xstrdup(w[0]);
    svc->command = xstrdup(w[7]);
    return parse_args(ws, lineno, svc, err);
}

static void service_free(struct master_service *s)
{
    free(s->name);
    free(s->command);
    str_array_free(s->args, (size_t)s->argc);
    memset(s, 0, sizeof(*s));
}

/* The table being built while reading. */
struct mcf_table {
    struct master_service *svcs;
    size_t n;
    int default_maxproc;
};

/* Parse one complete logical line and add it to the table. */
static int add_service(struct mcf_table *t, const char *line, int lineno, struct strbuf *err)
{
    if (t->n >= MASTERCF_MAX_SERVICES) {
        sb_appendf(err, "master.cf:%d: too many services (at most %d)", lineno,
                   MASTERCF_MAX_SERVICES);
        return -1;
    }
    struct words ws;
    if (split_words(line, lineno, &ws, err) < 0)
        return -1;
    struct master_service svc;
    int rc = parse_columns(&ws, lineno, t->default_maxproc, &svc, err);
    words_free(&ws);
    if (rc < 0) {
        service_free(&svc);
        return -1;
    }
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->svcs[i].name, svc.name) == 0 && t->svcs[i].kind == svc.kind) {
            sb_appendf(err, "master.cf:%d: duplicate service \"%s\" of this type "
                       "(first defined on line %d)", lineno, svc.name, t->svcs[i].lineno);
            service_free(&svc);
            return -1;
        }
    t->svcs = xrealloc(t->svcs, (t->n + 1) * sizeof(*t->svcs));
    t->svcs[t->n++] = svc;
    return 0;
}

/* Read physical lines, join continuations, and hand each logical line to
 * add_service. */
static int read_table(FILE *fp, struct mcf_table *t, struct strbuf *err)
{
    struct strbuf logical = STRBUF_INIT(MASTERCF_LINE_LIMIT);
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, start = 0, rc = 0;
    ssize_t len;
    while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        if (memchr(line, 0, (size_t)len)) {
            sb_appendf(err, "master.cf:%d: line contains a NUL byte", lineno);
            rc = -1;
            break;
        }
        const char *p = skip_space(line);
        if (*p == 0 || *p == '#')
            continue;
        bool continuation = p != line;
        if (continuation && logical.len == 0) {
            sb_appendf(err, "master.cf:%d: continuation line (it begins with white space) "
                       "without a service line before it", lineno);
            rc = -1;
        } else if (continuation) {
            if (sb_appendc(&logical, ' ') < 0 || sb_appends(&logical, p) < 0) {
                sb_appendf(err, "master.cf:%d: logical line longer than %d bytes", lineno,
                           MASTERCF_LINE_LIMIT);
                rc = -1;
            }
        } else {
            if (logical.len)
                rc = add_service(t, logical.data, start, err);
            start = lineno;
            if (rc == 0 && sb_set(&logical, p) < 0) {
                sb_appendf(err, "master.cf:%d: line longer than %d bytes", lineno,
                           MASTERCF_LINE_LIMIT);
                rc = -1;
            }
        }
    }
    if (rc == 0 && ferror(fp)) {
        sb_appendf(err, "master.cf:%d: read error: %s", lineno, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && logical.len)
        rc = add_service(t, logical.data, start, err);
    free(line);
    sb_free(&logical);
    return rc;
}

int mastercf_load(const char *path, int default_maxproc,
                  struct master_service **out, size_t *n, struct strbuf *err)
{
    FILE *fp = fopen(path, "re");
    if (!fp) {
        sb_appendf(err, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct mcf_table t = { NULL, 0, default_maxproc };
    int rc = read_table(fp, &t, err);
    fclose(fp);
    if (rc < 0) {
        mastercf_free(t.svcs, t.n);
        return -1;
    }
    *out = t.svcs;
    *n = t.n;
    return 0;
}

void mastercf_free(struct master_service *svcs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        service_free(&svcs[i]);
    free(svcs);
}

/* A port: a number 1..65535 or a TCP service name from /etc/services. */
static int resolve_port(const char *pt, char *port, size_t portsz)
{
    long num;
    if (!*pt)
        return -1;
    if (parse_long(pt, 1, 65535, &num) < 0) {
        if (isdigit((unsigned char)pt[0]))
            return -1;
        struct servent *se = getservbyname(pt, "tcp");
        if (!se)
            return -1;
        num = ntohs((unsigned short)se->s_port);
    }
    int len = snprintf(port, portsz, "%ld", num);
    return len > 0 && (size_t)len < portsz ? 0 : -1;
}

int mastercf_inet_split(const char *name, char *host, size_t hostsz, char *port, size_t portsz)
{
    const char *colon = strrchr(name, ':');
    const char *h = name;
    size_t hlen = 0;
    if (colon) {
        hlen = (size_t)(colon - name);
        if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
            h++;
            hlen -= 2;
            if (hlen == 0)
                return -1;
        } else if (memchr(h, ':', hlen) || memchr(h, '[', hlen) || memchr(h, ']', hlen)) {
            return -1;   /* an IPv6 address must be written [addr]:port */
        }
        if (hlen == 1 && h[0] == '*')
            hlen = 0;    /* "*:port": every address */
    }
    if (hostsz == 0 || hlen >= hostsz)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = 0;
    return resolve_port(colon ? colon + 1 : name, port, portsz);
}
