/* smtp_reply.c: what an SMTP client (smtp, and smtpd towards a proxy
 * filter) parses and encodes without doing I/O (see smtp_reply.h): remote
 * replies, EHLO keywords, enhanced status codes, xtext and the DATA
 * encoder. Every byte here came from a remote server or
 * a queue file, so lengths and counts are bounded and text is sanitized
 * before it can reach a log line. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "smtp_command.h"
#include "smtp_reply.h"
#include "util.h"

/* ---- replies ---- */

void smtp_reply_init(struct smtp_reply *r)
{
    memset(r, 0, sizeof(*r));
    sb_init(&r->lines, SMTP_REPLY_TEXT_MAX);
}

void smtp_reply_reset(struct smtp_reply *r)
{
    r->code = 0;
    r->nlines = 0;
    r->complete = false;
    sb_reset(&r->lines);
}

void smtp_reply_free(struct smtp_reply *r)
{
    sb_free(&r->lines);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Copy line into out with control characters replaced, and bytes over 127
 * kept only when the whole line is well-formed UTF-8. */
static int append_sanitized(struct strbuf *out, const char *line, size_t len)
{
    bool utf8 = utf8_valid(line, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == '\t')
            c = ' ';
        else if (c < 0x20 || c == 0x7f || (c > 0x7f && !utf8))
            c = '?';
        if (sb_appendc(out, c) < 0)
            return -1;
    }
    return 0;
}

int smtp_reply_add_line(struct smtp_reply *r, const char *line, size_t len)
{
    if (r->complete)
        smtp_reply_reset(r);
    if (len > SMTP_REPLY_LINE_MAX)
        len = SMTP_REPLY_LINE_MAX;
    if (len < 3 || !is_digit(line[0]) || line[0] < '2' || line[0] > '5' || !is_digit(line[1])
        || !is_digit(line[2]) || (len > 3 && line[3] != ' ' && line[3] != '-'))
        return -1;
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if ((r->nlines > 0 && code != r->code) || r->nlines >= SMTP_REPLY_LINES_MAX)
        return -1;
    r->code = code;
    /* Past SMTP_REPLY_TEXT_MAX, lines are counted but their text dropped:
     * a line is kept whole or not at all. */
    size_t before = r->lines.len;
    if ((r->nlines > 0 && sb_appendc(&r->lines, '\n') < 0)
        || append_sanitized(&r->lines, line, len) < 0)
        sb_truncate(&r->lines, before);
    r->nlines++;
    r->complete = len == 3 || line[3] == ' ';
    return r->complete ? 1 : 0;
}

static int reply_line(struct smtp_reply *r, const char *line, size_t len,
                      void (*on_line)(void *ctx, const char *line, size_t len), void *ctx)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (on_line)
        on_line(ctx, line, len);
    return smtp_reply_add_line(r, line, len);
}

