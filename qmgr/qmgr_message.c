/* qmgr_message.c: messages in the active queue. Each message in active/ is
 * loaded, its pending recipients routed once each (qmgr_resolve.c: the
 * built-in transports "error" and "retry" are decided here, as Postfix's
 * error(8) and retry(8) would) and grouped into jobs per destination, at
 * most TRANSPORT_destination_recipient_limit recipients per job
 * (qmgr_dest.c runs them). When every job of a message is over, the
 * message is finished: notices go to the sender as NOTIFY asks (failures,
 * successes when asked, one delay warning after delay_warning_time), and
 * the message is removed (all final) or deferred (moved to deferred/ with
 * its next retry time as the file's mtime). An address verification probe
 * (verify_probe attribute) is finished differently: each outcome goes to
 * the verify service, never into a notice, and the probe is removed even
 * when it was deferred (verify sends a new one when the result is due for
 * a refresh), so that probes never pile up in the queue. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cleanup_client.h"
#include "config.h"
#include "resolve.h"
#include "log.h"
#include "log_delivery.h"
#include "metrics_client.h"
#include "qmgr.h"
#include "qmgr_message.h"
#include "qmgr_dsn.h"
#include "qmgr_route.h"
#include "qmgr_sched.h"
#include "soft_bounce.h"
#include "queue.h"
#include "strbuf.h"
#include "util.h"
#include "verify_proto.h"

#define MSG_BUCKETS 4096

static struct {
    long in_memory;                 /* messages */
    long rcpts_in_memory;           /* their recipients */
    long rcpt_limit;                /* qmgr_message_recipient_limit */
    bool refused;                   /* a scan stopped at a limit: scan again when room is made */
    struct qmsg *by_id[MSG_BUCKETS];
} qd;

static unsigned msg_bucket(const char *id)
{
    unsigned h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % MSG_BUCKETS;
}

static struct qmsg *msg_find(const char *id)
{
    for (struct qmsg *q = qd.by_id[msg_bucket(id)]; q; q = q->hash_next)
        if (strcmp(q->id, id) == 0)
            return q;
    return NULL;
}

static void msg_forget(struct qmsg *q)
{
    for (struct qmsg **p = &qd.by_id[msg_bucket(q->id)]; *p; p = &(*p)->hash_next)
        if (*p == q) {
            *p = q->hash_next;
            return;
        }
}

long qmgr_message_in_memory(void)
{
    return qd.in_memory;
}

bool qmgr_message_may_take(void)
{
    /* At least one message is always taken, however many recipients it has. */
    if (qd.in_memory == 0 || qd.rcpts_in_memory < qd.rcpt_limit)
        return true;
    qd.refused = true;
    return false;
}

void qmgr_message_init(struct event_base *base)
{
    qmgr_dest_init(base);
    resolve_init();
    qmgr_resolve_init();
    qd.rcpt_limit = cfg_int(P_qmgr_message_recipient_limit);
    if (qd.rcpt_limit < 1)
        qd.rcpt_limit = 1;
}

void qmgr_message_set_outcome(struct qmsg *q, size_t i, int status, const char *dsn,
                              const char *reason, const char *relay, const char *action,
                              bool logged)
{
    struct outcome *o = &q->out[i];
    /* The new strings may be the old ones (expire_recipient passes o->dsn
     * and o->relay back): copy before freeing. */
    char *new_dsn = xstrdup(dsn), *new_reason = xstrdup(reason);
    char *new_relay = xstrdup(relay ? relay : ""), *new_action = action ? xstrdup(action) : NULL;
    free(o->dsn);
    free(o->reason);
    free(o->relay);
    free(o->action);
    o->status = status;
    o->dsn = new_dsn;
    o->reason = new_reason;
    o->relay = new_relay;
    o->action = new_action;
    o->logged = logged;
}

static void finish_message(struct qmsg *q);

