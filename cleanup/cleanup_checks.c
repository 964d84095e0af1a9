/* cleanup_checks.c: header_checks, mime_header_checks, nested_header_checks
 * and body_checks, as in Postfix's header_checks(5). Each logical header
 * (continuation lines joined by LF) and each body line is looked up in the
 * table of its class (cleanup_mime.c finds the classes); the first
 * matching rule's action is carried out: REJECT, WARN, INFO, HOLD, DISCARD,
 * PASS, IGNORE, STRIP, REPLACE, PREPEND, FILTER, REDIRECT, BCC, DUNNO, OK.
 * What the checks leave of the content is what cleanup writes. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "cleanup_mime.h"
#include "config.h"
#include "log.h"
#include "maps.h"
#include "util.h"

#define CHECK_LOG_MAX 200          /* bytes of the matched text in a log line */
#define CHECK_RESULT_MAX 4096      /* bytes of a table's answer that are used */

enum check_class { CHK_HEADER, CHK_MIME, CHK_NESTED, CHK_BODY, CHK_COUNT };

struct check_table {
    enum param_id param;
    const char *name;              /* the parameter, for log lines */
    struct maplist *maps;          /* NULL when not configured or broken */
    char *error;                   /* why it could not be opened */
    bool configured;
};

static struct check_table tables[CHK_COUNT] = {
    [CHK_HEADER] = { P_header_checks, "header_checks", NULL, NULL, false },
    [CHK_MIME] = { P_mime_header_checks, "mime_header_checks", NULL, NULL, false },
    [CHK_NESTED] = { P_nested_header_checks, "nested_header_checks", NULL, NULL, false },
    [CHK_BODY] = { P_body_checks, "body_checks", NULL, NULL, false },
};

void cleanup_checks_open(void)
{
    struct strbuf err = STRBUF_INIT(4096);
    for (int i = 0; i < CHK_COUNT; i++) {
        struct check_table *t = &tables[i];
        const char *spec = cfg_str(t->param);
        if (!*spec)
            continue;
        t->configured = true;
        /* mime_ and nested_header_checks default to $header_checks: the
         * same tables are opened once. */
        for (int k = 0; k < i; k++)
            if (tables[k].configured && strcmp(cfg_str(tables[k].param), spec) == 0) {
                t->maps = tables[k].maps;
                t->error = tables[k].error ? xstrdup(tables[k].error) : NULL;
                break;
            }
        if (t->maps || t->error)
            continue;
        sb_reset(&err);
        if (!(t->maps = maplist_open(spec, &err))) {
            t->error = xstrdup(sb_str(&err));
            msg_warn("%s: %s; mail that it would inspect is deferred until it is fixed",
                     t->name, t->error);
        }
    }
    sb_free(&err);
}

/* ---- logging and replies ---- */

/* Where the message came from, as Postfix logs it: host[addr] or local. */
static void append_origin(struct strbuf *line, const struct cleanup_envelope *env)
{
    const char *addr = cleanup_env_attr(env, "client_addr");
    const char *name = cleanup_env_attr(env, "client_name");
    if (addr && *addr)
        sb_appendf(line, "%s[%s]", name && *name ? name : "unknown", addr);
    else
        sb_appends(line, "local");
}

/* "ID: ACTION: header|body TEXT from ORIGIN; from=<> to=<> proto=P helo=<H>: DETAIL" */
static void act_log(const struct cleanup_state *st, const char *action, const char *context,
                    const char *text, size_t len, const char *detail)
{
    const struct cleanup_envelope *env = &st->env;
    const char *proto = cleanup_env_attr(env, "protocol");
    const char *helo = cleanup_env_attr(env, "helo_name");
    struct strbuf shown = STRBUF_INIT(0), line = STRBUF_INIT(0);
    cleanup_log_safe(&shown, text, len, CHECK_LOG_MAX);
    sb_appendf(&line, "%s: %s: %s %s from ", st->qf.id, action, context, sb_str(&shown));
    append_origin(&line, env);
    sb_appendf(&line, "; from=<%s> to=<%s>", env->sender, env->nrcpt ? env->rcpts[0] : "");
    if (proto && *proto)
        sb_appendf(&line, " proto=%s", proto);
    if (helo && *helo)
        sb_appendf(&line, " helo=<%s>", helo);
    if (detail && *detail)
        sb_appendf(&line, ": %s", detail);
    msg_info("%s", sb_str(&line));
    sb_free(&shown);
    sb_free(&line);
}

