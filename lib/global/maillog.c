/* maillog.c: Tern's log lines taken apart (maillog.h): one line split into
 * time stamp, host, tag and text; and the text of each kind of line that a
 * summary counts taken apart into fields, in place. Nothing here trusts
 * the line: a field is cut at the grammar's separators and stays data.
 * Reading the files is maillog_read.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maillog.h"
#include "strbuf.h"
#include "util.h"

/* ---- the line's prefix ---- */

void maillog_clock_init(struct maillog_clock *c, time_t now)
{
    memset(c, 0, sizeof(*c));
    c->now = now;
    c->month = -1;
}

static int two_digits(const char *s)
{
    return isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) ? (s[0] - '0') * 10 + s[1] - '0'
                                                                      : -1;
}

/* "Dec  6 11:46:49 " or "Dec 16 11:46:49 ": the time, and *rest. */
static int syslog_time(const char *s, struct maillog_clock *c, time_t *out, const char **rest)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int month = -1;
    for (int i = 0; i < 12; i++)
        if (strncmp(s, months + 3 * i, 3) == 0)
            month = i;
    if (month < 0 || s[3] != ' ')
        return -1;
    int mday = s[4] == ' ' ? (isdigit((unsigned char)s[5]) ? s[5] - '0' : -1) : two_digits(s + 4);
    int hour = two_digits(s + 7), min = s[9] == ':' ? two_digits(s + 10) : -1,
        sec = s[12] == ':' ? two_digits(s + 13) : -1;
    if (mday < 1 || mday > 31 || s[6] != ' ' || hour < 0 || hour > 23 || min < 0 || min > 59
        || sec < 0 || sec > 60 || s[15] != ' ')
        return -1;
    if (month != c->month || mday != c->mday || hour != c->hour) {
        struct tm now_tm, tm;
        localtime_r(&c->now, &now_tm);
        for (int back = 0; back < 2; back++) {
            memset(&tm, 0, sizeof(tm));
            tm.tm_year = now_tm.tm_year - back;
            tm.tm_mon = month;
            tm.tm_mday = mday;
            tm.tm_hour = hour;
            tm.tm_isdst = -1;
            c->hour_start = mktime(&tm);
            if (c->hour_start <= c->now + 86400)
                break;                /* not in the future: this year */
        }
        c->month = month;
        c->mday = mday;
        c->hour = hour;
    }
    *out = c->hour_start + min * 60 + sec;
    *rest = s + 16;
    return 0;
}

/* "2026-12-06T11:46:49.123456+01:00 " (RFC 3339, as rsyslog writes it). */
static int rfc3339_time(const char *s, time_t *out, const char **rest)
{
    int y1 = two_digits(s), y2 = two_digits(s + 2);
    if (y1 < 0 || y2 < 0 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ')
        || s[13] != ':' || s[16] != ':')
        return -1;
    struct tm tm = { 0 };
    tm.tm_year = y1 * 100 + y2 - 1900;
    tm.tm_mon = two_digits(s + 5) - 1;
    tm.tm_mday = two_digits(s + 8);
    tm.tm_hour = two_digits(s + 11);
    tm.tm_min = two_digits(s + 14);
    tm.tm_sec = two_digits(s + 17);
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour < 0
        || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60)
        return -1;
    const char *p = s + 19;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    long offset = 0;
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && two_digits(p + 1) >= 0 && p[3] == ':'
               && two_digits(p + 4) >= 0) {
        offset = (two_digits(p + 1) * 60L + two_digits(p + 4)) * 60L * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p != ' ')
        return -1;
    *out = timegm(&tm) - offset;
    *rest = p + 1;
    return 0;
}

