/* tern_sts.c: for `tern why`, the MTA-STS policies (RFC 8461) the smtp
 * client holds in its cache (smtp_mta_sts = yes) for the domains of a
 * queued message's recipients: mode, id, mx patterns, when fetched and
 * until when valid, so that an administrator sees which policy made a
 * delivery wait. The cache belongs to mail_owner: each step from
 * data_directory down is opened without following links, and a file is
 * read only when it is a plain file of bounded size and parses. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "data_dir.h"
#include "json.h"
#include "queue_scan.h"
#include "strbuf.h"
#include "sts_policy.h"
#include "tern.h"
#include "util.h"

#define STS_FILE_MAX (STS_POLICY_SIZE_MAX + 512)

struct sts_entry {
    char domain[256];
    struct strbuf text;          /* the file; c.policy points into it */
    struct sts_cached c;
    struct sts_policy p;
};

static int open_cache_dir(void)
{
    return data_dir_folder_read(cfg_str(P_smtp_mta_sts_cache));
}

static bool entry_load(int cfd, const char *key, struct sts_entry *e)
{
    int fd = openat(cfd, key, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= STS_FILE_MAX;
    char buf[8192];
    ssize_t n;
    while (ok && (n = read(fd, buf, sizeof(buf))) > 0)
        ok = e->text.len + (size_t)n <= STS_FILE_MAX && sb_append(&e->text, buf, (size_t)n) == 0;
    close(fd);
    struct strbuf why = STRBUF_INIT(256);
    ok = ok && sts_cache_parse(e->text.data, e->text.len, &e->c, &why) == 0
         && sts_policy_parse(e->c.policy, e->c.policy_len, &e->p, &why) == 0;
    sb_free(&why);
    if (ok)
        str_copy(e->domain, sizeof(e->domain), key);
    return ok;
}

/* The cached policies of the recipients' domains, each domain once. */
static size_t entries_load(const struct queued *q, struct sts_entry **out)
{
    *out = NULL;
    if (!cfg_bool(P_smtp_mta_sts))
        return 0;
    int cfd = open_cache_dir();
    if (cfd < 0)
        return 0;
    struct sts_entry *e = xcalloc(q->m.nrcpts ? q->m.nrcpts : 1, sizeof(*e));
    size_t n = 0;
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        const char *at = strrchr(q->m.rcpts[i].address, '@');
        char key[256];
        if (!at || !sts_cache_key(at + 1, key, sizeof(key)))
            continue;
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++)
            seen = strcmp(e[k].domain, key) == 0;
        if (seen)
            continue;
        sb_init(&e[n].text, STS_FILE_MAX);
        if (entry_load(cfd, key, &e[n]))
            n++;
        else
            sb_free(&e[n].text);
    }
    close(cfd);
    *out = e;
    return n;
}

static void entries_free(struct sts_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sb_free(&e[i].text);
    free(e);
}

static void format_when(long long t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    strftime(buf, size, "%a %b %e %H:%M:%S %Y", &tm);
}

void tern_sts_why_text(const struct queued *q)
{
    struct sts_entry *e;
    size_t n = entries_load(q, &e);
    for (size_t i = 0; i < n; i++) {
        char fetched[64], expires[64];
        struct strbuf mx = STRBUF_INIT(0);
        sts_mx_list(&e[i].p, &mx);
        format_when(e[i].c.fetched, fetched, sizeof(fetched));
        format_when(e[i].c.expires, expires, sizeof(expires));
        printf("%sMTA-STS policy of %s: mode %s, id %s, mx: %s\n  fetched %s, %s %s\n",
               i ? "" : "\n", e[i].domain, sts_mode_name(e[i].p.mode), e[i].c.id, sb_str(&mx),
               fetched, e[i].c.expires > now_usec() / 1000000 ? "valid until" : "expired", expires);
        sb_free(&mx);
    }
    entries_free(e, n);
}

void tern_sts_why_json(const struct queued *q, struct strbuf *out)
{
    struct sts_entry *e;
    size_t n = entries_load(q, &e);
    sb_appends(out, ", \"mta_sts\": [");
    for (size_t i = 0; i < n; i++) {
        sb_appends(out, i ? ", {\"domain\": " : "{\"domain\": ");
        json_str(out, e[i].domain);
        sb_appends(out, ", \"mode\": ");
        json_str(out, sts_mode_name(e[i].p.mode));
        sb_appends(out, ", \"id\": ");
        json_str(out, e[i].c.id);
        sb_appends(out, ", \"mx\": [");
        for (size_t k = 0; k < e[i].p.nmx; k++) {
            if (k)
                sb_appends(out, ", ");
            json_str(out, e[i].p.mx[k]);
        }
        sb_appendf(out, "], \"max_age\": %ld, \"fetched\": %lld, \"expires\": %lld}", e[i].p.max_age,
                   e[i].c.fetched, e[i].c.expires);
    }
    sb_appendc(out, ']');
    entries_free(e, n);
}
