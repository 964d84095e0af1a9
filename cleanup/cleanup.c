/* cleanup.c: the cleanup daemon turns one submission (from smtpd or pickup)
 * into a queue file: it reads the envelope and the content over its socket
 * (doc/PROTOCOLS.md), completes the header section, enforces the hop and
 * header limits, writes and fsyncs the file, publishes it in incoming/ (the
 * commit point), wakes qmgr, and only then reports success. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "cleanup.h"
#include "config.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define CLEANUP_MAX_ATTRS 64
#define CLEANUP_MAX_RCPTS 100000

struct submission {
    int fd;
    struct cleanup_envelope env;
    struct qfile_writer qf;
    bool qf_open;
    struct header_state hdr;
    struct strbuf out;        /* pending content bytes for QREC_CONTENT records */
    int status;               /* 0, or the SMTP code of the rejection */
    const char *reason;
    long long arrival_usec;
};

const char *cleanup_env_attr(const struct cleanup_envelope *env, const char *name)
{
    for (size_t i = 0; i < env->nattr; i++)
        if (strcmp(env->attr_names[i], name) == 0)
            return env->attr_values[i];
    return NULL;
}

void cleanup_envelope_free(struct cleanup_envelope *env)
{
    for (size_t i = 0; i < env->nattr; i++) {
        free(env->attr_names[i]);
        free(env->attr_values[i]);
    }
    for (size_t i = 0; i < env->nrcpt; i++) {
        free(env->rcpts[i]);
        free(env->orcpts[i]);
        free(env->notifies[i]);
    }
    free(env->attr_names);
    free(env->attr_values);
    free(env->rcpts);
    free(env->orcpts);
    free(env->notifies);
    free(env->sender);
    memset(env, 0, sizeof(*env));
}

static int read_envelope(struct attr_reader *r, struct cleanup_envelope *env)
{
    const char *s, *v, *o, *n;
    long long count;
    if (attr_get_int(r, "flags", 0, 0xffff, &env->flags) < 0 || attr_get_str(r, "sender", &s) < 0
        || attr_get_int(r, "nattr", 0, CLEANUP_MAX_ATTRS, &count) < 0)
        return -1;
    env->sender = xstrdup(s);
    env->attr_names = xcalloc((size_t)count + 1, sizeof(char *));
    env->attr_values = xcalloc((size_t)count + 1, sizeof(char *));
    for (long long i = 0; i < count; i++) {
        if (attr_get_str(r, "name", &s) < 0 || attr_get_str(r, "value", &v) < 0
            || !*s || strchr(s, '=') || strlen(s) > 64)
            return -1;
        env->attr_names[env->nattr] = xstrdup(s);
        env->attr_values[env->nattr++] = xstrdup(v);
    }
    if (attr_get_int(r, "nrcpt", 1, CLEANUP_MAX_RCPTS, &count) < 0)
        return -1;
    env->rcpts = xcalloc((size_t)count, sizeof(char *));
    env->orcpts = xcalloc((size_t)count, sizeof(char *));
    env->notifies = xcalloc((size_t)count, sizeof(char *));
    for (long long i = 0; i < count; i++) {
        if (attr_get_str(r, "rcpt", &s) < 0 || attr_get_str(r, "orcpt", &o) < 0
            || attr_get_str(r, "notify", &n) < 0 || !*s)
            return -1;
        env->rcpts[env->nrcpt] = xstrdup(s);
        env->orcpts[env->nrcpt] = xstrdup(o);
        env->notifies[env->nrcpt++] = xstrdup(n);
    }
    return attr_reader_done(r);
}

static void reject(struct submission *sub, int code, const char *reason)
{
    if (sub->status == 0) {
        sub->status = code;
        sub->reason = reason;
    }
}

/* Write the envelope records that precede the content. */
static int write_envelope(struct submission *sub)
{
    struct qfile_writer *qf = &sub->qf;
    char when[64];
    snprintf(when, sizeof(when), "%lld.%06lld", sub->arrival_usec / 1000000,
             sub->arrival_usec % 1000000);
    qfile_put_str(qf, QREC_VERSION, "1");
    qfile_put_str(qf, QREC_TIME, when);
    qfile_put_str(qf, QREC_SENDER, sub->env.sender);
    for (size_t i = 0; i < sub->env.nattr; i++)
        qfile_put_attr(qf, sub->env.attr_names[i], sub->env.attr_values[i]);
    struct strbuf rec = STRBUF_INIT(QREC_MAX_LEN);
    for (size_t i = 0; i < sub->env.nrcpt; i++)
        if (qrec_rcpt_encode(&rec, sub->env.rcpts[i], sub->env.orcpts[i], sub->env.notifies[i]) < 0
            || qfile_put(qf, QREC_RCPT, rec.data, rec.len) < 0)
            qf->error = qf->error ? qf->error : EFBIG;
    sb_free(&rec);
    return qf->error ? -1 : 0;
}

