/* cleanup_client.h: a blocking client of the cleanup service for programs
 * that submit whole messages they made themselves (qmgr's bounce notices,
 * later pickup): one call, the doc/PROTOCOLS.md conversation, the queue ID. */
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
    const char *const *rcpts;  /* orcpt and notify are sent empty */
    size_t nrcpt;
    const char *content;       /* the whole message, lines ending in LF */
    size_t content_len;
};

/* Submit through QUEUE_DIR/private/SERVICE. 0 ok with queue_id filled;
 * -1 with the reason in err (a cleanup refusal or an I/O error). */
int cleanup_submit(const char *queue_dir, const char *service,
                   const struct cleanup_submission *sub, char queue_id[QUEUE_ID_SIZE],
                   struct strbuf *err);

#endif
