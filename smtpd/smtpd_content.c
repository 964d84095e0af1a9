/* smtpd_content.c: the DATA/BDAT content decoder (see smtpd_content.h). A
 * per-byte state machine, so that every line ending and dot is judged the
 * same way however the input is split into reads. The bytes inside a line
 * (no CR, no LF, not at a line start) change no state, so they are passed
 * on as whole runs: a per-byte append made a 10 MB message cost over 100 ms
 * of CPU in smtpd alone. */
#include <stddef.h>
#include <string.h>

#include "smtpd_content.h"
#include "strbuf.h"

void smtpd_content_decoder_init(struct smtpd_content_decoder *d, bool after_crlf)
{
    d->bol = after_crlf ? 1 : 2;
    d->dot = false;
    d->dot_bol = 0;
    d->cr = false;
    d->saw_bare_lf = false;
    d->saw_bare_cr = false;
    d->done = false;
    d->size = 0;
}

static void emit(struct smtpd_content_decoder *d, struct strbuf *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d->size += p[i] == '\n' ? 2 : 1;
    if (out)
        sb_append(out, p, n);
}

/* A held-back CR followed by c (not LF): the CR is a content byte and a held
 * dot is stuffing (the line has more than the dot). */
static void release_bare_cr(struct smtpd_content_decoder *d, struct strbuf *out)
{
    d->cr = false;
    d->dot = false;
    d->bol = 0;
    d->saw_bare_cr = true;
    emit(d, out, "\r", 1);
}

/* CR LF (held CR, then LF) ended a line. Returns true at the end of data. */
static bool line_end_crlf(struct smtpd_content_decoder *d, struct strbuf *out)
{
    d->cr = false;
    if (d->dot) {
        d->dot = false;
        if (d->dot_bol == 1)
            return true;            /* CR LF . CR LF */
        emit(d, out, ".\n", 2);     /* ". CR LF" after a bare LF: content */
    } else {
        emit(d, out, "\n", 1);
    }
    d->bol = 1;
    return false;
}

/* The length of the run at in[0..n) that holds no CR and no LF. */
static size_t plain_run(const char *in, size_t n)
{
    const char *cr = memchr(in, '\r', n);
    size_t run = cr ? (size_t)(cr - in) : n;
    const char *lf = memchr(in, '\n', run);
    return lf ? (size_t)(lf - in) : run;
}

/* Bytes of a line without CR or LF, which change no state: as they are.
 * Returns run. */
static size_t emit_plain(struct smtpd_content_decoder *d, struct strbuf *out, const char *p, size_t run)
{
    d->size += run;
    if (out)
        sb_append(out, p, run);
    return run;
}

size_t smtpd_content_decode_data(struct smtpd_content_decoder *d, const char *in, size_t n,
                                 struct strbuf *out)
{
    size_t i;
    for (i = 0; i < n && !d->done; i++) {
        char c = in[i];
        if (!d->cr && !d->dot && !d->bol && c != '\r' && c != '\n') {
            /* mid-line: every byte up to the next CR or LF is content */
            size_t run = plain_run(in + i, n - i);
            if (i + run + 1 < n && in[i + run] == '\r' && in[i + run + 1] == '\n') {
                /* the line and its CR LF, taken in one step: the line end
                 * is what line_end_crlf makes of it without a held dot */
                d->size += run + 2;
                d->bol = 1;
                char *room = out ? sb_room(out, run + 1) : NULL;
                if (room) {
                    memcpy(room, in + i, run);
                    room[run] = '\n';
                    sb_added(out, run + 1);
                }
                i += run + 1;
                continue;
            }
            i += emit_plain(d, out, in + i, run) - 1;
            continue;
        }
        if (d->cr) {
            if (c == '\n') {
                d->done = line_end_crlf(d, out);
                continue;
            }
            release_bare_cr(d, out);
        }
        if (c == '\r') {
            d->cr = true;
        } else if (c == '\n') {
            /* bare LF: a line end for the content, never for the protocol */
            d->saw_bare_lf = true;
            emit(d, out, d->dot ? ".\n" : "\n", d->dot ? 2 : 1);
            d->dot = false;
            d->bol = 2;
        } else if (c == '.' && d->bol && !d->dot) {
            d->dot = true;          /* held: end marker or stuffing */
            d->dot_bol = d->bol;
            d->bol = 0;
        } else {
            d->dot = false;         /* a held dot was stuffing: drop it */
            d->bol = 0;
            emit(d, out, &c, 1);
        }
    }
    return i;
}

void smtpd_content_decode_bdat(struct smtpd_content_decoder *d, const char *in, size_t n, struct strbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (!d->cr && c != '\r' && c != '\n') {
            i += emit_plain(d, out, in + i, plain_run(in + i, n - i)) - 1;
            continue;
        }
        if (d->cr) {
            d->cr = false;
            if (c == '\n') {
                emit(d, out, "\n", 1);
                continue;
            }
            d->saw_bare_cr = true;
            emit(d, out, "\r", 1);
        }
        if (c == '\r')
            d->cr = true;
        else
            emit(d, out, &c, 1);
    }
}

void smtpd_content_finish_bdat(struct smtpd_content_decoder *d, struct strbuf *out)
{
    if (d->cr) {
        d->cr = false;
        d->saw_bare_cr = true;
        emit(d, out, "\r", 1);
    }
}
