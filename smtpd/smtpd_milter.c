/* smtpd_milter.c: smtpd_milters: one chain of milter connections per SMTP
 * session (lib/milter/milter.c), reused for each of its messages. The envelope
 * events run when each command has passed Tern's own restrictions; their
 * rejections answer that command (a RCPT rejection refuses that recipient
 * only). The message content is spooled to an anonymous file in the
 * queue directory's tmp/ as it arrives (memory per session does not grow
 * with the message) and shown to the milters at the end of data, a chunk
 * at a time; their edits are applied to it and to the envelope, and the
 * edited message is then streamed to cleanup as fast as cleanup takes it,
 * so the queue file holds exactly what the filters asked for. Log lines
 * have Postfix's shape: "NOQUEUE: milter-reject: RCPT from host[addr]:
 * 550 5.7.1 text; from=<s> to=<r> proto=ESMTP helo=<h>". */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "address.h"
#include "config.h"
#include "log.h"
#include "metrics_client.h"
#include "mac_expand.h"
#include "milter.h"
#include "queue.h"
#include "rewrite.h"
#include "smtpd.h"
#include "smtpd_milter.h"
#include "strbuf.h"
#include "util.h"

#define MILTER_CONTENT_MAX (512LL * 1024 * 1024)   /* when message_size_limit is 0 */

enum milter_wait { W_NONE, W_CONNECT, W_HELO, W_MAIL, W_RCPT, W_DATA, W_BDAT, W_UNKNOWN, W_EOM };

struct smtpd_milter {
    struct smtpd_session *s;
    struct milter_chain *chain;
    enum milter_wait wait;
    bool connect_done;
    bool pass;                  /* the command runs again after the milters passed it */
    /* The continuation of what the milters were asked about: the command
     * that runs again once they pass it (helo_next, next, rcpt_next), or
     * what gets their verdict (chunk_next, eod_next). */
    void (*helo_next)(struct smtpd_session *s, char *name, bool ehlo);
    void (*next)(struct smtpd_session *s);          /* CONNECT, MAIL, DATA */
    void (*rcpt_next)(struct smtpd_session *s, const char *arg);
    void (*chunk_next)(struct smtpd_session *s, int code, const char *text);   /* first BDAT */
    void (*eod_next)(struct smtpd_session *s, int verdict, int code, const char *text);
    char *helo_name;
    bool ehlo;
    char *rcpt_arg;
    char *rcpt_addr;            /* {rcpt_addr} of the RCPT event */
    int deny_code;              /* the connection was refused at CONNECT or HELO */
    char deny_text[512];
    bool discard;               /* a milter said DISCARD during the envelope */
    int spool_fd;               /* the message, spooled for the content phase; -1 */
    off_t spool_len, spool_limit;
    bool content_full;
    bool spool_failed;          /* the spool file could not be created or written */
    struct milter_msg msg;
    bool have_msg;
    struct milter_render render; /* how much of the edited message went to cleanup */
    bool result_ready;
    char *quarantine;
    char *hold_attr;            /* "milter: " + quarantine, printable */
    char qid[QUEUE_ID_SIZE];    /* named at DATA; "" before */
    char daemon_addr[INET6_ADDRSTRLEN], daemon_port[8];
    char cipher_bits[16];         /* {cipher_bits} as text */
    char underscore[INET6_ADDRSTRLEN + 300];
};

static struct milter_config milters;
static bool milters_broken;     /* smtpd_milters could not be read */
static const char *macro_daemon_name, *macro_v;
static size_t header_limit;     /* the header section read into memory */

/* A session with milters holds its client, cleanup, a connection per
 * milter and up to two spool files (the message and a replacement body):
 * make room for smtpd_client_limit_per_process such sessions. */
static void raise_open_limit(void)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)(smtpd_cfg.client_limit > 0 ? smtpd_cfg.client_limit : 1)
        * (rlim_t)(4 + milters.n) + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        msg_warn("open file limit %llu is below the %llu descriptors that "
                 "smtpd_client_limit_per_process sessions with %zu milters may need",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)want, milters.n);
}

