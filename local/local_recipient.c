/* local_recipient.c: what happens to one recipient of a delivery request:
 * mail loop check (Delivered-To:), aliases, the user's .forward, :include:
 * files, then the leaves: mailboxes, files and commands, each logged on its
 * own line; addresses outside our domains are forwarded through cleanup.
 * The recipient's outcome combines its leaves: any deferral defers it (all
 * of it is tried again), else any bounce returns it, else it was delivered.
 *
 * An alias, .forward or :include: that names itself (directly or through
 * others) is not expanded again inside its own expansion: "user: user, x"
 * delivers to user's mailbox and to x, as in Postfix. Identical leaves
 * (one mailbox, one file or one command as one user) are delivered once
 * per request; a repeat takes the first one's outcome.
 *
 * An address verification probe (DELIVER_FLAG_VERIFY) takes the same way
 * through aliases, .forward and :include: files, but its leaves only say
 * where the mail would go ("delivers to mailbox", "aliased to ADDRESS",
 * ...): no mailbox, file or command is written, nothing is forwarded. An
 * unknown user is undeliverable, as for any message. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "deliver_pass.h"
#include "deliver_request.h"
#include "resolve.h"
#include "local.h"
#include "log.h"
#include "util.h"

#define DUP_FILTER_MAX 10000

/* ---- duplicate leaves, per request ---- */

struct dup_entry {
    char *key;
    struct delivery_status res;
};
struct dup_filter {
    struct dup_entry *items;
    size_t n, cap;
};

void *local_dup_filter_new(void)
{
    return xcalloc(1, sizeof(struct dup_filter));
}

void local_dup_filter_free(void *p)
{
    struct dup_filter *f = p;
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->items[i].key);
    free(f->items);
    free(f);
}

static const struct delivery_status *dup_find(struct dup_filter *f, const char *key)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->items[i].key, key) == 0)
            return &f->items[i].res;
    return NULL;
}

static void dup_add(struct dup_filter *f, const char *key, const struct delivery_status *res)
{
    if (f->n >= DUP_FILTER_MAX)
        return;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->items = xrealloc(f->items, f->cap * sizeof(*f->items));
    }
    f->items[f->n].key = xstrdup(key);
    f->items[f->n].res = *res;
    f->n++;
}

/* ---- one request recipient ---- */

struct top {
    const struct local_message *msg;
    const struct deliver_rcpt *rcpt;  /* the request's recipient */
    const char *address;          /* as the request gave it */
    const char *orig;             /* original recipient, for orig_to= */
    char *delivered_to;
    struct dup_filter *dups;
    struct local_aliases *aliases;
    size_t work;                  /* destinations handled, all levels */
    struct delivery_status combined;
    bool any;
    char **forwards;              /* addresses to send on through cleanup */
    size_t nforwards;
};

/* The chain of expansions that led to a destination, innermost first. */
struct origin {
    const struct origin *parent;
    enum local_class class;
    const struct local_user *privs;  /* for files and commands (NULL at the top) */
    const char *key;                 /* "alias:x", "forward:user", "include:/path" */
    const char *address;             /* the address that was expanded */
    const char *local, *extension, *domain;
};

static bool in_chain(const struct origin *o, const char *key)
{
    for (; o; o = o->parent)
        if (o->key && strcmp(o->key, key) == 0)
            return true;
    return false;
}

static void combine(struct top *t, const struct delivery_status *r)
{
    int have = t->any ? t->combined.status : 0;
    bool worse = !t->any || (r->status == 4 && have != 4) || (r->status == 5 && have == 2);
    if (worse)
        t->combined = *r;
    t->any = true;
}

/* A destination this request already delivered to (key names it): its
 * first result counts for this recipient too, and true. */
static bool repeated(struct top *t, const char *key)
{
    const struct delivery_status *seen = dup_find(t->dups, key);
    if (seen)
        combine(t, seen);
    return seen != NULL;
}

static void leaf_done(struct top *t, const char *to, const struct delivery_status *r)
{
    local_log_delivery(t->msg, to, strcasecmp(to, t->orig) != 0 ? t->orig : NULL, r);
    combine(t, r);
}

static void leaf_fail(struct top *t, const char *to, int status, const char *dsn, const char *text)
{
    struct delivery_status r;
    delivery_status_set(&r, status, dsn, "%s", text);
    leaf_done(t, to, &r);
}