int maillog_split(char *line, const char *syslog_name, struct maillog_clock *clock,
                  struct maillog_line *out)
{
    const char *rest;
    memset(out, 0, sizeof(*out));
    if (strlen(line) < 16)
        return -1;
    if (syslog_time(line, clock, &out->time, &rest) < 0 && rfc3339_time(line, &out->time, &rest) < 0)
        return -1;
    char *host = (char *)rest, *sp = strchr(host, ' ');
    if (!sp || sp == host)
        return -1;
    *sp = 0;
    char *tag = sp + 1, *colon = strstr(tag, ": ");
    if (!colon || colon == tag)
        return -1;
    *colon = 0;
    char *bracket = strchr(tag, '[');
    if (bracket) {
        if (colon[-1] != ']' || bracket + 1 >= colon - 1)
            return -1;
        for (char *q = bracket + 1; q < colon - 1; q++)
            if (!isdigit((unsigned char)*q))
                return -1;
        *bracket = 0;
    }
    if (strpbrk(tag, " \t"))
        return -1;
    out->host = host;
    out->tag = tag;
    out->text = colon + 2;
    const char *slash = strrchr(tag, '/');
    out->program = slash ? slash + 1 : tag;
    size_t nlen = strlen(syslog_name);
    return strncmp(tag, syslog_name, nlen) == 0 && tag[nlen] == '/' && tag[nlen + 1] ? 1 : 0;
}

/* ---- the text ---- */

long long maillog_parse_delay(const char *s)
{
    long long whole = 0, frac = 0, scale = 1000000;
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        whole = whole * 10 + (*p - '0');
        if (whole > 1000000000LL)
            return -1;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        for (; isdigit((unsigned char)*p); p++)
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
    }
    return *p ? -1 : whole * 1000000 + frac;
}