void smtpd_milter_init(void)
{
    milters_broken = !milter_config_load_receiver(&milters, P_smtpd_milters,
                                                  "mail is refused with 451 4.3.5 until it is fixed");
    macro_daemon_name = cfg_str(P_milter_macro_daemon_name);
    macro_v = cfg_str(P_milter_macro_v);
    header_limit = (size_t)cfg_size(P_header_size_limit);
    if (milters.n > 0)
        raise_open_limit();
}

bool smtpd_milter_enabled(void)
{
    return milters.n > 0 || milters_broken;
}

/* ---- log lines ---- */

static void log_milter(struct smtpd_session *s, const char *what, const char *stage, int code,
                       const char *text, const char *rcpt)
{
    struct strbuf line = STRBUF_INIT(4096);
    const char *qid = s->milter && s->milter->qid[0] ? s->milter->qid : "NOQUEUE";
    sb_appendf(&line, "%s: %s: %s from %s: ", qid, what, stage, s->client_desc);
    if (code)
        sb_appendf(&line, "%d ", code);
    for (const char *t = text; *t; t++)
        sb_appendc(&line, *t == '\n' ? ' ' : *t);
    sb_appendf(&line, "; from=<%s> to=<%s> proto=%s",
               s->mail.sender.address ? s->mail.sender.address : "",
               rcpt ? rcpt : "", s->esmtp ? "ESMTP" : "SMTP");
    if (s->helo_name)
        sb_appendf(&line, " helo=<%s>", s->helo_name);
    msg_info("%s", sb_str(&line));
    sb_free(&line);
    METRICS_ADD(M_MILTER_ACTIONS, 1, strncmp(what, "milter-", 7) == 0 ? what + 7 : what);
}

/* ---- macros ---- */

static const char *macro(void *ctx, const char *name)
{
    struct smtpd_milter *m = ctx;
    struct smtpd_session *s = m->s;
    bool tls = s->tls_active;
    if (tls)
        snprintf(m->cipher_bits, sizeof(m->cipher_bits), "%d", s->tls_cipher_bits);
    const char *rcpt_at = m->rcpt_addr ? strrchr(m->rcpt_addr, '@') : NULL;
    /* {cert_subject} and {cert_issuer} of a trusted client certificate, as
     * Postfix; no {auth_author} */
    bool cert = tls && s->tls_ccert_trusted;
    const struct mac_var vars[] = {
        { "j", smtpd_cfg.myhostname }, { "if_name", smtpd_cfg.myhostname },
        { "_", m->underscore }, { "v", macro_v }, { "daemon_name", macro_daemon_name },
        { "daemon_addr", m->daemon_addr }, { "if_addr", m->daemon_addr },
        { "daemon_port", m->daemon_port },
        { "client_addr", s->client_addr }, { "client_port", s->client_port },
        { "client_name", s->client_name }, { "client_ptr", s->client_name },
        { "auth_authen", s->sasl_username },
        { "auth_type", s->sasl_username ? s->sasl_method : NULL },
        { "tls_version", tls ? s->tls_protocol : NULL }, { "cipher", tls ? s->tls_cipher : NULL },
        { "cipher_bits", tls ? m->cipher_bits : NULL },
        { "cert_subject", cert ? s->tls_ccert_subject : NULL },
        { "cert_issuer", cert ? s->tls_ccert_issuer : NULL },
        { "mail_addr", s->mail.sender.address }, { "mail_host", s->mail.sender.domain },
        { "mail_mailer", s->mail.sender.address ? "smtp" : NULL },
        { "rcpt_addr", m->rcpt_addr }, { "rcpt_host", rcpt_at ? rcpt_at + 1 : NULL },
        { "rcpt_mailer", m->rcpt_addr ? "smtp" : NULL },
        { "i", m->qid[0] ? m->qid : NULL },
    };
    return mac_var_find(vars, sizeof(vars) / sizeof(vars[0]), name, strlen(name));
}

static const char *log_prefix(void *ctx)
{
    struct smtpd_milter *m = ctx;
    return m->s->client_desc;
}

