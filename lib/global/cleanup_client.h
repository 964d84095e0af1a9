/* cleanup_client.h: a blocking client of the cleanup service for programs
 * that submit whole messages (qmgr's bounce notices, local's forwarded
 * mail, pickup's local submissions): one call, the doc/PROTOCOLS.md
 * conversation, the queue ID. */
#ifndef TERN_CLEANUP_CLIENT_H
#define TERN_CLEANUP_CLIENT_H

#include <stddef.h>

#include "queue.h"

struct strbuf;

struct cleanup_submission {
    int flags;                 /* 1 = local submission */
    const char *sender;        /* "" for the null sender */
    const char *const *attr_names, *const *attr_values;
    size_t nattr;
    const char *const *rcpts;  /* orcpt is sent empty */
    const char *const *notifies; /* per recipient NOTIFY; NULL: all empty */
    size_t nrcpt;
    const char *content;       /* the whole message, lines ending in LF */
    size_t content_len;
    /* Or, when content_offset > 0, the content records of a file in the
     * queue file format from that offset (pickup: a maildrop file). */
    int content_fd;
    off_t content_offset;
    /* Or, when content_fn is set, a function that hands the content to
     * send in pieces of at most 65536 bytes (a message held in a file). */
    int (*content_fn)(void *ctx, int (*send)(const char *data, size_t len, void *arg), void *arg);
    void *content_ctx;
};

/* Submit through QUEUE_DIR/private/SERVICE. 0 ok with queue_id filled;
 * -1 with the reason in err (a cleanup refusal or an I/O error). */
int cleanup_submit(const char *queue_dir, const char *service,
                   const struct cleanup_submission *sub, char queue_id[QUEUE_ID_SIZE],
                   struct strbuf *err);
/* The same, and *status tells a refusal from a failure: 0 committed,
 * cleanup's SMTP code (4xx, 5xx) when it refused the message, -1 when it
 * could not be reached or the conversation broke off. */
int cleanup_submit_status(const char *queue_dir, const char *service,
                          const struct cleanup_submission *sub, char queue_id[QUEUE_ID_SIZE],
                          struct strbuf *err, int *status);

#endif
