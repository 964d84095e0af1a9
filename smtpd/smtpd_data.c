/* smtpd_data.c: the DATA and BDAT commands: open the cleanup stream before
 * the 354 (or the first chunk), feed decoded content to it as it arrives,
 * enforce message_size_limit and the bare LF and bare CR policies, read a
 * rejected message or chunk to its real end, and turn cleanup's verdict
 * into the final reply.
 * Any rejection at the end of data resets the transaction.
 * With smtpd_proxy_filter the content goes to the filter (smtpd_proxy.c)
 * instead of cleanup, and the filter's answer is the final reply. */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "log.h"
#include "metrics_client.h"
#include "milter.h"
#include "queue.h"
#include "smtpd.h"
#include "smtpd_milter.h"
#include "smtpd_proxy.h"
#include "util.h"

#define FEED_MAX 16384              /* input bytes decoded per step */
#define FEED_PIECES 16              /* evbuffer pieces looked at per step */
#define CONTENT_FLUSH 65536         /* send decoded content to cleanup at this size */

static void data_ready(struct smtpd_session *s, bool ok);
static void data_done(struct smtpd_session *s, int status, const char *queue_id, const char *reason);
static void data_drained(struct smtpd_session *s);

static const struct smtpd_cleanup_callbacks data_callbacks = { data_ready, data_done, data_drained };

/* The continuations of DATA, BDAT and the end of data: they run once the
 * restrictions and the milters passed the command, or get their verdict. */
static void smtpd_data_accept(struct smtpd_session *s);
static void smtpd_data_eod_checked(struct smtpd_session *s, int code, const char *text);
static void smtpd_data_milter_done(struct smtpd_session *s, int verdict, int code, const char *text);
static void smtpd_bdat_first_chunk(struct smtpd_session *s, int code, const char *text);

/* With smtpd_proxy_filter, smtpd_milters see the connection and the
 * envelope but not the content, which goes to the filter: content milters
 * belong on the smtpd that the filter hands the mail back to. */
static bool milter_content(struct smtpd_session *s)
{
    return !smtpd_proxy_enabled() && smtpd_milter_holds_content(s);
}

/* Something takes this message's content (cleanup, the milters' spool or
 * the proxy filter); false once cleanup failed mid-message. */
static bool sink_open(struct smtpd_session *s)
{
    return s->cleanup || s->cleanup_late || milter_content(s) || s->proxy;
}

static void proxy_data_ready(struct smtpd_session *s, int code, const char *text);
static void proxy_eod_done(struct smtpd_session *s, int code, const char *text);

/* Remember the reply for the end of this message (first failure wins). */
static void set_end_reply(struct smtpd_session *s, int code, const char *text)
{
    if (s->end_code)
        return;
    s->end_code = code;
    str_copy(s->end_text, sizeof(s->end_text), text);
}

static void reset_message_state(struct smtpd_session *s)
{
    s->end_code = 0;
    s->end_text[0] = 0;
    s->cleanup_ending = false;
    s->cleanup_late = s->cleanup_late_end = false;
    s->bdat_total = 0;
    s->bdat_skip = false;
}

/* The transaction is over (any outcome): back to commands. */
static void end_transaction(struct smtpd_session *s)
{
    smtpd_session_mail_reset(s);
    reset_message_state(s);
    s->state = ST_CMD;
}

const char *smtpd_data_queue_id(struct smtpd_session *s)
{
    _Static_assert(sizeof(s->queue_id) >= QUEUE_ID_SIZE, "room for a queue ID");
    if (!s->queue_id[0]) {
        /* logged as the message is named, before cleanup and qmgr log
         * theirs, as Postfix does: log readers (pflogsumm) take the
         * client and the SASL login from this line */
        queue_id_new(s->queue_id);
        if (s->sasl_username)
            msg_info("%s: client=%s, sasl_method=%s, sasl_username=%s", s->queue_id,
                     s->client_desc, s->sasl_method ? s->sasl_method : "", s->sasl_username);
        else
            msg_info("%s: client=%s", s->queue_id, s->client_desc);
    }
    return s->queue_id;
}

