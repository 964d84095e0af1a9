/* smtpd_check_command.c: where smtpd's commands meet the restriction
 * engine: the connection (the client's name, then the client restrictions
 * without smtpd_delay_reject), HELO, MAIL, RCPT (with the implicit
 * reject_unlisted_* checks), DATA, end of data and ETRN each start a job and give
 * it their continuation, called when the restrictions accept; a refusal is
 * answered here. And what the restrictions asked of the message (DISCARD,
 * HOLD, PREPEND, FILTER). */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "attr.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "strbuf.h"
#include "util.h"

static bool list_empty(enum smtpd_check_stage st)
{
    return smtpd_check_cfg.lists[st].n == 0;
}

/* MAIL and DATA: evaluate the stage's list; finish answers a refusal or
 * runs next. True: the command waits for that. */
static bool command_wait(struct smtpd_session *s, enum smtpd_check_stage st,
                         void (*finish)(struct smtpd_check_job *j, enum smtpd_check_result r),
                         void (*next)(struct smtpd_session *s))
{
    struct smtpd_check_job *j = smtpd_check_job_new(s, finish);
    j->next = next;
    smtpd_check_job_add(j, st);
    smtpd_check_job_run(j);
    return true;
}

/* ---- connection ---- */

static void (*connected_fn)(struct smtpd_session *s);

static void connect_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    struct smtpd_check_state *c = smtpd_check_state_of(j->s);
    if (r == CHK_REJECT) {
        char line[CHECK_TEXT_MAX + 8];
        snprintf(line, sizeof(line), "%d %s", j->reply.code, j->reply.text);
        c->access_denied = xstrdup(line);
    }
    connected_fn(j->s);
}

/* Without smtpd_delay_reject the client restrictions decide now; a refused
 * client gets the refusal instead of the greeting. */
static void connect_checks(struct smtpd_session *s)
{
    if (!smtpd_check_cfg.delay_reject && !list_empty(STAGE_CONNECT)) {
        struct smtpd_check_job *j = smtpd_check_job_new(s, connect_finish);
        smtpd_check_job_add(j, STAGE_CONNECT);
        smtpd_check_job_run(j);
        return;
    }
    connected_fn(s);
}

static void name_known(struct smtpd_session *s)
{
    struct smtpd_check_state *c = smtpd_check_state_of(s);
    s->client_name = c->name;
    snprintf(s->client_desc, sizeof(s->client_desc), "%s[%s]", s->client_name, s->client_addr);
    connect_checks(s);
}

void smtpd_check_connect(struct smtpd_session *s, void (*connected)(struct smtpd_session *s))
{
    connected_fn = connected;
    smtpd_check_state_of(s);
    if (smtpd_resolve_client_start(s, name_known))
        return;
    name_known(s);
}

bool smtpd_check_greet_denied(struct smtpd_session *s)
{
    struct smtpd_check_state *c = s->check;
    if (!c || !c->access_denied)
        return false;
    int code = atoi(c->access_denied);
    smtpd_session_reply(s, code, "%s", c->access_denied + 4);
    return true;
}

bool smtpd_check_command_denied(struct smtpd_session *s, enum smtp_verb v)
{
    struct smtpd_check_state *c = s->check;
    if (!c || !c->access_denied || v == SMTP_QUIT)
        return false;
    smtpd_session_reply(s, 503, "5.7.0 Error: access denied for %s", s->client_desc);
    return true;
}

/* ---- HELO ---- */

static void helo_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    char *name = j->helo_arg;
    j->helo_arg = NULL;
    if (r == CHK_REJECT) {
        smtpd_session_reply(j->s, j->reply.code, "%s", j->reply.text);
        free(name);
    } else {
        j->helo_next(j->s, name, j->ehlo);
    }
}

bool smtpd_check_helo_wait(struct smtpd_session *s, char *name, bool ehlo,
                           void (*next)(struct smtpd_session *s, char *name, bool ehlo))
{
    if (smtpd_check_cfg.delay_reject || list_empty(STAGE_HELO))
        return false;
    struct smtpd_check_job *j = smtpd_check_job_new(s, helo_finish);
    j->helo_arg = name;
    j->ehlo = ehlo;
    j->helo_next = next;
    smtpd_check_job_add(j, STAGE_HELO);
    smtpd_check_job_run(j);
    return true;
}

/* ---- MAIL ---- */

