/* local_copy.c: the local agent's message copies through the mailbox
 * writer (lib/global/mailbox.h), and
 * reading the Delivered-To: headers a message already has, for mail loop
 * detection. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "local.h"
#include "queue.h"
#include "util.h"

void local_mailbox_message(const struct local_delivery *d, struct mailbox_message *m)
{
    *m = (struct mailbox_message){
        .fd = d->msg->fd, .content_offset = d->msg->content_offset,
        .content_size = d->msg->content_size, .sender = d->msg->sender, .seq = d->msg->seq,
    };
}

int local_copy_write(int fd, const struct local_delivery *d, int flags, unsigned long long limit,
                     unsigned long long *written)
{
    struct mailbox_message m;
    local_mailbox_message(d, &m);
    return mailbox_copy_write(fd, &m, d->delivered_to, flags, limit, written);
}

/* ---- Delivered-To: headers for loop detection ---- */

void local_delivered_scan_init(struct delivered_scan *s)
{
    memset(s, 0, sizeof(*s));
    sb_init(&s->line, 8192);
}

static void scan_line(struct delivered_scan *s)
{
    const char *l = sb_str(&s->line);
    if (s->line.len == 0) {
        s->done = true;            /* the empty line that ends the header */
        return;
    }
    if (strncasecmp(l, "Delivered-To:", 13) != 0 || s->nvalues >= LOCAL_DELIVERED_MAX)
        return;
    const char *v = l + 13;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
        n--;
    s->values = xrealloc(s->values, (s->nvalues + 1) * sizeof(*s->values));
    s->values[s->nvalues++] = str_lower(xstrndup(v, n));
}

void local_delivered_scan_feed(struct delivered_scan *s, const char *data, size_t len)
{
    for (size_t i = 0; i < len && !s->done; i++) {
        if (++s->seen > LOCAL_HEADER_SCAN_MAX) {
            s->done = true;
            break;
        }
        if (data[i] == '\n') {
            scan_line(s);
            sb_reset(&s->line);
        } else if (sb_appendc(&s->line, data[i]) < 0) {
            /* an overlong line cannot be one of ours: keep its start only */
        }
    }
}

void local_delivered_scan_finish(struct delivered_scan *s)
{
    if (!s->done && s->line.len)
        scan_line(s);
    s->done = true;
    sb_free(&s->line);
}

void local_delivered_scan_free(struct delivered_scan *s)
{
    for (size_t i = 0; i < s->nvalues; i++)
        free(s->values[i]);
    free(s->values);
    sb_free(&s->line);
    memset(s, 0, sizeof(*s));
}