static void delivery_for(struct local_delivery *d, const struct top *t, const struct origin *o)
{
    d->msg = t->msg;
    d->delivered_to = t->delivered_to;
    d->orig_to = t->orig;
    d->address = o->address;
    d->local = o->local;
    d->extension = o->extension;
    d->domain = o->domain;
}

static void add_forward(struct top *t, const char *address)
{
    for (size_t i = 0; i < t->nforwards; i++)
        if (strcasecmp(t->forwards[i], address) == 0)
            return;
    if (t->nforwards >= LOCAL_DEST_MAX) {
        leaf_fail(t, address, 5, "5.3.0", "too many forwarding destinations");
        return;
    }
    t->forwards = xrealloc(t->forwards, (t->nforwards + 1) * sizeof(*t->forwards));
    t->forwards[t->nforwards++] = xstrdup(address);
}

static void deliver_address(struct top *t, const char *text, bool direct, const struct origin *o,
                            int depth);

/* ---- files and commands ---- */

/* Files and commands never run as root: default_privs stands in. */
static int leaf_identity(const struct origin *o, struct local_user *as, struct delivery_status *res)
{
    if (o->privs && o->privs->uid != 0) {
        local_user_copy(as, o->privs);
        return 0;
    }
    return local_default_privs(as, res);
}

static void deliver_file_or_command(struct top *t, const struct local_dest *dest,
                                    const struct origin *o)
{
    bool command = dest->kind == DEST_COMMAND;
    unsigned allowed = command ? local_cfg.commands_allowed : local_cfg.files_allowed;
    struct delivery_status res;
    if (!(allowed & o->class)) {
        leaf_fail(t, o->address, 5, "5.7.1", command ? "mail to command is restricted"
                                                     : "mail to file is restricted");
        return;
    }
    if (t->msg->probe) {
        delivery_status_set(&res, 2, "2.0.0", "delivers to %s %s", command ? "command" : "file",
                            dest->value);
        leaf_done(t, o->address, &res);
        return;
    }
    struct local_user as;
    if (leaf_identity(o, &as, &res) < 0) {
        leaf_done(t, o->address, &res);
        return;
    }
    struct strbuf key = STRBUF_INIT(LOCAL_ITEM_MAX + 64);
    sb_appendf(&key, "%s:%ld:%s", command ? "command" : "file", (long)as.uid, dest->value);
    if (!repeated(t, sb_str(&key))) {
        struct local_delivery d;
        delivery_for(&d, t, o);
        if (command)
            local_pipe_deliver(&d, dest->value, &as, &res);
        else
            local_file_deliver(&d, dest->value, &as, &res);
        dup_add(t->dups, sb_str(&key), &res);
        leaf_done(t, o->address, &res);
    }
    sb_free(&key);
    local_user_free(&as);
}

static void deliver_list(struct top *t, const struct dest_list *l, const struct origin *o, int depth);

/* Deliver to what o expanded into (an alias, a .forward, an include file):
 * each destination is a child of o of that class, run with privs, and key
 * names the expansion so that a loop back to it is found. */
static void deliver_expansion(struct top *t, const struct dest_list *l, const struct origin *o,
                              enum local_class class, const struct local_user *privs,
                              const char *key, int depth)
{
    struct origin child = *o;
    child.parent = o;
    child.class = class;
    child.privs = privs;
    child.key = key;
    deliver_list(t, l, &child, depth + 1);
}

static void deliver_include(struct top *t, const char *path, const struct origin *o, int depth)
{
    struct strbuf key = STRBUF_INIT(LOCAL_ITEM_MAX + 16);
    sb_appendf(&key, "include:%s", path);
    if (in_chain(o, sb_str(&key))) {
        leaf_fail(t, o->address, 5, "5.4.6", "mail forwarding loop: an include file includes itself");
        sb_free(&key);
        return;
    }
    struct local_user reader = { 0 }, owner = { 0 };
    struct dest_list dests = { 0 };
    struct delivery_status res;
    if (leaf_identity(o, &reader, &res) == 0
        && local_include_read(t->msg, path, &reader, &dests, &owner, &res) == 0) {
        deliver_expansion(t, &dests, o, LOCAL_CLASS_INCLUDE, &owner, sb_str(&key), depth);
        local_user_free(&owner);
    } else {
        leaf_done(t, o->address, &res);
    }
    local_dest_list_free(&dests);
    local_user_free(&reader);
    sb_free(&key);
}

