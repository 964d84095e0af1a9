/* smtpd_content.h: the message content decoder for DATA and BDAT, kept free
 * of I/O so that it is unit-tested byte by byte. For DATA it removes dot
 * stuffing, turns CR LF into LF and recognizes the end of data ONLY as
 * CR LF . CR LF: bare LF and bare CR never end the data (SMTP smuggling).
 * Both are remembered for the policy (smtpd_forbid_bare_newline,
 * smtpd_forbid_bare_cr); a bare CR stays a content byte here, and cleanup
 * makes it a line end when the policy lets it through. */
#ifndef TERN_SMTPD_CONTENT_H
#define TERN_SMTPD_CONTENT_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;

struct smtpd_content_decoder {
    unsigned char bol;      /* 0 mid-line, 1 line start after CR LF, 2 after bare LF */
    bool dot;               /* a leading '.' is held back */
    unsigned char dot_bol;  /* bol value where that '.' was seen */
    bool cr;                /* a CR is held back (may begin CR LF) */
    bool saw_bare_lf;       /* content had a LF without CR before it */
    bool saw_bare_cr;       /* content had a CR without LF after it */
    bool done;              /* DATA: CR LF . CR LF was seen */
    unsigned long long size; /* content size counting line ends as CR LF (RFC 1870) */
};

/* after_crlf: the DATA command line ended in CR LF, so that ". CR LF" as the
 * first line ends the data; after a bare LF it does not. */
void smtpd_content_decoder_init(struct smtpd_content_decoder *d, bool after_crlf);

/* Decode DATA bytes in[0..n): appends content (lines ending in LF) to out when
 * out is not NULL (NULL: only track state and size). Stops right after the
 * end of data. Returns the number of input bytes consumed. At most 2 output
 * bytes are produced per input byte; out must have room for that. */
size_t smtpd_content_decode_data(struct smtpd_content_decoder *d, const char *in, size_t n,
                                 struct strbuf *out);

/* Decode BDAT bytes (no dot stuffing, no end marker): CR LF becomes LF,
 * bare LF and bare CR are kept (a bare CR is remembered). Consumes all n
 * bytes. out may be NULL to only track state and size. */
void smtpd_content_decode_bdat(struct smtpd_content_decoder *d, const char *in, size_t n, struct strbuf *out);

/* At the end of the last BDAT chunk: emit a held-back CR. */
void smtpd_content_finish_bdat(struct smtpd_content_decoder *d, struct strbuf *out);

#endif
