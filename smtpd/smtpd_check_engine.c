/* smtpd_check_engine.c: the evaluation of smtpd's restrictions, with
 * Postfix's names and meaning: smtpd_client_, _helo_, _sender_, _relay_, _recipient_, _data_,
 * _end_of_data_ and _etrn_restrictions, each a list evaluated in order until a
 * restriction permits (the list is done) or rejects (the command is
 * refused). With smtpd_delay_reject the client, HELO and sender lists run
 * at RCPT TO, so a reject line names the recipient. A restriction that must
 * ask DNS or a policy server makes the evaluation wait without stopping the
 * event loop (the session stops reading input meanwhile) and go on with the
 * answer. A table, DNS or policy error never becomes an accept: it answers
 * 4xx, at once or (DNS) as defer_if_permit. Every refusal is logged as
 * "NOQUEUE: reject: RCPT from name[addr]: 554 5.7.1 ...; from=<> to=<>
 * proto=ESMTP helo=<>".
 * The lists come compiled from smtpd_check_config.c; the commands start a
 * job through smtpd_check_command.c, which gets the verdict. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dns_event.h"
#include "log.h"
#include "metrics_client.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "soft_bounce.h"
#include "strbuf.h"
#include "util.h"

/* ---- per-session state ---- */

struct smtpd_check_state *smtpd_check_state_of(struct smtpd_session *s)
{
    if (!s->check) {
        s->check = xcalloc(1, sizeof(*s->check));
        str_copy(s->check->name, sizeof(s->check->name), "unknown");
        str_copy(s->check->reverse_name, sizeof(s->check->reverse_name), "unknown");
        s->check->name_status = s->check->reverse_status = 5;
        sb_init(&s->check->prepend, 16384);
        sb_init(&s->check->marks, 16384);
    }
    return s->check;
}

void smtpd_check_mail_reset(struct smtpd_session *s)
{
    struct smtpd_check_state *c = s->check;
    if (!c)
        return;
    c->discard = c->hold = false;
    c->instance[0] = 0;
    free(c->filter);
    c->filter = NULL;
    sb_reset(&c->prepend);
    sb_reset(&c->marks);
    c->nmarks = 0;
    c->lists_asked = false;
}

static void job_free(struct smtpd_check_job *j);

void smtpd_check_session_end(struct smtpd_session *s)
{
    struct smtpd_check_state *c = s->check;
    if (!c)
        return;
    smtpd_resolve_client_cancel(s);
    if (c->job)
        job_free(c->job);
    smtpd_check_mail_reset(s);
    sb_free(&c->prepend);
    sb_free(&c->marks);
    free(c->access_denied);
    free(c);
    s->check = NULL;
}

/* ---- log lines ---- */

static const char *stage_where(const struct smtpd_check_job *j)
{
    return j->s->where ? j->s->where : "CONNECT";
}

/* The names of the stages as the rejects metric shows them. */
static const char *const stage_metric_names[STAGE_COUNT] = {
    [STAGE_CONNECT] = "client", [STAGE_HELO] = "helo", [STAGE_SENDER] = "sender",
    [STAGE_RELAY] = "relay", [STAGE_RECIPIENT] = "recipient", [STAGE_DATA] = "data",
    [STAGE_EOD] = "eod", [STAGE_ETRN] = "etrn",
};

/* The restriction that decided a refusal: the one last evaluated in the
 * innermost list, else the implicit check that ran after the lists. */
static const char *deciding_restriction(const struct smtpd_check_job *j)
{
    if (j->depth > 0) {
        const struct smtpd_check_frame *f = &j->stack[j->depth];
        if (f->i > 0 && f->i <= f->list->n)
            return f->list->items[f->i - 1].name;
    }
    return j->implicit ? j->implicit : "defer_if_permit";
}

/* "NOQUEUE: WHAT: VERB from name[addr]: TEXT; from=<> to=<> proto= helo=<>",
 * fields present as Postfix shows them. */
