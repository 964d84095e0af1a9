/* sendmail_smtp.c: sendmail -bs, an SMTP dialog on standard input and
 * output for mail programs that submit that way. As in Postfix, where
 * `sendmail -bs` runs SMTP server code that writes through postdrop, each
 * message goes through tern-drop like any other local submission: it
 * carries the user's uid and meets the same sender rules in pickup. The
 * commands are parsed by smtpd's own parsers; lines may end in LF or CR LF. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sendmail.h"
#include "smtp_command.h"
#include "util.h"

#define BS_LINE_MIN 512

struct bs_session {
    const struct sm_options *o;
    struct smtp_parse_opts popts;
    size_t line_limit;
    bool have_mail, smtputf8;
    char *sender, *ret, *envid;
    struct sm_rcpts rcpts;
};

static void __attribute__((format(printf, 1, 2))) reply(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputs("\r\n", stdout);
    fflush(stdout);
}

static void reset_transaction(struct bs_session *s)
{
    free(s->sender);
    free(s->ret);
    free(s->envid);
    s->sender = s->ret = s->envid = NULL;
    s->have_mail = false;
    sendmail_rcpts_free(&s->rcpts);
}

/* One command line without its line end. 1 ok, 2 too long (consumed),
 * 0 end of input. */
static int read_line(struct strbuf *line)
{
    int c;
    bool too_long = false;
    sb_reset(line);
    while ((c = getc(stdin)) != EOF && c != '\n')
        if (!too_long && sb_appendc(line, c) < 0)
            too_long = true;
    if (c == EOF && line->len == 0)
        return 0;
    if (line->len && line->data[line->len - 1] == '\r')
        sb_truncate(line, line->len - 1);
    return too_long ? 2 : 1;
}

