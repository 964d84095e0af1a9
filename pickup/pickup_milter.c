/* pickup_milter.c: non_smtpd_milters for local submissions: before pickup
 * hands a maildrop file to cleanup, the message goes through the milters
 * as Postfix presents non-SMTP mail (a connection from localhost
 * 127.0.0.1, HELO localhost, MAIL, one RCPT per recipient, DATA, the
 * content), and their edits (headers, body, sender, recipients, hold) are
 * applied to what cleanup receives. The content is copied to an anonymous
 * spool file in tmp/ (the maildrop file's records are no plain text) and
 * read from there a chunk at a time: only its header section is held in
 * memory. pickup is a one-message-at-a-time
 * daemon, so the chain runs in a private event loop until its answer;
 * every wait is bounded by the milter timeouts. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "address.h"
#include "config.h"
#include "log.h"
#include "maildrop.h"
#include "milter.h"
#include "pickup_milter.h"
#include "queue.h"
#include "rewrite.h"
#include "util.h"

static struct milter_config milters;
static bool milters_broken;

struct runner {
    struct event_base *base;
    bool done;
    struct milter_result r;
    const char *sender;
    const char *rcpt;
    const char *name;
};

void pickup_milter_init(void)
{
    milters_broken = !milter_config_load_receiver(&milters, P_non_smtpd_milters,
                                                  "local submissions wait until it is fixed");
}

static const char *macro(void *ctx, const char *name)
{
    struct runner *run = ctx;
    if (strcmp(name, "j") == 0 || strcmp(name, "if_name") == 0)
        return cfg_str(P_myhostname);
    if (strcmp(name, "daemon_name") == 0)
        return cfg_str(P_milter_macro_daemon_name);
    if (strcmp(name, "v") == 0)
        return cfg_str(P_milter_macro_v);
    if (strcmp(name, "_") == 0)
        return "localhost [127.0.0.1]";
    if (strcmp(name, "client_addr") == 0 || strcmp(name, "daemon_addr") == 0
        || strcmp(name, "if_addr") == 0)
        return "127.0.0.1";
    if (strcmp(name, "client_name") == 0)
        return "localhost";
    if (strcmp(name, "mail_addr") == 0)
        return run->sender;
    if (strcmp(name, "rcpt_addr") == 0)
        return run->rcpt;
    if (strcmp(name, "mail_mailer") == 0 || strcmp(name, "rcpt_mailer") == 0)
        return "local";
    return NULL;
}

static void on_done(void *ctx, const struct milter_result *r)
{
    struct runner *run = ctx;
    run->r = *r;
    run->done = true;
    event_base_loopbreak(run->base);
}

static const char *log_prefix(void *ctx)
{
    struct runner *run = ctx;
    return run->name;
}

/* Run the event just started until the chain answers. */
static const struct milter_result *wait_answer(struct runner *run)
{
    while (!run->done)
        if (event_base_loop(run->base, EVLOOP_ONCE) < 0)
            break;
    if (!run->done) {
        run->r.verdict = MILTER_TEMPFAIL;
        str_copy(run->r.text, sizeof(run->r.text), "4.3.0 event loop failure");
    }
    run->done = false;
    return &run->r;
}

struct spool {
    int fd;
    off_t len, limit;
};

static int spool_write(const char *data, size_t len, void *ctx)
{
    struct spool *sp = ctx;
    if (sp->len + (off_t)len > sp->limit || write_all(sp->fd, data, len) < 0)
        return -1;
    sp->len += (off_t)len;
    return 0;
}

