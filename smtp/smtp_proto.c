/* smtp_proto.c: the SMTP dialogue with one remote server: greeting, EHLO
 * (HELO when EHLO is rejected), STARTTLS and EHLO again as the TLS policy
 * asks, AUTH, the checks that must pass before a
 * transaction (loop, SMTPUTF8, 8BITMIME, SIZE), MAIL FROM / RCPT TO / DATA
 * (pipelined when the server offers PIPELINING), the content, and QUIT.
 * Outcomes go to the recipients; a server that fails before any recipient
 * was decided is reported back so that the next server can be tried. A
 * transaction that ends with every reply read and no 421 leaves the
 * session reusable: the caller then decides between RSET (to keep it for
 * the next request, smtp_cache.c) and QUIT. In LMTP mode (RFC 2033) the
 * greeting is answered with LHLO (no HELO fallback, no loop check: the
 * server is our own mailbox store), and the end of the content gets one
 * reply per accepted recipient, each deciding that recipient alone. An
 * address verification probe (DELIVER_FLAG_VERIFY) ends after the RCPT TO
 * replies: an accepted recipient is deliverable, no DATA is sent, and the
 * session is left for RSET (reuse) or QUIT like any other. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "smtp.h"
#include "util.h"

#define SMTP_CONTENT_OUT_LIMIT (4 * QREC_CONTENT_CHUNK)   /* encoded chunk: at most 2x + ".\r\n" */

enum step { STEP_OK, STEP_NEXT, STEP_DONE };

struct dialogue {
    struct smtp_session *s;
    struct smtp_request *rq;
    struct strbuf *why;          /* for STEP_NEXT */
    char *dsn;                   /* for STEP_NEXT */
    size_t *sent;                /* recipients given a RCPT TO in this transaction */
    size_t nsent;
    size_t naccepted;
    bool pipelined;              /* replies may still be on their way */
};

static bool has_non_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s > 0x7f)
            return true;
    return false;
}

/* The text of the last reply, "550 5.1.1 ...", on one line. */
static const char *reply_text(struct dialogue *d, struct strbuf *buf)
{
    sb_reset(buf);
    smtp_reply_oneline(&d->s->reply, buf);
    return sb_str(buf);
}

/* "lost connection with H while STAGE" / "conversation with H timed out while STAGE". */
static void io_failure(struct dialogue *d, const char *stage, struct strbuf *out)
{
    struct smtp_session *s = d->s;
    sb_reset(out);
    if (s->timed_out)
        sb_appendf(out, "conversation with %s timed out while %s", s->name, stage);
    else if (strcmp(s->io_error ? s->io_error : "", "lost connection") == 0)
        sb_appendf(out, "lost connection with %s while %s", s->name, stage);
    else
        sb_appendf(out, "error talking to %s while %s: %s", s->name, stage,
                   s->io_error ? s->io_error : "unknown error");
}

