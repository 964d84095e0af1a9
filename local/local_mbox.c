/* local_mbox.c: appending one message to an open, locked mbox file (a
 * mailbox or a /file destination). The message goes in whole or not at all:
 * on any failure the file is truncated back to the size it had, so a reader
 * never sees half a message. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local.h"

void local_mbox_append(const struct local_delivery *d, int fd, const char *what,
                       int flags, struct local_result *res)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        local_result_set(res, 4, "4.2.0", "cannot update %s: %s", what, strerror(errno));
        return;
    }
    off_t before = st.st_size;
    unsigned long long limit = 0;
    if (local_cfg.mailbox_size_limit > 0) {
        long long room = local_cfg.mailbox_size_limit - (long long)before;
        if (room <= 0 || d->msg->content_size >= (unsigned long long)room) {
            local_result_set(res, 5, "5.2.2", "cannot update %s: the message would exceed "
                       "mailbox_size_limit (%lld bytes)", what, local_cfg.mailbox_size_limit);
            return;
        }
        limit = (unsigned long long)room;
    }
    unsigned long long written = 0;
    if (lseek(fd, 0, SEEK_END) < 0 || local_copy_write(fd, d, flags, limit, &written) < 0
        || fsync(fd) < 0) {
        int err = errno, status;
        const char *dsn = local_result_dsn_for_errno(err, &status);
        /* never leave half a message behind */
        if (ftruncate(fd, before) < 0 || fsync(fd) < 0)
            local_result_set(res, 4, "4.3.0", "cannot update %s: %s; and cannot truncate it back to "
                       "%lld bytes: %s", what, strerror(err), (long long)before, strerror(errno));
        else if (err == EFBIG)
            local_result_set(res, 5, dsn, "cannot update %s: the message would exceed "
                       "mailbox_size_limit (%lld bytes)", what, local_cfg.mailbox_size_limit);
        else
            local_result_set(res, status, dsn, "cannot update %s: error writing message: %s",
                       what, strerror(err));
        return;
    }
    local_result_set(res, 2, "2.0.0", "delivered");
}
