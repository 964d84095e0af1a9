/* cleanup_message.c: the content of one submission on its way into the
 * queue file: the header section is collected and checked (size, hop
 * count, header_checks), gets our Received: and, for local mail, any
 * missing Message-ID:, Date: and From:; then the body is passed through,
 * unchanged unless body or MIME header checks change it. Every line end
 * is made a LF first, whatever the source, so no CR reaches the queue. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "util.h"

#define MESSAGE_ID_LOG_MAX 512     /* bytes of a Message-ID shown in the log */

void cleanup_reject(struct cleanup_state *st, int code, const char *reason)
{
    if (st->status == 0) {
        st->status = code;
        st->reason = reason;
    }
}

static void build_received(const struct cleanup_state *st, const char *date, struct strbuf *out)
{
    const struct cleanup_envelope *env = &st->env;
    const char *server_name = cleanup_env_attr(env, "server_name");
    struct received_info ri = {
        .helo_name = cleanup_env_attr(env, "helo_name"),
        .client_name = cleanup_env_attr(env, "client_name"),
        .client_addr = cleanup_env_attr(env, "client_addr"),
        .protocol = cleanup_env_attr(env, "protocol"),
        .tls = cleanup_env_attr(env, "tls_info"),
        .tls_client = cleanup_env_attr(env, "tls_client"),
        .uid = cleanup_env_attr(env, "uid"),
        .hostname = server_name && *server_name ? server_name : cleanup_cfg.myhostname,
        .mail_name = cleanup_cfg.mail_name,
        .queue_id = st->qf.id,
        .rcpt = st->received_for ? st->received_for : env->nrcpt == 1 ? env->rcpts[0] : NULL,
        .date = date,
    };
    received_header_append(out, &ri);
}

/* A display name as an RFC 5322 phrase: atoms as they are, anything else
 * as a quoted string. */
static void append_phrase(struct strbuf *out, const char *name)
{
    static const char atext[] = "!#$%&'*+-/=?^_`{|}~ ";
    bool plain = name[0] != ' ' && name[strlen(name) - 1] != ' ';
    for (const char *p = name; *p && plain; p++)
        plain = ((unsigned char)*p < 128 && (isalnum((unsigned char)*p) || strchr(atext, *p)));
    if (plain) {
        sb_appends(out, name);
        return;
    }
    sb_appendc(out, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_appendc(out, '\\');
        sb_appendc(out, *p);
    }
    sb_appendc(out, '"');
}

/* The From: added to local mail: the sender, qualified with myorigin,
 * after the full name sendmail -F gave ("Full Name <user@origin>"). */
static void build_from(const struct cleanup_state *st, struct strbuf *out)
{
    const char *sender = st->env.sender;
    const char *name = cleanup_env_attr(&st->env, "full_name");
    if (*sender && name && *name) {
        append_phrase(out, name);
        sb_appendc(out, ' ');
    }
    if (!*sender)
        sb_appends(out, "MAILER-DAEMON");
    else if (strchr(sender, '@'))
        sb_appendf(out, "<%s>", sender);
    else
        sb_appendf(out, "<%s@%s>", sender, cleanup_cfg.myorigin);
}

/* Postfix's log line: the message's own Message-ID, the one we added, or
 * "<>" when it has none. */
static void log_message_id(const struct cleanup_state *st, const char *added)
{
    const struct header_field *f = header_find(&st->hdr, "message-id");
    struct strbuf value = STRBUF_INIT(MESSAGE_ID_LOG_MAX + 1), shown = STRBUF_INIT(0);
    if (f) {
        header_value(&st->hdr, f, &value, MESSAGE_ID_LOG_MAX);
        cleanup_log_safe(&shown, sb_str(&value), value.len, MESSAGE_ID_LOG_MAX);
    } else {
        sb_appends(&shown, added);
    }
    msg_info("%s: message-id=%s", st->qf.id, sb_str(&shown));
    sb_free(&value);
    sb_free(&shown);
}

