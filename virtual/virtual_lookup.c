/* virtual_lookup.c: what the tables say about one virtual recipient, as
 * Postfix's virtual(8) reads them: the mailbox (virtual_mailbox_maps, a
 * path relative to virtual_mailbox_base; a trailing '/' is a Maildir) and
 * the uid and gid to write it as (virtual_uid_maps, virtual_gid_maps).
 * Every key is tried in Postfix's order: user+ext@domain, user@domain,
 * @domain. A table's answer is not trusted further than that: a path
 * that climbs out of the base with "..", or a uid below
 * virtual_minimum_uid (root above all), is a configuration error that
 * makes the mail wait, never a delivery. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "util.h"
#include "virtual.h"

int virtual_parse_id(const char *value, long long *id)
{
    long long v = 0;
    if (!*value)
        return -1;
    for (const char *p = value; *p; p++) {
        if (*p < '0' || *p > '9' || v > 0x7fffffffLL / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v > 0x7ffffffeLL)        /* (uid_t)-1 and beyond mean "no change" to setuid */
        return -1;
    *id = v;
    return 0;
}

int virtual_mailbox_path(const char *base, const char *value, char *path, size_t size,
                         bool *maildir, struct strbuf *why)
{
    size_t n = strlen(value);
    if (n == 0) {
        sb_appends(why, "is empty");
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            sb_appends(why, "holds a control character");
            return -1;
        }
    /* no component may be "..": the mailbox stays under the base */
    for (const char *c = value; *c;) {
        size_t len = strcspn(c, "/");
        if (len == 2 && c[0] == '.' && c[1] == '.') {
            sb_appends(why, "has a \"..\" component");
            return -1;
        }
        c += len;
        c += strspn(c, "/");
    }
    int w = snprintf(path, size, "%s/%s", base, value);
    if (w < 0 || (size_t)w >= size) {
        sb_appends(why, "is too long");
        return -1;
    }
    *maildir = value[n - 1] == '/';
    return 0;
}

/* The keys of local@domain, best first; returns how many. */
static size_t lookup_keys(const char *local_lc, const char *domain, const char *delim,
                          char keys[3][VIRTUAL_KEY_MAX])
{
    size_t k = 0;
    snprintf(keys[k++], VIRTUAL_KEY_MAX, "%s@%s", local_lc, domain);
    size_t n = delim && *delim ? strcspn(local_lc, delim) : strlen(local_lc);
    if (n > 0 && local_lc[n])
        snprintf(keys[k++], VIRTUAL_KEY_MAX, "%.*s@%s", (int)n, local_lc, domain);
    snprintf(keys[k++], VIRTUAL_KEY_MAX, "@%s", domain);
    return k;
}

/* 1 found, 0 not, -1 a table failed. value: trailing white space removed. */
static int find(struct maplist *l, char keys[3][VIRTUAL_KEY_MAX], size_t nkeys,
                struct strbuf *value)
{
    if (!l)
        return 0;
    for (size_t i = 0; i < nkeys; i++) {
        sb_reset(value);
        int rc = maplist_lookup(l, keys[i], value);
        if (rc != 0) {
            while (rc > 0 && value->len > 0 && strchr(" \t\r\n", value->data[value->len - 1]))
                value->data[--value->len] = 0;
            return rc;
        }
    }
    return 0;
}

/* A uid or gid from its tables: 0 ok, -1 not found, -2 not a number,
 * -3 a table failed. */
static int find_id(struct maplist *l, char keys[3][VIRTUAL_KEY_MAX], size_t nkeys, long long *id)
{
    struct strbuf v = STRBUF_INIT(65536);
    int rc = find(l, keys, nkeys, &v);
    int out = rc < 0 ? -3 : rc == 0 ? -1 : virtual_parse_id(sb_str(&v), id) < 0 ? -2 : 0;
    sb_free(&v);
    return out;
}

int virtual_lookup(const struct virtual_settings *cfg, const char *local_lc, const char *domain,
                   struct virtual_mailbox *mb, struct delivery_status *st)
{
    char keys[3][VIRTUAL_KEY_MAX];
    struct strbuf value = STRBUF_INIT(65536), why = STRBUF_INIT(256);
    size_t nkeys = lookup_keys(local_lc, domain, cfg->recipient_delimiter, keys);
    const char *rcpt = keys[0];
    int rc = -1;
    int found = find(cfg->mailbox_maps, keys, nkeys, &value);
    if (found < 0) {
        delivery_status_set(st, 4, "4.3.0", "virtual_mailbox_maps lookup failure for %s", rcpt);
        goto out;
    }
    if (found == 0) {
        delivery_status_set(st, 5, "5.1.1", "unknown user: \"%s\"", rcpt);
        goto out;
    }
    if (virtual_mailbox_path(cfg->base, sb_str(&value), mb->path, sizeof(mb->path), &mb->maildir,
                             &why) < 0) {
        delivery_status_set(st, 4, "4.3.5", "mail system configuration error: the mailbox \"%s\" "
                            "of %s in virtual_mailbox_maps %s", sb_str(&value), rcpt, sb_str(&why));
        goto out;
    }
    static const char *const params[2] = { "virtual_uid_maps", "virtual_gid_maps" };
    struct maplist *tables[2] = { cfg->uid_maps, cfg->gid_maps };
    long long ids[2];
    for (int i = 0; i < 2; i++) {
        int r = find_id(tables[i], keys, nkeys, &ids[i]);
        if (r == -3) {
            delivery_status_set(st, 4, "4.3.0", "%s lookup failure for %s", params[i], rcpt);
            goto out;
        }
        if (r == -1) {
            delivery_status_set(st, 4, "4.3.5", "mail system configuration error: %s has no %s "
                                "for %s", params[i], i == 0 ? "uid" : "gid", rcpt);
            goto out;
        }
        if (r < 0) {
            delivery_status_set(st, 4, "4.3.5", "mail system configuration error: %s gives %s a "
                                "bad %s (not a number)", params[i], rcpt, i == 0 ? "uid" : "gid");
            goto out;
        }
    }
    long long minimum = cfg->minimum_uid > 0 ? cfg->minimum_uid : 1;
    if (ids[0] < minimum) {
        delivery_status_set(st, 4, "4.3.5", "mail system configuration error: virtual_uid_maps "
                            "gives %s uid %lld, below virtual_minimum_uid (%lld): not delivered",
                            rcpt, ids[0], minimum);
        goto out;
    }
    mb->uid = (uid_t)ids[0];
    mb->gid = (gid_t)ids[1];
    rc = 0;
out:
    sb_free(&value);
    sb_free(&why);
    return rc;
}
