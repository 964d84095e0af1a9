/* cleanup_envelope.c: decodes the envelope frame of the cleanup protocol
 * (doc/PROTOCOLS.md) strictly: attributes in order, counts and sizes
 * bounded, no control characters in anything that ends up in a header or a
 * log line. The submitting process is trusted no more than the network. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "attr.h"
#include "cleanup.h"
#include "util.h"

static int refuse(const char **why, const char *text)
{
    *why = text;
    return -1;
}

static bool attr_name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
            return false;
    return n > 0 && n <= ATTR_NAME_MAX;
}

/* NOTIFY: empty, or a comma list of the RFC 3461 keywords. */
static bool notify_ok(const char *s)
{
    static const char *const words[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
    if (!*s)
        return true;
    while (*s) {
        size_t n = strcspn(s, ",");
        bool known = false;
        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
            known |= strlen(words[i]) == n && strncasecmp(s, words[i], n) == 0;
        if (!known)
            return false;
        s += n;
        if (*s == ',' && !*++s)
            return false;            /* a trailing comma */
    }
    return true;
}

static int read_attrs(struct attr_reader *r, struct cleanup_envelope *env, const char **why)
{
    long long count;
    if (attr_get_int(r, "nattr", 0, CLEANUP_MAX_ATTRS, &count) < 0)
        return refuse(why, "bad attribute count");
    env->attr_names = xcalloc((size_t)count + 1, sizeof(char *));
    env->attr_values = xcalloc((size_t)count + 1, sizeof(char *));
    for (long long i = 0; i < count; i++) {
        const char *name, *value;
        if (attr_get_str(r, "name", &name) < 0 || attr_get_str(r, "value", &value) < 0)
            return refuse(why, "bad attribute");
        if (!attr_name_ok(name) || cleanup_env_attr(env, name))
            return refuse(why, "bad or repeated attribute name");
        /* only cleanup's own checks decide this one (lib/global/QUEUE.md) */
        if (strcmp(name, "content_filter") == 0)
            return refuse(why, "reserved attribute name");
        if (!str_printable(value, CLEANUP_ATTR_VALUE_MAX))
            return refuse(why, "bad attribute value");
        /* the ID the client named the message by (doc/PROTOCOLS.md); not a record */
        if (strcmp(name, "queue_id") == 0) {
            if (env->preset_id[0] || !queue_id_valid(value))
                return refuse(why, "bad or repeated queue_id");
            str_copy(env->preset_id, sizeof(env->preset_id), value);
            continue;
        }
        env->attr_names[env->nattr] = xstrdup(name);
        env->attr_values[env->nattr++] = xstrdup(value);
    }
    return 0;
}

static int read_rcpts(struct attr_reader *r, struct cleanup_envelope *env, size_t max_rcpts,
                      const char **why)
{
    long long count;
    if (attr_get_int(r, "nrcpt", 1, (long long)max_rcpts, &count) < 0)
        return refuse(why, "bad recipient count");
    env->rcpts = xcalloc((size_t)count, sizeof(char *));
    env->orcpts = xcalloc((size_t)count, sizeof(char *));
    env->notifies = xcalloc((size_t)count, sizeof(char *));
    for (long long i = 0; i < count; i++) {
        const char *rcpt, *orcpt, *notify;
        if (attr_get_str(r, "rcpt", &rcpt) < 0 || attr_get_str(r, "orcpt", &orcpt) < 0
            || attr_get_str(r, "notify", &notify) < 0)
            return refuse(why, "bad recipient");
        if (!*rcpt || !str_printable(rcpt, CLEANUP_ADDR_MAX) || !str_printable(orcpt, CLEANUP_ORCPT_MAX)
            || !notify_ok(notify))
            return refuse(why, "bad recipient value");
        env->rcpts[env->nrcpt] = xstrdup(rcpt);
        env->orcpts[env->nrcpt] = xstrdup(orcpt);
        env->notifies[env->nrcpt++] = xstrdup(notify);
    }
    return 0;
}

int cleanup_envelope_read(struct attr_reader *r, struct cleanup_envelope *env,
                          size_t max_rcpts, const char **why)
{
    long long flags;
    const char *sender;
    memset(env, 0, sizeof(*env));
    if (attr_get_int(r, "flags", 0, CLEANUP_FLAGS_KNOWN, &flags) < 0)
        return refuse(why, "bad flags");
    if (attr_get_str(r, "sender", &sender) < 0 || !str_printable(sender, CLEANUP_ADDR_MAX))
        return refuse(why, "bad sender");
    env->flags = flags;
    env->sender = xstrdup(sender);
    if (read_attrs(r, env, why) < 0 || read_rcpts(r, env, max_rcpts, why) < 0)
        return -1;
    if (attr_reader_done(r) < 0)
        return refuse(why, "extra data after the recipients");
    return 0;
}

const char *cleanup_env_attr(const struct cleanup_envelope *env, const char *name)
{
    return strv_value(env->attr_names, env->attr_values, env->nattr, name);
}

void cleanup_envelope_free(struct cleanup_envelope *env)
{
    str_array_free(env->attr_names, env->nattr);
    str_array_free(env->attr_values, env->nattr);
    str_array_free(env->rcpts, env->nrcpt);
    str_array_free(env->orcpts, env->nrcpt);
    str_array_free(env->notifies, env->nrcpt);
    free(env->sender);
    memset(env, 0, sizeof(*env));
}

void cleanup_envelope_actions(struct cleanup_state *st)
{
    const char *filter = cleanup_env_attr(&st->env, "filter");
    if (st->env.flags & CLEANUP_FLAG_HOLD)
        st->hold = true;
    if (filter && *filter && strchr(filter, ':')) {
        free(st->filter);
        st->filter = xstrdup(filter);
    }
}