static void deliver_dest(struct top *t, const struct local_dest *dest, const struct origin *o,
                         int depth)
{
    if (++t->work > LOCAL_LEAF_MAX) {
        if (t->work == LOCAL_LEAF_MAX + 1)
            leaf_fail(t, o->address, 5, "5.3.0", "too many destinations in alias, forward or "
                      "include expansion");
        return;
    }
    if (depth > LOCAL_DEPTH_MAX) {
        leaf_fail(t, o->address, 5, "5.4.6", "mail forwarding loop: too many levels of alias, "
                  "forward or include nesting");
        return;
    }
    switch (dest->kind) {
    case DEST_ADDRESS:
        deliver_address(t, dest->value, dest->direct, o, depth);
        break;
    case DEST_FILE:
    case DEST_COMMAND:
        deliver_file_or_command(t, dest, o);
        break;
    case DEST_INCLUDE:
        deliver_include(t, dest->value, o, depth);
        break;
    }
}

static void deliver_list(struct top *t, const struct dest_list *l, const struct origin *o, int depth)
{
    for (size_t i = 0; i < l->n; i++)
        deliver_dest(t, &l->items[i], o, depth);
}

/* ---- aliases, .forward, mailbox ---- */

/* 1 expanded (or failed, logged), 0 not an alias here. */
static int try_alias(struct top *t, const struct origin *self, const char *base, int depth)
{
    const char *keys[2] = { self->local, strcmp(base, self->local) != 0 ? base : NULL };
    struct strbuf value = STRBUF_INIT(0), key = STRBUF_INIT(ADDRESS_MAX_LEN + 16);
    struct strbuf err = STRBUF_INIT(1024);
    int rc = 0;
    for (int i = 0; i < 2 && keys[i] && rc == 0; i++) {
        sb_reset(&key);
        sb_appendf(&key, "alias:%s", keys[i]);
        if (in_chain(self, sb_str(&key)))
            continue;           /* "x: x, ...": here x is the user */
        if (!t->aliases)
            t->aliases = local_aliases_open();
        struct local_user owner = { 0 };
        struct delivery_status res;
        int found = local_alias_lookup(t->aliases, keys[i], &value, &owner, &res);
        if (found < 0) {
            leaf_done(t, self->address, &res);
            rc = 1;
        } else if (found > 0) {
            struct dest_list dests = { 0 };
            rc = 1;
            if (local_expand_parse(sb_str(&value), value.len, 0, &dests, &err) < 0 || dests.n == 0) {
                const char *why = dests.n == 0 && err.len == 0 ? "no destinations" : sb_str(&err);
                delivery_status_set(&res, 4, "4.3.5", "alias %s: %s", keys[i], why);
                leaf_done(t, self->address, &res);
            } else {
                deliver_expansion(t, &dests, self, LOCAL_CLASS_ALIAS, &owner, sb_str(&key), depth);
            }
            local_dest_list_free(&dests);
            local_user_free(&owner);
        }
    }
    sb_free(&value);
    sb_free(&key);
    sb_free(&err);
    return rc;
}

static int try_forward(struct top *t, const struct origin *self, const struct local_user *user,
                       int depth)
{
    struct strbuf key = STRBUF_INIT(ADDRESS_MAX_LEN + 16);
    sb_appendf(&key, "forward:%s", user->name);
    int rc = 0;
    if (!in_chain(self, sb_str(&key))) {
        struct local_delivery d;
        struct dest_list dests = { 0 };
        struct delivery_status res;
        delivery_for(&d, t, self);
        int found = local_forward_read(&d, user, &dests, &res);
        if (found < 0) {
            leaf_done(t, self->address, &res);
            rc = 1;
        } else if (found > 0) {
            deliver_expansion(t, &dests, self, LOCAL_CLASS_FORWARD, user, sb_str(&key), depth);
            rc = 1;
        }
        local_dest_list_free(&dests);
    }
    sb_free(&key);
    return rc;
}

