/* qmgr_dsn.c: composes delivery status notifications as RFC 3464
 * multipart/report messages: a human-readable part, the machine-readable
 * message/delivery-status part (Reporting-MTA, Final-Recipient,
 * Original-Recipient, Action, Status, Remote-MTA, Diagnostic-Code), and the
 * original message or its headers. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "queue.h"
#include "qmgr_dsn.h"
#include "strbuf.h"
#include "util.h"

const char *qmgr_dsn_diagnostic(const char *reason, char *buf, size_t bufsz)
{
    const char *said = strstr(reason, " said: ");
    const char *start = said ? said + 7 : reason;
    size_t len = strlen(start);
    const char *tail = strstr(start, " (in reply to ");
    if (tail)
        len = (size_t)(tail - start);
    if (len >= bufsz)
        len = bufsz - 1;
    memcpy(buf, start, len);
    buf[len] = 0;
    return buf;
}

static bool is_smtp_reply(const char *s)
{
    return isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1])
           && isdigit((unsigned char)s[2]) && (s[3] == ' ' || s[3] == '-' || !s[3]);
}

static const char *action_word(enum dsn_action a)
{
    return a == DSN_FAILED ? "failed" : a == DSN_DELAYED ? "delayed" : "delivered";
}

static void human_part(struct strbuf *out, const struct dsn_report *rep)
{
    const char *host = cfg_str(P_myhostname);
    sb_appendf(out, "This is the mail system at host %s.\n\n", host);
    if (rep->action == DSN_FAILED)
        sb_appends(out, "I'm sorry to have to inform you that your message could not\n"
                        "be delivered to one or more recipients. It's attached below.\n\n"
                        "For further assistance, please send mail to postmaster.\n\n"
                        "If you do so, please include this problem report. You can\n"
                        "delete your own text from the attached returned message.\n\n");
    else if (rep->action == DSN_DELAYED)
        sb_appends(out, "Your message could not be delivered yet; delivery will be\n"
                        "attempted again. You do not need to resend it.\n\n");
    else
        sb_appends(out, "Your message was successfully delivered to the destination(s)\n"
                        "listed below.\n\n");
    sb_appendf(out, "                   The %s program\n\n", cfg_str(P_mail_name));
    for (size_t i = 0; i < rep->nrcpts; i++)
        sb_appendf(out, "<%s>: %s\n", rep->rcpts[i].address, rep->rcpts[i].reason);
    sb_appendc(out, '\n');
}

static void status_part(struct strbuf *out, const struct dsn_report *rep)
{
    char date[80], diag[1024];
    format_rfc5322_date(rep->arrival_usec, date, sizeof(date));
    sb_appendf(out, "Reporting-MTA: dns; %s\n", cfg_str(P_myhostname));
    sb_appendf(out, "X-Tern-Queue-ID: %s\n", rep->queue_id);
    sb_appendf(out, "X-Tern-Sender: rfc822; %s\n", rep->sender);
    if (rep->envid && *rep->envid)
        sb_appendf(out, "Original-Envelope-Id: %s\n", rep->envid);
    sb_appendf(out, "Arrival-Date: %s\n", date);
    for (size_t i = 0; i < rep->nrcpts; i++) {
        const struct dsn_rcpt *r = &rep->rcpts[i];
        sb_appendf(out, "\nFinal-Recipient: rfc822; %s\n", r->address);
        if (r->orcpt && *r->orcpt) {
            if (strchr(r->orcpt, ';'))
                sb_appendf(out, "Original-Recipient: %s\n", r->orcpt);
            else
                sb_appendf(out, "Original-Recipient: rfc822; %s\n", r->orcpt);
        }
        sb_appendf(out, "Action: %s\n", r->action ? r->action : action_word(rep->action));
        sb_appendf(out, "Status: %s\n", r->dsn);
        if (r->remote_mta && *r->remote_mta)
            sb_appendf(out, "Remote-MTA: dns; %s\n", r->remote_mta);
        qmgr_dsn_diagnostic(r->reason, diag, sizeof(diag));
        sb_appendf(out, "Diagnostic-Code: %s; %s\n", is_smtp_reply(diag) ? "smtp" : "X-Tern", diag);
        if (rep->retry_until_usec) {
            char until[80];
            format_rfc5322_date(rep->retry_until_usec, until, sizeof(until));
            sb_appendf(out, "Will-Retry-Until: %s\n", until);
        }
    }
}

struct quote_ctx {
    struct strbuf *out;
    bool headers_only;
    bool done;
    bool at_line_start;
};

static int quote_original(const char *data, size_t len, void *arg)
{
    struct quote_ctx *q = arg;
    if (q->done)
        return 0;
    if (!q->headers_only)
        return sb_append(q->out, data, len);
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n' && q->at_line_start) {
            q->done = true;    /* the empty line: the header section is over */
            return 0;
        }
        sb_appendc(q->out, data[i]);
        q->at_line_start = data[i] == '\n';
    }
    return 0;
}

int qmgr_dsn_compose(struct strbuf *out, const struct dsn_report *rep, int fd,
                     off_t content_offset)
{
    char date[80], boundary[128];
    format_rfc5322_date(now_usec(), date, sizeof(date));
    snprintf(boundary, sizeof(boundary), "%s.%lld/%s", rep->queue_id, now_usec() / 1000000,
             cfg_str(P_myhostname));
    const char *subject = rep->action == DSN_FAILED ? "Undelivered Mail Returned to Sender"
                        : rep->action == DSN_DELAYED ? "Delayed Mail (still being retried)"
                        : "Successful Mail Delivery Report";
    /* MAILER-DAEMON at myorigin, as Postfix's notices (its cleanup
     * qualifies the bare name the way it does every local address) */
    sb_appendf(out, "From: MAILER-DAEMON@%s (Mail Delivery System)\n", cfg_str(P_myorigin));
    sb_appendf(out, "To: %s\n", rep->sender);
    sb_appendf(out, "Subject: %s\nDate: %s\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n",
               subject, date);
    sb_appendf(out, "Content-Type: multipart/report; report-type=delivery-status;\n"
                    "\tboundary=\"%s\"\nContent-Transfer-Encoding: 8bit\n\n", boundary);
    sb_appends(out, "This is a MIME-encapsulated message.\n\n");
    sb_appendf(out, "--%s\nContent-Description: Notification\n"
                    "Content-Type: text/plain; charset=utf-8\n\n", boundary);
    human_part(out, rep);
    sb_appendf(out, "--%s\nContent-Description: Delivery report\n"
                    "Content-Type: message/delivery-status\n\n", boundary);
    status_part(out, rep);
    sb_appendc(out, '\n');
    sb_appendf(out, "--%s\nContent-Description: %s\nContent-Type: %s\n"
                    "Content-Transfer-Encoding: 8bit\n\n", boundary,
               rep->action == DSN_DELIVERED ? "Delivered Message Headers"
               : rep->headers_only ? "Undelivered Message Headers" : "Undelivered Message",
               rep->headers_only ? "text/rfc822-headers" : "message/rfc822");
    struct quote_ctx q = { out, rep->headers_only, false, true };
    if (qfile_read_content(fd, content_offset, quote_original, &q) < 0)
        return -1;
    if (out->len && out->data[out->len - 1] != '\n')
        sb_appendc(out, '\n');
    sb_appendf(out, "\n--%s--\n", boundary);
    return 0;
}