static void do_ehlo(struct bs_session *s, const char *arg, bool ehlo)
{
    char *helo = smtp_parse_helo(arg);
    if (!helo) {
        reply("501 5.5.4 Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
        return;
    }
    free(helo);
    reset_transaction(s);
    const char *host = cfg_str(P_myhostname);
    if (!ehlo) {
        reply("250 %s", host);
        return;
    }
    printf("250-%s\r\n250-PIPELINING\r\n", host);
    if (s->o->size_limit)
        printf("250-SIZE %llu\r\n", s->o->size_limit);
    printf("250-8BITMIME\r\n%s", s->popts.smtputf8_enable ? "250-SMTPUTF8\r\n" : "");
    reply("250 DSN");
}

static void do_mail(struct bs_session *s, const char *arg)
{
    struct smtp_mail_args m;
    struct smtp_parse_error err;
    if (s->have_mail) {
        reply("503 5.5.1 Error: nested MAIL command");
        return;
    }
    if (smtp_parse_mail(arg, &s->popts, &m, &err) < 0) {
        reply("%d %s", err.code, err.text);
        return;
    }
    s->sender = xstrdup(m.sender.address);
    s->ret = m.ret == SMTP_RET_NONE ? NULL : xstrdup(m.ret == SMTP_RET_FULL ? "FULL" : "HDRS");
    s->envid = m.envid ? xstrdup(m.envid) : NULL;
    s->smtputf8 = m.smtputf8;
    s->have_mail = true;
    smtp_mail_args_free(&m);
    reply("250 2.1.0 Ok");
}

static void do_rcpt(struct bs_session *s, const char *arg)
{
    struct smtp_rcpt_args r;
    struct smtp_parse_error err;
    char notify[32];
    const char *why;
    if (!s->have_mail) {
        reply("503 5.5.1 Error: need MAIL command");
        return;
    }
    if (smtp_parse_rcpt(arg, &s->popts, s->smtputf8, &r, &err) < 0) {
        reply("%d %s", err.code, err.text);
        return;
    }
    if (sendmail_rcpts_add(&s->rcpts, r.rcpt.address, smtp_notify_string(r.notify, notify,
                                                                     sizeof(notify)), &why) < 0)
        reply("452 4.5.3 Error: %s", why);
    else
        reply("250 2.1.5 Ok");
    smtp_rcpt_args_free(&r);
}

/* The content after 354, read to the "." line whatever happens, so that
 * the dialog stays in step. */
static void do_data(struct bs_session *s)
{
    if (!s->have_mail || s->rcpts.n == 0) {
        reply(s->have_mail ? "554 5.5.1 Error: no valid recipients"
                           : "503 5.5.1 Error: need RCPT command");
        return;
    }
    reply("354 End data with <CR><LF>.<CR><LF>");
    struct sm_input in;
    struct sm_drop d;
    struct strbuf piece = STRBUF_INIT(0);
    char id[QUEUE_ID_SIZE];
    int got;
    bool started = sendmail_drop_start(&d, s->o, s->sender, s->ret, s->envid, &s->rcpts) == 0;
    sendmail_input_init(&in, stdin, false, true, s->o->size_limit);
    while ((got = sendmail_input_read(&in, &piece)) > 0) {
        if (started)
            sendmail_drop_content(&d, piece.data, piece.len);
        sb_reset(&piece);
    }
    sb_free(&piece);
    if (got < 0 || !started) {
        if (started)
            sendmail_drop_abort(&d);
        reply(got < 0 ? "552 5.3.4 Error: message file too big"
                      : "451 4.3.0 Error: queue file write error");
    } else if (!in.dot_seen) {
        sendmail_drop_abort(&d);           /* the input ended inside the content */
    } else if (sendmail_drop_finish(&d, id) == 0) {
        reply("250 2.0.0 Ok: queued as %s", id);
    } else {
        reply("451 4.3.0 Error: queue file write error");
    }
    reset_transaction(s);
}

/* One command; false after QUIT. */
static bool do_command(struct bs_session *s, struct strbuf *line)
{
    const char *arg;
    if (smtp_line_has_nul(line->data, line->len)) {
        reply("500 5.5.2 Error: bad syntax");
        return true;
    }
    switch (smtp_parse_verb(sb_str(line), line->len, &arg)) {
    case SMTP_HELO: do_ehlo(s, arg, false); break;
    case SMTP_EHLO: do_ehlo(s, arg, true); break;
    case SMTP_MAIL: do_mail(s, arg); break;
    case SMTP_RCPT: do_rcpt(s, arg); break;
    case SMTP_DATA: do_data(s); break;
    case SMTP_RSET: reset_transaction(s); reply("250 2.0.0 Ok"); break;
    case SMTP_NOOP: reply("250 2.0.0 Ok"); break;
    case SMTP_VRFY: reply("252 2.0.0 Send mail to find out"); break;
    case SMTP_QUIT: reply("221 2.0.0 Bye"); return false;
    case SMTP_UNKNOWN: case SMTP_VERB_NONE: case SMTP_VERB_COUNT:
        reply("502 5.5.2 Error: command not recognized");
        break;
    default: reply("502 5.5.1 Error: command not implemented"); break;
    }
    return true;
}

int sendmail_smtp_session(const struct sm_options *o)
{
    struct bs_session s = { .o = o };
    long long line_limit = cfg_size(P_line_length_limit);
    s.line_limit = line_limit < BS_LINE_MIN ? BS_LINE_MIN : (size_t)line_limit;
    s.popts.size_limit = (long long)o->size_limit;
    s.popts.smtputf8_enable = cfg_bool(P_smtputf8_enable);
    s.popts.strict_rfc821 = cfg_bool(P_strict_rfc821_envelopes);
    struct strbuf line = STRBUF_INIT(s.line_limit);
    reply("220 %s", cfg_str(P_smtpd_banner));
    int rc;
    while ((rc = read_line(&line)) != 0) {
        if (rc == 2)
            reply("500 5.5.0 Error: line too long");
        else if (!do_command(&s, &line))
            break;
    }
    reset_transaction(&s);
    sb_free(&line);
    return 0;
}