int smtp_reply_feed(struct smtp_reply *r, struct strbuf *in, bool *skip_to_lf,
                    void (*on_line)(void *ctx, const char *line, size_t len), void *ctx)
{
    while (in->len > 0) {
        char *nl = memchr(in->data, '\n', in->len);
        if (*skip_to_lf) {
            /* The tail of a line that was cut: drop it. */
            if (!nl) {
                sb_reset(in);
                return 0;
            }
            sb_consume(in, (size_t)(nl - in->data) + 1);
            *skip_to_lf = false;
            continue;
        }
        int rc;
        if (nl) {
            size_t len = (size_t)(nl - in->data);
            rc = reply_line(r, in->data, len, on_line, ctx);
            sb_consume(in, len + 1);
        } else if (in->len >= SMTP_REPLY_LINE_MAX) {
            rc = reply_line(r, in->data, SMTP_REPLY_LINE_MAX, on_line, ctx);
            sb_reset(in);
            *skip_to_lf = true;
        } else {
            return 0;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

void smtp_reply_oneline(const struct smtp_reply *r, struct strbuf *out)
{
    const char *p = sb_str(&r->lines);
    for (size_t i = 0; i < r->lines.len; i++)
        if (sb_appendc(out, p[i] == '\n' ? ' ' : p[i]) < 0)
            return;
}

/* "C.S.D" with C one of 2, 4, 5, S 1-3 digits, D 1-3 digits (RFC 3463). */
bool smtp_dsn_valid(const char *text, size_t *len)
{
    const char *p = text;
    if (*p != '2' && *p != '4' && *p != '5')
        return false;
    p++;
    for (int part = 0; part < 2; part++) {
        if (*p++ != '.')
            return false;
        int digits = 0;
        while (is_digit(*p) && digits < 4) {
            p++;
            digits++;
        }
        if (digits < 1 || digits > 3)
            return false;
    }
    if (*p && *p != ' ' && *p != '\n')
        return false;
    *len = (size_t)(p - text);
    return true;
}

void smtp_reply_dsn(const struct smtp_reply *r, int cls, char dsn[SMTP_DSN_SIZE])
{
    int code_cls = r->code / 100;
    if (cls == 0)
        cls = code_cls;
    const char *text = sb_str(&r->lines);
    size_t len;
    if (r->lines.len > 4 && smtp_dsn_valid(text + 4, &len) && text[4] - '0' == code_cls) {
        snprintf(dsn, SMTP_DSN_SIZE, "%d%.*s", cls, (int)len - 1, text + 5);
        return;
    }
    snprintf(dsn, SMTP_DSN_SIZE, "%d.0.0", cls >= 2 && cls <= 5 ? cls : 4);
}

void smtp_reply_first_word(const struct smtp_reply *r, char *buf, size_t size)
{
    const char *p = sb_str(&r->lines);
    size_t n = 0;
    if (r->lines.len > 4) {
        p += 4;
        while (p[n] && p[n] != ' ' && p[n] != '\n')
            n++;
    }
    if (size == 0)
        return;
    if (n >= size)
        n = size - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
}

/* ---- EHLO ---- */

static unsigned ehlo_keyword(const char *kw, size_t len)
{
    static const struct { const char *name; unsigned bit; } known[] = {
        { "PIPELINING", SMTP_FEAT_PIPELINING }, { "SIZE", SMTP_FEAT_SIZE },
        { "8BITMIME", SMTP_FEAT_8BITMIME }, { "SMTPUTF8", SMTP_FEAT_SMTPUTF8 },
        { "DSN", SMTP_FEAT_DSN }, { "STARTTLS", SMTP_FEAT_STARTTLS }, { "AUTH", SMTP_FEAT_AUTH },
        { "REQUIRETLS", SMTP_FEAT_REQUIRETLS },
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i].name) == len && strncasecmp(known[i].name, kw, len) == 0)
            return known[i].bit;
    return 0;
}

/* "SIZE 10240000": a decimal of at most 18 digits, else no usable limit. */
static unsigned long long ehlo_size_value(const char *p, size_t len)
{
    unsigned long long v = 0;
    if (len == 0 || len > 18)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(p[i]))
            return 0;
        v = v * 10 + (unsigned long long)(p[i] - '0');
    }
    return v;
}

unsigned smtp_ehlo_parse(const struct smtp_reply *r, unsigned long long *size_limit)
{
    unsigned features = 0;
    const char *p = sb_str(&r->lines), *end = p + r->lines.len;
    *size_limit = 0;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    while (nl) {
        const char *line = nl + 1;
        nl = memchr(line, '\n', (size_t)(end - line));
        const char *eol = nl ? nl : end;
        if (eol - line <= 4)
            continue;
        const char *kw = line + 4, *sp = kw;
        while (sp < eol && *sp != ' ')
            sp++;
        unsigned bit = ehlo_keyword(kw, (size_t)(sp - kw));
        features |= bit;
        if (bit == SMTP_FEAT_SIZE && sp < eol)
            *size_limit = ehlo_size_value(sp + 1, (size_t)(eol - sp - 1));
    }
    return features;
}

/* ---- xtext ---- */

int smtp_xtext_append(struct strbuf *out, const char *s)
{
    return xtext_append(out, s);     /* lib/global/smtp_command.c */
}

/* ---- content ---- */