/* "X.Y.Z" with X 2, 4 or 5 at the start of s, followed by a blank or the end. */
static bool has_dsn(const char *s)
{
    if (!strchr("245", s[0]) || s[1] != '.')
        return false;
    const char *p = s + 2;
    for (int part = 0; part < 2; part++) {
        size_t n = strspn(p, "0123456789");
        if (n < 1 || n > 3)
            return false;
        p += n;
        if (part == 0 && *p++ != '.')
            return false;
    }
    return *p == 0 || *p == ' ';
}

/* REJECT: "550 5.7.1 TEXT", or with the table's own code; a 4.X.X code
 * makes it a 451 (try again later). */
static void reject_with(struct cleanup_state *st, const char *text)
{
    if (st->status)
        return;
    struct strbuf reason = STRBUF_INIT(0);
    if (!*text)
        sb_appends(&reason, "5.7.1 message content rejected");
    else if (has_dsn(text))
        sb_appends(&reason, text);
    else
        sb_appendf(&reason, "5.7.1 %s", text);
    if (reason.data[0] == '2') {
        msg_warn("bad DSN code in REJECT text \"%.100s\" -- need 4.X.X or 5.X.X", text);
        reason.data[0] = '4';
    }
    st->reason_buf = xstrdup(sb_str(&reason));
    cleanup_reject(st, reason.data[0] == '4' ? 451 : 550, st->reason_buf);
    sb_free(&reason);
}

/* A table could not answer: never accept the message unchecked. */
static void lookup_failed(struct cleanup_state *st, const struct check_table *t)
{
    msg_warn("%s: %s map lookup problem -- message not accepted, try again later",
             st->qf.id, t->name);
    cleanup_reject(st, 451, CLEANUP_WRITE_ERROR);
    st->inspect = false;
}

/* ---- actions ---- */

enum act_result { ACT_KEEP, ACT_DROP, ACT_REPLACE };

struct act {
    struct cleanup_state *st;
    const struct check_table *table;
    const char *context;           /* "header" or "body" */
    const char *text;              /* what was matched */
    size_t len;
    struct strbuf *prepend, *replace;
};

static bool word_is(const char *word, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(word, name, n) == 0;
}

static void log_act(const struct act *a, const char *action, const char *detail)
{
    act_log(a->st, action, a->context, a->text, a->len, detail);
}

/* A header text for PREPEND or REPLACE must be "name: value". */
static bool header_text_ok(const struct act *a, const char *cmd, const char *arg)
{
    if (strcmp(a->context, "header") != 0 || cleanup_mime_header_name_len(arg, strlen(arg)) > 0)
        return true;
    msg_warn("bad %s header text \"%.100s\" in %s map -- need \"headername: headervalue\"",
             cmd, arg, a->table->name);
    return false;
}

static void set_string(char **slot, const char *value)
{
    free(*slot);
    *slot = xstrdup(value);
}

/* "header_checks: TEXT" (or body_checks...) kept with a message a check
 * held, so that the quarantine (lib/global/quarantine.h) can say why:
 * printable and bounded, as the milter's reason is. */
static void hold_reason_set(const struct act *a, const char *arg)
{
    struct strbuf b = STRBUF_INIT(300);
    sb_appendf(&b, "%s_checks: ", a->context);
    const char *t = *arg ? arg : "held";
    for (size_t i = 0; t[i] && i < 250; i++)
        sb_appendc(&b, (unsigned char)t[i] < 0x20 || t[i] == 0x7f ? ' ' : t[i]);
    free(a->st->hold_reason);
    a->st->hold_reason = xstrdup(sb_str(&b));
    sb_free(&b);
}

