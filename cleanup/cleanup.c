/* cleanup.c: the cleanup daemon turns one submission (from smtpd or pickup)
 * into a queue file: it reads the envelope and the content over its socket
 * (doc/PROTOCOLS.md), has the header section completed and the content
 * checked (header_checks, body_checks), writes and fsyncs the file,
 * publishes it in incoming/ (the commit point; hold/ for a message a check
 * held), wakes qmgr, and only then reports success. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "cleanup.h"
#include "config.h"
#include "log.h"
#include "server.h"
#include "util.h"

struct cleanup_settings cleanup_cfg;

void cleanup_state_init(struct cleanup_state *st)
{
    memset(st, 0, sizeof(*st));
    st->qf.fd = -1;
    header_state_init(&st->hdr, cleanup_cfg.header_size_limit);
    sb_init(&st->out, 0);
    st->arrival_usec = now_usec();
}

void cleanup_state_free(struct cleanup_state *st)
{
    cleanup_queue_abort(st);
    cleanup_checks_free(st);
    qfile_writer_free(&st->qf);
    cleanup_envelope_free(&st->env);
    header_state_free(&st->hdr);
    sb_free(&st->out);
    free(st->received_for);
}

static int send_reply(int fd, int status, const char *queue_id, const char *reason)
{
    struct strbuf frame = STRBUF_INIT(8192);
    struct attr_writer w;
    attr_begin(&w, &frame);
    attr_put_int(&w, "status", status);
    attr_put_strs(&w, "queue_id", queue_id, "reason", reason, (char *)NULL);
    int rc = attr_end(&w) == 0 ? attr_write(fd, &frame, (int)cfg_time(P_ipc_timeout)) : -1;
    if (rc < 0)
        msg_warn("%s: cannot send the reply to the submitting process: %m",
                 *queue_id ? queue_id : "NOQUEUE");
    sb_free(&frame);
    return rc;
}

static int protocol_error(void)
{
    errno = EPROTO;
    return -1;
}

/* Content frames until the end frame: 1 for end=ok, 0 for end=abort, -1
 * for a broken connection or a protocol error. */
static int read_content(int fd, struct cleanup_state *st, struct strbuf *in)
{
    size_t limit = (size_t)cfg_size(P_ipc_frame_limit);
    int timeout = (int)cfg_time(P_ipc_timeout);
    for (;;) {
        struct attr_reader r;
        char name[ATTR_NAME_MAX + 1];
        const void *data;
        const char *end;
        size_t len;
        if (attr_read(fd, in, limit, timeout) < 0)
            return -1;
        if (attr_reader_init(&r, in->data, in->len) < 0 || !attr_peek_name(&r, name, sizeof(name)))
            return protocol_error();
        if (strcmp(name, "data") == 0) {
            if (attr_get_bytes(&r, "data", &data, &len) < 0 || len > QREC_CONTENT_CHUNK
                || attr_reader_done(&r) < 0)
                return protocol_error();
            cleanup_content(st, data, len);
            continue;
        }
        if (attr_get_str(&r, "end", &end) < 0 || attr_reader_done(&r) < 0
            || (strcmp(end, "ok") != 0 && strcmp(end, "abort") != 0))
            return protocol_error();
        return strcmp(end, "ok") == 0;
    }
}

