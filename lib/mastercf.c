/* mastercf.c: reads master.cf, Postfix's service table: one service per
 * logical line (continuation lines begin with white space, '#' comments),
 * columns service type private unpriv chroot wakeup maxproc command args. */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mastercf.h"
#include "strbuf.h"
#include "util.h"

#define MASTERCF_LINE_LIMIT 65536
#define MASTERCF_MAX_SERVICES 1000
#define MASTERCF_MAX_ARGS 256

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

static char **split_words(char *line, int *count)
{
    char **words = xmalloc((MASTERCF_MAX_ARGS + 9) * sizeof(char *));
    int n = 0;
    for (char *p = strtok(line, " \t\r\n"); p; p = strtok(NULL, " \t\r\n")) {
        if (n >= MASTERCF_MAX_ARGS + 8) {
            free(words);
            return NULL;
        }
        words[n++] = p;
    }
    words[n] = NULL;
    *count = n;
    return words;
}

/* Parse one logical line into svc; -1 with a message in err. */
static int mastercf_parse_line(char *line, int lineno, int default_maxproc,
                               struct master_service *svc, struct strbuf *err)
{
    int n;
    char **w = split_words(line, &n);
    if (!w) {
        sb_appendf(err, "master.cf:%d: too many arguments", lineno);
        return -1;
    }
    int rc = -1;
    memset(svc, 0, sizeof(*svc));
    svc->lineno = lineno;
    if (n < 8) {
        sb_appendf(err, "master.cf:%d: need at least 8 fields (service type private unpriv "
                   "chroot wakeup maxproc command), found %d", lineno, n);
        goto out;
    }
    if (strcmp(w[1], "inet") == 0)
        svc->kind = SVC_INET;
    else if (strcmp(w[1], "unix") == 0)
        svc->kind = SVC_UNIX;
    else if (strcmp(w[1], "pass") == 0)
        svc->kind = SVC_PASS;
    else if (strcmp(w[1], "fifo") == 0)
        svc->kind = SVC_FIFO;
    else {
        sb_appendf(err, "master.cf:%d: unknown service type \"%.40s\" (inet, unix, pass or fifo)",
                   lineno, w[1]);
        goto out;
    }
    if (strlen(w[0]) > 200 || (svc->kind != SVC_INET && strchr(w[0], '/'))) {
        sb_appendf(err, "master.cf:%d: bad service name \"%.60s\"", lineno, w[0]);
        goto out;
    }
    if (parse_yes_no(w[2], true, &svc->private_) < 0 || parse_yes_no(w[3], true, &svc->unpriv) < 0
        || parse_yes_no(w[4], false, &svc->chroot_) < 0) {
        sb_appendf(err, "master.cf:%d: private, unpriv and chroot must be y, n or -", lineno);
        goto out;
    }
    long v = 0;
    char wake[32];
    str_copy(wake, sizeof(wake), w[5]);
    size_t wl = strlen(wake);
    if (wl && wake[wl - 1] == '?')
        wake[wl - 1] = 0;
    if (strcmp(wake, "-") != 0 && parse_long(wake, 0, 86400 * 7, &v) < 0) {
        sb_appendf(err, "master.cf:%d: bad wakeup time \"%.40s\"", lineno, w[5]);
        goto out;
    }
    svc->wakeup = (int)v;
    v = default_maxproc;
    if (strcmp(w[6], "-") != 0 && parse_long(w[6], 0, 100000, &v) < 0) {
        sb_appendf(err, "master.cf:%d: bad process limit \"%.40s\"", lineno, w[6]);
        goto out;
    }
    svc->maxproc = (int)v;
    if (strchr(w[7], '/') || strcmp(w[7], "..") == 0 || strcmp(w[7], ".") == 0) {
        sb_appendf(err, "master.cf:%d: the command \"%.60s\" must be a program name in "
                   "daemon_directory, not a path", lineno, w[7]);
        goto out;
    }
    svc->name = xstrdup(w[0]);
    svc->command = xstrdup(w[7]);
    svc->argc = n - 8;
    svc->args = xcalloc((size_t)svc->argc + 1, sizeof(char *));
    for (int i = 0; i < svc->argc; i++) {
        svc->args[i] = xstrdup(w[8 + i]);
        if (strcmp(svc->args[i], "-o") == 0 && (i + 1 >= svc->argc || !strchr(w[9 + i], '='))) {
            sb_appendf(err, "master.cf:%d: \"-o\" must be followed by name=value", lineno);
            svc->argc = i + 1;
            goto out;
        }
    }
    rc = 0;
out:
    free(w);
    return rc;
}