static void mail_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    struct smtpd_session *s = j->s;
    if (r == CHK_REJECT) {
        smtp_mail_args_free(&s->mail);
        smtpd_session_reply(s, j->reply.code, "%s", j->reply.text);
    } else {
        j->next(s);
    }
}

bool smtpd_check_mail_wait(struct smtpd_session *s, void (*next)(struct smtpd_session *s))
{
    if (smtpd_check_cfg.delay_reject || list_empty(STAGE_SENDER))
        return false;
    return command_wait(s, STAGE_SENDER, mail_finish, next);
}

/* ---- RCPT ---- */

static void rcpt_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    struct smtpd_session *s = j->s;
    if (r == CHK_REJECT) {
        smtpd_session_reply(s, j->reply.code, "%s", j->reply.text);
        return;
    }
    if (smtpd_check_cfg.reject_unlisted_rcpt || smtpd_check_cfg.reject_unlisted_sender) {
        /* the implicit checks, once the lists have accepted */
        enum smtpd_check_result u = CHK_DUNNO;
        j->stage = STAGE_RECIPIENT;
        j->warn_this = false;
        if (smtpd_check_cfg.reject_unlisted_sender) {
            j->implicit = "reject_unlisted_sender";
            u = smtpd_access_unlisted(j, true);
        }
        if (u != CHK_REJECT && smtpd_check_cfg.reject_unlisted_rcpt) {
            j->implicit = "reject_unlisted_recipient";
            u = smtpd_access_unlisted(j, false);
        }
        if (u == CHK_REJECT) {
            char line[CHECK_TEXT_MAX + 8];
            snprintf(line, sizeof(line), "%d %s", j->reply.code, j->reply.text);
            smtpd_check_log(j, "reject", line);
            smtpd_session_reply(s, j->reply.code, "%s", j->reply.text);
            return;
        }
    }
    j->rcpt_next(s, j->arg);
}

void smtpd_check_rcpt(struct smtpd_session *s, const char *arg, const struct smtp_rcpt_args *r,
                      void (*next)(struct smtpd_session *s, const char *arg))
{
    /* RFC 5321 section 4.5.1: "postmaster" without a domain must be
     * accepted, whoever the client is: no restriction (not even
     * reject_non_fqdn_recipient or a client's REJECT) and no recipient
     * table judges it, as in Postfix. */
    if (strcasecmp(r->rcpt.address, "postmaster") == 0) {
        next(s, arg);
        return;
    }
    struct smtpd_check_job *j = smtpd_check_job_new(s, rcpt_finish);
    j->rcpt_next = next;
    j->arg = xstrdup(arg);
    j->rcpt = xstrdup(r->rcpt.address);
    if (smtpd_check_cfg.delay_reject) {
        smtpd_check_job_add(j, STAGE_CONNECT);
        smtpd_check_job_add(j, STAGE_HELO);
        smtpd_check_job_add(j, STAGE_SENDER);
    }
    smtpd_check_job_add(j, STAGE_RELAY);
    smtpd_check_job_add(j, STAGE_RECIPIENT);
    smtpd_check_job_run(j);
}

/* ---- VRFY and EXPN ---- */

/* As Postfix's VRFY: the address is judged by the recipient tables alone
 * (what reject_unlisted_recipient would say of it at RCPT, after address
 * rewriting), not by the restriction lists: 252 with the address when mail
 * for it would be taken, the refusal otherwise. EXPN answers the same and
 * never lists what an alias expands to. */
static void verify_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    struct smtpd_session *s = j->s;
    j->stage = STAGE_RECIPIENT;
    j->warn_this = false;
    j->implicit = "reject_unlisted_recipient";
    if (smtpd_check_cfg.reject_unlisted_rcpt && smtpd_access_unlisted(j, false) == CHK_REJECT) {
        char line[CHECK_TEXT_MAX + 8];
        snprintf(line, sizeof(line), "%d %s", j->reply.code, j->reply.text);
        smtpd_check_log(j, "reject", line);
        smtpd_session_reply(s, j->reply.code, "%s", j->reply.text);
        return;
    }
    smtpd_session_reply(s, 252, "2.0.0 %s", j->rcpt);
}

void smtpd_check_verify(struct smtpd_session *s, const char *address)
{
    struct smtpd_check_job *j = smtpd_check_job_new(s, verify_finish);
    j->rcpt = xstrdup(address);
    smtpd_check_job_run(j);
}

/* ---- ETRN ---- */

