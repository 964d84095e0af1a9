/* queue_id.c: the queue's directory table, and unique, sortable queue IDs
 * that are safe as file names:
 * seconds and microseconds of the arrival time, then the process ID and a
 * per-process counter, all in an ASCII-ordered base-31 alphabet. */
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "queue.h"

static const char qid_alphabet[] = "0123456789BCDFGHJKLMNPQRSTVWXYZ";
#define QID_BASE 31

static void qid_put(char *out, int width, unsigned long long v)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = qid_alphabet[v % QID_BASE];
        v /= QID_BASE;
    }
}

void queue_id_new(char id[QUEUE_ID_SIZE])
{
    static unsigned counter;
    static long long last_usec;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long usec = (long long)tv.tv_sec * 1000000 + tv.tv_usec;
    /* Never go backwards within a process, so IDs made later sort later. */
    if (usec <= last_usec)
        usec = last_usec + 1;
    last_usec = usec;
    /* 31^7 seconds reach past the year 2800; 31^4 > 10^6 microseconds; the
     * last 5 characters hold 22 bits of pid and 2 bits of counter... plus the
     * microsecond bump above, which already makes same-process IDs distinct. */
    qid_put(id, 7, (unsigned long long)(usec / 1000000));
    qid_put(id + 7, 4, (unsigned long long)(usec % 1000000));
    unsigned long long tail = ((unsigned long long)(getpid() & 0x3fffff) << 2) | (counter++ & 3);
    qid_put(id + 11, 5, tail % (31ULL * 31 * 31 * 31 * 31));
    id[QUEUE_ID_LEN] = 0;
}

const struct qdir_spec queue_dirs[] = {
    { QDIR_MAILDROP, 0730, true },
    { QDIR_INCOMING, 0700, false },
    { QDIR_ACTIVE, 0700, false },
    { QDIR_DEFERRED, 0700, false },
    { QDIR_HOLD, 0700, false },
    { QDIR_CORRUPT, 0700, false },
    { QDIR_DEFER_LOG, 0700, false },
    { QDIR_BOUNCE_LOG, 0700, false },
    { QDIR_PRIVATE, 0700, false },
    { QDIR_PUBLIC, 0710, true },
};
const size_t queue_dirs_count = sizeof(queue_dirs) / sizeof(queue_dirs[0]);

bool queue_id_valid(const char *s)
{
    if (!s || strlen(s) != QUEUE_ID_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!memchr(qid_alphabet, *p, QID_BASE))
            return false;
    return true;
}