static void service_free(struct master_service *s)
{
    free(s->name);
    free(s->command);
    for (int i = 0; s->args && i < s->argc; i++)
        free(s->args[i]);
    free(s->args);
}

int mastercf_load(const char *path, int default_maxproc,
                  struct master_service **out, size_t *n, struct strbuf *err)
{
    FILE *fp = fopen(path, "re");
    if (!fp) {
        sb_appendf(err, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct master_service *svcs = NULL;
    size_t count = 0;
    struct strbuf logical = STRBUF_INIT(MASTERCF_LINE_LIMIT);
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, start = 0, rc = 0;
    bool eof = false;
    while (rc == 0 && !eof) {
        ssize_t len = getline(&line, &cap, fp);
        char *p = NULL;
        if (len < 0) {
            eof = true;
        } else {
            lineno++;
            p = line;
            while (isspace((unsigned char)*p))
                p++;
            if (*p == 0 || *p == '#')
                continue;
            if (p != line) {
                if (logical.len == 0) {
                    sb_appendf(err, "master.cf:%d: continuation line without a service", lineno);
                    rc = -1;
                } else if (sb_appendc(&logical, ' ') < 0 || sb_appends(&logical, p) < 0) {
                    sb_appendf(err, "master.cf:%d: logical line too long", lineno);
                    rc = -1;
                }
                continue;
            }
        }
        if (logical.len) {
            if (count >= MASTERCF_MAX_SERVICES) {
                sb_appendf(err, "master.cf:%d: too many services", start);
                rc = -1;
                break;
            }
            svcs = xrealloc(svcs, (count + 1) * sizeof(*svcs));
            if (mastercf_parse_line(logical.data, start, default_maxproc, &svcs[count], err) < 0) {
                service_free(&svcs[count]);
                rc = -1;
                break;
            }
            for (size_t i = 0; i < count; i++)
                if (strcmp(svcs[i].name, svcs[count].name) == 0 && svcs[i].kind == svcs[count].kind) {
                    sb_appendf(err, "master.cf:%d: duplicate service %s (first on line %d)",
                               start, svcs[count].name, svcs[i].lineno);
                    rc = -1;
                }
            count++;
        }
        sb_reset(&logical);
        if (p && rc == 0) {
            if (sb_appends(&logical, p) < 0) {
                sb_appendf(err, "master.cf:%d: line too long", lineno);
                rc = -1;
            }
            start = lineno;
        }
    }
    free(line);
    sb_free(&logical);
    fclose(fp);
    if (rc < 0) {
        mastercf_free(svcs, count);
        return -1;
    }
    *out = svcs;
    *n = count;
    return 0;
}

void mastercf_free(struct master_service *svcs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        service_free(&svcs[i]);
    free(svcs);
}

int mastercf_inet_split(const char *name, char *host, size_t hostsz, char *port, size_t portsz)
{
    const char *colon = strrchr(name, ':');
    const char *h = "", *pt = name;
    size_t hlen = 0;
    if (colon) {
        h = name;
        hlen = (size_t)(colon - name);
        pt = colon + 1;
        if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
            h++;
            hlen -= 2;
        }
    }
    if (hlen >= hostsz || !*pt || strlen(pt) >= portsz)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = 0;
    long num;
    if (parse_long(pt, 1, 65535, &num) == 0) {
        snprintf(port, portsz, "%ld", num);
        return 0;
    }
    struct servent *se = getservbyname(pt, "tcp");
    if (!se)
        return -1;
    snprintf(port, portsz, "%d", ntohs((unsigned short)se->s_port));
    return 0;
}
