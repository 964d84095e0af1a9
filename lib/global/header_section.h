/* header_section.h: the header section of a message, as cleanup and
 * sendmail -t read it: found in content that arrives in chunks, parsed into
 * fields, looked up, changed and written out again (header_section.c). */
#ifndef TERN_HEADER_SECTION_H
#define TERN_HEADER_SECTION_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* Content arrives in chunks cut anywhere. The processor keeps the header
 * section byte for byte and records where each field (name: value, with its
 * folded continuation lines) lies in it. The section ends at the first
 * empty line, or at the first line that is neither a header field nor a
 * continuation: that line is the first line of the body. */

struct header_field {
    size_t offset;    /* of the field's first byte in header_state.headers */
    size_t len;       /* whole field: continuation lines and final LF included */
    size_t name_len;  /* bytes of the field name (without blanks and colon) */
};

struct header_state {
    struct strbuf pending;     /* current line, not yet complete or classified */
    struct strbuf headers;     /* header section as received */
    struct header_field *fields;
    size_t nfields, fields_cap;
    size_t limit;              /* most bytes the header section may have */
    bool done;                 /* the header section has ended */
    bool saw_blank;            /* ... at an empty line (not kept in headers) */
    bool body_pending;         /* ... at a body line now held in pending */
    bool too_big;              /* the header section went over limit */
};

/* What cleanup adds when the header section ends. NULL: add nothing. */
struct header_additions {
    const char *received;      /* complete "Received: ...\n", placed first */
    const char *message_id;    /* "<...>", added when Message-ID: is missing */
    const char *date;          /* RFC 5322 date, added when Date: is missing */
    const char *from;          /* address, added as From: when missing */
};

void header_state_init(struct header_state *h, size_t limit);
void header_state_free(struct header_state *h);

/* Feed content. Returns 0 when all of it was taken into the header section,
 * 1 when the header section just ended (call header_emit; the body then
 * continues with data + *consumed), -1 when the header section exceeds the
 * limit (too_big is set). Must not be called once done. */
int header_feed(struct header_state *h, const char *data, size_t len, size_t *consumed);
/* The content ended while still in the header section: classify the last,
 * unterminated line. Afterwards done is set. */
void header_finish(struct header_state *h);

/* Append the final header section to out: additions->received, the original
 * fields, the missing Message-ID:/Date:/From:, then the empty line that
 * separates the body (when there is a body) and any body bytes already
 * taken. 0 ok, -1 when out's limit was hit. */
int header_emit(struct header_state *h, const struct header_additions *add, struct strbuf *out);

/* Remove every field called name (sendmail -t drops Bcc: this way). */
void header_remove(struct header_state *h, const char *name);
/* The same, sparing the section's first `first` fields (cleanup keeps
 * the marks smtpd wrote at the top and removes look-alikes after them). */
void header_remove_after(struct header_state *h, const char *name, size_t first);

/* Replace all fields with those in text: complete lines, each field a
 * "name: value" line and its continuation lines (header checks rebuild the
 * section this way). Pending body bytes and the flags stay. */
void header_set_fields(struct header_state *h, const char *text, size_t len);

/* Lookups by field name, ASCII case-insensitive. */
size_t header_count(const struct header_state *h, const char *name);
const struct header_field *header_find(const struct header_state *h, const char *name);
/* The field's value unfolded (line ends removed), leading and trailing
 * white space removed, at most max bytes; returned in out. */
void header_value(const struct header_state *h, const struct header_field *f,
                  struct strbuf *out, size_t max);

#endif