/* Is the header line "TLS-Required: No" (any case, blanks around the value)? */
static bool tls_required_no(const char *line, size_t len)
{
    static const char name[] = "TLS-Required:";
    size_t n = sizeof(name) - 1;
    if (len < n || strncasecmp(line, name, n) != 0)
        return false;
    while (n < len && (line[n] == ' ' || line[n] == '\t'))
        n++;
    while (len > n && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
        len--;
    return len - n == 2 && strncasecmp(line + n, "No", 2) == 0;
}

/* One byte of the header section: find where it ends, and the field. */
static void scan_header_byte(struct smtp_content_info *info, char c)
{
    if (c != '\n') {
        if (info->hlen < sizeof(info->hline))
            info->hline[info->hlen++] = c;
        else
            info->line_long = true;
        return;
    }
    if (info->hlen == 0 || (info->hlen == 1 && info->hline[0] == '\r'))
        info->in_body = true;
    else if (!info->line_long && tls_required_no(info->hline, info->hlen))
        info->tls_required_no = true;
    info->hlen = 0;
    info->line_long = false;
}

/* How many bytes of the 8-byte word w equal the byte whose copies fill
 * `pattern`: a zero byte of w ^ pattern is one whose high bit stays clear
 * in t (no carry can cross bytes, since 0x7f + 0x7f < 0x100). */
static unsigned count_bytes_in_word(uint64_t w, uint64_t pattern)
{
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7fULL;
    uint64_t x = w ^ pattern;
    uint64_t t = ((x & low7) + low7) | x;
    /* one bit per matching byte, summed into the top byte by a multiply
     * (no popcount instruction on baseline x86-64) */
    return (unsigned)((((~t & ~low7) >> 7) * 0x0101010101010101ULL) >> 56);
}

/* The body needs only the line count and the 8-bit flag: done a word at
 * a time, since the smtp client scans every message before sending it. */
static void scan_body(struct smtp_content_info *info, const char *data, size_t len)
{
    const uint64_t lf = 0x0a0a0a0a0a0a0a0aULL, cr = 0x0d0d0d0d0d0d0d0dULL;
    uint64_t high = 0;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, 8);
        high |= w;
        info->lines += count_bytes_in_word(w, lf) + count_bytes_in_word(w, cr);
    }
    for (; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        high |= c;
        info->lines += c == '\n' || c == '\r';
    }
    if (high & 0x8080808080808080ULL)
        info->eight_bit = true;
}

void smtp_content_scan(struct smtp_content_info *info, const char *data, size_t len)
{
    info->bytes += len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (info->in_body) {
            scan_body(info, data + i, len - i);
            break;
        }
        scan_header_byte(info, (char)c);
        /* A CR becomes CR LF on the wire too, unless a LF follows it: an
         * upper bound is good enough for SIZE. */
        if (c == '\n' || c == '\r')
            info->lines++;
        else if (c > 0x7f)
            info->eight_bit = true;
    }
}

void smtp_encoder_init(struct smtp_encoder *e)
{
    e->mid_line = false;
    e->pending_cr = false;
}

/* One line end on the wire: always CR LF, and the next byte starts a line
 * (so a '.' there is stuffed). */
static int encode_line_end(struct smtp_encoder *e, struct strbuf *out)
{
    e->mid_line = false;
    return sb_append(out, "\r\n", 2);
}

/* Bytes of one line that hold neither CR nor LF. */
static int encode_run(struct smtp_encoder *e, const char *p, size_t n, struct strbuf *out)
{
    if (n == 0)
        return 0;
    if (!e->mid_line && p[0] == '.' && sb_appendc(out, '.') < 0)
        return -1;
    e->mid_line = true;
    return sb_append(out, p, n);
}

/* The content may come from an old or damaged queue file, so nothing about
 * its line ends is assumed: LF, CR LF and a CR alone each end one line, and
 * each becomes CR LF. No bare CR or LF can reach the wire, and no line the
 * receiver sees can be a lone '.'. */
int smtp_encode(struct smtp_encoder *e, const char *data, size_t len, struct strbuf *out)
{
    size_t i = 0;
    if (e->pending_cr && len > 0) {
        e->pending_cr = false;
        if (data[0] == '\n')
            i = 1;              /* CR LF: one line end */
        if (encode_line_end(e, out) < 0)
            return -1;
    }
    while (i < len) {
        /* the line's bytes up to its CR or LF, found with memchr: queue
         * content has no CR, so the second search is over one line only */
        const char *lf = memchr(data + i, '\n', len - i);
        size_t end = lf ? (size_t)(lf - data) : len;
        const char *cr = memchr(data + i, '\r', end - i);
        if (cr)
            end = (size_t)(cr - data);
        if (encode_run(e, data + i, end - i, out) < 0)
            return -1;
        if (end == len)
            break;
        if (data[end] == '\r') {
            if (end + 1 == len) {
                e->pending_cr = true;   /* a LF may begin the next chunk */
                break;
            }
            if (data[end + 1] == '\n')
                end++;
        }
        if (encode_line_end(e, out) < 0)
            return -1;
        i = end + 1;
    }
    return 0;
}

int smtp_encode_end(struct smtp_encoder *e, struct strbuf *out)
{
    if (e->pending_cr || e->mid_line) {
        e->pending_cr = false;
        if (encode_line_end(e, out) < 0)
            return -1;
    }
    return sb_append(out, ".\r\n", 3);
}

bool smtp_wire_clean(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\r' && (i + 1 == len || data[i + 1] != '\n'))
            return false;
        if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
            return false;
    }
    return true;
}