/* ---- the session's chain ---- */

static void on_done(void *ctx, const struct milter_result *r);

static const struct milter_owner owner_ops = { NULL, macro, on_done, log_prefix };

static struct smtpd_milter *session_milter(struct smtpd_session *s)
{
    if (!smtpd_milter_enabled())
        return NULL;
    if (s->milter)
        return s->milter;
    struct smtpd_milter *m = xcalloc(1, sizeof(*m));
    m->s = s;
    struct milter_owner o = owner_ops;
    o.ctx = m;
    if (!milters_broken)
        m->chain = milter_chain_new(&milters, s->base, &o);
    m->spool_fd = -1;
    m->spool_limit = smtpd_cfg.size_limit > 0 ? smtpd_cfg.size_limit + 65536 : MILTER_CONTENT_MAX;
    unsigned port = 0;
    if (s->local.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&s->local)->sin_addr, m->daemon_addr, sizeof(m->daemon_addr));
        port = ntohs(((struct sockaddr_in *)&s->local)->sin_port);
    } else if (s->local.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&s->local)->sin6_addr, m->daemon_addr, sizeof(m->daemon_addr));
        port = ntohs(((struct sockaddr_in6 *)&s->local)->sin6_port);
    }
    snprintf(m->daemon_port, sizeof(m->daemon_port), "%u", port);
    snprintf(m->underscore, sizeof(m->underscore), "%s [%s]", s->client_name, s->client_addr);
    s->milter = m;
    return m;
}

/* A new message: no spool file until its first content. */
static void spool_reset(struct smtpd_milter *m)
{
    if (m->spool_fd >= 0)
        close(m->spool_fd);
    m->spool_fd = -1;
    m->spool_len = 0;
    m->content_full = m->spool_failed = false;
}

static void wait_for(struct smtpd_session *s, enum milter_wait w)
{
    s->milter->wait = w;
    s->pause |= PAUSE_MILTER;
}

/* smtpd_milters could not be read: refuse mail, as Postfix does. */
static bool broken_reply(struct smtpd_session *s)
{
    if (!milters_broken)
        return false;
    smtpd_session_reply(s, 451, "4.3.5 Server configuration problem - try again later");
    return true;
}

bool smtpd_milter_connect_wait(struct smtpd_session *s, void (*next)(struct smtpd_session *s))
{
    struct smtpd_milter *m = session_milter(s);
    if (!m || !m->chain || m->connect_done)
        return false;
    m->next = next;
    wait_for(s, W_CONNECT);
    unsigned port = 0;
    if (s->peer.ss_family == AF_INET)
        port = ntohs(((struct sockaddr_in *)&s->peer)->sin_port);
    else if (s->peer.ss_family == AF_INET6)
        port = ntohs(((struct sockaddr_in6 *)&s->peer)->sin6_port);
    char host[300];
    /* Postfix sends "[addr]" when the name is unknown */
    if (strcmp(s->client_name, "unknown") == 0)
        snprintf(host, sizeof(host), "[%s]", s->client_addr);
    else
        str_copy(host, sizeof(host), s->client_name);
    milter_connect_event(m->chain, host, (struct sockaddr *)&s->peer, s->client_addr, port);
    return true;
}

bool smtpd_milter_command_denied(struct smtpd_session *s, enum smtp_verb v)
{
    struct smtpd_milter *m = s->milter;
    if (!m || !m->deny_code || v == SMTP_QUIT || v == SMTP_NOOP || v == SMTP_RSET)
        return false;
    smtpd_session_reply(s, m->deny_code, "%s", m->deny_text);
    return true;
}

bool smtpd_milter_helo_wait(struct smtpd_session *s, char *name, bool ehlo,
                            void (*next)(struct smtpd_session *s, char *name, bool ehlo))
{
    struct smtpd_milter *m = session_milter(s);
    if (!m || !m->chain || m->pass)
        return false;
    m->helo_name = name;
    m->ehlo = ehlo;
    m->helo_next = next;
    wait_for(s, W_HELO);
    milter_helo_event(m->chain, name);
    return true;
}