void smtpd_check_log(struct smtpd_check_job *j, const char *what, const char *text)
{
    if (strcmp(what, "reject") == 0)
        METRICS_ADD(M_SMTPD_REJECTS, 1, stage_metric_names[j->stage], deciding_restriction(j));
    struct smtpd_session *s = j->s;
    struct strbuf line = STRBUF_INIT(4096);
    sb_appendf(&line, "NOQUEUE: %s: %s from %s: %s;", what, stage_where(j), s->client_desc, text);
    const struct address *snd = smtpd_check_sender(j);
    if (snd)
        sb_appendf(&line, " from=<%s>", snd->address);
    if (j->rcpt)
        sb_appendf(&line, " to=<%s>", j->rcpt);
    else if ((j->stage == STAGE_DATA || j->stage == STAGE_EOD) && s->nrcpt == 1)
        sb_appendf(&line, " to=<%s>", s->rcpts[0].address);
    sb_appendf(&line, " proto=%s", s->esmtp ? "ESMTP" : "SMTP");
    const char *helo = j->helo_arg ? j->helo_arg : s->helo_name;
    if (helo)
        sb_appendf(&line, " helo=<%s>", helo);
    msg_info("%s", sb_str(&line));
    sb_free(&line);
}

/* ---- replies ---- */

__attribute__((format(printf, 4, 0)))
static void format_reply(struct smtpd_check_reply *out, int code, const char *dsn, const char *fmt,
                         va_list ap)
{
    char text[CHECK_TEXT_MAX];
    vsnprintf(text, sizeof(text), fmt, ap);
    /* keep replies on one line and printable */
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 32 || *p == 127)
            *p = ' ';
    char d[ACTION_DSN_MAX + 1];
    str_copy(d, sizeof(d), dsn && *dsn ? dsn : (code >= 500 ? "5.7.1" : "4.7.1"));
    code = soft_bounce_reply(code, NULL);
    d[0] = (char)('0' + code / 100);     /* the class follows the reply code */
    out->code = code;
    snprintf(out->text, sizeof(out->text), "%s %.1000s", d, text);
}

enum smtpd_check_result smtpd_check_reject(struct smtpd_check_job *j, int code, const char *dsn,
                                           const char *fmt, ...)
{
    struct smtpd_check_reply r;
    va_list ap;
    va_start(ap, fmt);
    format_reply(&r, code, dsn, fmt, ap);
    va_end(ap);
    if (code >= 500 && j->defer_if_reject) {
        r = j->dir;
    }
    if (j->warn_this) {
        char line[CHECK_TEXT_MAX + 8];
        snprintf(line, sizeof(line), "%d %s", r.code, r.text);
        smtpd_check_log(j, "reject_warning", line);
        return CHK_DUNNO;
    }
    j->reply = r;
    return CHK_REJECT;
}

enum smtpd_check_result smtpd_check_defer_if_permit(struct smtpd_check_job *j, int code, const char *dsn,
                                                    const char *fmt, ...)
{
    if (j->defer_if_permit)
        return CHK_DUNNO;
    va_list ap;
    va_start(ap, fmt);
    format_reply(&j->dip, code, dsn, fmt, ap);
    va_end(ap);
    j->defer_if_permit = true;
    return CHK_DUNNO;
}

/* ---- subjects ---- */

const struct address *smtpd_check_sender(const struct smtpd_check_job *j)
{
    struct smtpd_session *s = j->s;
    if (s->in_mail || j->stage == STAGE_SENDER)
        return &s->mail.sender;
    return NULL;
}

const struct address *smtpd_check_recipient(struct smtpd_check_job *j)
{
    if (!j->rcpt)
        return NULL;
    if (!j->have_rcpt_addr) {
        if (address_parse(j->rcpt, strlen(j->rcpt), ADDR_ALLOW_UTF8 | ADDR_ALLOW_NODOMAIN
                          | ADDR_ALLOW_BARE, &j->rcpt_addr, NULL) != ADDR_OK)
            return NULL;
        j->have_rcpt_addr = true;
    }
    return &j->rcpt_addr;
}

static const char *helo_of(const struct smtpd_check_job *j)
{
    return j->helo_arg ? j->helo_arg : j->s->helo_name;
}

