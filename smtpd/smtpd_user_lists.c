/* smtpd_user_lists.c: check_recipient_lists, the restriction that applies
 * each recipient's own allow and deny lists and the correspondent
 * allowlist (lib/global/user_lists.h), and the recording of correspondents
 * when authenticated or mynetworks clients send mail out.
 *
 * A sender on the recipient's deny list is refused (550 5.7.1); one on the
 * allow list, or one the recipient wrote to within
 * correspondent_allowlist_ttl, is accepted as an access table's OK would
 * (the restrictions after it, greylisting policy services among them, are
 * not asked) and the message gets an "X-Tern-Allowlisted:" header naming
 * the recipient and why, for milters (rspamd, SpamAssassin) to score. In
 * smtpd_data_restrictions the check looks at every recipient: OK when each
 * is allowlisted, a refusal when each denies the sender. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "data_dir.h"
#include "log.h"
#include "server.h"
#include "smtpd.h"
#include "smtpd_check.h"
#include "strbuf.h"
#include "user_lists.h"
#include "util.h"

#define RECORD_MAX 1000            /* recipients of one message recorded */

static int data_fd = -1;             /* data_directory, from before a chroot */
static bool usable;                  /* the tables could be made and opened */

/* 2 denied, 1 allowlisted (why says by what), 0 neither, -1 failure. */
static int verdict(const char *rcpt, const char *sender, const char **why)
{
    struct strbuf which = STRBUF_INIT(USER_LISTS_ADDRESS_MAX + 16);
    int m = user_lists_match(rcpt, sender, &which);
    sb_free(&which);
    *why = "allow list";
    if (m != 0)
        return m == 2 ? 2 : m;
    if (!cfg_bool(P_correspondent_allowlist))
        return 0;
    *why = "correspondent";
    /* the correspondents are a cache: one that cannot be read (warned)
     * allowlists nobody, and defers nothing */
    return correspondents_known(rcpt, sender, (long long)time(NULL),
                                cfg_time(P_correspondent_allowlist_ttl)) == 1;
}

static void mark(struct smtpd_check_job *j, const char *rcpt, const char *why)
{
    struct smtpd_check_state *c = smtpd_check_state_of(j->s);
    struct strbuf line = STRBUF_INIT(USER_LISTS_ADDRESS_MAX + 64);
    /* the address came through RCPT TO's parser: no CR, LF or NUL */
    if (sb_appendf(&line, "%s: <%s> %s\n", SMTPD_MARK_HEADER, rcpt, why) == 0) {
        if (sb_append(&c->marks, line.data, line.len) < 0)
            msg_warn("%s: too many header lines for the message; %s not marked", j->s->client_desc, rcpt);
        else
            c->nmarks++;
    }
    sb_free(&line);
}

static enum smtpd_check_result temporary(struct smtpd_check_job *j)
{
    return smtpd_check_reject(j, 451, "4.3.0", "<%s>: %s rejected: Temporary lookup failure",
                              smtpd_check_reply_name(j), smtpd_check_reply_class(j));
}

static enum smtpd_check_result denied(struct smtpd_check_job *j, const char *sender, const char *rcpt)
{
    return smtpd_check_reject(j, 550, "5.7.1", "<%s>: Sender address rejected: the recipient <%s> "
                              "does not accept mail from this sender", sender, rcpt);
}