static bool start_cleanup(struct smtpd_session *s)
{
    reset_message_state(s);
    smtpd_data_queue_id(s);
    if (milter_content(s)) {
        /* cleanup is opened once the milters have seen and edited it */
        smtpd_check_content_start(s, &s->content);
        if (s->bdat_mode)
            s->state = ST_BDAT;
        return true;
    }
    s->cleanup = smtpd_cleanup_open(s, &data_callbacks);
    if (!s->cleanup)
        return false;
    s->pause |= PAUSE_CLEANUP;
    return true;
}

/* A message received with DATA asks cleanup for its queue file late:
 * when the content outgrows CONTENT_FLUSH, or at its end. A cleanup
 * process is then held only while it writes, not while the client sends
 * (at a thousand sessions, hundreds of processes sat waiting for their
 * clients), and a message refused at its end needs none. The content
 * waits in s->content until cleanup is ready (data_ready). */
static void late_cleanup_open(struct smtpd_session *s)
{
    s->cleanup = smtpd_cleanup_open(s, &data_callbacks);
    if (s->cleanup) {
        s->pause |= PAUSE_CLEANUP;
        return;
    }
    s->cleanup_late = false;      /* sink closed: the rest is read and dropped */
    sb_reset(&s->content);
    set_end_reply(s, 451, "4.3.0 Error: queue file write error");
}

static void flush_content(struct smtpd_session *s, bool force)
{
    if (s->cleanup_late) {
        if (!force && !s->cleanup && s->content.len >= CONTENT_FLUSH)
            late_cleanup_open(s);
        return;
    }
    if (s->content.len && (force || s->content.len >= CONTENT_FLUSH)) {
        smtpd_user_lists_peek(s, s->content.data, s->content.len);
        if (smtpd_proxy_enabled())
            smtpd_proxy_send(s, s->content.data, s->content.len);
        else if (!milter_content(s))
            smtpd_cleanup_send(s->cleanup, s->content.data, s->content.len);
        else if (smtpd_milter_content_add(s, s->content.data, s->content.len) < 0)
            s->too_big = true;
        sb_reset(&s->content);
    }
}

/* The reply when the content so far breaks the bare LF or bare CR policy
 * (SMTP smuggling), else NULL. */
static const char *bare_rejected(const struct smtpd_session *s)
{
    if (s->dec.saw_bare_lf && smtpd_cfg.bare_lf != BARE_LF_ALLOW)
        return "5.5.2 Error: bare <LF> received";
    if (s->dec.saw_bare_cr && smtpd_cfg.bare_cr != BARE_LF_ALLOW)
        return "5.5.2 Error: bare <CR> received";
    return NULL;
}

static void log_reject(struct smtpd_session *s, int code, const char *text)
{
    smtpd_command_log_reject(s, "END-OF-MESSAGE", code, text, s->nrcpt ? s->rcpts[0].address : "");
}

/* ---- DATA ---- */

void smtpd_data_command(struct smtpd_session *s, const char *arg)
{
    if (*arg) {
        smtpd_session_reply(s, 501, "5.5.4 Syntax: DATA");
    } else if (!s->in_mail) {
        smtpd_session_reply(s, 503, "5.5.1 Error: need MAIL command");
    } else if (s->bdat_mode) {
        smtpd_session_reply(s, 503, "5.5.1 Error: DATA after BDAT");
    } else if (s->nrcpt == 0) {
        smtpd_session_reply(s, 503, "5.5.1 Error: need RCPT command");
    } else if (s->mail.body == SMTP_BODY_BINARYMIME) {
        smtpd_session_reply(s, 503, "5.5.1 Error: BODY=BINARYMIME requires BDAT");
    } else if (!smtpd_check_data_wait(s, smtpd_data_accept)) {   /* smtpd_data_restrictions */
        smtpd_data_accept(s);
    }
}

static void data_start(struct smtpd_session *s);
static void finish_to_cleanup(struct smtpd_session *s);

/* smtpd_proxy_filter: no queue file here (the filter hands the message back
 * to an smtpd that makes one). true while the filter has yet to answer
 * DATA; false when content may come at once (speed_adjust spools it). */