static enum step next_server(struct dialogue *d, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum step next_server(struct dialogue *d, const char *dsn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char text[SMTP_REASON_MAX];
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    sb_set(d->why, text);
    str_copy(d->dsn, SMTP_DSN_SIZE, dsn);
    return STEP_NEXT;
}

/* TLS could not be had with this server. For a REQUIRETLS message that
 * is final for this server (RFC 8689 section 4.2.1: 5.7.10, the next server
 * may still do); otherwise as dsn says. */
static enum step tls_failed(struct dialogue *d, const char *dsn, const char *text)
{
    if (d->rq->requiretls_enforced)
        return next_server(d, "5.7.10", "REQUIRETLS: %s", text);
    return next_server(d, dsn, "%s", text);
}

/* A command whose reply we wait for now (no pipelining). */
static int command_reply(struct smtp_session *s, int timeout)
{
    if (smtp_flush(s, timeout) < 0)
        return -1;
    return smtp_read_reply(s, timeout);
}

void smtp_session_quit(struct smtp_session *s, int timeout)
{
    s->reusable = false;
    if (smtp_queue_command(s, "QUIT") == 0 && smtp_flush(s, timeout) == 0)
        smtp_read_reply(s, timeout);
}

static void send_quit(struct smtp_session *s)
{
    smtp_session_quit(s, smtp_cfg.quit_timeout);
}

bool smtp_session_reset(struct smtp_session *s)
{
    return smtp_queue_command(s, "RSET") == 0 && command_reply(s, smtp_cfg.rset_timeout) == 0
           && s->reply.code / 100 == 2;
}

/* The transaction is over and no reply is outstanding: the session may
 * carry another one, unless the server said it is closing. */
static enum step transaction_over(struct dialogue *d)
{
    if (d->s->server_closing)
        send_quit(d->s);
    else
        d->s->reusable = true;
    return STEP_DONE;
}

/* The server named itself as we are: the mail would come back to us. */
static enum step check_loop(struct dialogue *d)
{
    if (smtp_cfg.lmtp)
        return STEP_OK;
    char word[256];
    smtp_reply_first_word(&d->s->reply, word, sizeof(word));
    if (!str_ieq(word, smtp_cfg.myhostname))
        return STEP_OK;
    msg_warn("host %s greeted me with my own hostname %s", d->s->name, smtp_cfg.myhostname);
    smtp_rcpt_set_all(d->rq, 4, "4.4.6", d->s->desc, "mail for %s loops back to myself",
                      d->rq->dr->nexthop);
    send_quit(d->s);
    return STEP_DONE;
}

/* The server refused the greeting or HELO/EHLO: when permanent every
 * recipient bounces, otherwise the next server may try; either way the
 * session ends with QUIT. */
static enum step session_refused(struct dialogue *d, bool permanent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum step session_refused(struct dialogue *d, bool permanent, const char *fmt, ...)
{
    struct smtp_session *s = d->s;
    char text[SMTP_REASON_MAX], dsn[SMTP_DSN_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    enum step rc = STEP_DONE;
    if (permanent) {
        smtp_reply_dsn(&s->reply, 0, dsn);
        smtp_rcpt_set_all(d->rq, 5, dsn, s->desc, "%s", text);
    } else {
        smtp_reply_dsn(&s->reply, 4, dsn);
        rc = next_server(d, dsn, "%s", text);
    }
    send_quit(s);
    return rc;
}

static enum step greeting(struct dialogue *d)
{
    struct smtp_session *s = d->s;
    struct strbuf text = STRBUF_INIT(SMTP_REASON_MAX);
    enum step rc = STEP_OK;
    if (smtp_read_reply(s, smtp_cfg.helo_timeout) < 0) {
        io_failure(d, "receiving the initial server greeting", &text);
        rc = next_server(d, "4.4.2", "%s", sb_str(&text));
    } else if (s->reply.code / 100 == 2) {
        rc = check_loop(d);
    } else {
        /* smtp_skip_5xx_greeting makes a 5xx temporary */
        rc = session_refused(d, s->reply.code / 100 == 5 && !smtp_cfg.skip_5xx_greeting,
                             "host %s refused to talk to me: %s", s->name, reply_text(d, &text));
    }
    sb_free(&text);
    return rc;
}

/* EHLO, and HELO when the server rejects EHLO with a 5xx. */
static enum step hello(struct dialogue *d)
{
    struct smtp_session *s = d->s;
    struct strbuf text = STRBUF_INIT(SMTP_REASON_MAX);
    const char *verb = smtp_cfg.lmtp ? "LHLO" : "EHLO";
    enum step rc;
    int io = smtp_queue_command(s, "%s %s", verb, smtp_cfg.helo_name) < 0 ? -1
             : command_reply(s, smtp_cfg.helo_timeout);
    if (io == 0 && s->reply.code / 100 == 5 && !smtp_cfg.lmtp) {
        verb = "HELO";
        io = smtp_queue_command(s, "HELO %s", smtp_cfg.helo_name) < 0 ? -1
             : command_reply(s, smtp_cfg.helo_timeout);
    }
    if (io < 0) {
        io_failure(d, strcmp(verb, "EHLO") == 0 ? "performing the EHLO handshake"
                      : strcmp(verb, "LHLO") == 0 ? "performing the LHLO handshake"
                                                  : "performing the HELO handshake", &text);
        rc = next_server(d, "4.4.2", "%s", sb_str(&text));
    } else if (s->reply.code / 100 == 2) {
        s->features = 0;
        s->auth_mechs = 0;
        if (strcmp(verb, "HELO") != 0) {
            s->features = smtp_ehlo_parse(&s->reply, &s->size_limit);
            s->auth_mechs = smtp_ehlo_auth_mechs(sb_str(&s->reply.lines), s->reply.lines.len);
        }
        rc = check_loop(d);
    } else {
        rc = session_refused(d, s->reply.code / 100 == 5, "host %s said: %s (in reply to %s command)",
                             s->name, reply_text(d, &text), verb);
    }
    sb_free(&text);
    return rc;
}

/* STARTTLS as the policy asks, then EHLO again over TLS. Mandatory TLS
 * never falls back to plaintext; opportunistic TLS continues in clear
 * when STARTTLS is not offered or refused, and after a failed handshake
 * asks the caller for a new plaintext connection (s->tls_retry_plain),
 * unless there are AUTH credentials for the server (Postfix's rule: they
 * would be sent in clear, or the relay would refuse the mail). */
static enum step starttls(struct dialogue *d)
{
    struct smtp_session *s = d->s;
    struct smtp_request *rq = d->rq;
    enum smtp_tls_level level = s->tls_off ? SMTP_TLS_NONE : rq->tls.level;
    enum step rc;
    if (level == SMTP_TLS_NONE || s->ssl)
        return STEP_OK;
    if (!(s->features & SMTP_FEAT_STARTTLS) || !smtp_tls_ready()) {
        if (!(s->features & SMTP_FEAT_STARTTLS))
            smtp_tlsrpt_fail(s, TLSRPT_STARTTLS_NOT_SUPPORTED, "STARTTLS not offered");
        if (level == SMTP_TLS_MAY) {
            if (rq->attempt.sts_session && !(s->features & SMTP_FEAT_STARTTLS))
                msg_info("%s: %s did not offer STARTTLS, which the MTA-STS policy of %s requires; "
                         "delivering anyway (mode testing)", rq->dr->queue_id, s->name, rq->sts_domain);
            return STEP_OK;
        }
        char text[SMTP_REASON_MAX];
        if (!(s->features & SMTP_FEAT_STARTTLS)) {
            snprintf(text, sizeof(text), "TLS is required, but was not offered by host %s%s", s->name,
                     level == SMTP_TLS_DANE ? " (it publishes DANE TLSA records)" : "");
            rc = tls_failed(d, "4.7.4", text);
        } else {
            rc = next_server(d, "4.7.5", "TLS is required, but our TLS engine is unavailable");
        }
        send_quit(s);
        return rc;
    }
    struct strbuf text = STRBUF_INIT(SMTP_REASON_MAX);
    char dsn[SMTP_DSN_SIZE];
    if (smtp_queue_command(s, "STARTTLS") < 0 || command_reply(s, smtp_cfg.helo_timeout) < 0) {
        io_failure(d, "performing the STARTTLS handshake", &text);
        rc = next_server(d, "4.4.2", "%s", sb_str(&text));
    } else if (s->reply.code / 100 != 2) {
        char rpt_why[64];
        snprintf(rpt_why, sizeof(rpt_why), "STARTTLS refused with %d", s->reply.code);
        smtp_tlsrpt_fail(s, TLSRPT_STARTTLS_NOT_SUPPORTED, rpt_why);
        s->features &= ~SMTP_FEAT_STARTTLS;
        rc = STEP_OK;                       /* opportunistic: on in clear */
        if (level >= SMTP_TLS_ENCRYPT) {
            char refused[SMTP_REASON_MAX];
            smtp_reply_dsn(&s->reply, 4, dsn);
            snprintf(refused, sizeof(refused), "TLS is required, but host %s refused to start TLS: %s",
                     s->name, reply_text(d, &text));
            rc = tls_failed(d, dsn, refused);
            send_quit(s);
        }
    } else if (smtp_tls_start(s, rq, &text, dsn) < 0) {
        if (s->tls_dead && level == SMTP_TLS_MAY) {
            char *user = NULL, *password = NULL;
            s->tls_retry_plain = !smtp_cfg.sasl_enable || smtp_sasl_lookup(s, rq, &user, &password) == 0;
            smtp_sasl_free(user, password);
        }
        rc = tls_failed(d, dsn, sb_str(&text));
        if (!s->tls_dead)
            send_quit(s);                   /* the certificate failed, the session works */
    } else {
        rc = hello(d);
    }
    sb_free(&text);
    return rc;
}

/* AUTH when there are credentials for this server. */
static enum step authenticate(struct dialogue *d)
{
    struct smtp_session *s = d->s;
    struct strbuf text = STRBUF_INIT(SMTP_REASON_MAX);
    char dsn[SMTP_DSN_SIZE];
    int status;
    enum step rc = STEP_OK;
    if (smtp_sasl_authenticate(s, d->rq, &text, dsn, &status) == SMTP_SASL_FAILED) {
        bool connected = s->io_error == NULL;
        if (status == 5) {
            smtp_rcpt_set_all(d->rq, 5, dsn, s->desc, "%s", sb_str(&text));
            rc = STEP_DONE;
        } else {
            rc = next_server(d, dsn, "%s", sb_str(&text));
        }
        if (connected)
            send_quit(s);
    }
    sb_free(&text);
    return rc;
}

/* What the message needs that the server must offer. */
static enum step check_features(struct dialogue *d)
{
    struct smtp_session *s = d->s;
    struct smtp_request *rq = d->rq;
    bool utf8 = s->features & SMTP_FEAT_SMTPUTF8;
    unsigned long long wire_size = rq->content.bytes + rq->content.lines;
    /* RFC 8689 section 4.2.1: verified TLS (the level saw to the
     * verification) and REQUIRETLS in the EHLO reply that followed it;
     * otherwise QUIT and the next server */
    if (rq->requiretls_enforced && !s->ssl) {
        send_quit(s);
        return next_server(d, "5.7.10", "REQUIRETLS: no TLS session with host %s", s->name);
    }
    if (rq->requiretls_enforced && !(s->features & SMTP_FEAT_REQUIRETLS)) {
        send_quit(s);
        return next_server(d, "5.7.30", "REQUIRETLS support required, but host %s does not offer "
                           "REQUIRETLS", s->name);
    }
    if (!utf8 && (rq->smtputf8 || has_non_ascii(rq->dr->sender)))
        smtp_rcpt_set_all(rq, 5, "5.6.7", s->desc,
                          "SMTPUTF8 is required, but was not offered by host %s", s->name);
    else if (rq->content.eight_bit && !(s->features & SMTP_FEAT_8BITMIME))
        smtp_rcpt_set_all(rq, 4, "4.6.3", s->desc,
                          "host %s does not offer 8BITMIME: 8-bit content not supported by the "
                          "remote server", s->name);
    else if (s->size_limit > 0 && wire_size > s->size_limit)
        smtp_rcpt_set_all(rq, 5, "5.3.4", s->desc,
                          "message size %llu exceeds size limit %llu of server %s", wire_size,
                          s->size_limit, s->name);
    else
        return STEP_OK;
    return transaction_over(d);     /* about this message only: the server is fine */
}

/* " SIZE=n BODY=8BITMIME SMTPUTF8 REQUIRETLS RET=.. ENVID=.." as the server allows. */
static void mail_parameters(struct dialogue *d, struct strbuf *p)
{
    struct smtp_session *s = d->s;
    struct smtp_request *rq = d->rq;
    if (s->features & SMTP_FEAT_SIZE)
        sb_appendf(p, " SIZE=%llu", rq->content.bytes + rq->content.lines);
    if ((s->features & SMTP_FEAT_8BITMIME) && (rq->content.eight_bit || rq->body_8bitmime))
        sb_appends(p, " BODY=8BITMIME");
    if ((s->features & SMTP_FEAT_SMTPUTF8) && (rq->smtputf8 || has_non_ascii(rq->dr->sender)))
        sb_appends(p, " SMTPUTF8");
    if ((s->features & SMTP_FEAT_REQUIRETLS) && rq->requiretls && s->ssl)
        sb_appends(p, " REQUIRETLS");
    if (!(s->features & SMTP_FEAT_DSN))
        return;
    if (rq->ret && (strcmp(rq->ret, "FULL") == 0 || strcmp(rq->ret, "HDRS") == 0))
        sb_appendf(p, " RET=%s", rq->ret);
    size_t before = p->len;
    if (rq->envid && *rq->envid && (sb_appends(p, " ENVID=") < 0 || smtp_xtext_append(p, rq->envid) < 0))
        sb_truncate(p, before);
}

static bool notify_ok(const char *s)
{
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ,") == strlen(s);
}

/* " NOTIFY=.. ORCPT=type;xtext" when the server offers DSN. */
static void rcpt_parameters(struct dialogue *d, const struct smtp_rcpt *r, struct strbuf *p)
{
    if (!(d->s->features & SMTP_FEAT_DSN))
        return;
    if (*r->notify && notify_ok(r->notify))
        sb_appendf(p, " NOTIFY=%s", r->notify);
    const char *semi = strchr(r->orcpt, ';');
    size_t tlen = semi ? (size_t)(semi - r->orcpt) : 0;
    size_t before = p->len;
    if (tlen > 0 && tlen <= 32 && strspn(r->orcpt, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == tlen
        && (sb_appendf(p, " ORCPT=%.*s;", (int)tlen, r->orcpt) < 0 || smtp_xtext_append(p, semi + 1) < 0))
        sb_truncate(p, before);
}

/* The recipients of this transaction: every undecided one the server can
 * take (an address that needs SMTPUTF8 is returned when it is not offered). */
static void select_recipients(struct dialogue *d)
{
    struct smtp_request *rq = d->rq;
    for (size_t i = 0; i < rq->nrcpt; i++) {
        struct smtp_rcpt *r = &rq->rcpts[i];
        r->accepted = false;
        if (r->status)
            continue;
        if (has_non_ascii(r->address) && !(d->s->features & SMTP_FEAT_SMTPUTF8))
            smtp_rcpt_set(rq, i, 5, "5.6.7", d->s->desc,
                          "SMTPUTF8 is required, but was not offered by host %s", d->s->name);
        else
            d->sent[d->nsent++] = i;
    }
}

static int queue_rcpt(struct dialogue *d, size_t i)
{
    struct strbuf params = STRBUF_INIT(SMTP_LINE_MAX);
    const struct smtp_rcpt *r = &d->rq->rcpts[i];
    rcpt_parameters(d, r, &params);
    int rc = smtp_queue_command(d->s, "RCPT TO:<%s>%s", r->rcpt_to ? r->rcpt_to : r->address,
                                sb_str(&params));
    sb_free(&params);
    return rc;
}

/* The outcome of one RCPT TO reply. */
static void rcpt_reply(struct dialogue *d, size_t i)
{
    struct smtp_session *s = d->s;
    struct strbuf text = STRBUF_INIT(SMTP_REASON_MAX);
    char dsn[SMTP_DSN_SIZE];
    int cls = s->reply.code / 100;
    if (cls == 2) {
        struct smtp_rcpt *r = &d->rq->rcpts[i];
        r->accepted = true;
        /* the server took our NOTIFY: success notices are its job now */
        r->notify_passed = (s->features & SMTP_FEAT_DSN) && *r->notify && notify_ok(r->notify);
        d->naccepted++;
        if (d->rq->dr->flags & DELIVER_FLAG_VERIFY) {    /* the probe's answer */
            smtp_reply_dsn(&s->reply, 2, r->probe_dsn);
            free(r->probe_reply);
            r->probe_reply = xstrdup(reply_text(d, &text));
        }
    } else {
        smtp_reply_dsn(&s->reply, cls == 5 ? 5 : 4, dsn);
        smtp_rcpt_set(d->rq, i, cls == 5 ? 5 : 4, dsn, s->desc,
                      "host %s said: %s (in reply to RCPT TO command)", s->name, reply_text(d, &text));
    }
    sb_free(&text);
}

/* The outcome the last reply (MAIL FROM, DATA, end of data) or an I/O
 * failure gives: class 2, 4 or 5 into *cls, dsn and the reason text. */
static void reply_outcome(struct dialogue *d, const char *in_reply_to, const char *io_stage, int *cls,
                          char dsn[SMTP_DSN_SIZE], struct strbuf *text)
{
    struct smtp_session *s = d->s;
    str_copy(dsn, SMTP_DSN_SIZE, "4.4.2");
    *cls = 4;
    if (io_stage) {
        io_failure(d, io_stage, text);
        return;
    }
    *cls = s->reply.code / 100 == 2 || s->reply.code / 100 == 5 ? s->reply.code / 100 : 4;
    smtp_reply_dsn(&s->reply, *cls, dsn);
    if (*cls == 2) {
        smtp_reply_oneline(&s->reply, text);
    } else {
        sb_appendf(text, "host %s said: ", s->name);
        smtp_reply_oneline(&s->reply, text);
        sb_appendf(text, " (in reply to %s)", in_reply_to);
    }
}

/* Give every recipient still undecided in this transaction the outcome of
 * the last reply (MAIL FROM, DATA, end of data) or of an I/O failure. */
static void transaction_outcome(struct dialogue *d, bool only_accepted, const char *in_reply_to,
                                const char *io_stage)
{
    struct strbuf text = STRBUF_INIT(SMTP_REASON_MAX);
    char dsn[SMTP_DSN_SIZE];
    int cls;
    reply_outcome(d, in_reply_to, io_stage, &cls, dsn, &text);
    for (size_t k = 0; k < d->nsent; k++) {
        size_t i = d->sent[k];
        if (!only_accepted || d->rq->rcpts[i].accepted)
            smtp_rcpt_set(d->rq, i, cls, dsn, d->s->desc, "%s", sb_str(&text));
    }
    sb_free(&text);
}

/* LMTP: after the end of the content, one reply per recipient whose RCPT
 * TO was accepted, in the order of those RCPT TO commands; each decides
 * its recipient. When the connection fails midway, the recipients
 * without a reply yet are deferred (the server may have delivered to
 * them: at most one duplicate each, as with SMTP's lost end-of-data reply). */
static enum step lmtp_data_replies(struct dialogue *d)
{
    struct strbuf text = STRBUF_INIT(SMTP_REASON_MAX);
    char dsn[SMTP_DSN_SIZE];
    int cls;
    for (size_t k = 0; k < d->nsent; k++) {
        size_t i = d->sent[k];
        if (!d->rq->rcpts[i].accepted || d->rq->rcpts[i].status)
            continue;
        if (smtp_read_reply(d->s, smtp_cfg.data_done_timeout) < 0) {
            transaction_outcome(d, true, NULL,
                                "sending end of data -- message may be sent more than once");
            sb_free(&text);
            return STEP_DONE;
        }
        sb_reset(&text);
        reply_outcome(d, "end of DATA command", NULL, &cls, dsn, &text);
        smtp_rcpt_set(d->rq, i, cls, dsn, d->s->desc, "%s", sb_str(&text));
    }
    sb_free(&text);
    return transaction_over(d);
}

/* ---- content ---- */

struct content_ctx {
    struct smtp_session *s;
    struct smtp_encoder enc;
    struct strbuf out;
    bool write_failed;
};

static int content_chunk(const char *data, size_t len, void *arg)
{
    struct content_ctx *c = arg;
    sb_reset(&c->out);
    if (smtp_encode(&c->enc, data, len, &c->out) < 0)
        return -1;
    if (smtp_write(c->s, c->out.data, c->out.len, smtp_cfg.data_xfer_timeout) < 0) {
        c->write_failed = true;
        return -1;
    }
    return 0;
}

/* Send the content and the final dot. 0 ok; -1 write failure (s->io_error);
 * -2 the queue file could not be read: the dot was NOT sent. */
static int send_content(struct dialogue *d)
{
    struct content_ctx c = { .s = d->s };
    smtp_encoder_init(&c.enc);
    sb_init(&c.out, SMTP_CONTENT_OUT_LIMIT);
    int rc = qfile_read_content(d->rq->qfd, d->rq->content_offset, content_chunk, &c);
    if (rc < 0)
        rc = c.write_failed ? -1 : -2;
    else {
        sb_reset(&c.out);
        rc = smtp_encode_end(&c.enc, &c.out) < 0
             || smtp_write(d->s, c.out.data, c.out.len, smtp_cfg.data_xfer_timeout) < 0 ? -1 : 0;
    }
    sb_free(&c.out);
    return rc;
}

static enum step data_phase(struct dialogue *d)
{
    struct smtp_session *s = d->s;
    int rc = send_content(d);
    if (rc == -2) {
        msg_warn("%s: cannot read the content from queue file %s; transaction to %s abandoned",
                 d->rq->dr->queue_id, d->rq->dr->queue_path, s->name);
        for (size_t k = 0; k < d->nsent; k++)
            if (d->rq->rcpts[d->sent[k]].accepted)
                smtp_rcpt_set(d->rq, d->sent[k], 4, "4.3.0", s->desc, "queue file read error");
        return STEP_DONE;          /* the connection is closed without the dot */
    }
    if (rc < 0) {
        transaction_outcome(d, true, NULL, "sending message body");
        return STEP_DONE;
    }
    if (smtp_cfg.lmtp)
        return lmtp_data_replies(d);
    if (smtp_read_reply(s, smtp_cfg.data_done_timeout) < 0) {
        transaction_outcome(d, true, NULL,
                            "sending end of data -- message may be sent more than once");
        return STEP_DONE;
    }
    transaction_outcome(d, true, "end of DATA command", NULL);
    return transaction_over(d);
}

/* The reply to DATA decides whether the content goes out. */
static enum step data_reply(struct dialogue *d)
{
    struct smtp_session *s = d->s;
    if (s->reply.code == 354 && d->naccepted > 0)
        return data_phase(d);
    if (s->reply.code == 354) {
        /* Pipelined, every RCPT TO refused, yet the server wants content:
         * end an empty message; there is nobody it could be delivered to.
         * An LMTP server owes no reply for no recipient: the session ends. */
        if (smtp_cfg.lmtp) {
            if (smtp_write(s, ".\r\n", 3, smtp_cfg.data_xfer_timeout) == 0)
                send_quit(s);
            return STEP_DONE;
        }
        if (smtp_write(s, ".\r\n", 3, smtp_cfg.data_xfer_timeout) == 0
            && smtp_read_reply(s, smtp_cfg.data_done_timeout) == 0)
            return transaction_over(d);
        return STEP_DONE;
    }
    int cls = s->reply.code / 100;
    if (d->naccepted > 0 && (cls == 4 || cls == 5)) {
        transaction_outcome(d, true, "DATA command", NULL);
    } else if (d->naccepted > 0) {
        /* Anything but 354 or a rejection: nothing was delivered. */
        struct strbuf text = STRBUF_INIT(SMTP_REASON_MAX);
        for (size_t k = 0; k < d->nsent; k++)
            if (d->rq->rcpts[d->sent[k]].accepted)
                smtp_rcpt_set(d->rq, d->sent[k], 4, "4.5.0", s->desc,
                              "host %s said: %s (unexpected reply to DATA command)", s->name,
                              reply_text(d, &text));
        sb_free(&text);
    }
    if (cls == 4 || cls == 5)
        return transaction_over(d);
    send_quit(s);       /* a server that answers DATA so is not trusted with another transaction */
    return STEP_DONE;
}

/* With no recipient decided yet, a temporary failure of the whole
 * transaction lets the next server try. */
static enum step transaction_failed(struct dialogue *d, const char *in_reply_to, const char *io_stage)
{
    struct strbuf text = STRBUF_INIT(SMTP_REASON_MAX);
    bool temporary = io_stage || d->s->reply.code / 100 != 5;
    bool none_decided = true;
    for (size_t k = 0; k < d->nsent; k++)
        if (d->rq->rcpts[d->sent[k]].status)
            none_decided = false;
    enum step rc = STEP_DONE;
    if (temporary && none_decided) {
        char dsn[SMTP_DSN_SIZE] = "4.4.2";
        if (io_stage) {
            io_failure(d, io_stage, &text);
        } else {
            smtp_reply_dsn(&d->s->reply, 4, dsn);
            sb_appendf(&text, "host %s said: ", d->s->name);
            smtp_reply_oneline(&d->s->reply, &text);
            sb_appendf(&text, " (in reply to %s)", in_reply_to);
        }
        rc = next_server(d, dsn, "%s", sb_str(&text));
    } else {
        transaction_outcome(d, false, in_reply_to, io_stage);
    }
    if (!io_stage && rc == STEP_DONE && !d->pipelined)
        transaction_over(d);
    else if (!io_stage)
        send_quit(d->s);    /* replies to pipelined commands are never read: just QUIT */
    sb_free(&text);
    return rc;
}

static int queue_mail(struct dialogue *d)
{
    struct strbuf params = STRBUF_INIT(SMTP_LINE_MAX);
    mail_parameters(d, &params);
    int rc = smtp_queue_command(d->s, "MAIL FROM:<%s>%s", d->rq->dr->sender, sb_str(&params));
    sb_free(&params);
    return rc;
}

static bool is_probe(const struct dialogue *d)
{
    return (d->rq->dr->flags & DELIVER_FLAG_VERIFY) != 0;
}

/* A probe after its RCPT TO replies: the accepted recipients are
 * deliverable, with the server's reply as the reason. */
static enum step probe_over(struct dialogue *d)
{
    for (size_t k = 0; k < d->nsent; k++) {
        size_t i = d->sent[k];
        if (d->rq->rcpts[i].accepted && !d->rq->rcpts[i].status)
            smtp_rcpt_set(d->rq, i, 2, d->rq->rcpts[i].probe_dsn, d->s->desc, "%s",
                          d->rq->rcpts[i].probe_reply ? d->rq->rcpts[i].probe_reply : "");
    }
    return transaction_over(d);
}

/* MAIL FROM, every RCPT TO and DATA in one write; then the replies in order. */
static enum step transaction_pipelined(struct dialogue *d)
{
    struct smtp_session *s = d->s;
    d->pipelined = true;
    int rc = queue_mail(d);
    for (size_t k = 0; k < d->nsent && rc == 0; k++)
        rc = queue_rcpt(d, d->sent[k]);
    if (rc < 0 || (!is_probe(d) && smtp_queue_command(s, "DATA") < 0)
        || smtp_flush(s, smtp_cfg.mail_timeout) < 0)
        return transaction_failed(d, NULL, "sending MAIL FROM");
    if (smtp_read_reply(s, smtp_cfg.mail_timeout) < 0)
        return transaction_failed(d, NULL, "sending MAIL FROM");
    if (s->reply.code / 100 != 2)
        return transaction_failed(d, "MAIL FROM command", NULL);
    for (size_t k = 0; k < d->nsent; k++) {
        if (smtp_read_reply(s, smtp_cfg.rcpt_timeout) < 0)
            return transaction_failed(d, NULL, "sending RCPT TO");
        rcpt_reply(d, d->sent[k]);
    }
    if (is_probe(d)) {
        d->pipelined = false;       /* every reply is read */
        return probe_over(d);
    }
    if (smtp_read_reply(s, smtp_cfg.data_init_timeout) < 0)
        return transaction_failed(d, NULL, "sending DATA command");
    return data_reply(d);
}

/* One command, one reply: for servers without PIPELINING. */
static enum step transaction_lockstep(struct dialogue *d)
{
    struct smtp_session *s = d->s;
    if (queue_mail(d) < 0 || command_reply(s, smtp_cfg.mail_timeout) < 0)
        return transaction_failed(d, NULL, "sending MAIL FROM");
    if (s->reply.code / 100 != 2)
        return transaction_failed(d, "MAIL FROM command", NULL);
    for (size_t k = 0; k < d->nsent; k++) {
        if (queue_rcpt(d, d->sent[k]) < 0 || command_reply(s, smtp_cfg.rcpt_timeout) < 0)
            return transaction_failed(d, NULL, "sending RCPT TO");
        rcpt_reply(d, d->sent[k]);
    }
    if (is_probe(d))
        return probe_over(d);
    if (d->naccepted == 0)
        return transaction_over(d);
    if (smtp_queue_command(s, "DATA") < 0 || command_reply(s, smtp_cfg.data_init_timeout) < 0)
        return transaction_failed(d, NULL, "sending DATA command");
    return data_reply(d);
}

static enum step transaction(struct dialogue *d)
{
    select_recipients(d);
    if (d->nsent == 0)
        return transaction_over(d);
    return d->s->features & SMTP_FEAT_PIPELINING ? transaction_pipelined(d) : transaction_lockstep(d);
}

/* From the checks of this message against the server to the end of its transaction. */
static enum step mail_transaction(struct dialogue *d)
{
    d->s->reusable = false;
    enum step rc = check_features(d);
    if (rc == STEP_OK) {
        d->rq->xfer_start_usec = now_usec();
        d->sent = xcalloc(d->rq->nrcpt ? d->rq->nrcpt : 1, sizeof(*d->sent));
        rc = transaction(d);
        free(d->sent);
        d->sent = NULL;
    }
    return rc;
}

enum smtp_session_result smtp_session_run(struct smtp_session *s, struct smtp_request *rq,
                                          struct strbuf *why, char dsn[SMTP_DSN_SIZE])
{
    struct dialogue d = { .s = s, .rq = rq, .why = why, .dsn = dsn };
    enum step rc = greeting(&d);
    if (rc == STEP_OK)
        rc = hello(&d);
    if (rc == STEP_OK)
        rc = starttls(&d);
    if (rc == STEP_OK)
        rc = authenticate(&d);
    if (rc == STEP_OK)
        rc = mail_transaction(&d);
    return rc == STEP_NEXT ? SMTP_SESSION_NEXT : SMTP_SESSION_DONE;
}

enum smtp_session_result smtp_session_reuse(struct smtp_session *s, struct smtp_request *rq,
                                            struct strbuf *why, char dsn[SMTP_DSN_SIZE])
{
    struct dialogue d = { .s = s, .rq = rq, .why = why, .dsn = dsn };
    return mail_transaction(&d) == STEP_NEXT ? SMTP_SESSION_NEXT : SMTP_SESSION_DONE;
}