/* A verdict other than continue ends the filtering. */
static bool decided(struct pickup_milter_result *out, const struct milter_result *r,
                    const char *stage, bool rcpt_stage)
{
    if (r->verdict == MILTER_CONTINUE)
        return false;
    snprintf(out->text, sizeof(out->text), "%s: %d %s", stage, r->code, r->text);
    for (char *p = out->text; *p; p++)
        if (*p == '\n')
            *p = ' ';
    if (r->verdict == MILTER_DISCARD)
        out->verdict = PM_DISCARD;
    else if (r->verdict == MILTER_SHUTDOWN)
        out->verdict = PM_DEFER;
    else if (r->verdict == MILTER_REJECT && !rcpt_stage)
        out->verdict = PM_REJECT;
    else
        out->verdict = PM_DEFER;    /* a refused recipient of local mail: a configuration error */
    return true;
}

static bool valid_address(const char *a)
{
    struct address parsed;
    const char *why;
    if (address_parse(a, strlen(a), ADDR_ALLOW_BARE | ADDR_ALLOW_NODOMAIN | ADDR_ALLOW_NULL
                      | ADDR_ALLOW_UTF8, &parsed, &why) != ADDR_OK)
        return false;
    address_free(&parsed);
    return true;
}

static void push_rcpt(struct pickup_milter_result *out, const char *addr, const char *notify)
{
    out->rcpts = xrealloc(out->rcpts, (out->nrcpt + 1) * sizeof(*out->rcpts));
    out->notifies = xrealloc(out->notifies, (out->nrcpt + 1) * sizeof(*out->notifies));
    out->rcpts[out->nrcpt] = xstrdup(addr);
    out->notifies[out->nrcpt++] = xstrdup(notify);
}

static void apply_envelope(struct pickup_milter_result *out, const struct milter_msg *msg,
                           const char *name)
{
    for (size_t i = 0; i < msg->nenv; i++) {
        const struct milter_env_edit *e = &msg->env[i];
        if (e->cmd != SMFIR_DELRCPT && !valid_address(e->addr)) {
            msg_warn("%s: milter: bad address in a modification request: %.100s", name, e->addr);
            continue;
        }
        if (e->cmd == SMFIR_CHGFROM) {
            free(out->sender);
            out->sender = xstrdup(e->addr);
        } else if (e->cmd == SMFIR_DELRCPT) {
            for (size_t j = 0; j < out->nrcpt; ) {
                if (str_ieq(out->rcpts[j], e->addr)) {
                    free(out->rcpts[j]);
                    free(out->notifies[j]);
                    memmove(&out->rcpts[j], &out->rcpts[j + 1], (out->nrcpt - j - 1) * sizeof(char *));
                    memmove(&out->notifies[j], &out->notifies[j + 1], (out->nrcpt - j - 1) * sizeof(char *));
                    out->nrcpt--;
                } else {
                    j++;
                }
            }
        } else {
            char notify[64] = "";
            const char *p = strstr(e->args, "NOTIFY=");
            if (p) {
                char raw[64];
                size_t n = strcspn(p + 7, " ");
                if (n < sizeof(raw)) {
                    memcpy(raw, p + 7, n);
                    raw[n] = 0;
                    if (maildrop_notify_canon(raw, notify, sizeof(notify)) < 0)
                        notify[0] = 0;
                }
            }
            push_rcpt(out, e->addr, notify);
        }
    }
}