static bool start_proxy(struct smtpd_session *s)
{
    reset_message_state(s);
    if (smtpd_proxy_data_wait(s, proxy_data_ready))
        return true;
    smtpd_check_content_start(s, &s->content);   /* PREPEND headers come first */
    return false;
}

static void smtpd_data_accept(struct smtpd_session *s)
{
    if (smtpd_milter_data_wait(s, smtpd_data_accept))   /* the milters' DATA event */
        return;
    if (smtpd_proxy_enabled()) {
        if (!start_proxy(s))
            data_start(s);
        return;
    }
    if (milter_content(s)) {
        start_cleanup(s);
        data_start(s);
        return;
    }
    if (!s->bdat_mode) {
        /* cleanup is asked for later (late_cleanup_open) */
        reset_message_state(s);
        smtpd_data_queue_id(s);
        s->cleanup_late = true;
        smtpd_check_content_start(s, &s->content);   /* PREPEND headers come first */
        data_start(s);
        return;
    }
    if (!start_cleanup(s)) {
        smtpd_session_reply(s, 451, "4.3.0 Error: queue file write error");
        end_transaction(s);
    }
}

static void data_start(struct smtpd_session *s)
{
    /* Content sent before our 354 means the client does not wait for
     * replies; a proxy in front of us may then disagree about where the
     * message ends. */
    if (smtpd_cfg.forbid_unauth_pipelining && smtpd_session_input_pending(s)) {
        char sample[256];
        smtpd_session_pending_sample(s, sample, sizeof(sample));
        msg_info("improper command pipelining after DATA from %s: %s", s->client_desc, sample);
        smtpd_session_close_with(s, 554, "5.5.0 Error: SMTP protocol synchronization");
        return;
    }
    smtpd_session_reply(s, 354, "End data with <CR><LF>.<CR><LF>");
    smtpd_content_decoder_init(&s->dec, s->line_crlf);
    s->state = ST_DATA;
}

static void data_end(struct smtpd_session *s)
{
    s->where = "END-OF-MESSAGE";
    s->state = ST_CMD;
    if (s->too_big)
        set_end_reply(s, 552, "5.3.4 Error: message file too big");
    else if (bare_rejected(s))
        set_end_reply(s, 550, bare_rejected(s));
    if (!sink_open(s)) {  /* cleanup failed while content was arriving */
        smtpd_session_reply(s, s->end_code, "%s", s->end_text);
        end_transaction(s);
        return;
    }
    /* smtpd_end_of_data_restrictions */
    if (s->end_code == 0 && smtpd_check_eod_wait(s, smtpd_data_eod_checked))
        return;
    smtpd_data_eod_checked(s, 0, "");
}

/* The end of data before a last step of its own (the proxy filter's or
 * the milters' end of message): smtpd's own refusal or a discard answers
 * the client now (with a proxy filter, the filter's connection is closed
 * mid-message and never sees the end). True when it did. */
static bool eod_answered_here(struct smtpd_session *s)
{
    flush_content(s, true);
    if (s->too_big)
        set_end_reply(s, 552, "5.3.4 Error: message file too big");
    if (s->end_code) {
        log_reject(s, s->end_code, s->end_text);
        smtpd_session_reply(s, s->end_code, "%s", s->end_text);
    } else if (smtpd_check_discarding(s)) {
        smtpd_session_reply(s, 250, "2.0.0 Ok: discarded");
        s->errors = 0;
    } else {
        return false;
    }
    end_transaction(s);
    return true;
}