static void deliver_mailbox(struct top *t, const struct origin *self, const struct local_user *user)
{
    struct strbuf key = STRBUF_INIT(ADDRESS_MAX_LEN + 16);
    sb_appendf(&key, "mailbox:%s", user->name);
    if (t->msg->probe) {
        leaf_fail(t, self->address, 2, "2.0.0", "delivers to mailbox");
    } else if (!repeated(t, sb_str(&key))) {
        struct local_delivery d;
        struct delivery_status res;
        const char *what;
        delivery_for(&d, t, self);
        local_mailbox_deliver(&d, user, &res, &what);
        dup_add(t->dups, sb_str(&key), &res);
        leaf_done(t, self->address, &res);
    }
    sb_free(&key);
}

/* mailbox_transport: the mailbox delivery goes to that transport's agent
 * (deliver_pass.h), which logs it; the request's R record stays ours to
 * mark. The original recipient goes with it, for orig_to= and DSN. */
static void pass_mailbox(struct top *t, const struct origin *self)
{
    struct strbuf key = STRBUF_INIT(ADDRESS_MAX_LEN + 16), orcpt = STRBUF_INIT(0);
    sb_appendf(&key, "transport:%s", self->address);
    if (t->msg->probe) {
        struct delivery_status res;
        delivery_status_set(&res, 2, "2.0.0", "delivers to mailbox_transport %s",
                            local_cfg.mailbox_transport);
        combine(t, &res);
    } else if (!repeated(t, sb_str(&key))) {
        struct delivery_status pr;
        struct delivery_status res;
        if (*t->rcpt->orcpt)
            sb_appends(&orcpt, t->rcpt->orcpt);
        else
            sb_appendf(&orcpt, "rfc822;%s", t->rcpt->address);
        deliver_pass(local_cfg.mailbox_transport, self->domain, t->msg->id, t->msg->queue_path,
                     t->msg->sender, self->address, sb_str(&orcpt), t->rcpt->notify,
                     t->rcpt->offset, local_cfg.ipc_timeout, &pr);
        delivery_status_set(&res, pr.status, pr.dsn, "%s", pr.reason);
        dup_add(t->dups, sb_str(&key), &res);
        combine(t, &res);
    }
    sb_free(&key);
    sb_free(&orcpt);
}

/* The local part up to the first recipient_delimiter character (never the
 * first character: "+foo" is a name, not an extension). */
static char *split_extension(const char *local, const char **extension)
{
    const char *delims = local_cfg.recipient_delimiter;
    size_t n = *delims && *local ? 1 + strcspn(local + 1, delims) : strlen(local);
    *extension = local[n] ? local + n + 1 : "";
    return xstrndup(local, n);
}

/* Whether an address found in an expansion leaves this host: the resolver
 * says it is not local. A bare name ("user" in an alias) stays here as it
 * always has, unless its own sender routing takes it away. */
static bool goes_elsewhere(const struct address *a, const struct resolve_result *r)
{
    if ((a->flags & ADDR_F_NODOMAIN) && !(r->flags & RESOLVE_F_ROUTED))
        return false;
    return r->class != RESOLVE_LOCAL;
}

