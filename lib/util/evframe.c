/* evframe.c: whole frames out of a libevent input buffer (evframe.h); only
 * the header is made contiguous until the whole frame is there. */
#include <event2/buffer.h>

#include "evframe.h"
#include "util.h"

#define EVFRAME_HEADER 4

ssize_t evframe_take(struct evbuffer *in, evframe_sizer size_of, size_t limit,
                     unsigned char **frame)
{
    *frame = NULL;
    size_t avail = evbuffer_get_length(in);
    if (avail < EVFRAME_HEADER)
        return 0;
    const unsigned char *head = evbuffer_pullup(in, EVFRAME_HEADER);
    if (!head)
        return 0;
    ssize_t size = size_of(head, avail, limit);
    if (size <= 0)
        return size;
    *frame = xmalloc((size_t)size);
    evbuffer_remove(in, *frame, (size_t)size);
    return size;
}