void qmgr_message_job_over(struct qmsg *q)
{
    if (--q->jobs_left == 0)
        finish_message(q);
}

/* The delivery log line for an outcome qmgr decided itself (no agent
 * logged it), in the agents' shape. */
static void log_outcome(const struct qmsg *q, size_t i, const char *status_word)
{
    const struct outcome *o = &q->out[i];
    struct delivery_delays delays = { .queued = now_usec() - q->m.arrival_usec };
    log_delivery(q->id, q->m.rcpts[i].address, NULL, "none", 0, &delays, o->dsn, status_word,
                 o->reason);
}

/* A recipient's outcome in the metrics: by status, transport and domain,
 * and for a delivery, its delay since arrival. */
static void count_outcome(const struct qmsg *q, size_t i)
{
    const struct outcome *o = &q->out[i];
    const char *at = strrchr(q->m.rcpts[i].address, '@');
    char domain[METRIC_LABEL_MAX + 1];
    str_copy(domain, sizeof(domain), at && at[1] ? at + 1 : "none");
    str_lower(domain);
    const char *status = o->status == 2 ? "sent" : o->status == 4 ? "deferred" : "bounced";
    METRICS_ADD(M_QMGR_DELIVERIES, 1, status, o->transport ? o->transport : "none", domain);
    if (o->status == 2)
        metrics_observe(M_QMGR_DELAY, (now_usec() - q->m.arrival_usec) / 1000, NULL);
}

/* ---- messages ---- */

static void qmsg_free(struct qmsg *q)
{
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        free(q->out[i].dsn);
        free(q->out[i].reason);
        free(q->out[i].relay);
        free(q->out[i].action);
        free(q->out[i].transport);
    }
    free(q->out);
    msg_forget(q);
    qd.rcpts_in_memory -= (long)q->m.nrcpts;
    qmessage_free(&q->m);
    free(q);
    qd.in_memory--;
    bool was_full = qd.refused || qmgr_queue.active_count >= qmgr_queue.active_limit;
    if (qmgr_queue.active_count > 0)
        qmgr_queue.active_count--;
    if (was_full) {
        qd.refused = false;
        qmgr_request_scan();
    }
}

/* error:TEXT and retry:TEXT, decided here: the class digit of a leading
 * X.Y.Z in TEXT is forced to 5 or 4; without one, 5.0.0 or 4.0.0. */
static void builtin_transport(struct qmsg *q, size_t i, const struct qmgr_route *route)
{
    bool bounce = strcmp(route->transport, "error") == 0;
    const char *text = route->nexthop;
    char dsn[16];
    size_t n = strspn(text, "0123456789.");
    if (n >= 5 && n < sizeof(dsn) && (text[n] == ' ' || !text[n]) && text[1] == '.') {
        memcpy(dsn, text, n);
        dsn[n] = 0;
        text += n;
        while (*text == ' ')
            text++;
    } else {
        str_copy(dsn, sizeof(dsn), "0.0.0");
    }
    dsn[0] = bounce ? '5' : '4';
    if (!*text)
        text = bounce ? "mail for this destination is not deliverable" : "delivery is deferred";
    qmgr_message_set_outcome(q, i, soft_bounce_status(bounce ? 5 : 4, dsn), dsn, text, NULL, NULL,
                             false);
}

static bool is_builtin_transport(const char *t)
{
    return strcmp(t, "error") == 0 || strcmp(t, "retry") == 0;
}

/* Route every pending recipient once; returns each one's destination
 * (NULL when it was decided here). */