/* The header section is complete: check it, then write it out. */
static void header_section_done(struct cleanup_state *st)
{
    size_t hops = header_count(&st->hdr, "received");
    if (cleanup_cfg.hopcount_limit > 0 && hops > (size_t)cleanup_cfg.hopcount_limit) {
        msg_info("%s: reject: header Received: too many hops (%zu); from=<%s>",
                 st->qf.id, hops, st->env.sender);
        cleanup_reject(st, 554, "5.4.6 Error: too many hops");
        return;
    }
    char date[80], msgid[QUEUE_ID_SIZE + 300];
    struct strbuf received = STRBUF_INIT(0), from = STRBUF_INIT(0), early = STRBUF_INIT(0);
    /* As in Postfix, mail relayed from other servers is left as it is
     * (adding fields could break DKIM signatures); local submissions are
     * completed. */
    bool complete = (st->env.flags & CLEANUP_FLAG_LOCAL) || cleanup_cfg.always_add_missing_headers;
    format_rfc5322_date(st->arrival_usec, date, sizeof(date));
    snprintf(msgid, sizeof(msgid), "<%s@%s>", st->qf.id, cleanup_cfg.myhostname);
    build_received(st, date, &received);
    /* smtpd's check_recipient_lists marks are the first fields it wrote;
     * a field of that name anywhere else came with the message: removed,
     * so that nobody downstream takes a sender's own for Tern's */
    const char *marks = cleanup_env_attr(&st->env, "allowlist_marks");
    unsigned long keep = marks ? strtoul(marks, NULL, 10) : 0;
    header_remove_after(&st->hdr, "x-tern-allowlisted", keep > 1000 ? 1000 : keep);
    cleanup_checks_headers(st, &received);
    cleanup_rewrite_headers(st);
    if (st->status || st->discard)
        goto out;
    for (size_t i = 0; i < cleanup_cfg.ndrop_headers; i++)
        header_remove(&st->hdr, cleanup_cfg.drop_headers[i]);
    /* A body that began without the empty line has its first bytes in the
     * header processor: they are body text for the checks too. */
    if (cleanup_checks_body_wanted(st) && st->hdr.body_pending) {
        sb_append(&early, st->hdr.pending.data, st->hdr.pending.len);
        sb_reset(&st->hdr.pending);
    }
    if (complete)
        build_from(st, &from);
    struct header_additions add = {
        .received = sb_str(&received),
        .message_id = complete ? msgid : NULL,
        .date = complete ? date : NULL,
        .from = complete ? sb_str(&from) : NULL,
    };
    log_message_id(st, complete ? msgid : "<>");
    header_emit(&st->hdr, &add, &st->out);   /* out has no limit */
    if (early.len)
        cleanup_checks_body(st, early.data, early.len);
out:
    sb_free(&received);
    sb_free(&from);
    sb_free(&early);
}

/* Queue content has lines ending in LF and no CR: CR LF and a CR alone
 * (which some clients send, and which some servers take for a line end:
 * SMTP smuggling) both become one LF here, the one place every message
 * passes, so that what is queued reads the same to every later reader. A
 * CR at the end of a chunk is held until the next byte is known. */
static void normalize_line_ends(struct cleanup_state *st, const char *data, size_t len,
                                struct strbuf *out)
{
    size_t i = 0;
    if (st->held_cr && len > 0) {
        st->held_cr = false;
        sb_appendc(out, '\n');
        if (data[0] == '\n')
            i = 1;
    }
    while (i < len) {
        const char *cr = memchr(data + i, '\r', len - i);
        size_t end = cr ? (size_t)(cr - data) : len;
        sb_append(out, data + i, end - i);
        if (!cr)
            break;
        if (end + 1 == len) {
            st->held_cr = true;
            break;
        }
        sb_appendc(out, '\n');
        i = end + (data[end + 1] == '\n' ? 2 : 1);
    }
}

static void content_lines(struct cleanup_state *st, const char *data, size_t len);

/* A chunk of content. After a rejection the rest is only drained. */
void cleanup_content(struct cleanup_state *st, const char *data, size_t len)
{
    st->content_in += len;
    if (st->status || st->discard)
        return;
    if (!st->held_cr && !memchr(data, '\r', len)) {
        content_lines(st, data, len);
        return;
    }
    struct strbuf norm = STRBUF_INIT(0);
    normalize_line_ends(st, data, len, &norm);
    if (norm.len)
        content_lines(st, norm.data, norm.len);
    sb_free(&norm);
}

static void content_lines(struct cleanup_state *st, const char *data, size_t len)
{
    if (cleanup_cfg.message_size_limit && st->content_in > cleanup_cfg.message_size_limit) {
        msg_info("%s: reject: message content over message_size_limit (%llu bytes); from=<%s>",
                 st->qf.id, cleanup_cfg.message_size_limit, st->env.sender);
        cleanup_reject(st, 552, "5.3.4 Error: message file too big");
        return;
    }
    if (!st->hdr.done) {
        size_t used = 0;
        int rc = header_feed(&st->hdr, data, len, &used);
        if (rc < 0) {
            msg_info("%s: reject: header section over header_size_limit (%zu bytes); from=<%s>",
                     st->qf.id, st->hdr.limit, st->env.sender);
            cleanup_reject(st, 552, "5.3.4 Error: message header size exceeds limit");
            return;
        }
        if (rc == 0)
            return;
        header_section_done(st);
        if (st->status || st->discard)
            return;
        data += used;
        len -= used;
    }
    if (cleanup_checks_body_wanted(st))
        cleanup_checks_body(st, data, len);
    else
        sb_append(&st->out, data, len);
    cleanup_queue_flush(st, false);
}

/* The end frame said ok: a message without a body ends its header here. */
void cleanup_content_end(struct cleanup_state *st)
{
    if (st->status || st->discard)
        return;
    if (st->held_cr) {
        st->held_cr = false;
        content_lines(st, "\n", 1);
        if (st->status || st->discard)
            return;
    }
    if (!st->hdr.done) {
        header_finish(&st->hdr);
        header_section_done(st);
    }
    if (!st->status && !st->discard)
        cleanup_checks_end(st);
}