static void mail_args(struct smtpd_session *s, struct strbuf *store, const char **argv, size_t *argc)
{
    const struct smtp_mail_args *a = &s->mail;
    static const char *body[] = { "", "7BIT", "8BITMIME", "BINARYMIME" };
    size_t n = 0;
    size_t offs[6];
    if (a->size >= 0) {
        offs[n++] = store->len;
        sb_appendf(store, "SIZE=%lld", a->size);
        sb_appendc(store, 0);
    }
    if (a->body != SMTP_BODY_NONE) {
        offs[n++] = store->len;
        sb_appendf(store, "BODY=%s", body[a->body]);
        sb_appendc(store, 0);
    }
    if (a->ret != SMTP_RET_NONE) {
        offs[n++] = store->len;
        sb_appendf(store, "RET=%s", a->ret == SMTP_RET_FULL ? "FULL" : "HDRS");
        sb_appendc(store, 0);
    }
    if (a->envid) {
        offs[n++] = store->len;
        sb_appendf(store, "ENVID=%s", a->envid);
        sb_appendc(store, 0);
    }
    if (a->smtputf8) {
        offs[n++] = store->len;
        sb_appends(store, "SMTPUTF8");
        sb_appendc(store, 0);
    }
    if (a->requiretls) {
        offs[n++] = store->len;
        sb_appends(store, "REQUIRETLS");
        sb_appendc(store, 0);
    }
    for (size_t i = 0; i < n; i++)
        argv[i] = store->data + offs[i];
    *argc = n;
}

bool smtpd_milter_mail_wait(struct smtpd_session *s, void (*next)(struct smtpd_session *s))
{
    struct smtpd_milter *m = session_milter(s);
    if (!m || m->pass)
        return false;
    if (broken_reply(s)) {
        smtp_mail_args_free(&s->mail);
        return true;
    }
    m->discard = false;
    const char *argv[6];
    size_t argc;
    struct strbuf store = STRBUF_INIT(8192);
    mail_args(s, &store, argv, &argc);
    m->next = next;
    wait_for(s, W_MAIL);
    milter_mail_event(m->chain, s->mail.sender.address, argv, argc);
    sb_free(&store);
    return true;
}

bool smtpd_milter_rcpt_wait(struct smtpd_session *s, const char *arg, const struct smtp_rcpt_args *r,
                            void (*next)(struct smtpd_session *s, const char *arg))
{
    struct smtpd_milter *m = s->milter;
    if (!m || !m->chain || m->pass)
        return false;
    char notify[64];
    const char *argv[2];
    size_t argc = 0;
    struct strbuf store = STRBUF_INIT(8192);
    if (r->notify) {
        sb_appendf(&store, "NOTIFY=%s", smtp_notify_string(r->notify, notify, sizeof(notify)));
        sb_appendc(&store, 0);
    }
    size_t orcpt_off = store.len;
    if (r->orcpt) {
        sb_appendf(&store, "ORCPT=%s", r->orcpt);
        sb_appendc(&store, 0);
    }
    if (r->notify)
        argv[argc++] = store.data;
    if (r->orcpt)
        argv[argc++] = store.data + orcpt_off;
    free(m->rcpt_arg);
    free(m->rcpt_addr);
    m->rcpt_arg = xstrdup(arg);
    m->rcpt_addr = xstrdup(r->rcpt.address);
    m->rcpt_next = next;
    wait_for(s, W_RCPT);
    milter_rcpt_event(m->chain, r->rcpt.address, argv, argc);
    sb_free(&store);
    return true;
}

/* The DATA event, for DATA or the first BDAT: the message gets its queue
 * ID and, once it has content, a new spool file. */
static void data_event(struct smtpd_session *s, enum milter_wait w)
{
    struct smtpd_milter *m = s->milter;
    spool_reset(m);
    str_copy(m->qid, sizeof(m->qid), smtpd_data_queue_id(s));
    wait_for(s, w);
    milter_data_event(m->chain);
}

