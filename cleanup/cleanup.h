/* cleanup.h: the parts of the cleanup daemon: the envelope it is given,
 * the header-section processor, and the queue-file writer. */
#ifndef TERN_CLEANUP_H
#define TERN_CLEANUP_H

#include <stdbool.h>
#include <stddef.h>

#include "queue.h"
#include "strbuf.h"

#define CLEANUP_FLAG_LOCAL 1   /* local submission: add From: when missing */

struct cleanup_envelope {
    long long flags;
    char *sender;
    size_t nattr;
    char **attr_names, **attr_values;
    size_t nrcpt;
    char **rcpts, **orcpts, **notifies;
};

const char *cleanup_env_attr(const struct cleanup_envelope *env, const char *name);
void cleanup_envelope_free(struct cleanup_envelope *env);

/* Header-section processing, fed the content in arbitrary chunks. Output
 * (the new header section, then the body) is appended to `out`, which the
 * caller drains into queue records. */
struct header_state {
    struct strbuf line;        /* partial line carried between chunks */
    struct strbuf headers;     /* original header section, bytes as received */
    bool in_body;
    bool saw_blank;            /* header section ended with an empty line */
    bool too_big;
    int received_count;
    bool has_message_id, has_date, has_from;
    char *message_id;          /* the message's own Message-ID value */
    long header_limit;
};

/* What to add when the header section ends. */
struct header_additions {
    const char *received;      /* complete "Received: ...\n" header */
    const char *message_id;    /* "<...>" to add when missing */
    const char *date;          /* RFC 5322 date to add when missing */
    const char *from;          /* address to add when missing, or NULL */
};

void header_state_init(struct header_state *h, long header_limit);
void header_state_free(struct header_state *h);
/* Feed content; returns 1 when the header section just ended (call
 * header_emit, then the rest of this chunk from *consumed on is body), 0
 * when more is needed (everything consumed), -1 when the header section
 * is over the limit. */
int header_feed(struct header_state *h, const char *data, size_t len, size_t *consumed);
/* End of content while still in the header section. */
void header_finish(struct header_state *h);
/* Append the final header section (additions included) to out. */
int header_emit(struct header_state *h, const struct header_additions *add, struct strbuf *out);

/* Format helpers shared with tests. */
void cleanup_rfc5322_date(long long usec, char *buf, size_t size);

#endif