static struct dest **route_recipients(struct qmsg *q)
{
    struct dest **dests = xcalloc(q->m.nrcpts + 1, sizeof(*dests));
    struct strbuf why = STRBUF_INIT(1024);
    /* a probe asks where the mail would be delivered: never a filter */
    const char *filter = qmgr_message_probe(q) ? NULL : qmessage_attr(&q->m, "content_filter");
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        if (q->m.rcpts[i].done)
            continue;
        struct qmgr_route route;
        const char *rcpt = q->m.rcpts[i].address;
        switch (filter && *filter ? qmgr_resolve_filter(rcpt, filter, &route, &why)
                : qmgr_message_probe(q) ? qmgr_resolve_probe(rcpt, &route, &why)
                                        : qmgr_resolve(rcpt, &route, &why)) {
        case QMGR_ROUTE_BAD: {
            char dsn[] = "5.1.3";
            qmgr_message_set_outcome(q, i, soft_bounce_status(5, dsn), dsn, "bad address syntax",
                                     NULL, NULL, false);
            continue;
        }
        case QMGR_ROUTE_TEMP:
            qmgr_message_set_outcome(q, i, 4, "4.3.0", sb_str(&why), NULL, NULL, false);
            continue;
        case QMGR_ROUTE_OK:
            break;
        }
        q->out[i].transport = xstrdup(route.transport);
        if (is_builtin_transport(route.transport))
            builtin_transport(q, i, &route);
        else
            dests[i] = qmgr_dest_get(route.transport, route.nexthop);
        qmgr_route_free(&route);
    }
    sb_free(&why);
    return dests;
}

void qmgr_message_add(const char *id, struct qmessage *loaded)
{
    struct strbuf path = STRBUF_INIT(0), err = STRBUF_INIT(1024);
    sb_appendf(&path, "%s/%s", QDIR_ACTIVE, id);
    struct qmsg *q = xcalloc(1, sizeof(*q));
    str_copy(q->id, sizeof(q->id), id);
    qd.in_memory++;
    unsigned b = msg_bucket(q->id);
    q->hash_next = qd.by_id[b];
    qd.by_id[b] = q;
    if (loaded) {
        q->m = *loaded;                 /* taken over: the file is read once */
        memset(loaded, 0, sizeof(*loaded));
    } else if (qmessage_load(path.data, &q->m, &err) < 0 || !q->m.complete) {
        msg_warn("%s: cannot read %s: %s", id, path.data, sb_str(&err));
        qmsg_free(q);
        goto out;
    }
    qd.rcpts_in_memory += (long)q->m.nrcpts;
    q->out = xcalloc(q->m.nrcpts ? q->m.nrcpts : 1, sizeof(*q->out));
    struct dest **dests = route_recipients(q);
    size_t *idx = xmalloc((q->m.nrcpts + 1) * sizeof(size_t));
    struct dest **touched = xcalloc(q->m.nrcpts + 1, sizeof(*touched));
    size_t ntouched = 0;
    /* Group recipients with the same destination, a job per recipient limit. */
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        struct dest *d = dests[i];
        if (!d)
            continue;
        long per_job = qmgr_transport_param(d->transport, "destination_recipient_limit",
                                       cfg_int(P_default_destination_recipient_limit));
        if (per_job < 1)
            per_job = 1;
        size_t n = 0;
        for (size_t k = i; k < q->m.nrcpts; k++) {
            if (dests[k] != d)
                continue;
            dests[k] = NULL;
            idx[n++] = k;
            if ((long)n == per_job) {
                qmgr_dest_enqueue(d, q, idx, n);
                n = 0;
            }
        }
        if (n)
            qmgr_dest_enqueue(d, q, idx, n);
        touched[ntouched++] = d;
    }
    free(idx);
    free(dests);
    if (q->jobs_left == 0)
        finish_message(q);      /* everything was decided here */
    else
        for (size_t i = 0; i < ntouched; i++)
            qmgr_dest_dispatch(touched[i]);    /* q may be finished and freed after this */
    free(touched);
out:
    sb_free(&path);
    sb_free(&err);
}

/* ---- finishing: notices, defer, remove ---- */

/* name=value, with any TAB, CR or LF of the value made a space: a field
 * (an address, a remote server's text) can never break its line apart. */