const char *smtpd_check_reply_name(const struct smtpd_check_job *j)
{
    switch (j->stage) {
    case STAGE_CONNECT: return j->s->client_desc;
    case STAGE_HELO: return helo_of(j) ? helo_of(j) : "";
    case STAGE_SENDER: return smtpd_check_sender(j) ? smtpd_check_sender(j)->address : "";
    case STAGE_RELAY:
    case STAGE_RECIPIENT: return j->rcpt ? j->rcpt : "";
    case STAGE_DATA: return "DATA";
    case STAGE_ETRN: return j->arg ? j->arg : "";
    default: return "END-OF-MESSAGE";
    }
}

const char *smtpd_check_reply_class(const struct smtpd_check_job *j)
{
    static const char *const names[STAGE_COUNT] = {
        "Client host", "Helo command", "Sender address", "Recipient address",
        "Recipient address", "Data command", "End-of-data", "Etrn command",
    };
    return names[j->stage];
}

/* ---- access(5) results ---- */

static void push_list(struct smtpd_check_job *j, const struct smtpd_restriction_list *l,
                      struct smtpd_restriction_list *owned)
{
    if (j->depth + 1 >= CHECK_STACK_MAX) {
        if (owned) {
            smtpd_restriction_list_free(owned);
            free(owned);
        }
        return;
    }
    j->depth++;
    j->stack[j->depth].list = l;
    j->stack[j->depth].i = 0;
    j->stack[j->depth].owned = owned;
}

static enum smtpd_check_result config_error(struct smtpd_check_job *j)
{
    return smtpd_check_reject(j, 451, "4.3.5", "Server configuration error");
}

/* The log line of a DISCARD or HOLD: the table's text, or what it does. */
static void log_table_action(struct smtpd_check_job *j, const char *what, const char *name,
                             const char *cls, const struct smtpd_access_action *a,
                             const char *default_text)
{
    char line[CHECK_TEXT_MAX];
    snprintf(line, sizeof(line), "<%s>: %s %.*s", name, cls,
             a->text_len ? (int)a->text_len : (int)strlen(default_text),
             a->text_len ? a->text : default_text);
    smtpd_check_log(j, what, line);
}

enum smtpd_check_result smtpd_check_apply_action(struct smtpd_check_job *j, const char *value,
                                                 const char *what, const char *name, const char *cls)
{
    struct smtpd_access_action a;
    struct smtpd_check_state *c = smtpd_check_state_of(j->s);
    smtpd_access_action_parse(value, &a);
    int tl = (int)a.text_len;
    const char *t = a.text;
    char line[CHECK_TEXT_MAX];
    switch (a.kind) {
    case ACT_OK:
        return CHK_OK;
    case ACT_DUNNO:
        return CHK_DUNNO;
    case ACT_REJECT:
        return smtpd_check_reject(j, cfg_reply_code(P_access_map_reject_code), a.dsn, "<%s>: %s rejected: %.*s",
                                  name, cls, tl ? tl : 13, tl ? t : "Access denied");
    case ACT_DEFER:
        return smtpd_check_reject(j, cfg_reply_code(P_access_map_defer_code), a.dsn, "<%s>: %s rejected: %.*s",
                                  name, cls, tl ? tl : 13, tl ? t : "Access denied");
    case ACT_CODE:
        return smtpd_check_reject(j, a.code, a.dsn, "<%s>: %s rejected: %.*s", name, cls, tl, t);
    case ACT_DEFER_IF_PERMIT:
        return smtpd_check_defer_if_permit(j, cfg_reply_code(P_access_map_defer_code), a.dsn,
                                           "<%s>: %s rejected: %.*s", name, cls, tl ? tl : 13,
                                           tl ? t : "Access denied");
    case ACT_DEFER_IF_REJECT:
        if (!j->defer_if_reject) {
            struct smtpd_check_reply *r = &j->dir;
            j->defer_if_reject = true;
            snprintf(line, sizeof(line), "<%s>: %s rejected: %.*s", name, cls, tl ? tl : 13,
                     tl ? t : "Access denied");
            r->code = cfg_reply_code(P_access_map_defer_code);
            snprintf(r->text, sizeof(r->text), "%s %.1000s", *a.dsn ? a.dsn : "4.7.1", line);
            r->text[0] = '4';
        }
        return CHK_DUNNO;
    case ACT_DISCARD:
        c->discard = true;
        log_table_action(j, "discard", name, cls, &a, "triggers DISCARD action");
        return CHK_OK;
    case ACT_HOLD:
        if (j->stage == STAGE_EOD) {
            msg_warn("%s: HOLD at the end of the message is not supported; ignored", what);
            return CHK_DUNNO;
        }
        c->hold = true;
        log_table_action(j, "hold", name, cls, &a, "triggers HOLD action");
        return CHK_DUNNO;
    case ACT_FILTER:
        free(c->filter);
        c->filter = xstrndup(t, a.text_len);
        snprintf(line, sizeof(line), "<%s>: %s triggers FILTER %s", name, cls, c->filter);
        smtpd_check_log(j, "filter", line);
        return CHK_DUNNO;
    case ACT_PREPEND:
        if (j->stage == STAGE_EOD) {
            msg_warn("%s: PREPEND at the end of the message is ignored: %.*s", what, tl, t);
        } else if (sb_append(&c->prepend, t, a.text_len) < 0 || sb_appendc(&c->prepend, '\n') < 0) {
            msg_warn("%s: too many PREPEND actions; ignored: %.*s", what, tl, t);
        }
        return CHK_DUNNO;
    case ACT_WARN:
    case ACT_INFO:
        snprintf(line, sizeof(line), "<%s>: %s %.*s", name, cls, tl ? tl : 20,
                 tl ? t : a.kind == ACT_WARN ? "triggers WARN action" : "triggers INFO action");
        smtpd_check_log(j, a.kind == ACT_WARN ? "warn" : "info", line);
        return CHK_DUNNO;
    case ACT_REDIRECT:
    case ACT_BCC:
        msg_warn("%s: action \"%.60s\" is not supported; ignored", what, value);
        return CHK_DUNNO;
    case ACT_RESTRICTIONS: {
        struct smtpd_restriction_list *l = xcalloc(1, sizeof(*l));
        smtpd_restriction_list_parse(l, value, what);
        for (size_t i = 0; i < l->n; i++)
            if (l->items[i].type == R_POLICY) {
                msg_warn("%s: check_policy_service is not allowed in a table result", what);
                l->items[i].type = R_CONFIG_ERROR;
            }
        push_list(j, l, l);
        return CHK_DUNNO;
    }
    case ACT_INVALID:
    default:
        msg_warn("%s: bad action \"%.100s\"", what, value);
        return config_error(j);
    }
}