static void deliver_address(struct top *t, const char *text, bool direct, const struct origin *o,
                            int depth)
{
    struct address a;
    struct resolve_result rr;
    const char *why = NULL;
    if (address_parse(text, strlen(text), ADDR_ALLOW_BARE | ADDR_ALLOW_NODOMAIN | ADDR_ALLOW_UTF8,
                      &a, &why) != ADDR_OK) {
        leaf_fail(t, text, 5, "5.1.3", why ? why : "bad address syntax");
        return;
    }
    /* The one resolver gives the local part as delivery sees it:
     * "user%localhost@localhost" is user's, as smtpd and qmgr saw it. */
    if (resolve_address(&a, &rr) < 0) {
        leaf_fail(t, depth == 0 ? t->address : a.address, 4, "4.3.0", rr.why);
        address_free(&a);
        return;
    }
    if (rr.class == RESOLVE_BAD) {
        leaf_fail(t, depth == 0 ? t->address : a.address, 5, "5.1.3", rr.why);
        address_free(&a);
        return;
    }
    if (depth > 0 && goes_elsewhere(&a, &rr)) {
        add_forward(t, a.address);
        resolve_result_free(&rr);
        address_free(&a);
        return;
    }
    /* At the top a recipient that the resolver does not call local came
     * here through transport_maps: its own local part is the name. */
    const char *local = rr.class == RESOLVE_LOCAL ? rr.local_lc : a.local_lc;
    const char *domain = rr.class == RESOLVE_LOCAL ? rr.domain : *a.domain ? a.domain : rr.domain;
    struct strbuf full = STRBUF_INIT(ADDRESS_MAX_LEN + 300);
    if (depth == 0)
        sb_appends(&full, t->address);
    else
        sb_appendf(&full, "%s@%s", local, domain);
    const char *extension;
    char *base = split_extension(local, &extension);
    struct origin self = { .parent = o, .class = o->class, .privs = o->privs, .key = NULL,
                           .address = sb_str(&full), .local = local, .extension = extension,
                           .domain = domain };
    struct local_user user = { 0 };
    struct strbuf text_buf = STRBUF_INIT(DELIVERY_REASON_MAX);
    if (!direct && try_alias(t, &self, base, depth))
        goto out;
    /* As Postfix: mailbox_transport takes every mailbox, Unix account or
     * not; .forward needs the account. A request passed here by an agent
     * (mailbox_transport = local, a mistake) is not passed on again. */
    bool pass = *local_cfg.mailbox_transport && !t->msg->passed;
    bool known = local_user_by_name(base, &user) == 0;
    if (!known && !pass) {
        sb_appendf(&text_buf, "unknown user: \"%s\"", base);
        leaf_fail(t, self.address, 5, "5.1.1", sb_str(&text_buf));
        goto out;
    }
    if (known && !direct && try_forward(t, &self, &user, depth))
        goto out;
    if (pass)
        pass_mailbox(t, &self);
    else
        deliver_mailbox(t, &self, &user);
out:
    local_user_free(&user);
    sb_free(&text_buf);
    free(base);
    sb_free(&full);
    resolve_result_free(&rr);
    address_free(&a);
}

/* ---- the request recipient ---- */

static void forward_all(struct top *t)
{
    if (t->nforwards == 0)
        return;
    if (t->msg->probe) {       /* where it would go is the answer; nothing is sent */
        for (size_t i = 0; i < t->nforwards; i++) {
            struct strbuf text = STRBUF_INIT(DELIVERY_REASON_MAX);
            sb_appendf(&text, "aliased to %s", t->forwards[i]);
            leaf_fail(t, t->forwards[i], 2, "2.0.0", sb_str(&text));
            sb_free(&text);
        }
        return;
    }
    struct strbuf err = STRBUF_INIT(DELIVERY_REASON_MAX);
    char id[24] = "";
    struct delivery_status res;
    if (local_resubmit(t->msg, t->delivered_to, (const char *const *)t->forwards, t->nforwards,
                       id, &err) == 0)
        delivery_status_set(&res, 2, "2.0.0", "forwarded as %s", id);
    else
        delivery_status_set(&res, 4, "4.3.0", "cannot forward: %s", sb_str(&err));
    for (size_t i = 0; i < t->nforwards; i++)
        leaf_done(t, t->forwards[i], &res);
    sb_free(&err);
}

void local_recipient_deliver(const struct local_message *msg, const struct deliver_rcpt *r,
                             void *dup_filter, struct delivery_status *res)
{
    struct top t = { .msg = msg, .rcpt = r, .address = r->address, .dups = dup_filter };
    t.orig = strncasecmp(r->orcpt, "rfc822;", 7) == 0 && r->orcpt[7] ? r->orcpt + 7 : r->address;
    t.delivered_to = str_lower(xstrdup(r->address));
    if (mailbox_delivered_seen(msg->delivered_to, msg->ndelivered, t.delivered_to)) {
        struct strbuf text = STRBUF_INIT(DELIVERY_REASON_MAX);
        sb_appendf(&text, "mail forwarding loop for %s", r->address);
        leaf_fail(&t, r->address, 5, "5.4.6", sb_str(&text));
        sb_free(&text);
    } else {
        struct origin top = { .class = LOCAL_CLASS_NONE, .address = r->address,
                              .local = "", .extension = "", .domain = "" };
        deliver_address(&t, r->address, false, &top, 0);
        forward_all(&t);
    }
    if (!t.any)
        leaf_fail(&t, r->address, 2, "2.0.0", "delivered to nobody: the expansion is empty");
    *res = t.combined;
    local_aliases_close(t.aliases);
    for (size_t i = 0; i < t.nforwards; i++)
        free(t.forwards[i]);
    free(t.forwards);
    free(t.delivered_to);
}