static void log_field(struct strbuf *line, const char *name, const char *value, bool last)
{
    sb_appends(line, name);
    sb_appendc(line, '=');
    for (const char *p = value; *p; p++)
        sb_appendc(line, *p == '\t' || *p == '\r' || *p == '\n' ? ' ' : *p);
    sb_appendc(line, last ? '\n' : '\t');
}

/* defer/ID and bounce/ID: one line per recipient and attempt (lib/global/QUEUE.md). */
static void append_log(const char *dir, const char *id, const struct qrcpt *r,
                       const struct outcome *o)
{
    char path[128], when[32];
    snprintf(path, sizeof(path), "%s/%s", dir, id);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        msg_warn("%s: cannot write %s: %m", id, path);
        return;
    }
    struct strbuf line = STRBUF_INIT(0);
    snprintf(when, sizeof(when), "%lld", now_usec() / 1000000);
    log_field(&line, "time", when, false);
    log_field(&line, "recipient", r->address, false);
    log_field(&line, "status", o->dsn, false);
    log_field(&line, "relay", *o->relay ? o->relay : "none", false);
    log_field(&line, "reason", o->reason, true);
    if (write_all(fd, line.data, line.len) < 0)
        msg_warn("%s: cannot write %s: %m", id, path);
    close(fd);
    sb_free(&line);
}

static bool is_double_bounce_sender(const char *sender)
{
    const char *dbs = cfg_str(P_double_bounce_sender);
    size_t n = strlen(dbs);
    return strncasecmp(sender, dbs, n) == 0 && (sender[n] == '@' || sender[n] == 0);
}

/* Whether a recipient's NOTIFY (RFC 3461: "" when absent, NEVER, or a list
 * of SUCCESS, FAILURE, DELAY) asks for this kind of notice. Without NOTIFY,
 * failures and delays are reported and successes are not, as in Postfix. */
static bool notify_wants(const char *notify, const char *word)
{
    if (!*notify)
        return strcmp(word, "SUCCESS") != 0;
    size_t n = strlen(word);
    for (const char *p = notify; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncasecmp(p, word, n) == 0)
            return true;
        p += len;
        if (*p == ',')
            p++;
    }
    return false;
}

static const char *action_name(enum dsn_action action)
{
    return action == DSN_FAILED ? "non-delivery" : action == DSN_DELAYED ? "delay"
                                                 : "delivery status";
}