/* ---- restrictions evaluated here ---- */

static enum smtpd_check_result helo_syntax(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    bool fqdn = r->type == R_NON_FQDN_HELO;
    const char *h = helo_of(j);
    if (!h)
        return CHK_DUNNO;
    size_t n = strlen(h);
    bool literal = h[0] == '[';
    bool valid = address_domain_valid(h, n, false);
    if (!fqdn) {
        if (valid)
            return CHK_DUNNO;
        return smtpd_check_reject(j, cfg_reply_code(P_invalid_hostname_reject_code), "5.5.2",
                                  "<%s>: Helo command rejected: Invalid name", h);
    }
    if (!valid || literal)
        return CHK_DUNNO;
    const char *dot = strchr(h, '.');
    if (dot && dot[1])
        return CHK_DUNNO;
    return smtpd_check_reject(j, cfg_reply_code(P_non_fqdn_reject_code), "5.5.2",
                              "<%s>: Helo command rejected: need fully-qualified hostname", h);
}

static enum smtpd_check_result address_fqdn(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    bool sender = r->type == R_NON_FQDN_SENDER;
    const struct address *a = sender ? smtpd_check_sender(j) : smtpd_check_recipient(j);
    const char *cls = sender ? "Sender address" : "Recipient address";
    if (!a || (a->flags & ADDR_F_NULL))
        return CHK_DUNNO;
    if (!(a->flags & ADDR_F_NODOMAIN) && ((a->flags & ADDR_F_LITERAL) || strchr(a->domain, '.')))
        return CHK_DUNNO;
    return smtpd_check_reject(j, cfg_reply_code(P_non_fqdn_reject_code), "5.5.2",
                              "<%s>: %s rejected: need fully-qualified address", a->address, cls);
}