bool smtpd_milter_data_wait(struct smtpd_session *s, void (*next)(struct smtpd_session *s))
{
    struct smtpd_milter *m = s->milter;
    if (!m || !m->chain || m->pass)
        return false;
    m->next = next;
    data_event(s, W_DATA);
    return true;
}

bool smtpd_milter_bdat_wait(struct smtpd_session *s,
                            void (*next)(struct smtpd_session *s, int code, const char *text))
{
    struct smtpd_milter *m = s->milter;
    if (!m || !m->chain)
        return false;
    m->chunk_next = next;
    data_event(s, W_BDAT);
    return true;
}

bool smtpd_milter_unknown_wait(struct smtpd_session *s, const char *line, size_t len)
{
    struct smtpd_milter *m = s->milter;
    if (!m || !m->chain)
        return false;
    char copy[1024];
    size_t n = len < sizeof(copy) - 1 ? len : sizeof(copy) - 1;
    memcpy(copy, line, n);
    copy[n] = 0;
    wait_for(s, W_UNKNOWN);
    milter_unknown_event(m->chain, copy);
    return true;
}

/* ---- content ---- */

bool smtpd_milter_holds_content(struct smtpd_session *s)
{
    return s->milter && s->milter->chain;
}

int smtpd_milter_content_add(struct smtpd_session *s, const char *data, size_t len)
{
    struct smtpd_milter *m = s->milter;
    if (m->content_full || m->spool_len + (off_t)len > m->spool_limit) {
        m->content_full = true;
        return -1;
    }
    if (m->spool_failed)
        return 0;
    if (m->spool_fd < 0 && (m->spool_fd = temp_file_open(QDIR_TMP)) < 0) {
        msg_warn("%s: cannot create a spool file in %s/ for the milters: %m", s->client_desc, QDIR_TMP);
        m->spool_failed = true;
        return 0;
    }
    if (write_all(m->spool_fd, data, len) < 0) {
        msg_warn("%s: cannot write the spool file for the milters: %m", s->client_desc);
        m->spool_failed = true;
        return 0;
    }
    m->spool_len += (off_t)len;
    return 0;
}

void smtpd_milter_eod(struct smtpd_session *s,
                      void (*done)(struct smtpd_session *s, int verdict, int code, const char *text))
{
    struct smtpd_milter *m = s->milter;
    m->eod_next = done;
    if (m->have_msg)
        milter_msg_free(&m->msg);
    m->have_msg = false;
    m->result_ready = false;
    if (m->spool_failed) {
        spool_reset(m);
        done(s, MILTER_TEMPFAIL, 451, "4.3.0 Error: queue file write error");
        return;
    }
    int fd = m->spool_fd;       /* the message takes it, also when parsing fails */
    m->spool_fd = -1;
    m->have_msg = true;
    if (milter_msg_parse(&m->msg, fd, m->spool_len, header_limit, m->spool_limit) < 0) {
        msg_warn("%s: cannot read the spool file for the milters: %m", s->client_desc);
        done(s, MILTER_TEMPFAIL, 451, "4.3.0 Error: queue file write error");
        return;
    }
    wait_for(s, W_EOM);
    milter_message_event(m->chain, &m->msg);
}

bool smtpd_milter_has_result(struct smtpd_session *s)
{
    return s->milter && s->milter->result_ready;
}

int smtpd_milter_content_next(struct smtpd_session *s, char *buf, size_t size, size_t *len)
{
    struct smtpd_milter *m = s->milter;
    if (milter_msg_render_next(&m->msg, &m->render, buf, size, len) < 0) {
        msg_warn("%s: cannot read the spool file for the milters: %m", s->client_desc);
        return -1;
    }
    return 0;
}

bool smtpd_milter_holding(struct smtpd_session *s)
{
    return s->milter && s->milter->quarantine;
}

const char *smtpd_milter_hold_reason(struct smtpd_session *s)
{
    return s->milter ? s->milter->hold_attr : NULL;
}