static void send_notice(struct qmsg *q, enum dsn_action action, struct dsn_rcpt *rcpts, size_t n)
{
    const char *sender = q->m.sender;
    if (is_double_bounce_sender(sender)) {
        msg_info("%s: undeliverable postmaster notification discarded", q->id);
        return;
    }
    /* Mail from <> gets no notices, except that its failure goes to the
     * postmaster (a double bounce), never back into a loop. */
    bool is_bounce_of_bounce = *sender == 0;
    if (is_bounce_of_bounce && action != DSN_FAILED)
        return;
    const char *to = is_bounce_of_bounce ? cfg_str(P_bounce_notice_recipient) : sender;
    char from[512] = "";
    if (is_bounce_of_bounce)
        snprintf(from, sizeof(from), "%s@%s", cfg_str(P_double_bounce_sender), cfg_str(P_myorigin));
    const char *ret = qmessage_attr(&q->m, "ret");
    /* RFC 8689 section 5: the notice of a REQUIRETLS message returns its
     * header only (RET=FULL is disregarded) and is itself sent with
     * REQUIRETLS */
    const char *requiretls = qmessage_attr(&q->m, "requiretls");
    bool with_requiretls = requiretls && strcmp(requiretls, "yes") == 0;
    long long expires = q->m.arrival_usec
                        + (long long)cfg_time(P_maximal_queue_lifetime) * 1000000;
    struct dsn_report rep = {
        .action = action, .queue_id = q->id, .sender = sender, .arrival_usec = q->m.arrival_usec,
        .retry_until_usec = action == DSN_DELAYED ? expires : 0,
        .envid = qmessage_attr(&q->m, "envid"),
        /* Only a failure returns the whole message, and only when RET allows. */
        .headers_only = action != DSN_FAILED || (ret && strcmp(ret, "HDRS") == 0) || with_requiretls
                        || (long long)q->m.content_size > cfg_size(P_bounce_size_limit),
        .rcpts = rcpts, .nrcpts = n,
    };
    struct strbuf text = STRBUF_INIT(0), err = STRBUF_INIT(1024);
    char path[128], newid[QUEUE_ID_SIZE];
    snprintf(path, sizeof(path), "%s/%s", QDIR_ACTIVE, q->id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || qmgr_dsn_compose(&text, &rep, fd, q->m.content_offset) < 0) {
        msg_warn("%s: cannot read the message for its notice: %m", q->id);
    } else {
        const char *rcpt_list[1] = { to };
        static const char *const rtls_name[1] = { "requiretls" }, *const rtls_value[1] = { "yes" };
        struct cleanup_submission sub = {
            .sender = from, .rcpts = rcpt_list, .nrcpt = 1,
            .attr_names = rtls_name, .attr_values = rtls_value, .nattr = with_requiretls ? 1 : 0,
            .content = text.data, .content_len = text.len,
        };
        if (cleanup_submit(".", cfg_str(P_cleanup_service_name), &sub, newid, &err) == 0)
            msg_info("%s: sender %s notification: %s", q->id, action_name(action), newid);
        else
            msg_warn("%s: cannot send the %s notice: %s", q->id, action_name(action), sb_str(&err));
    }
    if (fd >= 0)
        close(fd);
    sb_free(&text);
    sb_free(&err);
}

static bool expired(const struct qmsg *q)
{
    long life = cfg_time(*q->m.sender ? P_maximal_queue_lifetime : P_bounce_queue_lifetime);
    return now_usec() - q->m.arrival_usec > (long long)life * 1000000;
}

/* A delay warning is due once per message, when it has waited
 * delay_warning_time and has a W record to remember the warning in. */
static bool delay_warning_due(const struct qmsg *q)
{
    long after = cfg_time(P_delay_warning_time);
    return after > 0 && q->m.warn_offset > 0 && q->m.warn_sent == 0
           && now_usec() - q->m.arrival_usec >= (long long)after * 1000000;
}

static void remember_delay_warning(struct qmsg *q)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", QDIR_ACTIVE, q->id);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || qfile_set_warned(fd, q->m.warn_offset, now_usec() / 1000000) < 0)
        msg_warn("%s: cannot record the delay warning in %s: %m", q->id, path);
    if (fd >= 0)
        close(fd);
}

static void defer_message(struct qmsg *q)
{
    char from[300], to[300];
    snprintf(from, sizeof(from), "%s/%s", QDIR_ACTIVE, q->id);
    snprintf(to, sizeof(to), "%s/%s", QDIR_DEFERRED, q->id);
    /* Back-off grows with the message's age, between the two limits; the
     * file's mtime is when the next attempt is due. */
    long age = (long)((now_usec() - q->m.arrival_usec) / 1000000);
    long lo = cfg_time(P_minimal_backoff_time), hi = cfg_time(P_maximal_backoff_time);
    long delay = age < lo ? lo : age > hi ? hi : age;
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[1] = tv[0];
    tv[1].tv_sec += delay;
    if (utimes(from, tv) < 0 || rename(from, to) < 0)
        msg_warn("%s: cannot move to %s/: %m", q->id, QDIR_DEFERRED);
}