static void smtpd_data_eod_checked(struct smtpd_session *s, int code, const char *text)
{
    if (code)
        set_end_reply(s, code, text);
    /* with a proxy filter, its answer to "." is the answer */
    if (smtpd_proxy_enabled()) {
        if (!eod_answered_here(s))
            smtpd_proxy_eod(s, proxy_eod_done);
        return;
    }
    if (!s->cleanup && milter_content(s)) {
        if (!eod_answered_here(s))
            smtpd_milter_eod(s, smtpd_data_milter_done);
        return;
    }
    if (s->cleanup_late && !s->cleanup) {
        /* a refusal or a discard needs no queue file */
        if (eod_answered_here(s))
            return;
        late_cleanup_open(s);
        if (!s->cleanup) {
            smtpd_session_reply(s, s->end_code, "%s", s->end_text);
            end_transaction(s);
            return;
        }
        s->cleanup_late_end = true;     /* data_ready sends it all */
        return;
    }
    if (s->cleanup_late) {              /* asked mid-message, not ready yet */
        s->cleanup_late_end = true;
        s->pause |= PAUSE_CLEANUP;
        return;
    }
    if (!s->cleanup) {
        smtpd_session_reply(s, s->end_code ? s->end_code : 451, "%s",
                            s->end_code ? s->end_text : "4.3.0 Error: queue file write error");
        end_transaction(s);
        return;
    }
    finish_to_cleanup(s);
}

/* The rest of the content and the end frame to cleanup; its verdict
 * comes to data_done. */
static void finish_to_cleanup(struct smtpd_session *s)
{
    flush_content(s, true);
    /* DISCARD: the message is accepted and dropped; cleanup writes nothing */
    smtpd_cleanup_finish(s->cleanup, s->end_code == 0 && !smtpd_check_discarding(s));
    s->cleanup_ending = true;
    s->pause |= PAUSE_CLEANUP;
}

bool smtpd_data_feed(struct smtpd_session *s, struct evbuffer *in)
{
    size_t avail = evbuffer_get_length(in);
    if (avail == 0)
        return false;
    size_t take = avail < FEED_MAX ? avail : FEED_MAX;
    bool keep = !s->too_big && !bare_rejected(s) && sink_open(s);
    /* Decoded where the bytes lie (the input comes in many small pieces):
     * no pullup, which would copy them into one piece first. */
    struct evbuffer_iovec v[FEED_PIECES];
    int nv = evbuffer_peek(in, (ev_ssize_t)take, NULL, v, FEED_PIECES);
    size_t used = 0;
    for (int k = 0; k < nv && k < FEED_PIECES && used < take && !s->dec.done; k++) {
        size_t n = v[k].iov_len < take - used ? v[k].iov_len : take - used;
        size_t u = smtpd_content_decode_data(&s->dec, v[k].iov_base, n, keep ? &s->content : NULL);
        used += u;
        if (u < n)
            break;                  /* the end of data */
    }
    evbuffer_drain(in, used);
    if (smtpd_cfg.size_limit > 0 && s->dec.size > (unsigned long long)smtpd_cfg.size_limit) {
        s->too_big = true;
        sb_reset(&s->content);
    } else if (bare_rejected(s)) {
        sb_reset(&s->content);
    }
    if (s->dec.done) {
        data_end(s);
        return true;
    }
    flush_content(s, false);
    if (smtpd_cleanup_backlogged(s->cleanup) || smtpd_proxy_backlogged(s))
        s->pause |= PAUSE_BACKLOG;
    return true;
}

/* ---- BDAT ---- */

/* Read the chunk and throw it away, then reply code/text and end the transaction. */
static void bdat_skip(struct smtpd_session *s, int code, const char *text)
{
    s->bdat_skip = true;
    s->bdat_skip_code = code;
    str_copy(s->bdat_skip_text, sizeof(s->bdat_skip_text), text);
    s->state = ST_BDAT;
}

