/* sendmail_input.c: the message as sendmail reads it from standard input.
 * Lines end in LF (CR LF becomes LF); a line holding a single "." ends the
 * message unless -i was given, as in Postfix; leading mbox "From " lines
 * (also ">From ") are dropped; the last line gets a LF when it has none.
 * In -bs DATA a "." line always ends the message and a leading dot is
 * unstuffed. With -t the header section gives the recipients and loses its
 * Bcc: fields. */
#include <string.h>
#include <strings.h>

#include "header_section.h"
#include "sendmail.h"

void sendmail_input_init(struct sm_input *in, FILE *fp, bool ignore_dots, bool smtp,
                   unsigned long long limit)
{
    memset(in, 0, sizeof(*in));
    in->fp = fp;
    in->ignore_dots = ignore_dots && !smtp;
    in->smtp = smtp;
    in->first_line = true;
    in->at_bol = true;
    in->limit = limit;
}

/* A complete line out[start..] (its LF included) was read. Returns true
 * when it ends the message (and is then removed). */
static bool line_done(struct sm_input *in, struct strbuf *out, size_t start, bool began_at_bol)
{
    size_t len = out->len - start;
    char *line = out->data + start;
    if (len >= 2 && line[len - 2] == '\r') {
        line[len - 2] = '\n';
        sb_truncate(out, out->len - 1);
        len--;
    }
    bool leading = in->first_line;
    in->first_line = false;
    if (!began_at_bol)
        return false;
    if (len == 2 && line[0] == '.' && !in->ignore_dots) {
        sb_truncate(out, start);
        in->dot_seen = true;
        return true;
    }
    if (in->smtp && line[0] == '.') {
        memmove(line, line + 1, len - 1);        /* dot stuffing */
        sb_truncate(out, out->len - 1);
    } else if (leading && !in->smtp) {
        size_t quotes = strspn(line, ">");
        if (len - quotes >= 5 && memcmp(line + quotes, "From ", 5) == 0) {
            sb_truncate(out, start);             /* an mbox envelope line */
            in->first_line = true;
        }
    }
    return false;
}

/* -bs: the rest of a message that is too big is read and dropped, so
 * that the dialog stays in step. */
static void skip_to_end(struct sm_input *in)
{
    struct strbuf junk = STRBUF_INIT(0);
    in->limit = 0;
    while (sendmail_input_read(in, &junk) > 0)
        sb_reset(&junk);
    sb_free(&junk);
}

int sendmail_input_read(struct sm_input *in, struct strbuf *out)
{
    size_t piece_start = out->len, line_start = out->len;
    bool line_at_bol = in->at_bol;
    int c;
    if (in->ended)
        return 0;
    while ((c = getc(in->fp)) != EOF) {
        if (sb_appendc(out, c) < 0) {
            in->ended = true;
            return -1;
        }
        if (c == '\n') {
            if (line_done(in, out, line_start, line_at_bol)) {
                in->ended = true;
                break;
            }
            in->at_bol = line_at_bol = true;
            line_start = out->len;
            if (out->len - piece_start >= SM_PIECE)
                break;
        } else if (out->len - piece_start >= SM_PIECE && c != '\r') {
            in->at_bol = false;                  /* a long line goes on in the next piece */
            break;
        }
    }
    if (c == EOF) {
        in->ended = true;
        if (out->len > line_start) {             /* a last line without LF */
            sb_appendc(out, '\n');
            line_done(in, out, line_start, line_at_bol);
        }
    }
    in->size += out->len - piece_start;
    if (in->limit && in->size > in->limit) {
        if (in->smtp)
            skip_to_end(in);
        return -1;
    }
    return out->len > piece_start || !in->ended ? 1 : 0;
}

/* ---- -t ---- */

static bool is_resent(const struct header_state *h)
{
    return header_find(h, "resent-to") || header_find(h, "resent-cc")
        || header_find(h, "resent-bcc");
}

/* Add the addresses of every field called name. */
static int add_field_rcpts(const struct header_state *h, const char *name,
                           const struct sm_options *o, struct sm_rcpts *rcpts)
{
    struct strbuf value = STRBUF_INIT(0);
    size_t n = strlen(name);
    int rc = 0;
    for (size_t i = 0; i < h->nfields && rc == 0; i++) {
        const struct header_field *f = &h->fields[i];
        if (f->name_len != n || strncasecmp(h->headers.data + f->offset, name, n) != 0)
            continue;
        const char *why;
        char bad[201];
        header_value(h, f, &value, h->limit);
        if (sendmail_rcpts_add_list(rcpts, sb_str(&value), o->notify, &why, bad) < 0) {
            fprintf(stderr, "sendmail: %s header: %s%s%s%s\n", name, why, *bad ? " (" : "", bad,
                    *bad ? ")" : "");
            rc = SM_EX_DATAERR;
        }
    }
    sb_free(&value);
    return rc;
}

int sendmail_extract_recipients(struct sm_input *in, const struct sm_options *o,
                          struct sm_rcpts *rcpts, struct strbuf *head)
{
    struct header_state h;
    struct strbuf piece = STRBUF_INIT(0);
    size_t used = 0;
    int rc = 0, got;
    header_state_init(&h, o->header_limit);
    while (!h.done && (got = sendmail_input_read(in, &piece)) != 0) {
        int fed = got < 0 ? -1 : header_feed(&h, piece.data, piece.len, &used);
        if (fed < 0) {
            fprintf(stderr, "sendmail: %s\n", got < 0 ? "message too big (message_size_limit)"
                    : "message header too big (header_size_limit)");
            rc = SM_EX_DATAERR;
            break;
        }
        if (fed == 0)
            sb_reset(&piece);
    }
    if (rc == 0) {
        if (!h.done)
            header_finish(&h);
        bool resent = is_resent(&h);
        static const char *const plain[] = { "to", "cc", "bcc" };
        static const char *const re[] = { "resent-to", "resent-cc", "resent-bcc" };
        for (int i = 0; i < 3 && rc == 0; i++)
            rc = add_field_rcpts(&h, resent ? re[i] : plain[i], o, rcpts);
        header_remove(&h, "bcc");
        header_remove(&h, "resent-bcc");
        static const struct header_additions none = { NULL, NULL, NULL, NULL };
        header_emit(&h, &none, head);
        if (piece.len > used)
            sb_append(head, piece.data + used, piece.len - used);
    }
    header_state_free(&h);
    sb_free(&piece);
    return rc;
}
