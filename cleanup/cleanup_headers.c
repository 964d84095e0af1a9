/* cleanup_headers.c: finds the end of the header section in content that
 * arrives in arbitrary chunks, counts Received: headers for the hop limit,
 * notes which standard headers are missing, and writes the final header
 * section: our Received: first, the original headers byte for byte, then
 * the Message-ID:/Date:/From: that were missing. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "util.h"

void header_state_init(struct header_state *h, long header_limit)
{
    memset(h, 0, sizeof(*h));
    h->header_limit = header_limit;
    sb_init(&h->line, 0);
    sb_init(&h->headers, 0);
}

void header_state_free(struct header_state *h)
{
    sb_free(&h->line);
    sb_free(&h->headers);
    free(h->message_id);
    h->message_id = NULL;
}

/* Length of the field name if line starts "name:" (optional blanks before
 * the colon), else 0. */
static size_t header_name_len(const char *s, size_t len)
{
    size_t n = 0;
    while (n < len && s[n] > 32 && s[n] < 127 && s[n] != ':')
        n++;
    size_t colon = n;
    while (colon < len && (s[colon] == ' ' || s[colon] == '\t'))
        colon++;
    return n > 0 && colon < len && s[colon] == ':' ? n : 0;
}

static bool name_is(const char *s, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(s, want, n) == 0;
}

static void note_header(struct header_state *h, const char *s, size_t len)
{
    size_t n = header_name_len(s, len);
    if (name_is(s, n, "received"))
        h->received_count++;
    else if (name_is(s, n, "date"))
        h->has_date = true;
    else if (name_is(s, n, "from"))
        h->has_from = true;
    else if (name_is(s, n, "message-id") && !h->has_message_id) {
        h->has_message_id = true;
        const char *v = memchr(s, ':', len) + 1;
        size_t vlen = len - (size_t)(v - s);
        while (vlen && isspace((unsigned char)*v))
            v++, vlen--;
        while (vlen && isspace((unsigned char)v[vlen - 1]))
            vlen--;
        h->message_id = xstrndup(v, vlen > 200 ? 200 : vlen);
    }
}

/* The last header line (for folding) starts after the last "\n" that is
 * followed by a non-blank; we only need it for Message-ID, which is rarely
 * folded, so notes are taken per physical line that starts a field. */
int header_feed(struct header_state *h, const char *data, size_t len, size_t *consumed)
{
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t take = nl ? (size_t)(nl - (data + i)) + 1 : len - i;
        if (h->headers.len + h->line.len + take > (size_t)h->header_limit) {
            h->too_big = true;
            *consumed = i;
            return -1;
        }
        sb_append(&h->line, data + i, take);
        i += take;
        if (!nl)
            break;
        const char *s = h->line.data;
        size_t slen = h->line.len - 1;   /* without the LF */
        if (slen > 0 && s[slen - 1] == '\r')
            slen--;
        if (slen == 0) {                 /* the empty line ends the header section */
            h->saw_blank = true;
            h->in_body = true;
            sb_reset(&h->line);
            *consumed = i;
            return 1;
        }
        bool continuation = (s[0] == ' ' || s[0] == '\t') && h->headers.len > 0;
        if (!continuation && header_name_len(s, slen) == 0) {
            h->in_body = true;           /* first body line, kept in h->line */
            *consumed = i;
            return 1;
        }
        if (!continuation)
            note_header(h, s, slen);
        sb_append(&h->headers, h->line.data, h->line.len);
        sb_reset(&h->line);
    }
    *consumed = len;
    return 0;
}

void header_finish(struct header_state *h)
{
    if (h->in_body)
        return;
    h->in_body = true;
    if (h->line.len && header_name_len(h->line.data, h->line.len) > 0) {
        note_header(h, h->line.data, h->line.len);
        sb_append(&h->headers, h->line.data, h->line.len);
        sb_appendc(&h->headers, '\n');
        sb_reset(&h->line);
    }
}

int header_emit(struct header_state *h, const struct header_additions *add, struct strbuf *out)
{
    int rc = 0;
    if (add->received)
        rc |= sb_appends(out, add->received);
    rc |= sb_append(out, h->headers.data ? h->headers.data : "", h->headers.len);
    if (!h->has_message_id && add->message_id)
        rc |= sb_appendf(out, "Message-ID: %s\n", add->message_id);
    if (!h->has_date && add->date)
        rc |= sb_appendf(out, "Date: %s\n", add->date);
    if (!h->has_from && add->from)
        rc |= sb_appendf(out, "From: %s\n", *add->from ? add->from : "MAILER-DAEMON");
    if (h->saw_blank) {
        rc |= sb_appendc(out, '\n');
    } else if (h->line.len) {
        /* Body without the empty line: add one so the body stays body. */
        rc |= sb_appendc(out, '\n');
        rc |= sb_append(out, h->line.data, h->line.len);
        sb_reset(&h->line);
    }
    return rc ? -1 : 0;
}

void cleanup_rfc5322_date(long long usec, char *buf, size_t size)
{
    time_t t = (time_t)(usec / 1000000);
    struct tm tm;
    localtime_r(&t, &tm);
    static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    snprintf(buf, size, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld (%s)",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 60, off % 60,
             tm.tm_zone ? tm.tm_zone : "UTC");
}
