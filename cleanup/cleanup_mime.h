/* cleanup_mime.h: the MIME structure of a message as cleanup's content
 * checks see it (Postfix's mime_state): after the primary header section,
 * the body is cut into header blocks (of multipart parts and of attached
 * message/rfc822 messages) and body lines, and each logical header and each
 * body line is handed to the caller, who inspects and writes it. Pure: no
 * configuration, no I/O; unit tested and fuzzed.
 *
 * Bounds: a line is handed over in pieces of at most line_limit bytes; a
 * logical header keeps at most header_limit bytes (the rest is dropped, as
 * Postfix does); at most depth_limit multipart and message/rfc822 levels are
 * followed, deeper structure is body text (and MIME_ERR_NESTING is set).
 * Work per byte is bounded by depth_limit boundary comparisons. Malformed
 * structure is never an error: what cannot be parsed is body text. */
#ifndef TERN_CLEANUP_MIME_H
#define TERN_CLEANUP_MIME_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* Which check table sees a header (header_checks(5)). */
enum mime_class {
    MIME_CLASS_PRIMARY,      /* the message's own header section: header_checks */
    MIME_CLASS_MIME,         /* MIME headers anywhere and every header of a
                              * multipart part: mime_header_checks */
    MIME_CLASS_NESTED,       /* headers of an attached message: nested_header_checks */
};

#define MIME_ERR_NESTING 1   /* structure deeper than depth_limit was met */

struct mime_callbacks {
    /* One logical header below the primary section: its lines joined by LF,
     * without the final LF. class is already MIME_CLASS_MIME for MIME
     * headers (Content-*, MIME-Version). */
    void (*header)(void *ctx, enum mime_class cls, const char *text, size_t len);
    /* One body line (or piece of a longer one) without its LF; eol says
     * whether the LF followed. offset is where it starts in its body
     * segment (each part's body, and the text after each boundary, starts
     * at 0). Boundary lines and the empty line after a header block are
     * body lines too. */
    void (*body)(void *ctx, const char *text, size_t len, bool eol, unsigned long long offset);
    void *ctx;
};

struct mime_limits {
    size_t line_limit;       /* >= 80 */
    size_t header_limit;     /* >= line_limit */
    int depth_limit;         /* >= 1 */
    bool disabled;           /* everything after the primary headers is body */
};

struct mime_boundary {
    char *text;
    size_t len;
    int depth;               /* nesting depth of the parts it separates */
    bool digest;             /* multipart/digest: parts default to message/rfc822 */
};

/* What a header block said about the part it heads. */
struct mime_part_type {
    enum { MIME_CT_OTHER, MIME_CT_MULTIPART, MIME_CT_MESSAGE } kind;
    bool seen;               /* a Content-Type: was seen */
    bool digest;             /* multipart/digest */
    bool encoded;            /* Content-Transfer-Encoding other than 7bit, 8bit, binary */
    char *boundary;          /* of a multipart type; NULL when absent or unusable */
};

struct mime_state {
    struct mime_limits lim;
    struct mime_callbacks cb;
    enum { MIME_HEADERS, MIME_BODY } state;
    enum mime_class hclass;  /* class of the header block being read */
    bool default_message;    /* the block's part defaults to message/rfc822 */
    struct strbuf line;      /* the line (piece) being assembled */
    bool mid_line;           /* the next piece continues a line already handed over */
    bool piece_was_header;   /* ... and that line went into the pending header */
    struct strbuf header;    /* pending logical header, at most header_limit bytes */
    bool have_header;
    struct mime_part_type type;
    struct mime_boundary *stack;
    int nstack;
    int depth;
    unsigned long long offset;   /* in the current body segment */
    int errors;              /* MIME_ERR_* */
};

void cleanup_mime_init(struct mime_state *m, const struct mime_limits *lim,
               const struct mime_callbacks *cb);
void cleanup_mime_free(struct mime_state *m);

/* The primary header section, field by field (text as in the message, lines
 * joined by LF, without the final LF): only Content-Type and
 * Content-Transfer-Encoding matter here. Then cleanup_mime_primary_done once. */
void cleanup_mime_primary_header(struct mime_state *m, const char *text, size_t len);
void cleanup_mime_primary_done(struct mime_state *m);

/* The body, in chunks cut anywhere; cleanup_mime_finish at its end. */
void cleanup_mime_feed(struct mime_state *m, const char *data, size_t len);
void cleanup_mime_finish(struct mime_state *m);

/* Length of the field name when text starts "name:" (blanks allowed before
 * the colon), else 0. */
size_t cleanup_mime_header_name_len(const char *text, size_t len);
/* Whether text is a MIME header (Content-Description, Content-Disposition,
 * Content-ID, Content-Transfer-Encoding, Content-Type, MIME-Version). */
bool cleanup_mime_is_mime_header(const char *text, size_t len);

#endif