static enum smtpd_check_result unknown_client(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    bool reverse = r->type == R_UNKNOWN_REVERSE_CLIENT;
    struct smtpd_check_state *c = smtpd_check_state_of(j->s);
    int st = reverse ? c->reverse_status : c->name_status;
    if (st == 2)
        return CHK_DUNNO;
    return smtpd_check_reject(j, st == 4 ? 450 : cfg_reply_code(P_unknown_client_reject_code), "4.7.25",
                              "Client host rejected: cannot find your %shostname, [%s]",
                              reverse ? "reverse " : "", j->s->client_addr);
}

/* permit, dunno, reject, defer and the defer_if_* and warn_if_reject
 * modifiers: answers that need nothing looked up. */
static enum smtpd_check_result decide(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    switch (r->type) {
    case R_PERMIT:
        return CHK_OK;
    case R_REJECT:
        return smtpd_check_reject(j, cfg_reply_code(P_reject_code), "5.7.1", "<%s>: %s rejected: Access denied",
                                  smtpd_check_reply_name(j), smtpd_check_reply_class(j));
    case R_DEFER:
        return smtpd_check_reject(j, cfg_reply_code(P_defer_code), "4.3.2",
                                  "<%s>: %s rejected: Try again later",
                                  smtpd_check_reply_name(j), smtpd_check_reply_class(j));
    case R_DEFER_IF_PERMIT:
        return smtpd_check_defer_if_permit(j, cfg_reply_code(P_defer_code), "4.7.1",
                                           "<%s>: %s rejected: defer_if_permit requested",
                                           smtpd_check_reply_name(j), smtpd_check_reply_class(j));
    case R_DEFER_IF_REJECT:
        if (!j->defer_if_reject) {
            j->defer_if_reject = true;
            j->dir.code = cfg_reply_code(P_defer_code);
            snprintf(j->dir.text, sizeof(j->dir.text), "4.7.1 <%s>: %s rejected: "
                     "defer_if_reject requested", smtpd_check_reply_name(j), smtpd_check_reply_class(j));
        }
        return CHK_DUNNO;
    case R_WARN_IF_REJECT:
        j->warn_next = true;
        return CHK_DUNNO;
    default:   /* R_DUNNO */
        return CHK_DUNNO;
    }
}

static enum smtpd_check_result permit_mynetworks(struct smtpd_check_job *j,
                                                 const struct smtpd_restriction *r)
{
    (void)r;
    if (j->s->client_trusted < 0)
        return smtpd_check_reject(j, 451, "4.3.0", "<%s>: Temporary lookup failure",
                                  j->s->client_desc);
    return j->s->client_trusted ? CHK_OK : CHK_DUNNO;
}

static enum smtpd_check_result permit_sasl(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    (void)r;
    return j->s->sasl_username && *j->s->sasl_username ? CHK_OK : CHK_DUNNO;
}

static enum smtpd_check_result unlisted(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    return smtpd_access_unlisted(j, r->type == R_REJECT_UNLISTED_SENDER);
}

static enum smtpd_check_result unauth_pipelining(struct smtpd_check_job *j,
                                                 const struct smtpd_restriction *r)
{
    (void)r;
    struct smtpd_session *s = j->s;
    if (smtpd_session_input_pending(s) && (!s->esmtp || j->stage == STAGE_DATA))
        return smtpd_check_reject(j, 503, "5.5.0", "<%s>: %s rejected: Improper use of SMTP "
                                  "command pipelining", smtpd_check_reply_name(j),
                                  smtpd_check_reply_class(j));
    return CHK_DUNNO;
}

/* Each type's evaluator, from smtpd_restrictions.def. */
typedef enum smtpd_check_result (*restriction_evaluator)(struct smtpd_check_job *,
                                                         const struct smtpd_restriction *);
static const restriction_evaluator evaluators[] = {
#define RESTRICTION(type, takes_argument, name, evaluator) [type] = evaluator,
#define SYNONYM(type, name)
#include "smtpd_restrictions.def"
#undef RESTRICTION
#undef SYNONYM
};

static enum smtpd_check_result eval_one(struct smtpd_check_job *j, const struct smtpd_restriction *r)
{
    if (r->type == R_CLASS) {
        const struct smtpd_restriction_list *l = smtpd_check_class_list(r->arg);
        if (l)
            push_list(j, l, NULL);
        return CHK_DUNNO;
    }
    if ((size_t)r->type < sizeof(evaluators) / sizeof(evaluators[0]) && evaluators[r->type])
        return evaluators[r->type](j, r);
    msg_warn("restriction \"%s\" cannot be used: see the warning at startup", r->name);
    return config_error(j);
}