/* A queue ID as Tern (and Postfix) writes them: 6 to 32 letters and digits. */
static bool queue_id_like(const char *s, size_t n)
{
    if (n < 6 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]))
            return false;
    return true;
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A whole decimal number: 0 with *out, -1. */
static int number(const char *s, long long max, long long *out)
{
    long long v = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    for (; isdigit((unsigned char)*s); s++) {
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return *s ? -1 : 0;
}

/* The first of the separators at or after s; NULL when none is there. */
static char *first_of(char *s, const char *const *seps, size_t n, size_t *which)
{
    char *best = NULL;
    for (size_t i = 0; i < n; i++) {
        char *hit = strstr(s, seps[i]);
        if (hit && (!best || hit < best)) {
            best = hit;
            *which = i;
        }
    }
    return best;
}

/* The last occurrence of needle in s, or NULL. */
static char *last_of(char *s, const char *needle)
{
    char *last = NULL, *hit;
    while ((hit = strstr(s, needle)) != NULL) {
        last = hit;
        s = hit + 1;
    }
    return last;
}

/* "ID: to=<A>, [orig_to=<B>, ]relay=R, ... dsn=X, status=S (TEXT)" */
static void parse_delivery(char *rest, struct maillog_event *ev)
{
    static const char *const ends[] = { ">, orig_to=<", ">, relay=" };
    size_t which = 0;
    char *end = first_of(rest, ends, 2, &which);
    ev->kind = MAILLOG_MALFORMED;
    if (!end)
        return;
    *end = 0;
    ev->addr = rest;
    char *p = end + strlen(ends[which]) - (which == 1 ? strlen("relay=") : 0);
    if (which == 0) {
        char *e = strstr(p, ">, relay=");
        if (!e)
            return;
        *e = 0;
        ev->orig_to = p;
        p = e + 3;
    }
    /* p is at "relay=": name=value fields up to status=, which takes the rest */
    while (*p) {
        char *eq = strchr(p, '=');
        if (!eq)
            return;
        *eq = 0;
        char *name = p, *value = eq + 1;
        if (strcmp(name, "status") == 0) {
            char *sp = value + strcspn(value, " ,");
            if (*sp == ' ' && sp[1] == '(') {
                size_t n = strlen(sp + 2);
                if (n == 0 || sp[2 + n - 1] != ')')
                    return;
                sp[2 + n - 1] = 0;
                ev->reason = sp + 2;
            } else if (*sp == ',' && sp[1] == ' ') {
                ev->reason = sp + 2;      /* "expired, returned to sender" */
            } else if (*sp) {
                return;
            }
            *sp = 0;
            ev->status = value;
            if (!*value)
                return;
            ev->kind = MAILLOG_DELIVERY;
            if (!ev->reason)
                ev->reason = "";
            return;
        }
        char *next = strstr(value, ", ");
        if (!next)
            return;
        *next = 0;
        if (strcmp(name, "relay") == 0)
            ev->relay = value;
        else if (strcmp(name, "delay") == 0 && (ev->delay_usec = maillog_parse_delay(value)) < 0)
            return;
        else if (strcmp(name, "dsn") == 0)
            ev->dsn = value;
        p = next + 2;
    }
}

/* "ID: from=<S>, size=N, nrcpt=N (queue active)": the sender ends at the
 * last ">, size=", since only the fixed tail follows it. */
static void parse_from(char *rest, struct maillog_event *ev)
{
    ev->kind = MAILLOG_MALFORMED;
    char *end = last_of(rest, ">, size=");
    if (!end)
        return;
    *end = 0;
    ev->addr = rest;
    char *p = end + 8, *comma = strstr(p, ", nrcpt=");
    if (!comma)
        return;
    *comma = 0;
    char *n = comma + 8, *sp = strchr(n, ' ');
    if (sp)
        *sp = 0;
    long long size, nrcpt;
    if (number(p, 1LL << 50, &size) < 0 || number(n, 1000000000, &nrcpt) < 0)
        return;
    ev->size = size;
    ev->nrcpt = (long)nrcpt;
    ev->kind = MAILLOG_FROM;
}

/* The address at *p after prefix, up to the first of ends[0..n): cut there
 * in place (which says which end), *p moved past its '>'. NULL when no end
 * follows. */
static char *take_address(char **p, const char *prefix, const char *const *ends, size_t n,
                          size_t *which)
{
    char *start = *p + strlen(prefix);
    char *e = first_of(start, ends, n, which);
    if (!e)
        return NULL;
    *e = 0;
    *p = e + 1;
    return start;
}

/* "...; from=<S> to=<R> proto=P helo=<H>" at the end of a reject or other
 * action line: the reply text before it, and the addresses. */
static void action_envelope(char *text, struct maillog_event *ev)
{
    char *env = last_of(text, "; from=<");
    if (!env)
        env = last_of(text, "; to=<");
    if (!env)
        env = last_of(text, "; proto=");
    if (!env)
        return;
    *env = 0;
    char *p = env + 2;
    /* "from=<S> to=<R> proto=...": each address up to the first of its ends */
    static const char *const from_ends[] = { "> to=<", "> proto=", ">" };
    static const char *const to_ends[] = { "> proto=", ">: ", ">" };
    size_t which = 0;
    if (starts(p, "from=<")) {
        if (!(ev->sender = take_address(&p, "from=<", from_ends, 3, &which)) || which == 2)
            return;
        p += which == 0 ? 1 : 0;    /* past the space before "to=<" */
    }
    if (starts(p, "to=<"))
        ev->rcpt = take_address(&p, "to=<", to_ends, 3, &which);
}

/* "reject: RCPT from CLIENT: 550 5.1.1 TEXT; from=<> ..." (smtpd, pickup)
 * or "reject: header Subject: x from CLIENT; from=<> ...: 5.7.1 TEXT"
 * (cleanup's checks) or "reject: message content over ...; from=<>". */
static void parse_action(char *rest, struct maillog_event *ev)
{
    char *colon = strstr(rest, ": ");
    if (!colon)
        return;
    *colon = 0;
    ev->action = rest;
    char *body = colon + 2;
    if (strcmp(ev->action, "reject") == 0 || strcmp(ev->action, "milter-reject") == 0)
        ev->kind = MAILLOG_REJECT;
    else if (strcmp(ev->action, "discard") == 0 || strcmp(ev->action, "milter-discard") == 0)
        ev->kind = MAILLOG_DISCARD;
    else if (strcmp(ev->action, "hold") == 0 || strcmp(ev->action, "milter-hold") == 0)
        ev->kind = MAILLOG_HOLD;
    else
        return;
    /* cleanup's "...helo=<H>: DETAIL" puts the reply after the envelope */
    char *detail = NULL, *tail = last_of(body, "; from=<");
    if (tail) {
        char *d = last_of(tail, ">: ");
        if (d && !strstr(d + 3, "> proto=") && !strstr(d + 3, " helo=<")) {
            d[1] = 0;             /* the envelope keeps its closing bracket */
            detail = d + 3;
        }
    }
    action_envelope(body, ev);
    char *word_end = body + strcspn(body, " ");
    if (starts(word_end, " from ")) {
        /* "RCPT from CLIENT: TEXT" */
        *word_end = 0;
        ev->stage = body;
        char *client = word_end + 6, *c = strstr(client, ": ");
        if (c) {
            *c = 0;
            ev->reason = c + 2;
        }
        ev->client = client;
    } else {
        /* cleanup: "header Subject: x from CLIENT", "body ...", "message content over ..." */
        ev->stage = starts(body, "header ") ? "header" : starts(body, "body ") ? "body" : "content";
        ev->reason = body;
    }
    if (detail)
        ev->reason = detail;
    if (!ev->reason)
        ev->reason = "";
}

/* "X TLS connection established from|to PEER: TLSv1.3 with cipher ..." */
static void parse_tls(char *text, struct maillog_event *ev)
{
    char *from = strstr(text, " TLS connection established from ");
    char *to = strstr(text, " TLS connection established to ");
    char *peer = from ? from + 33 : to ? to + 31 : NULL;
    if (!peer)
        return;
    char *c = strstr(peer, ": ");
    if (!c)
        return;
    *c = 0;
    char *version = c + 2;
    version[strcspn(version, " ")] = 0;
    ev->tls_version = version;
    if (from) {
        ev->kind = MAILLOG_TLS_IN;
        ev->client = peer;
    } else {
        ev->kind = MAILLOG_TLS_OUT;
        ev->relay = peer;
    }
}

/* "disconnect from CLIENT ehlo=1 starttls=1 ... commands=N" */
static void parse_disconnect(char *rest, struct maillog_event *ev)
{
    char *sp = strchr(rest, ' ');
    ev->kind = MAILLOG_DISCONNECT;
    ev->client = rest;
    if (!sp)
        return;
    *sp = 0;
    char *st = strstr(sp + 1, "starttls=");
    if (st && (st == sp + 1 || st[-1] == ' ')) {
        long long n = 0;
        char num[16];
        size_t len = strspn(st + 9, "0123456789");
        if (len > 0 && len < sizeof(num)) {
            memcpy(num, st + 9, len);
            num[len] = 0;
            if (number(num, 1000000, &n) == 0)
                ev->starttls = (unsigned)n;
        }
    }
}

void maillog_parse(char *text, struct maillog_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->kind = MAILLOG_OTHER;
    ev->delay_usec = -1;
    if (starts(text, "connect from ")) {
        ev->kind = MAILLOG_CONNECT;
        ev->client = text + 13;
        return;
    }
    if (starts(text, "disconnect from ")) {
        parse_disconnect(text + 16, ev);
        return;
    }
    if (strstr(text, " TLS connection established ")) {
        parse_tls(text, ev);
        return;
    }
    char *colon = strstr(text, ": ");
    bool noqueue = colon == text + 7 && strncmp(text, "NOQUEUE", 7) == 0;
    if (!colon || (!noqueue && !queue_id_like(text, (size_t)(colon - text))))
        return;
    *colon = 0;
    ev->id = text;
    char *rest = colon + 2;
    if (starts(rest, "to=<")) {
        parse_delivery(rest + 4, ev);
    } else if (starts(rest, "from=<")) {
        parse_from(rest + 6, ev);
    } else if (starts(rest, "client=")) {
        ev->kind = MAILLOG_CLIENT;
        ev->client = rest + 7;
        char *sasl = strstr(ev->client, ", sasl_username=");
        char *comma = strstr(ev->client, ", ");
        if (sasl)
            ev->sasl_username = sasl + 16;
        if (comma)
            *comma = 0;
    } else if (starts(rest, "uid=")) {
        char *from = strstr(rest, " from=<");
        size_t n = strlen(rest);
        ev->kind = MAILLOG_MALFORMED;
        if (from && n > 0 && rest[n - 1] == '>') {
            rest[n - 1] = 0;
            *from = 0;
            long long uid;
            if (number(rest + 4, 1LL << 32, &uid) == 0) {
                ev->kind = MAILLOG_PICKUP;
                ev->addr = from + 7;
            }
        }
    } else if (strcmp(rest, "removed") == 0) {
        ev->kind = MAILLOG_REMOVED;
    } else if (starts(rest, "sender ") && strstr(rest, " notification: ")) {
        char *n = strstr(rest, " notification: ");
        *n = 0;
        ev->reason = rest + 7;
        ev->new_id = n + 15;
        ev->kind = queue_id_like(ev->new_id, strlen(ev->new_id)) ? MAILLOG_NOTIFICATION
                                                                 : MAILLOG_MALFORMED;
    } else if (starts(rest, "placed on hold")) {
        ev->kind = MAILLOG_HOLD;
        ev->action = "hold";
        ev->stage = "";
        ev->reason = rest;
    } else {
        parse_action(rest, ev);
    }
}