/* Out of time: a recipient's last temporary failure becomes final. */
static void expire_recipient(struct qmsg *q, size_t i)
{
    struct outcome *o = &q->out[i];
    char why[1024], path[128];
    snprintf(why, sizeof(why), "message expired after queue lifetime: %s", o->reason);
    qmgr_message_set_outcome(q, i, 5, o->dsn, why, o->relay, NULL, true);
    snprintf(path, sizeof(path), "%s/%s", QDIR_ACTIVE, q->id);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        qfile_mark_done(fd, q->m.rcpts[i].offset);
        close(fd);
    }
    msg_info("%s: to=<%s>, relay=none, dsn=%s, status=expired, returned to sender", q->id,
             q->m.rcpts[i].address, o->dsn);
}

static void remove_message(const struct qmsg *q)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", QDIR_ACTIVE, q->id);
    if (qfile_retire(".", path) == 0)
        msg_info("%s: removed", q->id);
    snprintf(path, sizeof(path), "%s/%s", QDIR_DEFER_LOG, q->id);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%s", QDIR_BOUNCE_LOG, q->id);
    unlink(path);
}

static struct dsn_rcpt notice_rcpt(const struct qmsg *q, size_t i)
{
    const struct outcome *o = &q->out[i];
    const struct qrcpt *r = &q->m.rcpts[i];
    const char *action = NULL;
    if (o->status == 2)
        action = o->action ? o->action : strcmp(o->relay, "local") == 0 ? "delivered" : "relayed";
    return (struct dsn_rcpt){ r->address, r->orcpt, o->dsn, o->reason, o->relay, action };
}

/* `tern hold|requeue` of a message with recipients still to deliver, now
 * that no delivery of it runs: off to hold/ or back to incoming/. */
static void move_for_admin(struct qmsg *q)
{
    char from[128], to[128];
    bool hold = q->admin == QMSG_ADMIN_HOLD;
    snprintf(from, sizeof(from), "%s/%s", QDIR_ACTIVE, q->id);
    snprintf(to, sizeof(to), "%s/%s", hold ? QDIR_HOLD : QDIR_INCOMING, q->id);
    if (rename(from, to) < 0)
        msg_warn("%s: cannot move to %s: %m", q->id, to);
    else if (hold)
        msg_info("%s: placed on hold", q->id);
    else
        qmgr_request_scan();
}

#define QMGR_VERIFY_TIMEOUT 5      /* seconds for telling verify one result */

/* A probe is over: report its outcome under the address the probe was
 * sent for, and remove it. When cleanup's rewriting made several
 * recipients of the address, the worst outcome counts (any deferral,
 * else any bounce), so that an address that would bounce in part is
 * never called deliverable. */
static void finish_probe(struct qmsg *q, const char *address)
{
    const struct outcome *worst = NULL;
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        const struct outcome *o = &q->out[i];
        if (!o->status)
            continue;
        if (!o->logged)
            log_outcome(q, i, o->status == 2 ? "deliverable" : o->status == 4 ? "deferred"
                                                                              : "undeliverable");
        if (!worst || (o->status == 4 && worst->status != 4)
            || (o->status == 5 && worst->status == 2))
            worst = o;
    }
    struct strbuf why = STRBUF_INIT(1024);
    if (worst && verify_client_update(address, verify_status_of_delivery(worst->status),
                                      worst->reason, QMGR_VERIFY_TIMEOUT, &why) < 0)
        msg_warn("%s: cannot report the probe result for <%s>: %s", q->id, address, sb_str(&why));
    sb_free(&why);
    remove_message(q);
    qmsg_free(q);
}

const char *qmgr_message_probe(const struct qmsg *q)
{
    const char *address = qmessage_attr(&q->m, VERIFY_PROBE_ATTR);
    return address && *address ? address : NULL;
}