/* ---- running a job ---- */

static void pop_frame(struct smtpd_check_job *j)
{
    struct smtpd_check_frame *f = &j->stack[j->depth];
    if (f->owned) {
        smtpd_restriction_list_free(f->owned);
        free(f->owned);
    }
    f->owned = NULL;
    j->depth--;
}

static void job_free(struct smtpd_check_job *j)
{
    while (j->depth > 0)
        pop_frame(j);
    dnsev_cancel(j->dns);
    smtpd_policy_request_cancel(j->preq);
    smtpd_verify_cancel(j->vreq);
    if (j->have_rcpt_addr)
        address_free(&j->rcpt_addr);
    if (j->s->check && j->s->check->job == j)
        j->s->check->job = NULL;
    free(j->arg);
    free(j->helo_arg);
    free((char *)j->rcpt);
    free(j);
}

/* Everything is decided: log a refusal and hand the verdict over. */
static void job_done(struct smtpd_check_job *j, enum smtpd_check_result r)
{
    struct smtpd_session *s = j->s;
    if (r != CHK_REJECT && j->defer_if_permit) {
        j->reply = j->dip;
        r = CHK_REJECT;
    }
    if (r == CHK_REJECT && j->stages[0] != STAGE_EOD) {   /* smtpd_data.c logs those */
        char line[CHECK_TEXT_MAX + 8];
        snprintf(line, sizeof(line), "%d %s", j->reply.code, j->reply.text);
        smtpd_check_log(j, "reject", line);
    }
    bool waited = j->waiting;
    j->waiting = false;
    s->check->job = NULL;
    j->finish(j, r);
    job_free(j);
    if (waited) {
        smtpd_session_resume(s, PAUSE_CHECK);
        smtpd_session_finish_if_done(s);
    }
}

void smtpd_check_job_run(struct smtpd_check_job *j)
{
    for (;;) {
        if (j->depth == 0) {
            if (j->stage_i >= j->nstages) {
                job_done(j, CHK_OK);
                return;
            }
            j->stage = j->stages[j->stage_i];
            j->depth = 1;
            j->stack[1].list = &smtpd_check_cfg.lists[j->stage];
            j->stack[1].i = 0;
            j->stack[1].owned = NULL;
            j->warn_next = false;
        }
        struct smtpd_check_frame *f = &j->stack[j->depth];
        if (f->i >= f->list->n) {
            pop_frame(j);
            if (j->depth == 0)
                j->stage_i++;
            continue;
        }
        size_t idx = f->i++;
        const struct smtpd_restriction *r = &f->list->items[idx];
        j->warn_this = j->warn_next && r->type != R_WARN_IF_REJECT;
        if (r->type != R_WARN_IF_REJECT)
            j->warn_next = false;
        enum smtpd_check_result res = eval_one(j, r);
        if (res == CHK_WAIT) {
            f->i = idx;
            j->warn_next = j->warn_this;
            if (!j->waiting) {
                j->waiting = true;
                j->s->pause |= PAUSE_CHECK;
            }
            return;
        }
        j->resumed = false;
        if (res == CHK_REJECT) {
            job_done(j, CHK_REJECT);
            return;
        }
        if (res == CHK_OK) {        /* this stage's list is done */
            while (j->depth > 0)
                pop_frame(j);
            j->stage_i++;
        }
    }
}

void smtpd_check_job_continue(struct smtpd_check_job *j)
{
    j->resumed = true;
    j->dns = NULL;
    j->preq = NULL;
    j->vreq = NULL;
    smtpd_check_job_run(j);
}

struct smtpd_check_job *smtpd_check_job_new(struct smtpd_session *s, void (*finish)(struct smtpd_check_job *,
                                                                          enum smtpd_check_result))
{
    struct smtpd_check_state *c = smtpd_check_state_of(s);
    struct smtpd_check_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->finish = finish;
    c->job = j;
    return j;
}

void smtpd_check_job_add(struct smtpd_check_job *j, enum smtpd_check_stage st)
{
    j->stages[j->nstages++] = st;
}
