/* tern_quarantine.c: `tern quarantine list|show|release|delete|digest`,
 * the administrator's side of the quarantine (lib/global/quarantine.h,
 * which the web console calls too): held messages with a reason, for one
 * recipient (--recipient: what that user sees and may do) or for all, and
 * the daily digest each recipient gets of their quarantined mail. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "json.h"
#include "log.h"
#include "quarantine.h"
#include "strbuf.h"
#include "tern.h"
#include "tern_queue.h"
#include "util.h"

#define DIGEST_ENTRIES_MAX 100000   /* (recipient, message) pairs gathered */
#define DIGEST_LINES_MAX 200        /* messages listed in one digest */
#define SENDER_SHOWN_MAX 100

#define USAGE \
    "usage: tern [-c CONFDIR] quarantine list [--recipient ADDR] [--json]\n" \
    "       tern [-c CONFDIR] quarantine show ID [--recipient ADDR] [--json]\n" \
    "       tern [-c CONFDIR] quarantine release ID [--recipient ADDR]\n" \
    "       tern [-c CONFDIR] quarantine delete ID [--recipient ADDR]\n" \
    "       tern [-c CONFDIR] quarantine digest [--mail]\n" \
    "       tern [-c CONFDIR] quarantine expire\n" \
    "  the messages a milter or a header or body check quarantined (held with a\n" \
    "  reason). With --recipient, only what that recipient sees, and release or\n" \
    "  delete act on their own recipient records only: the others' stay held.\n" \
    "  digest prints, or with --mail sends, each recipient a list of their\n" \
    "  quarantined messages. expire deletes those older than quarantine_lifetime.\n"

struct opts {
    const char *recipient;
    bool json, mail;
};