int pickup_milter_filter(const char *name, int fd, off_t content_offset, const char *sender,
                         const char *const *rcpts, const char *const *notifies, size_t nrcpt,
                         struct pickup_milter_result *out)
{
    memset(out, 0, sizeof(*out));
    out->msg.body_fd = -1;
    if (milters.n == 0 && !milters_broken) {
        out->verdict = PM_NONE;
        return 0;
    }
    if (milters_broken) {
        out->verdict = PM_DEFER;
        str_copy(out->text, sizeof(out->text), "non_smtpd_milters cannot be used");
        return 0;
    }
    long long lim = cfg_size(P_message_size_limit);
    struct spool sp = { -1, 0, lim > 0 ? (off_t)lim + 65536 : (off_t)512 << 20 };
    if ((sp.fd = temp_file_open(QDIR_TMP)) < 0) {
        out->verdict = PM_DEFER;
        snprintf(out->text, sizeof(out->text), "cannot create a spool file in %s/: %m", QDIR_TMP);
        return 0;
    }
    if (qfile_read_content(fd, content_offset, spool_write, &sp) < 0) {
        close(sp.fd);
        out->verdict = PM_DEFER;
        str_copy(out->text, sizeof(out->text), "cannot read the content for the milters");
        return 0;
    }
    struct runner run = { .sender = sender, .name = name };
    run.base = event_base_new();
    if (!run.base) {
        close(sp.fd);
        out->verdict = PM_DEFER;
        str_copy(out->text, sizeof(out->text), "cannot create an event loop");
        return 0;
    }
    struct milter_owner o = { &run, macro, on_done, log_prefix };
    struct milter_chain *c = milter_chain_new(&milters, run.base, &o);
    struct milter_msg *msg = &out->msg;
    struct sockaddr_in lo = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };

    out->verdict = PM_PASS;
    milter_connect_event(c, "localhost", (struct sockaddr *)&lo, "127.0.0.1", 0);
    if (decided(out, wait_answer(&run), "CONNECT", false))
        goto done;
    milter_helo_event(c, "localhost");
    if (decided(out, wait_answer(&run), "HELO", false))
        goto done;
    milter_mail_event(c, sender, NULL, 0);
    if (decided(out, wait_answer(&run), "MAIL", false))
        goto done;
    for (size_t i = 0; i < nrcpt; i++) {
        run.rcpt = rcpts[i];
        milter_rcpt_event(c, rcpts[i], NULL, 0);
        if (decided(out, wait_answer(&run), "RCPT", true))
            goto done;
        push_rcpt(out, rcpts[i], notifies ? notifies[i] : "");
    }
    run.rcpt = NULL;
    milter_data_event(c);
    if (decided(out, wait_answer(&run), "DATA", false))
        goto done;
    out->have_msg = true;
    if (milter_msg_parse(msg, sp.fd, sp.len, (size_t)cfg_size(P_header_size_limit), sp.limit) < 0) {
        sp.fd = -1;
        out->verdict = PM_DEFER;
        snprintf(out->text, sizeof(out->text), "cannot read the spool file: %m");
        goto done;
    }
    sp.fd = -1;
    milter_message_event(c, msg);
    if (decided(out, wait_answer(&run), "END-OF-MESSAGE", false))
        goto done;
    out->sender = xstrdup(sender);
    apply_envelope(out, msg, name);
    if (milter_msg_size(msg) > sp.limit + 1024 * 1024) {
        out->verdict = PM_REJECT;
        str_copy(out->text, sizeof(out->text), "END-OF-MESSAGE: message too large after the milters' edits");
    } else if (out->nrcpt == 0) {
        out->verdict = PM_DISCARD;
        str_copy(out->text, sizeof(out->text), "END-OF-MESSAGE: the milters removed every recipient");
    }
    if (msg->quarantine) {
        /* "milter: REASON", printable, for the hold_reason attribute */
        struct strbuf b = STRBUF_INIT(256);
        sb_appends(&b, "milter: ");
        for (const char *p = msg->quarantine; *p && b.len < 200; p++)
            sb_appendc(&b, (unsigned char)*p < 32 || (unsigned char)*p >= 127 ? '?' : *p);
        out->hold_reason = xstrdup(sb_str(&b));
        sb_free(&b);
    }
done:
    if (out->verdict != PM_PASS)
        milter_abort(c);
    milter_chain_free(c);
    /* the chain's timer and sockets are gone; nothing is left in the loop */
    event_base_free(run.base);
    if (sp.fd >= 0)
        close(sp.fd);
    return 0;
}

void pickup_milter_result_free(struct pickup_milter_result *r)
{
    str_array_free(r->rcpts, r->nrcpt);
    str_array_free(r->notifies, r->nrcpt);
    free(r->sender);
    free(r->hold_reason);
    if (r->have_msg)
        milter_msg_free(&r->msg);
    memset(r, 0, sizeof(*r));
}
