/* pipe_request.c: the pipe agent's use of the delivery protocol
 * (lib/global/deliver_request.h): read one request, check it against the
 * service (recipient limit for D and O, size=, Delivered-To: loops), run
 * the command once for all its recipients (lib/global/pipe_command.h),
 * and give every recipient the command's outcome: marked done before
 * anyone hears of a final one, logged with relay=SERVICE, reported. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "deliver_request.h"
#include "header_section.h"
#include "log.h"
#include "log_delivery.h"
#include "pipe.h"
#include "pipe_command.h"
#include "server.h"
#include "util.h"

#define PIPE_WRITE_AT 65536

struct request {
    struct deliver_request dr;
    struct delivery_status *out;     /* per recipient */
    bool *active;                 /* pending and undecided: the command decides */
    size_t nactive;
    int client_fd;
};

static void set_active(struct request *r, int status, const char *dsn, const char *reason)
{
    for (size_t i = 0; i < r->dr.nrcpt; i++)
        if (r->active[i]) {
            delivery_status_set(&r->out[i], status, dsn, "%s", reason);
            r->active[i] = false;
        }
    r->nactive = 0;
}

/* ---- before the command ---- */

/* Each recipient must be a pending R record of this file. */
static void match_recipients(struct request *r)
{
    for (size_t i = 0; i < r->dr.nrcpt; i++) {
        const struct qrcpt *q = deliver_request_record(&r->dr, i);
        if (!q) {
            msg_warn("%s: recipient <%s> is not in queue file %s", r->dr.queue_id,
                     r->dr.rcpts[i].address, r->dr.queue_path);
            delivery_status_set(&r->out[i], 4, "4.3.0", "queue file and delivery request disagree");
        } else if (q->done) {
            delivery_status_set(&r->out[i], 2, "2.0.0", "already delivered");
        } else {
            r->active[i] = true;
            r->nactive++;
        }
    }
}

struct loop_scan {
    struct header_state h;
};

static int loop_chunk(const char *data, size_t len, void *ctx)
{
    struct loop_scan *s = ctx;
    size_t used;
    int rc = header_feed(&s->h, data, len, &used);
    return rc == 0 ? 0 : 1;          /* stop at the end of the header section */
}

/* The D flag's loop detection, as Postfix: a Delivered-To: header with the
 * recipient's address already there (case aside) returns the mail. */
static bool delivered_before(const struct deliver_request *dr, const char *address)
{
    struct loop_scan s;
    header_state_init(&s.h, PIPE_HEADER_SCAN_MAX);
    deliver_request_scan(dr, loop_chunk, &s);
    if (!s.h.done && !s.h.too_big)
        header_finish(&s.h);
    bool found = false;
    for (size_t i = 0; i < s.h.nfields && !found; i++) {
        const struct header_field *f = &s.h.fields[i];
        const char *p = s.h.headers.data + f->offset, *end = p + f->len;
        if (f->name_len != 12 || strncasecmp(p, "Delivered-To", 12) != 0)
            continue;
        p += f->name_len;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p < end && *p == ':')
            p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        while (end > p && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            end--;
        found = (size_t)(end - p) == strlen(address) && strncasecmp(p, address, strlen(address)) == 0;
    }
    header_state_free(&s.h);
    return found;
}

static void check_request(struct request *r)
{
    const struct pipe_attr *a = &pipe_cfg.attr;
    if (r->nactive > 1 && (a->flags & (PIPE_FLAG_DELIVERED | PIPE_FLAG_ORIG))) {
        msg_warn("pipe flag `%c' requires %s_destination_recipient_limit = 1",
                 (a->flags & PIPE_FLAG_DELIVERED) ? 'D' : 'O', pipe_cfg.service);
        set_active(r, 4, "4.3.5", "mail system configuration error");
        return;
    }
    if (a->size_limit && r->dr.msg.content_size > a->size_limit) {
        set_active(r, 5, "5.2.3", "message too large");
        return;
    }
    if (a->flags & PIPE_FLAG_DELIVERED)
        for (size_t i = 0; i < r->dr.nrcpt; i++)
            if (r->active[i] && delivered_before(&r->dr, r->dr.rcpts[i].address)) {
                delivery_status_set(&r->out[i], 5, "5.4.6", "mail forwarding loop for %s",
                                    r->dr.rcpts[i].address);
                r->active[i] = false;
                r->nactive--;
            }
}