void smtpd_bdat_command(struct smtpd_session *s, const char *arg)
{
    long long count;
    bool last;
    int rc = smtp_parse_bdat(arg, &count, &last);
    if (rc == -1) {
        /* Without a count the chunk cannot be skipped: its bytes would be
         * read as commands. */
        smtpd_session_close_with(s, 521, "5.5.4 Syntax: BDAT count [LAST]");
        return;
    }
    s->bdat_left = s->bdat_chunk = count;
    s->bdat_last = last;
    s->bdat_skip = false;
    if (rc == -2)
        bdat_skip(s, 501, "5.5.4 Syntax: BDAT count [LAST]");
    else if (!s->in_mail)
        bdat_skip(s, 503, "5.5.1 Error: need MAIL command");
    else if (s->nrcpt == 0)
        bdat_skip(s, 503, "5.5.1 Error: need RCPT command");
    else if (smtpd_cfg.size_limit > 0 && (count > smtpd_cfg.size_limit
             || s->bdat_total > smtpd_cfg.size_limit - count))
        bdat_skip(s, 552, "5.3.4 Error: message file too big");
    else if (!s->bdat_mode) {
        if (smtpd_milter_bdat_wait(s, smtpd_bdat_first_chunk))  /* the milters' DATA event first */
            return;
        smtpd_bdat_first_chunk(s, 0, "");
    } else if (!sink_open(s)) {
        bdat_skip(s, s->end_code ? s->end_code : 451,
                  s->end_code ? s->end_text : "4.3.0 Error: queue file write error");
    } else {
        s->bdat_total += count;
        s->state = ST_BDAT;
    }
}

/* The first chunk of a message, once the milters' DATA event passed (code
 * 0) or refused it (the chunk is read and the refusal is the reply). */
static void smtpd_bdat_first_chunk(struct smtpd_session *s, int code, const char *text)
{
    if (code) {
        bdat_skip(s, code, text);
        return;
    }
    s->bdat_mode = true;
    smtpd_content_decoder_init(&s->dec, true);
    if (smtpd_proxy_enabled()) {
        if (!start_proxy(s))
            s->state = ST_BDAT;
        s->bdat_total = s->bdat_chunk;
        return;
    }
    if (!start_cleanup(s))
        bdat_skip(s, 451, "4.3.0 Error: queue file write error");
    s->bdat_total = s->bdat_chunk;
}

/* The whole chunk has been read. */
static void bdat_chunk_done(struct smtpd_session *s)
{
    s->state = ST_CMD;
    if (s->bdat_skip) {
        smtpd_session_reply(s, s->bdat_skip_code, "%s", s->bdat_skip_text);
        end_transaction(s);
        return;
    }
    if (!sink_open(s)) {
        smtpd_session_reply(s, s->end_code, "%s", s->end_text);
        end_transaction(s);
        return;
    }
    if (!s->bdat_last) {
        flush_content(s, false);
        smtpd_session_reply(s, 250, "2.0.0 Ok: %lld bytes", s->bdat_chunk);
        return;
    }
    s->where = "END-OF-MESSAGE";
    smtpd_content_finish_bdat(&s->dec, bare_rejected(s) ? NULL : &s->content);
    if (bare_rejected(s)) {
        sb_reset(&s->content);
        set_end_reply(s, 550, bare_rejected(s));
    }
    /* smtpd_end_of_data_restrictions */
    if (s->end_code == 0 && smtpd_check_eod_wait(s, smtpd_data_eod_checked))
        return;
    smtpd_data_eod_checked(s, 0, "");
}

bool smtpd_bdat_feed(struct smtpd_session *s, struct evbuffer *in)
{
    size_t avail = evbuffer_get_length(in);
    size_t take = avail < FEED_MAX ? avail : FEED_MAX;
    if ((long long)take > s->bdat_left)
        take = (size_t)s->bdat_left;
    if (take > 0) {
        struct evbuffer_iovec v[FEED_PIECES];
        int nv = evbuffer_peek(in, (ev_ssize_t)take, NULL, v, FEED_PIECES);
        size_t seen = 0;
        for (int k = 0; k < nv && k < FEED_PIECES && seen < take; k++) {
            size_t n = v[k].iov_len < take - seen ? v[k].iov_len : take - seen;
            if (!s->bdat_skip && sink_open(s))
                smtpd_content_decode_bdat(&s->dec, v[k].iov_base, n,
                                          bare_rejected(s) ? NULL : &s->content);
            seen += n;
        }
        take = seen;
        if (bare_rejected(s))
            sb_reset(&s->content);      /* refused at the end; nothing more is kept */
        evbuffer_drain(in, take);
        s->bdat_left -= (long long)take;
    }
    if (s->bdat_left > 0) {
        flush_content(s, false);
        if (smtpd_cleanup_backlogged(s->cleanup) || smtpd_proxy_backlogged(s))
            s->pause |= PAUSE_BACKLOG;
        return take > 0;
    }
    bdat_chunk_done(s);
    return true;
}

