/* local_copy.c: the local agent's message copies through the mailbox
 * writer (lib/global/mailbox.h), with the Delivered-To: of the delivery. */
#include "local.h"

void local_mailbox_message(const struct local_delivery *d, struct mailbox_message *m)
{
    *m = (struct mailbox_message){
        .fd = d->msg->fd, .content_offset = d->msg->content_offset,
        .content_size = d->msg->content_size, .sender = d->msg->sender, .orig_to = d->orig_to,
        .seq = d->msg->seq,
    };
}

int local_copy_write(int fd, const struct local_delivery *d, int flags, unsigned long long limit,
                     unsigned long long *written)
{
    struct mailbox_message m;
    local_mailbox_message(d, &m);
    return mailbox_copy_write(fd, &m, d->delivered_to, flags, limit, written);
}