/* Move whole chunks of pending output into content records. */
static void flush_content(struct submission *sub, bool all)
{
    size_t off = 0;
    while (sub->out.len - off >= QREC_CONTENT_CHUNK || (all && off < sub->out.len)) {
        size_t n = sub->out.len - off;
        if (n > QREC_CONTENT_CHUNK)
            n = QREC_CONTENT_CHUNK;
        qfile_put(&sub->qf, QREC_CONTENT, sub->out.data + off, n);
        off += n;
    }
    sb_consume(&sub->out, off);
}

static void build_received(struct submission *sub, struct strbuf *rcv)
{
    const struct cleanup_envelope *env = &sub->env;
    const char *helo = cleanup_env_attr(env, "helo_name");
    const char *cname = cleanup_env_attr(env, "client_name");
    const char *caddr = cleanup_env_attr(env, "client_addr");
    const char *proto = cleanup_env_attr(env, "protocol");
    char date[80];
    cleanup_rfc5322_date(sub->arrival_usec, date, sizeof(date));
    sb_appends(rcv, "Received: ");
    if (caddr) {
        sb_appendf(rcv, "from %s (%s [%s%s])\n\t", helo && *helo ? helo : "unknown",
                   cname ? cname : "unknown", strchr(caddr, ':') ? "IPv6:" : "", caddr);
        sb_appendf(rcv, "by %s (%s) with %s id %s", cfg_str(P_myhostname), cfg_str(P_mail_name),
                   proto ? proto : "SMTP", sub->qf.id);
    } else {
        const char *uid = cleanup_env_attr(env, "uid");
        sb_appendf(rcv, "by %s (%s%s%s)\n\tid %s", cfg_str(P_myhostname), cfg_str(P_mail_name),
                   uid ? ", from userid " : "", uid ? uid : "", sub->qf.id);
    }
    if (env->nrcpt == 1)
        sb_appendf(rcv, "\n\tfor <%s>", env->rcpts[0]);
    sb_appendf(rcv, "; %s\n", date);
}

