/* pickup_milter.h: non_smtpd_milters for local submissions
 * (pickup_milter.c): what the milters decided about a maildrop file, and
 * the edited envelope and content to hand to cleanup. */
#ifndef TERN_PICKUP_MILTER_H
#define TERN_PICKUP_MILTER_H

#include <stddef.h>
#include <sys/types.h>

#include "milter.h"

enum pickup_milter_verdict {
    PM_NONE,        /* no non_smtpd_milters: submit the file as it is */
    PM_PASS,        /* submit the result below */
    PM_DISCARD,     /* drop the message (logged) */
    PM_REJECT,      /* the milters refused it for good */
    PM_DEFER,       /* try again later */
};

struct pickup_milter_result {
    enum pickup_milter_verdict verdict;
    char text[1200];            /* stage and reply, for the log */
    char *sender;
    char **rcpts, **notifies;
    size_t nrcpt;
    struct milter_msg msg;      /* the edited message (PM_PASS): render it for cleanup */
    bool have_msg;
    char *hold_reason;          /* a milter asked for the hold queue */
};

void pickup_milter_init(void);
int pickup_milter_filter(const char *name, int fd, off_t content_offset, const char *sender,
                         const char *const *rcpts, const char *const *notifies, size_t nrcpt,
                         struct pickup_milter_result *out);
void pickup_milter_result_free(struct pickup_milter_result *r);

#endif