/* Actions that decide the message's fate; false when cmd is none of them. */
static bool act_on_message(const struct act *a, const char *cmd, size_t n, const char *arg)
{
    struct cleanup_state *st = a->st;
    if (word_is(cmd, n, "REJECT")) {
        reject_with(st, arg);
        log_act(a, "reject", st->reason);
        st->inspect = false;
    } else if (word_is(cmd, n, "DISCARD")) {
        log_act(a, "discard", arg);
        st->discard = true;
        st->inspect = false;
    } else if (word_is(cmd, n, "HOLD")) {
        if (!st->hold && !st->discard) {
            log_act(a, "hold", arg);
            st->hold = true;
            hold_reason_set(a, arg);
        }
    } else if (word_is(cmd, n, "PASS")) {
        log_act(a, "pass", arg);
        st->inspect = false;
    } else if (word_is(cmd, n, "FILTER")) {
        const char *colon = strchr(arg, ':');
        if (!*arg || !colon || colon == arg || strpbrk(arg, " \t")) {
            msg_warn("bad FILTER command \"%.100s\" in %s map -- need transport:destination",
                     arg, a->table->name);
        } else {
            set_string(&st->filter, arg);
            log_act(a, "filter", arg);
        }
    } else if (word_is(cmd, n, "REDIRECT") || word_is(cmd, n, "BCC")) {
        bool redirect = word_is(cmd, n, "REDIRECT");
        if (!strchr(arg, '@') || strpbrk(arg, " \t") || strlen(arg) > CLEANUP_ADDR_MAX) {
            msg_warn("bad %s %s \"%.100s\" in %s map -- need user@domain",
                     redirect ? "REDIRECT" : "BCC", redirect ? "target" : "address", arg,
                     a->table->name);
        } else if (redirect) {
            set_string(&st->redirect, arg);
            log_act(a, "redirect", arg);
            st->inspect = false;
        } else {
            st->bcc = xrealloc(st->bcc, (st->nbcc + 1) * sizeof(*st->bcc));
            st->bcc[st->nbcc++] = xstrdup(arg);
            log_act(a, "bcc", arg);
        }
    } else {
        return false;
    }
    return true;
}