static void finish_message(struct qmsg *q)
{
    const char *probe = qmgr_message_probe(q);
    if (probe && q->admin != QMSG_ADMIN_HOLD) {
        finish_probe(q, probe);
        return;
    }
    if (q->admin == QMSG_ADMIN_DELETE) {
        /* deliveries that ran are over; nothing else is sent, not even notices */
        remove_message(q);
        qmsg_free(q);
        return;
    }
    bool held = q->admin != QMSG_ADMIN_NONE;     /* hold or requeue: it stays queued */
    size_t nfail = 0, nok = 0, ndelay = 0, ndeferred = 0, nleft = 0;
    struct dsn_rcpt *failed = xcalloc(q->m.nrcpts + 1, sizeof(*failed));
    struct dsn_rcpt *succeeded = xcalloc(q->m.nrcpts + 1, sizeof(*succeeded));
    struct dsn_rcpt *delayed = xcalloc(q->m.nrcpts + 1, sizeof(*delayed));
    bool expire = !held && expired(q), warn = !held && !expire && delay_warning_due(q);
    for (size_t i = 0; i < q->m.nrcpts; i++) {
        struct outcome *o = &q->out[i];
        const struct qrcpt *r = &q->m.rcpts[i];
        if (o->status == 0 && !r->done)
            nleft++;                 /* its delivery was called off by the administrator */
        if (o->status && !o->logged)
            log_outcome(q, i, o->status == 2 ? "sent" : o->status == 4 ? "deferred" : "bounced");
        if (o->status == 4 && expire)
            expire_recipient(q, i);
        if (o->status)
            count_outcome(q, i);
        if (o->status == 4) {
            ndeferred++;
            append_log(QDIR_DEFER_LOG, q->id, r, o);
            if (warn && notify_wants(r->notify, "DELAY"))
                delayed[ndelay++] = notice_rcpt(q, i);
        } else if (o->status == 5) {
            append_log(QDIR_BOUNCE_LOG, q->id, r, o);
            if (notify_wants(r->notify, "FAILURE"))
                failed[nfail++] = notice_rcpt(q, i);
        } else if (o->status == 2 && notify_wants(r->notify, "SUCCESS")) {
            struct dsn_rcpt d = notice_rcpt(q, i);
            if (strcmp(d.action, "notified") != 0)     /* the next MTA reports it */
                succeeded[nok++] = d;
        }
    }
    if (nfail)
        send_notice(q, DSN_FAILED, failed, nfail);
    if (nok)
        send_notice(q, DSN_DELIVERED, succeeded, nok);
    if (ndelay)
        send_notice(q, DSN_DELAYED, delayed, ndelay);
    if (warn && ndeferred)
        remember_delay_warning(q);
    free(failed);
    free(succeeded);
    free(delayed);
    if (held && ndeferred + nleft)
        move_for_admin(q);
    else if (ndeferred)
        defer_message(q);
    else
        remove_message(q);
    qmsg_free(q);
}

int qmgr_message_admin(const char *op, const char *id)
{
    enum qmsg_admin what = strcmp(op, "delete") == 0 ? QMSG_ADMIN_DELETE
                         : strcmp(op, "hold") == 0 ? QMSG_ADMIN_HOLD
                         : strcmp(op, "requeue") == 0 ? QMSG_ADMIN_REQUEUE : QMSG_ADMIN_NONE;
    if (what == QMSG_ADMIN_NONE || !queue_id_valid(id))
        return QMGR_ADMIN_BAD;
    struct qmsg *q = msg_find(id);
    if (!q)
        return QMGR_ADMIN_ABSENT;
    if (q->admin == QMSG_ADMIN_NONE || what == QMSG_ADMIN_DELETE)
        q->admin = what;                 /* a delete wins over an earlier hold */
    msg_info("%s: %s requested by the administrator", id, op);
    qmgr_dest_cancel_waiting(q);              /* may finish (and free) q */
    return msg_find(id) ? QMGR_ADMIN_LATER : QMGR_ADMIN_DONE;
}

void qmgr_message_resume_all(void)
{
    qmgr_dest_resume_all();
}