static void etrn_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    if (r == CHK_REJECT)
        smtpd_session_reply(j->s, j->reply.code, "%s", j->reply.text);
    else
        j->etrn_next(j->s, j->arg);
}

/* As Postfix: with smtpd_delay_reject the client and HELO restrictions are
 * evaluated first (the client may not have been checked yet), then
 * smtpd_etrn_restrictions with the domain as the name in replies. */
bool smtpd_check_etrn_wait(struct smtpd_session *s, const char *domain,
                           void (*next)(struct smtpd_session *s, const char *domain))
{
    bool delayed = smtpd_check_cfg.delay_reject
                   && (!list_empty(STAGE_CONNECT) || !list_empty(STAGE_HELO));
    if (!delayed && list_empty(STAGE_ETRN))
        return false;
    struct smtpd_check_job *j = smtpd_check_job_new(s, etrn_finish);
    j->etrn_next = next;
    j->arg = xstrdup(domain);
    if (delayed) {
        smtpd_check_job_add(j, STAGE_CONNECT);
        smtpd_check_job_add(j, STAGE_HELO);
    }
    smtpd_check_job_add(j, STAGE_ETRN);
    smtpd_check_job_run(j);
    return true;
}

/* ---- DATA and end of data ---- */

static void data_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    if (r == CHK_REJECT)
        smtpd_session_reply(j->s, j->reply.code, "%s", j->reply.text);
    else
        j->next(j->s);
}

bool smtpd_check_data_wait(struct smtpd_session *s, void (*next)(struct smtpd_session *s))
{
    if (list_empty(STAGE_DATA))
        return false;
    return command_wait(s, STAGE_DATA, data_finish, next);
}

static void eod_finish(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    if (r == CHK_REJECT)
        j->eod_next(j->s, j->reply.code, j->reply.text);
    else
        j->eod_next(j->s, 0, "");
}

bool smtpd_check_eod_wait(struct smtpd_session *s,
                          void (*next)(struct smtpd_session *s, int code, const char *text))
{
    if (list_empty(STAGE_EOD))
        return false;
    struct smtpd_check_job *j = smtpd_check_job_new(s, eod_finish);
    j->eod_next = next;
    smtpd_check_job_add(j, STAGE_EOD);
    smtpd_check_job_run(j);
    return true;
}

/* ---- what the restrictions ask of the message ---- */

bool smtpd_check_discarding(struct smtpd_session *s)
{
    return s->check && s->check->discard;
}

bool smtpd_check_holding(struct smtpd_session *s)
{
    return s->check && s->check->hold && !s->check->discard;
}

/* Where check_recipient_lists was asked about the message, Tern's marks
 * always open its header section (at least "none"), so that a field of
 * the same name the sender wrote is never where Tern's would be. The
 * marks of the transaction (the envelope to cleanup counts them, the
 * content carries them, whichever comes first); NULL for a message the
 * restriction never saw (mail from mynetworks, say: nothing is added). */
static struct smtpd_check_state *marks_of(struct smtpd_session *s)
{
    if (!s->check || !s->check->lists_asked)
        return NULL;
    struct smtpd_check_state *c = s->check;
    if (c->nmarks == 0 && sb_appends(&c->marks, SMTPD_MARK_HEADER ": none\n") == 0)
        c->nmarks = 1;
    return c;
}

void smtpd_check_content_start(struct smtpd_session *s, struct strbuf *content)
{
    struct smtpd_check_state *c = marks_of(s);
    if (c)
        sb_append(content, c->marks.data, c->marks.len);
    if (s->check && s->check->prepend.len)
        sb_append(content, s->check->prepend.data, s->check->prepend.len);
}

/* A FILTER action wins over the service's content_filter, as in Postfix;
 * cleanup's own FILTER actions (header and body checks) win over both. */
int smtpd_check_cleanup_attrs(struct smtpd_session *s, struct attr_writer *w)
{
    const char *filter = s->check && s->check->filter ? s->check->filter
                                                      : smtpd_check_cfg.content_filter;
    int n = 0;
    if (filter) {
        if (w) {
            attr_put_str(w, "name", "filter");
            attr_put_str(w, "value", filter);
        }
        n++;
    }
    /* how many of the first header fields are Tern's marks */
    struct smtpd_check_state *c = marks_of(s);
    if (c) {
        if (w) {
            char count[32];
            snprintf(count, sizeof(count), "%zu", c->nmarks);
            attr_put_str(w, "name", "allowlist_marks");
            attr_put_str(w, "value", count);
        }
        n++;
    }
    return n;
}
