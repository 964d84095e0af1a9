/* smtp_reply.h: the pure parts of an SMTP client (smtp, and smtpd towards
 * a proxy filter), unit-tested on their own: replies from a remote server (multi-line, bounded, sanitized for log
 * lines), the EHLO keywords, enhanced status codes, xtext, and the encoder
 * that turns queue file content (lines ending in LF) into DATA on the wire
 * (CRLF, dot-stuffing, the final dot). No I/O here. */
#ifndef TERN_SMTP_REPLY_H
#define TERN_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define SMTP_REPLY_LINE_MAX 2048    /* a longer reply line is cut here (RFC 5321 says 512) */
#define SMTP_REPLY_LINES_MAX 100    /* a reply with more lines is malformed */
#define SMTP_REPLY_TEXT_MAX 8192    /* text kept per reply; further lines are counted only */
#define SMTP_DSN_SIZE 16            /* "X.YYY.ZZZ" and its NUL */

/* One reply, built line by line. Lines are kept sanitized (no control
 * characters; bytes over 127 only in well-formed UTF-8), separated by LF. */
struct smtp_reply {
    int code;                  /* the three-digit code, 0 before the first line */
    size_t nlines;
    struct strbuf lines;
    bool complete;             /* the last line (code + space, or code alone) was seen */
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_reset(struct smtp_reply *r);
void smtp_reply_free(struct smtp_reply *r);

/* Add one line (without its CRLF; len may exceed SMTP_REPLY_LINE_MAX, the
 * rest is cut). 1 when the reply is complete, 0 when more lines follow,
 * -1 when the line is not a reply line, its code differs from the earlier
 * lines', or the reply has too many lines. */
int smtp_reply_add_line(struct smtp_reply *r, const char *line, size_t len);

/* Take reply lines from the input buffer in (bytes as read from the
 * server), consuming what it uses: a line ends at LF, a CR before the LF is
 * dropped, a line longer than SMTP_REPLY_LINE_MAX is cut there and the rest
 * of it skipped (*skip_to_lf carries that over to the next call). Each line
 * goes to on_line (when not NULL) before it is added. 1 when a reply is
 * complete (the bytes after it stay in in), 0 when more input is needed,
 * -1 when a line is malformed (see smtp_reply_add_line). */
int smtp_reply_feed(struct smtp_reply *r, struct strbuf *in, bool *skip_to_lf,
                    void (*on_line)(void *ctx, const char *line, size_t len), void *ctx);

/* The whole reply on one line, "550-5.1.1 first 550 5.1.1 second", appended
 * to out (cut at out's limit). */
void smtp_reply_oneline(const struct smtp_reply *r, struct strbuf *out);

/* The enhanced status code of the reply's first line when it is well
 * formed and of the reply's class (2, 4 or 5), else "C.0.0" from the code,
 * with the class of cls (2, 4, 5) when cls is non-zero. */
void smtp_reply_dsn(const struct smtp_reply *r, int cls, char dsn[SMTP_DSN_SIZE]);

/* Whether text begins with a well-formed enhanced status code "C.S.D"
 * followed by a space or the end; its length in *len. */
bool smtp_dsn_valid(const char *text, size_t *len);

/* The first word of the first line's text (the server's name in a greeting
 * or an EHLO reply), at most size-1 bytes; "" when none. */
void smtp_reply_first_word(const struct smtp_reply *r, char *buf, size_t size);

/* ---- EHLO ---- */
#define SMTP_FEAT_PIPELINING 0x01
#define SMTP_FEAT_SIZE       0x02
#define SMTP_FEAT_8BITMIME   0x04
#define SMTP_FEAT_SMTPUTF8   0x08
#define SMTP_FEAT_DSN        0x10
#define SMTP_FEAT_STARTTLS   0x20
#define SMTP_FEAT_AUTH       0x40
#define SMTP_FEAT_REQUIRETLS 0x80

/* Keywords of a 250 reply to EHLO (the lines after the first). *size_limit
 * is the SIZE value, 0 when none or not a sane number. */
unsigned smtp_ehlo_parse(const struct smtp_reply *r, unsigned long long *size_limit);

/* ---- ESMTP parameter values ---- */
/* RFC 3461 xtext of s appended to out: -1 when s has bytes over 126 (the
 * values these parameters carry must be ASCII) or out's limit is reached;
 * out is then unchanged. */
int smtp_xtext_append(struct strbuf *out, const char *s);

/* ---- content ---- */
struct smtp_content_info {
    unsigned long long bytes;   /* content bytes in the queue file */
    unsigned long long lines;   /* LF and CR count: bound on what CR LF adds on the wire */
    bool eight_bit;             /* a byte over 127 */
    bool tls_required_no;       /* a header field "TLS-Required: No" (RFC 8689 section 4.2.2) */
    /* the scan of the header section, carried over between chunks */
    bool in_body;               /* the empty line that ends the header section was seen */
    bool line_long;             /* the current line is longer than hline: not that field */
    size_t hlen;
    char hline[40];             /* the start of the current header line */
};
/* Scan a chunk of the queued content (chunks in order, info zeroed first):
 * sizes, 8-bit bytes, and the TLS-Required header field. */
void smtp_content_scan(struct smtp_content_info *info, const char *data, size_t len);

/* Queue content to DATA: every line end (LF, CR LF, or a CR alone, which
 * an old or tampered queue file may hold) becomes CR LF, and a '.' at the
 * start of a line is doubled. Lines are not split. The state carries over
 * between chunks. */
struct smtp_encoder {
    bool mid_line;      /* bytes of the current line have been written */
    bool pending_cr;    /* a CR was the last byte of the previous chunk */
};
void smtp_encoder_init(struct smtp_encoder *e);
/* Append the encoding of data to out; -1 when out's limit is reached. */
int smtp_encode(struct smtp_encoder *e, const char *data, size_t len, struct strbuf *out);
/* End the content: finish an unterminated last line, then ".\r\n", so the
 * data always ends in CR LF . CR LF. */
int smtp_encode_end(struct smtp_encoder *e, struct strbuf *out);

/* Whether every CR in data[0..len) is followed by a LF and every LF
 * preceded by a CR: what may be written to an SMTP connection. */
bool smtp_wire_clean(const char *data, size_t len);

#endif