void smtpd_milter_queued(struct smtpd_session *s, const char *queue_id)
{
    struct smtpd_milter *m = s->milter;
    if (!m || !m->quarantine)
        return;
    struct strbuf line = STRBUF_INIT(4096);
    sb_appendf(&line, "%s: milter-hold: END-OF-MESSAGE from %s: %s; from=<%s> to=<%s> proto=%s",
               queue_id, s->client_desc, m->quarantine, s->mail.sender.address ? s->mail.sender.address : "",
               s->nrcpt ? s->rcpts[0].address : "", s->esmtp ? "ESMTP" : "SMTP");
    if (s->helo_name)
        sb_appendf(&line, " helo=<%s>", s->helo_name);
    msg_info("%s", sb_str(&line));
    sb_free(&line);
    METRICS_ADD(M_MILTER_ACTIONS, 1, "hold");
}

/* ---- envelope edits ---- */

/* The value of NAME= in an ESMTP parameter list, copied to buf. */
static bool esmtp_param(const char *args, const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);
    for (const char *p = args; *p; ) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > n && strncasecmp(p, name, n) == 0 && p[n] == '=') {
            size_t vl = len - n - 1;
            if (vl >= size)
                return false;
            memcpy(buf, p + n + 1, vl);
            buf[vl] = 0;
            return true;
        }
        p += len;
    }
    return false;
}

static int parse_addr(struct smtpd_session *s, const char *text, bool null_ok, struct address *a)
{
    const char *why;
    unsigned opts = ADDR_ALLOW_BARE | ADDR_ALLOW_NODOMAIN | (null_ok ? ADDR_ALLOW_NULL : 0)
        | (s->mail.smtputf8 ? ADDR_ALLOW_UTF8 : 0);
    if (address_parse(text, strlen(text), opts, a, &why) != ADDR_OK) {
        msg_warn("%s: milter: bad address in a modification request: %.100s: %s",
                 s->client_desc, text, why ? why : "");
        return -1;
    }
    return 0;
}

static void add_recipient(struct smtpd_session *s, const char *addr, const char *args)
{
    struct address a;
    char notify[64] = "", orcpt[1024] = "";
    if (parse_addr(s, addr, false, &a) < 0)
        return;
    if (esmtp_param(args, "NOTIFY", notify, sizeof(notify)))
        for (char *p = notify; *p; p++)
            *p = (char)toupper((unsigned char)*p);
    if (!esmtp_param(args, "ORCPT", orcpt, sizeof(orcpt)))
        orcpt[0] = 0;
    if (s->nrcpt == s->caprcpt) {
        s->caprcpt = s->caprcpt ? s->caprcpt * 2 : 8;
        s->rcpts = xrealloc(s->rcpts, s->caprcpt * sizeof(*s->rcpts));
    }
    struct smtpd_rcpt *d = &s->rcpts[s->nrcpt++];
    d->address = xstrdup(a.address);
    d->orcpt = xstrdup(orcpt);
    d->notify = xstrdup(notify);
    address_free(&a);
}

static void delete_recipient(struct smtpd_session *s, const char *addr)
{
    for (size_t i = 0; i < s->nrcpt; ) {
        if (str_ieq(s->rcpts[i].address, addr)) {
            free(s->rcpts[i].address);
            free(s->rcpts[i].orcpt);
            free(s->rcpts[i].notify);
            memmove(&s->rcpts[i], &s->rcpts[i + 1], (s->nrcpt - i - 1) * sizeof(*s->rcpts));
            s->nrcpt--;
        } else {
            i++;
        }
    }
}

static void change_sender(struct smtpd_session *s, const char *addr, const char *args)
{
    struct address a;
    char val[128];
    if (parse_addr(s, addr, true, &a) < 0)
        return;
    address_free(&s->mail.sender);
    s->mail.sender = a;
    if (esmtp_param(args, "RET", val, sizeof(val))) {
        if (str_ieq(val, "FULL"))
            s->mail.ret = SMTP_RET_FULL;
        else if (str_ieq(val, "HDRS"))
            s->mail.ret = SMTP_RET_HDRS;
    }
    if (esmtp_param(args, "ENVID", val, sizeof(val))) {
        free(s->mail.envid);
        s->mail.envid = xstrdup(val);
    }
}