static const struct option long_options[] = {
    { "recipient", required_argument, NULL, 'r' },
    { "json", no_argument, NULL, 'j' },
    { "mail", no_argument, NULL, 'm' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* ---- printing ---- */

static void time_text(long long t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M", &tm);
}

/* The envelope sender for a line of text: printable, bounded. */
static void sender_text(const char *s, char *out, size_t size)
{
    size_t o = 0;
    if (!*s)
        s = "<>";
    for (size_t i = 0; s[i] && o + 4 < size && i < SENDER_SHOWN_MAX; i++)
        out[o++] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ? '?' : s[i];
    out[o] = 0;
}

static void entry_json(const struct quarantine_entry *e, struct strbuf *out)
{
    sb_appends(out, "{\"queue_id\": ");
    json_str(out, e->id);
    sb_appendf(out, ", \"arrival_time\": %lld, \"message_size\": %llu, \"sender\": ", e->arrival,
               e->size);
    json_str(out, e->sender);
    sb_appends(out, ", \"subject\": ");
    json_str(out, e->subject);
    sb_appends(out, ", \"reason\": ");
    json_str(out, e->reason ? e->reason : "");
    sb_appends(out, ", \"recipients\": [");
    for (size_t i = 0; i < e->nrcpts; i++) {
        if (i)
            sb_appends(out, ", ");
        json_str(out, e->rcpts[i]);
    }
    sb_appendf(out, "], \"other_recipients\": %zu}", e->nall - e->nrcpts);
}

static int print_entry(const struct quarantine_entry *e, void *ctx)
{
    const struct opts *o = ctx;
    if (o->json) {
        struct strbuf out = STRBUF_INIT(0);
        entry_json(e, &out);
        tern_json_print(&out);
        return 0;
    }
    char when[32], from[SENDER_SHOWN_MAX + 8];
    time_text(e->arrival, when, sizeof(when));
    sender_text(e->sender, from, sizeof(from));
    printf("%s  %s  %8llu  %s\n", e->id, when, e->size, from);
    /* the reason and the addresses come from the queue file: no control
     * character of theirs reaches the terminal */
    struct strbuf shown = STRBUF_INIT(0);
    const char *reason = e->reason ? e->reason : "";
    quarantine_printable(&shown, reason, strlen(reason), 1024, false);
    printf("    subject: %s\n    reason:  %s\n    to:     ", e->subject, sb_str(&shown));
    for (size_t i = 0; i < e->nrcpts; i++) {
        sb_reset(&shown);
        quarantine_printable(&shown, e->rcpts[i], strlen(e->rcpts[i]), 1024, false);
        printf(" %s", sb_str(&shown));
    }
    sb_free(&shown);
    if (e->nall > e->nrcpts)
        printf(" (and %zu other%s)", e->nall - e->nrcpts, e->nall - e->nrcpts == 1 ? "" : "s");
    printf("\n");
    return 0;
}

/* ---- the digest ---- */

struct digest_item {
    char *rcpt, *id, *sender, *subject, *reason;
    long long arrival;
    unsigned long long size;
};

struct digest {
    struct digest_item *items;
    size_t n, cap;
    bool truncated;
};

static int gather(const struct quarantine_entry *e, void *ctx)
{
    struct digest *d = ctx;
    for (size_t i = 0; i < e->nrcpts; i++) {
        if (d->n == DIGEST_ENTRIES_MAX) {
            d->truncated = true;
            return 1;
        }
        if (d->n == d->cap) {
            d->cap = d->cap ? 2 * d->cap : 64;
            d->items = xrealloc(d->items, d->cap * sizeof(*d->items));
        }
        char from[SENDER_SHOWN_MAX + 8];
        sender_text(e->sender, from, sizeof(from));
        struct digest_item *it = &d->items[d->n++];
        it->rcpt = xstrdup(e->rcpts[i]);
        str_lower(it->rcpt);
        it->id = xstrdup(e->id);
        it->sender = xstrdup(from);
        it->subject = xstrdup(e->subject);
        it->reason = xstrdup(e->reason ? e->reason : "");
        it->arrival = e->arrival;
        it->size = e->size;
    }
    return 0;
}

static int by_rcpt(const void *a, const void *b)
{
    const struct digest_item *x = a, *y = b;
    int c = strcmp(x->rcpt, y->rcpt);
    return c ? c : strcmp(x->id, y->id);
}

/* The digest of items[0..n) (all for one recipient) as a message. */
static void digest_message(const struct digest_item *items, size_t n, struct strbuf *msg)
{
    const char *rcpt = items[0].rcpt;
    sb_appendf(msg, "To: %s\nSubject: Quarantine: %zu message%s held for %s\n", rcpt, n,
               n == 1 ? "" : "s", rcpt);
    sb_appends(msg, "Auto-Submitted: auto-generated\nMIME-Version: 1.0\n"
               "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n");
    sb_appendf(msg, "These messages to %s were held as suspicious and not delivered.\n"
               "Ask your mail administrator to release one that you want, or\n"
               "release it yourself in the web console.\n\n", rcpt);
    for (size_t i = 0; i < n && i < DIGEST_LINES_MAX; i++) {
        char when[32];
        time_text(items[i].arrival, when, sizeof(when));
        sb_appendf(msg, "%s  %s\n  From:    %s\n  Subject: %s\n  Reason:  %s\n\n", when,
                   items[i].id, items[i].sender, items[i].subject, items[i].reason);
    }
    if (n > DIGEST_LINES_MAX)
        sb_appendf(msg, "... and %zu more.\n", n - DIGEST_LINES_MAX);
}

static int digest(const struct opts *o)
{
    struct digest d = { 0 };
    quarantine_list(NULL, gather, &d);
    if (d.truncated)
        fprintf(stderr, "tern quarantine digest: more than %d quarantined recipients; "
                "the rest are left out\n", DIGEST_ENTRIES_MAX);
    qsort(d.items, d.n, sizeof(*d.items), by_rcpt);
    int rc = 0;
    size_t sent = 0;
    for (size_t i = 0; i < d.n;) {
        size_t j = i;
        while (j < d.n && strcmp(d.items[j].rcpt, d.items[i].rcpt) == 0)
            j++;
        struct strbuf msg = STRBUF_INIT(0);
        digest_message(d.items + i, j - i, &msg);
        if (!o->mail) {
            printf("%s\n", sb_str(&msg));
        } else if (!tern_sendmail_address_ok(d.items[i].rcpt)) {
            fprintf(stderr, "tern quarantine digest: %s: not an address to mail to; skipped\n",
                    d.items[i].rcpt);
        } else {
            const char *to[1] = { d.items[i].rcpt };
            if (tern_sendmail("quarantine digest", to, 1, &msg) == 0)
                sent++;
            else
                rc = 1;
        }
        sb_free(&msg);
        i = j;
    }
    if (o->mail)
        printf("tern quarantine digest: %zu digest%s mailed\n", sent, sent == 1 ? "" : "s");
    for (size_t i = 0; i < d.n; i++) {
        struct digest_item *it = &d.items[i];
        free(it->rcpt);
        free(it->id);
        free(it->sender);
        free(it->subject);
        free(it->reason);
    }
    free(d.items);
    return rc;
}

/* ---- the command ---- */

static int act(const char *action, const char *id, const struct opts *o)
{
    struct strbuf err = STRBUF_INIT(2048);
    int rc;
    if (strcmp(action, "show") == 0) {
        struct strbuf header = STRBUF_INIT(QUARANTINE_HEADER_SCAN * 2);
        struct opts shown = *o;
        rc = quarantine_show(id, o->recipient, print_entry, &shown, o->json ? NULL : &header, &err);
        if (rc == 0 && !o->json)
            printf("\n%s\n", sb_str(&header));
        sb_free(&header);
    } else if (strcmp(action, "release") == 0) {
        rc = quarantine_release(id, o->recipient, &err);
    } else {
        rc = quarantine_delete(id, o->recipient, &err);
    }
    if (rc < 0)
        fprintf(stderr, "tern quarantine %s: %s: %s\n", action, id, sb_str(&err));
    else if (strcmp(action, "show") != 0) {
        if (o->json) {
            struct strbuf out = STRBUF_INIT(0);
            sb_appends(&out, "{\"queue_id\": ");
            json_str(&out, id);
            sb_appends(&out, ", \"result\": ");
            json_str(&out, sb_str(&err));
            sb_appends(&out, "}");
            tern_json_print(&out);
        } else {
            printf("%s: %s\n", id, sb_str(&err));
        }
    }
    sb_free(&err);
    return rc < 0 ? 1 : 0;
}

int tern_cmd_quarantine(int argc, char **argv)
{
    int early = tern_action_start(argc, argv, USAGE, 2);
    if (early >= 0)
        return early;
    const char *action = argv[1];
    struct opts o = { 0 };
    int c;
    optind = 2;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+r:jm", long_options, NULL)) != -1) {
        switch (c) {
        case 'r': o.recipient = optarg; break;
        case 'j': o.json = true; break;
        case 'm': o.mail = true; break;
        default:
            fprintf(stderr, "tern quarantine: unknown option %s (see tern quarantine --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    bool takes_id = strcmp(action, "show") == 0 || strcmp(action, "release") == 0
                    || strcmp(action, "delete") == 0;
    if (!takes_id && strcmp(action, "list") != 0 && strcmp(action, "digest") != 0
        && strcmp(action, "expire") != 0) {
        fprintf(stderr, "tern quarantine: unknown action \"%.100s\" (list, show, release, delete, "
                "digest or expire)\n", action);
        return 2;
    }
    /* the ID may come before or after the options */
    const char *id = NULL;
    if (takes_id && optind < argc) {
        id = argv[optind++];
        while ((c = getopt_long(argc, argv, "+r:jm", long_options, NULL)) != -1) {
            if (c == 'r')
                o.recipient = optarg;
            else if (c == 'j')
                o.json = true;
            else {
                fprintf(stderr, "tern quarantine: unknown option %s\n", argv[optind - 1]);
                return 2;
            }
        }
    }
    if ((takes_id && !id) || optind < argc) {
        fprintf(stderr, takes_id && !id ? "tern quarantine %s: which message? Give its queue ID\n"
                                        : "tern quarantine %s: too many arguments\n", action);
        return 2;
    }
    if (o.mail && strcmp(action, "digest") != 0) {
        fprintf(stderr, "tern quarantine %s: --mail is for digest\n", action);
        return 2;
    }
    if (o.recipient && (!*o.recipient || strlen(o.recipient) > 320
                        || !str_printable(o.recipient, 320) || strchr(o.recipient, ' '))) {
        fprintf(stderr, "tern quarantine: --recipient: not an address\n");
        return 2;
    }
    tern_queue_enter();
    log_to_stderr(0);          /* what is done is logged where the daemons log */
    if (strcmp(action, "list") == 0) {
        size_t n = quarantine_list(o.recipient, print_entry, &o);
        if (!o.json && n == 0)
            printf("The quarantine is empty%s%s.\n", o.recipient ? " for " : "",
                   o.recipient ? o.recipient : "");
        return 0;
    }
    if (strcmp(action, "digest") == 0)
        return digest(&o);
    if (strcmp(action, "expire") == 0) {
        long life = cfg_time(P_quarantine_lifetime);
        if (life <= 0) {
            printf("tern quarantine expire: quarantine_lifetime is 0: nothing expires\n");
            return 0;
        }
        size_t failed;
        size_t n = quarantine_expire((long long)time(NULL) - life, &failed);
        printf("tern quarantine expire: %zu message%s deleted\n", n, n == 1 ? "" : "s");
        return failed ? 1 : 0;
    }
    return act(action, id, &o);
}