/* The header section is complete: hop count, then the final headers. */
static void header_section_done(struct submission *sub)
{
    if (sub->hdr.received_count > cfg_int(P_hopcount_limit)) {
        reject(sub, 554, "5.4.6 Error: too many hops");
        return;
    }
    struct strbuf rcv = STRBUF_INIT(0);
    char msgid[300], date[80], stamp[32];
    time_t t = (time_t)(sub->arrival_usec / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
    snprintf(msgid, sizeof(msgid), "<%s.%s@%s>", stamp, sub->qf.id, cfg_str(P_myhostname));
    cleanup_rfc5322_date(sub->arrival_usec, date, sizeof(date));
    build_received(sub, &rcv);
    struct header_additions add = {
        .received = rcv.data,
        .message_id = msgid,
        .date = date,
        .from = (sub->env.flags & CLEANUP_FLAG_LOCAL) ? sub->env.sender : NULL,
    };
    if (header_emit(&sub->hdr, &add, &sub->out) < 0)
        reject(sub, 451, "4.3.0 Error: queue file write error");
    msg_info("%s: message-id=%s", sub->qf.id, sub->hdr.message_id ? sub->hdr.message_id : msgid);
    sb_free(&rcv);
}

static void take_content(struct submission *sub, const char *data, size_t len)
{
    if (sub->status)
        return;                        /* already rejected: drain only */
    if (!sub->hdr.in_body) {
        size_t used = 0;
        int rc = header_feed(&sub->hdr, data, len, &used);
        if (rc < 0) {
            reject(sub, 552, "5.3.4 Error: message header size exceeds limit");
            return;
        }
        if (rc == 0)
            return;
        header_section_done(sub);
        data += used;
        len -= used;
    }
    if (sb_append(&sub->out, data, len) < 0)
        reject(sub, 552, "5.3.4 Error: message file too big");
    flush_content(sub, false);
}

static void wake_qmgr(const char *queue_id)
{
    struct strbuf path = STRBUF_INIT(4096);
    sb_appendf(&path, "%s/%s/qmgr", cfg_str(P_queue_directory), QDIR_PUBLIC);
    int fd = unix_connect(path.data, 2);
    if (fd < 0 || attr_expect_protocol(fd, "qmgr", 1024, 2) < 0) {
        msg_warn("%s: cannot wake qmgr at %s: %m (it will find the message on its next scan)",
                 queue_id, path.data);
    } else {
        struct strbuf frame = STRBUF_INIT(1024);
        struct attr_writer w;
        attr_begin(&w, &frame);
        attr_put_str(&w, "wakeup", "incoming");
        if (attr_end(&w) == 0)
            attr_write(fd, &frame, 2);
        sb_free(&frame);
    }
    if (fd >= 0)
        close(fd);
    sb_free(&path);
}

static int send_reply(int fd, int status, const char *queue_id, const char *reason)
{
    struct strbuf frame = STRBUF_INIT(8192);
    struct attr_writer w;
    attr_begin(&w, &frame);
    attr_put_int(&w, "status", status);
    attr_put_str(&w, "queue_id", queue_id);
    attr_put_str(&w, "reason", reason);
    int rc = attr_end(&w) == 0 ? attr_write(fd, &frame, (int)cfg_time(P_ipc_timeout)) : -1;
    sb_free(&frame);
    return rc;
}

/* Read content frames until the end frame; returns 1 for end=ok, 0 for
 * abort, -1 for a broken connection or protocol error. */
static int read_content(struct submission *sub, struct strbuf *in, size_t limit, int timeout)
{
    for (;;) {
        struct attr_reader r;
        char name[ATTR_NAME_MAX + 1];
        if (attr_read(sub->fd, in, limit, timeout) < 0 || attr_reader_init(&r, in->data, in->len) < 0
            || !attr_peek_name(&r, name, sizeof(name)))
            return -1;
        if (strcmp(name, "data") == 0) {
            const void *data;
            size_t len;
            if (attr_get_bytes(&r, "data", &data, &len) < 0 || attr_reader_done(&r) < 0)
                return -1;
            take_content(sub, data, len);
            continue;
        }
        const char *end;
        if (attr_get_str(&r, "end", &end) < 0 || attr_reader_done(&r) < 0)
            return -1;
        return strcmp(end, "ok") == 0 ? 1 : 0;
    }
}

static void cleanup_serve(int fd)
{
    struct submission sub = { .fd = fd };
    struct strbuf in = STRBUF_INIT(0);
    size_t limit = (size_t)cfg_size(P_ipc_frame_limit);
    int timeout = (int)cfg_time(P_ipc_timeout);
    struct attr_reader r;
    header_state_init(&sub.hdr, (long)cfg_size(P_header_size_limit));
    sb_init(&sub.out, 0);
    sub.arrival_usec = now_usec();

    if (attr_send_protocol(fd, "cleanup", timeout) < 0
        || attr_read(fd, &in, limit, timeout) < 0 || attr_reader_init(&r, in.data, in.len) < 0) {
        msg_warn("cleanup: cannot read the envelope: %m");
        goto done;
    }
    if (read_envelope(&r, &sub.env) < 0) {
        msg_warn("cleanup: malformed envelope from client: %s", r.error ? r.error : "bad value");
        goto done;
    }
    if (qfile_create(&sub.qf, cfg_str(P_queue_directory)) < 0) {
        msg_warn("cleanup: cannot create a queue file in %s/%s: %m",
                 cfg_str(P_queue_directory), QDIR_INCOMING);
        reject(&sub, 451, "4.3.0 Error: queue file write error");
    } else {
        sub.qf_open = true;
        write_envelope(&sub);
    }
    int end = read_content(&sub, &in, limit, timeout);
    if (end < 0) {
        msg_warn("%s: lost connection with the submitting process: %m",
                 sub.qf_open ? sub.qf.id : "NOQUEUE");
        goto done;
    }
    if (end == 0) {
        send_reply(fd, 0, "", "");
        goto done;
    }
    if (sub.status == 0 && !sub.hdr.in_body) {
        header_finish(&sub.hdr);
        header_section_done(&sub);
    }
    if (sub.status == 0) {
        flush_content(&sub, true);
        char size[32];
        snprintf(size, sizeof(size), "%llu", sub.qf.content_size);
        qfile_put(&sub.qf, QREC_CONTENT_END, "", 0);
        qfile_put_str(&sub.qf, QREC_SIZE, size);
        if (sub.qf.error || qfile_commit(&sub.qf) < 0) {
            msg_warn("%s: queue file write error: %s", sub.qf.id,
                     strerror(sub.qf.error ? sub.qf.error : errno));
            reject(&sub, 451, "4.3.0 Error: queue file write error");
        } else {
            sub.qf_open = false;       /* committed: it is qmgr's now */
            wake_qmgr(sub.qf.id);
            send_reply(fd, 0, sub.qf.id, "");
            goto done;
        }
    }
    send_reply(fd, sub.status, "", sub.reason);

done:
    if (sub.qf_open)
        qfile_abort(&sub.qf);
    qfile_writer_free(&sub.qf);
    cleanup_envelope_free(&sub.env);
    header_state_free(&sub.hdr);
    sb_free(&sub.out);
    sb_free(&in);
}

int main(int argc, char **argv)
{
    static const struct server_ops ops = {
        .mode = SERVER_SINGLE,
        .serve = cleanup_serve,
    };
    server_main(argc, argv, "cleanup", &ops);
}