static void apply_envelope(struct smtpd_session *s, const struct milter_msg *msg)
{
    for (size_t i = 0; i < msg->nenv; i++) {
        const struct milter_env_edit *e = &msg->env[i];
        switch (e->cmd) {
        case SMFIR_CHGFROM: change_sender(s, e->addr, e->args); break;
        case SMFIR_ADDRCPT: case SMFIR_ADDRCPT_PAR: add_recipient(s, e->addr, e->args); break;
        case SMFIR_DELRCPT: delete_recipient(s, e->addr); break;
        default: break;
        }
    }
}

/* ---- verdicts ---- */

static const char *stage_name(enum milter_wait w)
{
    switch (w) {
    case W_CONNECT: return "CONNECT";
    case W_HELO: return "HELO";
    case W_MAIL: return "MAIL";
    case W_RCPT: return "RCPT";
    case W_DATA: return "DATA";
    case W_BDAT: return "BDAT";
    case W_UNKNOWN: return "UNKNOWN";
    default: return "END-OF-MESSAGE";
    }
}

/* The reason as a queue file attribute: "milter: " and printable ASCII. */
static char *printable_reason(const char *reason)
{
    struct strbuf b = STRBUF_INIT(256);
    sb_appends(&b, "milter: ");
    for (const char *p = reason; *p && b.len < 200; p++)
        sb_appendc(&b, (unsigned char)*p < 32 || (unsigned char)*p >= 127 ? '?' : *p);
    char *out = xstrdup(sb_str(&b));
    sb_free(&b);
    return out;
}

static void eom_done(struct smtpd_session *s, struct smtpd_milter *m, const struct milter_result *r)
{
    struct milter_result v = *r;
    if (v.verdict == MILTER_CONTINUE && m->discard)
        v.verdict = MILTER_DISCARD;
    if (v.verdict == MILTER_CONTINUE) {
        apply_envelope(s, &m->msg);
        free(m->quarantine);
        m->quarantine = m->msg.quarantine ? xstrdup(m->msg.quarantine) : NULL;
        free(m->hold_attr);
        m->hold_attr = NULL;
        if (m->quarantine)
            m->hold_attr = printable_reason(m->quarantine);
        if (milter_msg_size(&m->msg) > m->spool_limit + 1024 * 1024) {
            v.verdict = MILTER_REJECT;
            v.code = 552;
            str_copy(v.text, sizeof(v.text), "5.3.4 Error: message file too big");
        } else if (s->nrcpt == 0) {
            msg_info("%s: milter removed every recipient; the message is discarded", s->client_desc);
            v.verdict = MILTER_DISCARD;
        } else {
            struct milter_render start = MILTER_RENDER_INIT;
            m->render = start;
            m->result_ready = true;
        }
    }
    if (v.verdict == MILTER_DISCARD)
        log_milter(s, "milter-discard", "END-OF-MESSAGE", 0, "milter triggers DISCARD action",
                   s->nrcpt ? s->rcpts[0].address : "");
    else if (v.verdict != MILTER_CONTINUE)
        log_milter(s, "milter-reject", "END-OF-MESSAGE", v.code, v.text,
                   s->nrcpt ? s->rcpts[0].address : "");
    m->eod_next(s, v.verdict, v.code, v.text);
}

/* A refused CONNECT or HELO: every later command gets the refusal. */
static void deny(struct smtpd_milter *m, const struct milter_result *r)
{
    m->deny_code = r->code;
    str_copy(m->deny_text, sizeof(m->deny_text), r->text);
}

/* A milter refused an envelope command: it gets their reply; a refused MAIL
 * ends the milters' transaction too. */
static void command_refused(struct smtpd_session *s, struct smtpd_milter *m, enum milter_wait w,
                            const struct milter_result *r)
{
    if (w == W_HELO) {
        free(m->helo_name);
        m->helo_name = NULL;
        deny(m, r);
    } else if (w == W_MAIL) {
        smtp_mail_args_free(&s->mail);
    }
    smtpd_session_reply(s, r->code, "%s", r->text);
    if (w == W_MAIL)
        milter_abort(m->chain);
}