/* Envelope, then the queue file is created; content; then the verdict. */
static void cleanup_serve(int fd)
{
    struct cleanup_state st;
    struct strbuf in = STRBUF_INIT(0);
    struct attr_reader r = { .error = NULL };
    const char *why = "bad frame";
    int timeout = (int)cfg_time(P_ipc_timeout);
    cleanup_state_init(&st);

    if (attr_send_protocol(fd, "cleanup", timeout) < 0
        || attr_read(fd, &in, (size_t)cfg_size(P_ipc_frame_limit), timeout) < 0) {
        msg_warn("cannot read the envelope from the submitting process: %m");
        goto done;
    }
    if (attr_reader_init(&r, in.data, in.len) < 0
        || cleanup_envelope_read(&r, &st.env, cleanup_cfg.max_rcpts, &why) < 0) {
        msg_warn("malformed envelope from the submitting process: %s%s%s", why,
                 r.error ? ": " : "", r.error ? r.error : "");
        goto done;
    }
    cleanup_envelope_actions(&st);
    cleanup_queue_open(&st);
    int end = read_content(fd, &st, &in);
    if (end < 0) {
        msg_warn("%s: lost connection with the submitting process: %s",
                 st.qf_open ? st.qf.id : "NOQUEUE", errno == EPROTO ? "protocol error"
                 : errno == EPIPE ? "connection closed before the end frame" : strerror(errno));
    } else if (end == 0) {
        cleanup_queue_abort(&st);
        send_reply(fd, 0, "", "");
    } else {
        cleanup_content_end(&st);
        if (st.discard && !st.status) {
            /* DISCARD: accepted (the client is told it is queued) but
             * never committed, as in Postfix. */
            char id[QUEUE_ID_SIZE];
            str_copy(id, sizeof(id), st.qf.id);
            cleanup_queue_abort(&st);
            send_reply(fd, 0, id, "");
        } else if (cleanup_queue_commit(&st) == 0) {
            if (!st.hold)                    /* qmgr does not look into hold/ */
                cleanup_wake_qmgr(st.qf.id);
            send_reply(fd, 0, st.qf.id, "");
        } else {
            cleanup_queue_abort(&st);
            send_reply(fd, st.status, "", st.reason);
        }
    }
done:
    cleanup_state_free(&st);
    sb_free(&in);
}

/* As root, before any chroot. */
static void cleanup_pre_init(void)
{
    /* Tables are opened once, with the privileges Postfix opens them with. */
    cleanup_checks_open();
    cleanup_rewrite_open();
}

static void cleanup_post_init(struct event_base *base)
{
    long rcpt_limit = cfg_int(P_smtpd_recipient_limit);
    cleanup_cfg.queue_dir = ".";
    cleanup_cfg.queue_dir_name = xstrdup(cfg_str(P_queue_directory));
    cleanup_cfg.myhostname = xstrdup(cfg_str(P_myhostname));
    cleanup_cfg.mail_name = xstrdup(cfg_str(P_mail_name));
    cleanup_cfg.myorigin = xstrdup(cfg_str(P_myorigin));
    cleanup_cfg.hopcount_limit = cfg_int(P_hopcount_limit);
    cleanup_cfg.header_size_limit = (size_t)cfg_size(P_header_size_limit);
    cleanup_cfg.message_size_limit = (unsigned long long)cfg_size(P_message_size_limit);
    cleanup_cfg.always_add_missing_headers = cfg_bool(P_always_add_missing_headers);
    cleanup_cfg.drop_headers = cfg_list_split(cfg_str(P_message_drop_headers), &cleanup_cfg.ndrop_headers);
    cleanup_cfg.max_rcpts = rcpt_limit > CLEANUP_MIN_RCPT_LIMIT ? (size_t)rcpt_limit
                                                                : CLEANUP_MIN_RCPT_LIMIT;
    cleanup_cfg.line_length_limit = (size_t)cfg_size(P_line_length_limit);
    cleanup_cfg.body_checks_size_limit = (unsigned long long)cfg_size(P_body_checks_size_limit);
    cleanup_cfg.mime_nesting_limit = (int)cfg_int(P_mime_nesting_limit);
    cleanup_cfg.disable_mime_input_processing = cfg_bool(P_disable_mime_input_processing);
    if (!*cleanup_cfg.myhostname)
        msg_fatal("myhostname is empty; set it in main.cf");
    qfile_use_spares(true);          /* new files from spare/ first (QUEUE.md) */
}

SERVER_MAIN("cleanup", .mode = SERVER_SINGLE, .serve = cleanup_serve, .pre_init = cleanup_pre_init,
            .post_init = cleanup_post_init, .syscall_filter = SYSCALL_PROFILE_CLEANUP)