enum smtpd_check_result smtpd_user_lists_check(struct smtpd_check_job *j,
                                               const struct smtpd_restriction *r)
{
    (void)r;
    smtpd_check_state_of(j->s)->lists_asked = true;     /* the mark opens the header */
    const struct address *snd = smtpd_check_sender(j);
    if (!snd || !snd->address || !*snd->address)
        return CHK_DUNNO;            /* <>: bounces have no correspondent */
    if (!usable)
        return temporary(j);         /* warned at start */
    const char *why;
    const struct address *rcpt = smtpd_check_recipient(j);
    if (rcpt) {
        int v = verdict(rcpt->address, snd->address, &why);
        if (v < 0)
            return temporary(j);
        if (v == 2)
            return denied(j, snd->address, rcpt->address);
        if (v == 1) {
            mark(j, rcpt->address, why);
            return CHK_OK;
        }
        return CHK_DUNNO;
    }
    if (j->stage != STAGE_DATA || j->s->nrcpt == 0)
        return CHK_DUNNO;
    size_t allowed = 0, refused = 0;
    const char *whys[RECORD_MAX];
    size_t n = j->s->nrcpt < RECORD_MAX ? j->s->nrcpt : RECORD_MAX;
    for (size_t i = 0; i < n; i++) {
        int v = verdict(j->s->rcpts[i].address, snd->address, &whys[i]);
        if (v < 0)
            return temporary(j);
        allowed += v == 1;
        refused += v == 2;
    }
    if (refused == j->s->nrcpt)
        return denied(j, snd->address, j->s->rcpts[0].address);
    if (allowed != j->s->nrcpt)
        return CHK_DUNNO;
    for (size_t i = 0; i < n; i++)
        mark(j, j->s->rcpts[i].address, whys[i]);
    return CHK_OK;
}

static bool wanted(void)
{
    /* only where they are used: an smtpd without them touches no disk */
    return cfg_bool(P_correspondent_allowlist) || smtpd_check_uses(R_RECIPIENT_LISTS);
}

void smtpd_user_lists_pre_init(void)
{
    (void)data_dir_folder_name(P_user_lists_directory);
    if (wanted())
        data_fd = data_dir_open("user lists", "check_recipient_lists answers 451 and "
                                "correspondents are not recorded");
}

void smtpd_user_lists_init(void)
{
    if (data_fd < 0)
        return;
    const char *consequence = "check_recipient_lists answers 451 and correspondents are not recorded";
    int fd = data_dir_folder(&data_fd, cfg_str(P_user_lists_directory), "user lists", consequence);
    struct strbuf err = STRBUF_INIT(1024);
    if (fd >= 0 && user_lists_prepare(fd, &err) < 0)
        msg_warn("user lists: %s; %s", sb_str(&err), consequence);
    usable = fd >= 0 && !err.len;
    sb_free(&err);
}

/* Correspondents are written in batches: a pair waits here at most
 * RECORD_DELAY_SEC, or until PENDING_MAX pairs wait, so that the table is
 * opened and locked once per batch instead of once per message on the way
 * to each 250 reply. What waits when the process ends is written by
 * smtpd_user_lists_flush from pre_exit; a crash loses at most the last
 * second's pairs, which costs a reply one greylisting, nothing more. */
#define PENDING_MAX 512
#define RECORD_DELAY_SEC 1

static struct {
    char *users[PENDING_MAX];
    char *rcpts[PENDING_MAX];
    size_t n;
    struct event *timer;
} pending;

void smtpd_user_lists_flush(void)
{
    if (pending.n == 0)
        return;
    struct strbuf err = STRBUF_INIT(1024);
    if (correspondents_record((const char *const *)pending.users,
                              (const char *const *)pending.rcpts, pending.n,
                              (long long)time(NULL), (size_t)cfg_int(P_correspondent_allowlist_size),
                              cfg_time(P_correspondent_allowlist_ttl), &err) < 0)
        msg_warn("correspondent allowlist: %s", sb_str(&err));
    sb_free(&err);
    for (size_t i = 0; i < pending.n; i++) {
        free(pending.users[i]);
        free(pending.rcpts[i]);
    }
    pending.n = 0;
}

static void flush_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    smtpd_user_lists_flush();
}