/* Carry out one table answer ("ACTION [text]"). */
static enum act_result act(const struct act *a, char *value)
{
    for (char *p = value; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';                /* what goes into the message stays one line */
    size_t n = strcspn(value, " \t");
    const char *cmd = value, *arg = value + n;
    while (*arg == ' ' || *arg == '\t')
        arg++;
    if (act_on_message(a, cmd, n, arg))
        return ACT_KEEP;
    if (word_is(cmd, n, "WARN") || word_is(cmd, n, "INFO")) {
        log_act(a, word_is(cmd, n, "WARN") ? "warning" : "info", arg);
    } else if (word_is(cmd, n, "PREPEND") || word_is(cmd, n, "REPLACE")) {
        bool replace = word_is(cmd, n, "REPLACE");
        if (!*arg) {
            msg_warn("%s action without text in %s map", replace ? "REPLACE" : "PREPEND",
                     a->table->name);
        } else if (header_text_ok(a, replace ? "REPLACE" : "PREPEND", arg)) {
            log_act(a, replace ? "replace" : "prepend", arg);
            sb_set(replace ? a->replace : a->prepend, arg);
            if (replace)
                return ACT_REPLACE;
        }
    } else if (word_is(cmd, n, "STRIP")) {
        log_act(a, "strip", arg);
        return ACT_DROP;
    } else if (word_is(cmd, n, "IGNORE")) {
        return ACT_DROP;
    } else if (!word_is(cmd, n, "DUNNO") && !word_is(cmd, n, "OK")) {
        msg_warn("unknown command in %s map: %.100s", a->table->name, value);
    }
    return ACT_KEEP;
}

/* Look text up in table t; on a match, act. */
static enum act_result inspect(struct cleanup_state *st, enum check_class cls, const char *context,
                               const char *text, size_t len, struct strbuf *prepend,
                               struct strbuf *replace)
{
    const struct check_table *t = &tables[cls];
    if (!st->inspect || !t->configured)
        return ACT_KEEP;
    if (!t->maps) {
        lookup_failed(st, t);
        return ACT_KEEP;
    }
    struct strbuf key = STRBUF_INIT(0), value = STRBUF_INIT(0);
    sb_append(&key, text, len);      /* a NUL inside ends the key, as in Postfix */
    int rc = maplist_lookup(t->maps, sb_str(&key), &value);
    enum act_result r = ACT_KEEP;
    if (rc < 0) {
        lookup_failed(st, t);
    } else if (rc > 0) {
        sb_truncate(&value, CHECK_RESULT_MAX);
        struct act a = { st, t, context, text, len, prepend, replace };
        r = act(&a, value.data ? value.data : (char *)"");
    }
    sb_free(&key);
    sb_free(&value);
    return r;
}

/* Append to out what an inspected line or header becomes. */
static void emit(struct strbuf *out, enum act_result r, const struct strbuf *prepend,
                 const struct strbuf *replace, const char *text, size_t len, bool eol)
{
    if (prepend->len) {
        sb_append(out, prepend->data, prepend->len);
        sb_appendc(out, '\n');
    }
    if (r == ACT_DROP)
        return;
    if (r == ACT_REPLACE)
        sb_append(out, replace->data, replace->len);
    else
        sb_append(out, text, len);
    if (eol)
        sb_appendc(out, '\n');
}

/* ---- one submission ---- */

static bool any_configured(int first, int last)
{
    for (int i = first; i <= last; i++)
        if (tables[i].configured)
            return true;
    return false;
}

void cleanup_checks_begin(struct cleanup_state *st)
{
    /* Postfix inspects mail from smtpd and pickup only: notices and the
     * copies the local agent forwards were inspected when they arrived. */
    const char *addr = cleanup_env_attr(&st->env, "client_addr");
    bool outside = (st->env.flags & CLEANUP_FLAG_LOCAL) || (addr && *addr);
    st->inspect = outside && !(st->env.flags & CLEANUP_FLAG_NO_CHECKS)
                  && any_configured(0, CHK_COUNT - 1);
}

static void on_header(void *ctx, enum mime_class cls, const char *text, size_t len)
{
    struct cleanup_state *st = ctx;
    struct strbuf prepend = STRBUF_INIT(0), replace = STRBUF_INIT(0);
    enum act_result r = ACT_KEEP;
    if (!st->status && !st->discard) {
        r = inspect(st, cls == MIME_CLASS_NESTED ? CHK_NESTED : CHK_MIME, "header", text, len,
                    &prepend, &replace);
        emit(&st->out, r, &prepend, &replace, text, len, true);
    }
    sb_free(&prepend);
    sb_free(&replace);
}

static void on_body(void *ctx, const char *text, size_t len, bool eol, unsigned long long offset)
{
    struct cleanup_state *st = ctx;
    if (st->status || st->discard)
        return;
    struct strbuf prepend = STRBUF_INIT(0), replace = STRBUF_INIT(0);
    enum act_result r = ACT_KEEP;
    unsigned long long limit = cleanup_cfg.body_checks_size_limit;
    if (limit == 0 || offset < limit)
        r = inspect(st, CHK_BODY, "body", text, len, &prepend, &replace);
    emit(&st->out, r, &prepend, &replace, text, len, eol);
    sb_free(&prepend);
    sb_free(&replace);
}

/* One primary header: what it becomes is appended to out; true when that
 * differs from the header. */
static bool primary_header(struct cleanup_state *st, const char *text, size_t len,
                           struct strbuf *out)
{
    struct strbuf prepend = STRBUF_INIT(0), replace = STRBUF_INIT(0);
    enum check_class cls = cleanup_mime_is_mime_header(text, len) ? CHK_MIME : CHK_HEADER;
    enum act_result r = inspect(st, cls, "header", text, len, &prepend, &replace);
    emit(out, r, &prepend, &replace, text, len, true);
    bool changed = r != ACT_KEEP || prepend.len > 0;
    sb_free(&prepend);
    sb_free(&replace);
    return changed;
}

void cleanup_checks_headers(struct cleanup_state *st, struct strbuf *received)
{
    struct header_state *h = &st->hdr;
    if (!st->inspect)
        return;
    struct strbuf out = STRBUF_INIT(0);
    if (received->len > 0 && received->data[received->len - 1] == '\n'
        && primary_header(st, received->data, received->len - 1, &out)) {
        sb_reset(received);
        sb_append(received, out.data, out.len);
    }
    sb_reset(&out);
    bool changed = false;
    if (any_configured(CHK_MIME, CHK_BODY)) {
        struct mime_limits lim = {
            .line_limit = cleanup_cfg.line_length_limit,
            .header_limit = cleanup_cfg.header_size_limit,
            .depth_limit = cleanup_cfg.mime_nesting_limit,
            .disabled = cleanup_cfg.disable_mime_input_processing,
        };
        struct mime_callbacks cb = { on_header, on_body, st };
        st->mime = xmalloc(sizeof(*st->mime));
        cleanup_mime_init(st->mime, &lim, &cb);
    }
    for (size_t i = 0; i < h->nfields; i++) {
        const struct header_field *f = &h->fields[i];
        const char *text = h->headers.data + f->offset;
        size_t len = f->len && text[f->len - 1] == '\n' ? f->len - 1 : f->len;
        if (st->mime)
            cleanup_mime_primary_header(st->mime, text, len);
        changed |= primary_header(st, text, len, &out);
    }
    if (changed && !st->status)
        header_set_fields(h, out.data ? out.data : "", out.len);
    if (st->mime)
        cleanup_mime_primary_done(st->mime);
    sb_free(&out);
}

bool cleanup_checks_body_wanted(const struct cleanup_state *st)
{
    return st->mime != NULL;
}


void cleanup_checks_body(struct cleanup_state *st, const char *data, size_t len)
{
    cleanup_mime_feed(st->mime, data, len);
}

void cleanup_checks_end(struct cleanup_state *st)
{
    if (!st->mime)
        return;
    cleanup_mime_finish(st->mime);
    /* As in Postfix: structure deeper than the limit could hide headers
     * from the header checks, so it is refused while they are in use. */
    if ((st->mime->errors & MIME_ERR_NESTING) && any_configured(CHK_HEADER, CHK_NESTED)
        && !st->status && !st->discard) {
        struct strbuf origin = STRBUF_INIT(0);
        append_origin(&origin, &st->env);
        msg_info("%s: reject: mime-error MIME nesting exceeds safety limit from %s; "
                 "from=<%s> to=<%s>",
                 st->qf.id, sb_str(&origin), st->env.sender, st->env.nrcpt ? st->env.rcpts[0] : "");
        sb_free(&origin);
        cleanup_reject(st, 550, "5.6.0 Error: MIME nesting exceeds safety limit");
    }
}

void cleanup_checks_free(struct cleanup_state *st)
{
    if (st->mime) {
        cleanup_mime_free(st->mime);
        free(st->mime);
        st->mime = NULL;
    }
    for (size_t i = 0; i < st->nbcc; i++)
        free(st->bcc[i]);
    free(st->bcc);
    free(st->filter);
    free(st->hold_reason);
    free(st->redirect);
    free(st->reason_buf);
    st->bcc = NULL;
    st->nbcc = 0;
    st->filter = st->redirect = st->reason_buf = st->hold_reason = NULL;
}