/* ---- the command ---- */

struct feed_job {
    const struct request *r;
    const char *first_rcpt, *first_orig;
};

struct feed_state {
    int fd;
    struct pipe_copy copy;
    struct strbuf buf;
};

static int feed_chunk(const char *data, size_t len, void *ctx)
{
    struct feed_state *f = ctx;
    if (pipe_copy_feed(&f->copy, data, len, &f->buf) < 0)
        return -1;
    if (f->buf.len >= PIPE_WRITE_AT) {
        if (write_all(f->fd, f->buf.data, f->buf.len) < 0)
            return -1;
        sb_reset(&f->buf);
    }
    return 0;
}

/* In the feeding child, as the user: the envelope lines, then the content. */
static int feed_message(void *ctx, int fd)
{
    const struct feed_job *j = ctx;
    const struct pipe_attr *a = &pipe_cfg.attr;
    const char *sender = *j->r->dr.sender ? j->r->dr.sender : a->null_sender;
    struct feed_state f = { .fd = fd };
    sb_init(&f.buf, 0);
    pipe_copy_init(&f.copy, a->flags, a->eol);
    pipe_copy_prefix(&f.buf, a->flags, a->eol, sender, j->first_rcpt, j->first_orig, time(NULL));
    int rc = deliver_request_scan(&j->r->dr, feed_chunk, &f);
    if (rc == 0 && pipe_copy_finish(&f.copy, &f.buf) < 0)
        rc = -1;
    if (rc == 0)
        rc = write_all(fd, f.buf.data, f.buf.len) < 0 ? -1 : 0;
    sb_free(&f.buf);
    return rc;
}

/* What the command's children must not keep: master's descriptors and the
 * connection to qmgr. The feeder keeps the queue file; the command child
 * closes everything from 3 up itself. */
static void child_setup(void *ctx, int keep_fd)
{
    const struct feed_job *j = ctx;
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    const int fds[] = { MASTER_STATUS_FD, MASTER_ALIVE_FD, MASTER_LISTEN_FD, j->r->client_fd };
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] > 2 && fds[i] != keep_fd && fds[i] != j->r->dr.fd)
            close(fds[i]);
}

static const char *original_of(const struct deliver_rcpt *r)
{
    const char *orig = delivery_orig_to(r->orcpt, r->address);
    return orig ? orig : r->address;
}

/* The client macros' source: what smtpd recorded in the queue file. */
static const char *message_attr(const char *name, const void *context)
{
    return qmessage_attr(context, name);
}

static void run_command(struct request *r)
{
    const struct pipe_attr *a = &pipe_cfg.attr;
    const struct qmessage *msg = &r->dr.msg;
    struct pipe_rcpt *rcpts = xcalloc(r->nactive, sizeof(*rcpts));
    size_t n = 0;
    for (size_t i = 0; i < r->dr.nrcpt; i++)
        if (r->active[i]) {
            rcpts[n].address = r->dr.rcpts[i].address;
            rcpts[n].original = original_of(&r->dr.rcpts[i]);
            n++;
        }
    struct pipe_macros m = {
        .sender = r->dr.sender, .nexthop = r->dr.nexthop, .queue_id = r->dr.queue_id,
        .client_attr = message_attr, .context = msg,
        .size = msg->content_size, .rcpts = rcpts, .nrcpt = n,
    };
    char **argv = NULL;
    struct strbuf err = STRBUF_INIT(1024);
    if (pipe_expand_argv(a, &m, pipe_cfg.recipient_delimiter, &argv, &err) < 0) {
        msg_warn("%s: pipe service %s: %s", r->dr.queue_id, pipe_cfg.service, sb_str(&err));
        set_active(r, 4, "4.3.5", "mail system configuration error");
        goto out;
    }
    struct feed_job job = { r, rcpts[0].address, rcpts[0].original };
    struct pipe_command c = {
        .path = a->argv[0], .argv = argv, .envp = pipe_cfg.envp,
        .user_name = a->user, .uid = pipe_cfg.uid, .gid = pipe_cfg.gid,
        .supplementary_groups = false, .cwd = a->directory, .time_limit = pipe_cfg.time_limit,
        .output_limit = PIPE_OUTPUT_KEEP, .child_setup = child_setup, .feed = feed_message,
        .ctx = &job,
    };
    struct strbuf output = STRBUF_INIT(PIPE_OUTPUT_KEEP);
    struct pipe_command_status st;
    struct delivery_status o;
    if (pipe_command_run(&c, &output, &st) < 0) {
        delivery_status_set(&o, 4, "4.3.0", "cannot run the command: %s", strerror(errno));
    } else {
        char line[PIPE_OUTPUT_REASON + 1], cmd[256];
        pipe_command_first_line(&output, line, sizeof(line));
        str_copy(cmd, sizeof(cmd), a->argv[0]);
        pipe_status_map(st.wstatus, st.timed_out, line, pipe_cfg.service, cmd, &o);
    }
    sb_free(&output);
    set_active(r, o.status, o.dsn, o.reason);
out:
    sb_free(&err);
    pipe_expand_free(argv);
    free(rcpts);
}