static void remember(const char *user, const char *rcpt)
{
    if (pending.n == PENDING_MAX)
        smtpd_user_lists_flush();
    char *u = strdup(user), *r = strdup(rcpt);
    if (!u || !r) {
        free(u);
        free(r);
        return;                      /* out of memory: one pair less */
    }
    pending.users[pending.n] = u;
    pending.rcpts[pending.n] = r;
    if (pending.n++ > 0)
        return;                      /* the timer runs already */
    struct event_base *base = server_event_base();
    if (!pending.timer && base)
        pending.timer = evtimer_new(base, flush_timer, NULL);
    struct timeval delay = { RECORD_DELAY_SEC, 0 };
    if (!pending.timer || evtimer_add(pending.timer, &delay) < 0)
        smtpd_user_lists_flush();    /* no timer: at once, as before */
}

/* Mail that may be recorded: an authenticated or mynetworks client's. */
static bool recording(const struct smtpd_session *s)
{
    return usable && cfg_bool(P_correspondent_allowlist)
           && ((s->sasl_username && *s->sasl_username) || s->client_trusted == 1);
}

/* The field's value starts with one of words (case aside), as a whole token. */
static bool value_is(const char *value, const char *const *words)
{
    size_t n = strcspn(value, " \t;(\r");
    for (; *words; words++)
        if (strlen(*words) == n && strncasecmp(value, *words, n) == 0)
            return true;
    return false;
}

/* One header line's start (NUL-terminated; complete when whole): is it a
 * field that makes the message automatic? A complete line without a
 * colon ends the header section (it is the body's first line). */
static void peek_line(struct smtpd_header_peek *p, bool whole)
{
    static const char *const not_auto[] = { "no", NULL };
    static const char *const bulk[] = { "bulk", "junk", "list", "auto_reply", NULL };
    char *colon = strchr(p->line, ':');
    if (!colon) {
        p->done = whole;
        return;
    }
    *colon = 0;
    const char *name = p->line, *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    /* RFC 3834: an auto-reply says so; vacation programs and Exchange's
     * out-of-office replies do. An auto-reply to a forged sender must not
     * put the forger on the user's allowlist. */
    if (strcasecmp(name, "Auto-Submitted") == 0)
        p->automatic |= !value_is(value, not_auto);
    else if (strcasecmp(name, "Precedence") == 0)
        p->automatic |= value_is(value, bulk);
    else if (strcasecmp(name, "List-Id") == 0 || strcasecmp(name, "X-Autoreply") == 0
             || strcasecmp(name, "X-Autorespond") == 0)
        p->automatic = true;
}

void smtpd_user_lists_peek(struct smtpd_session *s, const char *data, size_t len)
{
    struct smtpd_header_peek *p = &s->peek;
    if (p->done || !recording(s))
        return;
    for (size_t i = 0; i < len && !p->done; i++) {
        char c = data[i];
        if (c == '\n') {
            if (!p->mid_line) {
                p->done = true;          /* the empty line after the header section */
            } else if (!p->skipping) {
                p->line[p->len] = 0;
                peek_line(p, true);
            }
            p->len = 0;
            p->mid_line = p->skipping = false;
            continue;
        }
        if (!p->mid_line) {
            p->mid_line = true;
            p->skipping = c == ' ' || c == '\t';    /* a folded continuation */
        }
        if (p->skipping)
            continue;
        if (p->len < sizeof(p->line) - 1) {
            p->line[p->len++] = c;
        } else {                         /* the start is all that is looked at */
            p->line[p->len] = 0;
            peek_line(p, false);
            p->skipping = true;
        }
    }
}

void smtpd_user_lists_record(struct smtpd_session *s)
{
    if (!recording(s) || s->nrcpt == 0)
        return;
    const char *sender = s->mail.sender.address;
    if (!sender || !*sender)
        return;
    if (s->peek.automatic) {
        msg_info("%s: %s: an automatic reply or bulk mail: its recipients are not recorded as "
                 "correspondents", s->queue_id[0] ? s->queue_id : "NOQUEUE", s->client_desc);
        return;
    }
    size_t n = s->nrcpt < RECORD_MAX ? s->nrcpt : RECORD_MAX;
    for (size_t i = 0; i < n; i++)
        remember(sender, s->rcpts[i].address);
}