/* The milters passed an envelope command: its continuation runs again and
 * this time goes past them. A DISCARD from MAIL on discards the message. */
static void command_passed(struct smtpd_session *s, struct smtpd_milter *m, enum milter_wait w,
                           bool discard)
{
    if (discard && w != W_HELO)
        m->discard = true;
    m->pass = true;
    if (w == W_HELO) {
        char *name = m->helo_name;      /* the continuation takes it */
        m->helo_name = NULL;
        m->helo_next(s, name, m->ehlo);
    } else if (w == W_RCPT) {
        m->rcpt_next(s, m->rcpt_arg);
    } else {
        m->next(s);                     /* MAIL, DATA */
    }
    m->pass = false;
}

static void on_done(void *ctx, const struct milter_result *r)
{
    struct smtpd_milter *m = ctx;
    struct smtpd_session *s = m->s;
    enum milter_wait w = m->wait;
    m->wait = W_NONE;
    s->pause &= ~PAUSE_MILTER;
    if (r->verdict == MILTER_SHUTDOWN) {
        log_milter(s, "milter-reject", stage_name(w), 421, r->text, w == W_RCPT ? m->rcpt_addr : NULL);
        free(m->helo_name);
        m->helo_name = NULL;
        smtpd_session_close_with(s, 421, "%s", r->text);
        smtpd_session_finish_if_done(s);
        return;
    }
    bool refused = r->verdict == MILTER_REJECT || r->verdict == MILTER_TEMPFAIL;
    if (refused && w != W_EOM)
        log_milter(s, "milter-reject", stage_name(w), r->code, r->text,
                   w == W_RCPT ? m->rcpt_addr : NULL);
    switch (w) {
    case W_CONNECT:
        m->connect_done = true;
        if (refused)
            deny(m, r);
        m->next(s);
        return;
    case W_HELO:
    case W_MAIL:
    case W_RCPT:
    case W_DATA:
        if (refused)
            command_refused(s, m, w, r);
        else
            command_passed(s, m, w, r->verdict == MILTER_DISCARD);
        if (w == W_RCPT) {
            free(m->rcpt_addr);
            m->rcpt_addr = NULL;
        }
        break;
    case W_BDAT:
        if (r->verdict == MILTER_DISCARD)
            m->discard = true;
        m->chunk_next(s, refused ? r->code : 0, refused ? r->text : "");
        break;
    case W_UNKNOWN:
        if (refused)
            smtpd_session_reply(s, r->code, "%s", r->text);
        else
            smtpd_session_reply(s, 500, "5.5.2 Error: command not recognized");
        break;
    case W_EOM:
        eom_done(s, m, r);
        break;
    case W_NONE:
        break;
    }
    smtpd_session_resume(s, 0);
    smtpd_session_finish_if_done(s);
}

/* ---- transaction and session end ---- */

void smtpd_milter_mail_reset(struct smtpd_session *s)
{
    struct smtpd_milter *m = s->milter;
    if (!m)
        return;
    if (m->chain && !milter_busy(m->chain))
        milter_abort(m->chain);
    spool_reset(m);
    m->result_ready = false;
    m->discard = false;
    free(m->quarantine);
    m->quarantine = NULL;
    free(m->hold_attr);
    m->hold_attr = NULL;
    m->qid[0] = 0;
    if (m->have_msg)
        milter_msg_free(&m->msg);
    m->have_msg = false;
}

void smtpd_milter_session_end(struct smtpd_session *s)
{
    struct smtpd_milter *m = s->milter;
    if (!m)
        return;
    s->milter = NULL;
    if (m->chain) {
        milter_cancel(m->chain);
        milter_chain_free(m->chain);
    }
    if (m->have_msg)
        milter_msg_free(&m->msg);
    spool_reset(m);
    FREE_ALL(m->helo_name, m->rcpt_arg, m->rcpt_addr, m->quarantine, m->hold_attr, m);
}
