/* maildrop.c: the checks that decide whether a maildrop file is a local
 * submission pickup may pass to cleanup (see maildrop.h). Pure functions:
 * no configuration, no I/O, so that they can be fuzzed. Anything cleanup's
 * envelope reader would refuse is refused here first, because a file that
 * cleanup keeps refusing would otherwise be retried for ever. */
#include <string.h>
#include <strings.h>

#include "maildrop.h"
#include "util.h"

#define MAILDROP_UID_MAX 4294967294LL   /* (uid_t)-1 is no user */

bool maildrop_text_ok(const char *s, size_t max)
{
    return str_printable(s, max);
}

int maildrop_notify_canon(const char *in, char *out, size_t size)
{
    static const char *const words[] = { "NEVER", "SUCCESS", "DELAY", "FAILURE" };
    unsigned seen = 0;
    size_t len = 0;
    if (size == 0)
        return -1;
    out[0] = 0;
    while (*in) {
        size_t n = strcspn(in, ",");
        size_t w = 0;
        while (w < 4 && !(strlen(words[w]) == n && strncasecmp(in, words[w], n) == 0))
            w++;
        if (w == 4 || (seen & (1u << w)))
            return -1;
        seen |= 1u << w;
        size_t need = len + (len ? 1 : 0) + n + 1;
        if (need > size)
            return -1;
        if (len)
            out[len++] = ',';
        memcpy(out + len, words[w], n + 1);
        len += n;
        in += n;
        if (*in == ',' && !*++in)
            return -1;               /* a trailing comma */
    }
    /* NEVER stands alone, and an empty list says nothing */
    if (seen == 0 || ((seen & 1u) && seen != 1u))
        return -1;
    return 0;
}

static int refuse(const char **why, const char *text)
{
    *why = text;
    return -1;
}

/* uid: plain decimal, no sign, no leading zero, a possible uid_t. */
static int parse_uid(const char *s, long long *out)
{
    long long v = 0;
    size_t n = strlen(s);
    if (n == 0 || n > 10 || (s[0] == '0' && n > 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > MAILDROP_UID_MAX)
        return -1;
    *out = v;
    return 0;
}

/* Each attribute at most once; uid required. */
static int check_attrs(const struct qmessage *m, struct maildrop_info *info, const char **why)
{
    bool have_uid = false;
    for (size_t i = 0; i < m->nattrs; i++) {
        const char *name = m->attr_names[i], *value = m->attr_values[i];
        const char **slot = strcmp(name, "full_name") == 0 ? &info->full_name
                          : strcmp(name, "ret") == 0 ? &info->ret
                          : strcmp(name, "envid") == 0 ? &info->envid : NULL;
        if (strcmp(name, "uid") == 0) {
            if (have_uid || parse_uid(value, &info->uid) < 0)
                return refuse(why, "bad or repeated uid attribute");
            have_uid = true;
            continue;
        }
        if (!slot)
            return refuse(why, "unknown attribute");
        if (*slot)
            return refuse(why, "repeated attribute");
        *slot = value;
    }
    if (!have_uid)
        return refuse(why, "no uid attribute");
    if (info->full_name && !maildrop_text_ok(info->full_name, MAILDROP_FULL_NAME_MAX))
        return refuse(why, "bad full_name attribute");
    if (info->ret && strcmp(info->ret, "FULL") != 0 && strcmp(info->ret, "HDRS") != 0)
        return refuse(why, "bad ret attribute");
    if (info->envid && (!*info->envid || !maildrop_text_ok(info->envid, MAILDROP_ENVID_MAX)))
        return refuse(why, "bad envid attribute");
    return 0;
}

static int check_rcpts(const struct qmessage *m, const char **why)
{
    char canon[MAILDROP_NOTIFY_MAX];
    if (m->nrcpts == 0 || m->nrcpts > MAILDROP_RCPT_MAX)
        return refuse(why, "no recipients, or too many");
    for (size_t i = 0; i < m->nrcpts; i++) {
        const struct qrcpt *r = &m->rcpts[i];
        if (r->done)
            return refuse(why, "a recipient marked done");
        if (!*r->address || !maildrop_text_ok(r->address, MAILDROP_ADDR_MAX))
            return refuse(why, "bad recipient address");
        if (*r->orcpt)
            return refuse(why, "a recipient with an original recipient");
        if (*r->notify && (maildrop_notify_canon(r->notify, canon, sizeof(canon)) < 0
                           || strcmp(canon, r->notify) != 0))
            return refuse(why, "bad recipient notify list");
    }
    return 0;
}

int maildrop_check(const struct qmessage *m, struct maildrop_info *info, const char **why)
{
    memset(info, 0, sizeof(*info));
    if (!m->complete)
        return refuse(why, "incomplete file (no end record)");
    if (m->warn_offset)
        return refuse(why, "a delay warning record");
    if (!maildrop_text_ok(m->sender, MAILDROP_ADDR_MAX))
        return refuse(why, "bad sender address");
    if (check_attrs(m, info, why) < 0 || check_rcpts(m, why) < 0)
        return -1;
    return 0;
}