/* ---- cleanup callbacks ---- */

/* The milters passed the message: cleanup gets the edited envelope (in
 * smtpd_cleanup_open) and content. */
static void smtpd_data_milter_done(struct smtpd_session *s, int verdict, int code, const char *text)
{
    if (verdict == MILTER_REJECT || verdict == MILTER_TEMPFAIL) {
        smtpd_session_reply(s, code, "%s", text);
        end_transaction(s);
        return;
    }
    if (verdict == MILTER_DISCARD) {
        smtpd_session_reply(s, 250, "2.0.0 Ok: discarded");
        s->errors = 0;
        end_transaction(s);
        return;
    }
    s->cleanup = smtpd_cleanup_open(s, &data_callbacks);
    if (!s->cleanup) {
        smtpd_session_reply(s, 451, "4.3.0 Error: queue file write error");
        end_transaction(s);
        return;
    }
    s->pause |= PAUSE_CLEANUP;
}

/* The milters' edited message to cleanup, a piece at a time while cleanup
 * keeps up (data_drained() comes back for the rest), then the end. */
static void send_milter_result(struct smtpd_session *s)
{
    static char piece[CONTENT_FLUSH];
    while (!smtpd_cleanup_backlogged(s->cleanup)) {
        size_t len;
        if (smtpd_milter_content_next(s, piece, sizeof(piece), &len) < 0) {
            set_end_reply(s, 451, "4.3.0 Error: queue file write error");
            smtpd_cleanup_finish(s->cleanup, false);
            s->cleanup_ending = true;
            return;
        }
        if (len == 0) {
            smtpd_cleanup_finish(s->cleanup, true);
            s->cleanup_ending = true;
            return;
        }
        smtpd_cleanup_send(s->cleanup, piece, len);
    }
}

/* Cleanup asked for late (late_cleanup_open) is ready, or failed. */
static void late_cleanup_ready(struct smtpd_session *s, bool ok)
{
    bool at_end = s->cleanup_late_end;
    s->cleanup_late = s->cleanup_late_end = false;
    s->pause &= ~PAUSE_CLEANUP;
    if (!ok) {
        smtpd_cleanup_free(s->cleanup);
        s->cleanup = NULL;
        sb_reset(&s->content);
        set_end_reply(s, 451, "4.3.0 Error: queue file write error");
        if (at_end) {
            smtpd_session_reply(s, s->end_code, "%s", s->end_text);
            end_transaction(s);
        }
        /* else the rest of the content is read and dropped, then refused */
        smtpd_session_resume(s, 0);
        return;
    }
    if (at_end) {
        finish_to_cleanup(s);
        return;
    }
    flush_content(s, true);             /* what came so far */
    if (smtpd_cleanup_backlogged(s->cleanup))
        s->pause |= PAUSE_BACKLOG;
    smtpd_session_resume(s, 0);
}

static void data_ready(struct smtpd_session *s, bool ok)
{
    if (s->cleanup_late) {
        late_cleanup_ready(s, ok);
        return;
    }
    if (smtpd_milter_has_result(s)) {
        if (!ok) {
            s->pause &= ~PAUSE_CLEANUP;
            smtpd_cleanup_free(s->cleanup);
            s->cleanup = NULL;
            smtpd_session_reply(s, 451, "4.3.0 Error: queue file write error");
            end_transaction(s);
            smtpd_session_resume(s, 0);
            return;
        }
        send_milter_result(s);
        return;
    }
    s->pause &= ~PAUSE_CLEANUP;
    if (!ok) {
        smtpd_cleanup_free(s->cleanup);
        s->cleanup = NULL;
        if (s->bdat_mode) {
            bdat_skip(s, 451, "4.3.0 Error: queue file write error");
        } else {
            smtpd_session_reply(s, 451, "4.3.0 Error: queue file write error");
            end_transaction(s);
        }
    } else {
        smtpd_check_content_start(s, &s->content);   /* PREPEND headers come first */
        if (s->bdat_mode)
            s->state = ST_BDAT;
        else
            data_start(s);
    }
    smtpd_session_resume(s, 0);
}