/* ---- results ---- */

static void finish(int fd, struct request *r, const bool *logged_done)
{
    long long now = now_usec();
    struct delivery_delays delays = {
        .queued = delivery_queue_delay(r->dr.msg.arrival_usec, r->dr.start_usec),
        .transfer = now - r->dr.start_usec,
    };
    for (size_t i = 0; i < r->dr.nrcpt; i++) {
        struct delivery_status *o = &r->out[i];
        const struct deliver_rcpt *rc = &r->dr.rcpts[i];
        if (!logged_done[i]) {
            struct strbuf why = STRBUF_INIT(0);
            if (deliver_request_mark(&r->dr, i, o->status, o->reason, &why) < 0)
                delivery_status_set(o, 4, "4.3.0", "%s", sb_str(&why));
            sb_free(&why);
            log_delivery(r->dr.queue_id, rc->address, delivery_orig_to(rc->orcpt, rc->address),
                         pipe_cfg.service, 0, &delays, o->dsn,
                         deliver_request_status_name(r->dr.flags, o->status),
                         o->reason);
        }
        struct deliver_result res = {
            .status = o->status, .dsn = o->dsn, .relay = pipe_cfg.service, .reason = o->reason,
            .delay_transfer_usec = delays.transfer,
            .action = o->status != 2 ? NULL
                      : (pipe_cfg.attr.flags & PIPE_FLAG_FINAL) ? "delivered" : "relayed",
        };
        deliver_request_result(&r->dr, i, &res);
    }
    deliver_request_reply(fd, &r->dr, -1, pipe_cfg.ipc_timeout);
}

void pipe_request_serve(int fd)
{
    struct request r = { .client_fd = fd };
    if (deliver_request_read(fd, &r.dr, PIPE_RCPT_MAX, pipe_cfg.ipc_timeout) < 0) {
        deliver_request_free(&r.dr);
        return;
    }
    r.out = xcalloc(r.dr.nrcpt + 1, sizeof(*r.out));
    r.active = xcalloc(r.dr.nrcpt + 1, sizeof(*r.active));
    bool *already = xcalloc(r.dr.nrcpt + 1, sizeof(*already));
    struct strbuf why = STRBUF_INIT(0);
    if (!pipe_cfg.usable) {
        msg_warn("%s: pipe service %s refused: %s", r.dr.queue_id, pipe_cfg.service,
                 pipe_cfg.refusal);
        for (size_t i = 0; i < r.dr.nrcpt; i++)
            delivery_status_set(&r.out[i], 4, "4.3.5", "mail system configuration error");
    } else if (deliver_request_open(&r.dr, &why) < 0) {
        msg_warn("%s: %s", r.dr.queue_id, sb_str(&why));
        for (size_t i = 0; i < r.dr.nrcpt; i++)
            delivery_status_set(&r.out[i], 4, "4.3.0", "%s", sb_str(&why));
    } else {
        match_recipients(&r);
        for (size_t i = 0; i < r.dr.nrcpt; i++)
            already[i] = !r.active[i] && r.out[i].status == 2;
        if (r.nactive > 0)
            check_request(&r);
        if (r.nactive > 0 && (r.dr.flags & DELIVER_FLAG_VERIFY)) {
            /* an address verification probe: the command would take it */
            set_active(&r, 2, "2.0.0", "delivers to command");
        } else if (r.nactive > 0) {
            run_command(&r);
        }
    }
    finish(fd, &r, already);
    sb_free(&why);
    free(already);
    free(r.active);
    free(r.out);
    deliver_request_free(&r.dr);
}