/* A cleanup reply text we pass on must look like "X.Y.Z text". */
static bool reason_usable(int status, const char *reason)
{
    return status >= 400 && status <= 599 && strlen(reason) >= 6
        && reason[0] == '0' + status / 100 && reason[1] == '.';
}

static void data_done(struct smtpd_session *s, int status, const char *queue_id, const char *reason)
{
    bool final = s->cleanup_ending;
    smtpd_cleanup_free(s->cleanup);
    s->cleanup = NULL;
    if (!final) {
        /* cleanup failed mid-message: read the rest, then report */
        set_end_reply(s, 451, "4.3.0 Error: queue file write error");
        smtpd_session_resume(s, PAUSE_BACKLOG);
        return;
    }
    s->pause &= ~PAUSE_CLEANUP;
    if (s->end_code) {
        log_reject(s, s->end_code, s->end_text);
        smtpd_session_reply(s, s->end_code, "%s", s->end_text);
    } else if (status == 0 && smtpd_check_discarding(s)) {
        smtpd_session_reply(s, 250, "2.0.0 Ok: discarded");
        s->errors = 0;
    } else if (status == 0 && queue_id_valid(queue_id)) {
        smtpd_milter_queued(s, queue_id);
        metrics_add(M_SMTPD_ACCEPTED, 1, NULL);
        metrics_add(M_SMTPD_RECEIVED_BYTES, (long long)s->dec.size, NULL);
        smtpd_session_reply(s, 250, "2.0.0 Ok: queued as %s", queue_id);
        s->errors = 0;
        smtpd_user_lists_record(s);
    } else if (reason_usable(status, reason)) {
        smtpd_session_reply(s, status, "%s", reason);
    } else {
        msg_warn("%s: cleanup service gave status %d: %.100s", s->client_desc, status, reason);
        smtpd_session_reply(s, 451, "4.3.0 Error: queue file write error");
    }
    end_transaction(s);
    smtpd_session_resume(s, 0);
}

static void data_drained(struct smtpd_session *s)
{
    if (s->cleanup && !s->cleanup_ending && smtpd_milter_has_result(s)) {
        send_milter_result(s);
        return;
    }
    smtpd_session_resume(s, PAUSE_BACKLOG);
}

/* ---- proxy filter callbacks (smtpd_proxy.c) ---- */

/* The filter's answer to DATA: 354, or its refusal (or 451 when it could
 * not be asked), which is then the answer to DATA or the first BDAT. */
static void proxy_data_ready(struct smtpd_session *s, int code, const char *text)
{
    if (code != 354) {
        smtpd_command_log_whatsup(s, "proxy-reject", "DATA", code, text,
                                  s->nrcpt ? s->rcpts[0].address : "");
        if (s->bdat_mode) {
            bdat_skip(s, code, text);
        } else {
            smtpd_session_reply(s, code, "%s", text);
            end_transaction(s);
        }
        return;
    }
    smtpd_check_content_start(s, &s->content);   /* PREPEND headers come first */
    if (s->bdat_mode)
        s->state = ST_BDAT;
    else
        data_start(s);
}

/* The filter's answer at the end of data is the client's: mail it took is
 * its to queue; anything else is not accepted here either. */
static void proxy_eod_done(struct smtpd_session *s, int code, const char *text)
{
    const char *rcpt = s->nrcpt ? s->rcpts[0].address : "";
    if (code / 100 == 2) {
        smtpd_command_log_whatsup(s, "proxy-accept", "END-OF-MESSAGE", code, text, rcpt);
        s->errors = 0;
    } else {
        smtpd_command_log_whatsup(s, "proxy-reject", "END-OF-MESSAGE", code, text, rcpt);
    }
    smtpd_session_reply(s, code, "%s", text);
    end_transaction(s);
}
