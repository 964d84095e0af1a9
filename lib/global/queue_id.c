/* queue_id.c: the queue's directory table, and unique, sortable queue IDs
 * that are safe as file names: arrival second, fraction of the second, then
 * the process ID and a per-process sequence number, all as fixed-width
 * numbers in an ASCII-ordered base-31 alphabet. */
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "queue.h"

static const char qid_alphabet[] = "0123456789BCDFGHJKLMNPQRSTVWXYZ";
#define QID_BASE 31ULL

/* Field widths (7 + 4 + 5 = QUEUE_ID_LEN). 31^7 seconds reach the year
 * 2841. 31^4 = 923521 is less than a million, so the microsecond is scaled
 * into 923521 "ticks" of about 1.08 us; order is kept, and IDs that fall
 * into one tick are told apart by the sequence number. */
#define QID_SEC_WIDTH 7
#define QID_TICK_WIDTH 4
#define QID_TAIL_WIDTH 5
#define QID_TICKS_PER_SEC (QID_BASE * QID_BASE * QID_BASE * QID_BASE)
/* 31^5 = 28629151 tail values: Linux PIDs are below 2^22 (PID_MAX_LIMIT),
 * which leaves room for QID_SEQ_PER_TICK IDs per process and tick. */
#define QID_PID_MOD (1ULL << 22)
#define QID_SEQ_PER_TICK 6ULL

static void qid_put(char *out, int width, unsigned long long v)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = qid_alphabet[v % QID_BASE];
        v /= QID_BASE;
    }
}

/* Current time in ticks since the epoch. */
static unsigned long long qid_now_ticks(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long long sec = tv.tv_sec > 0 ? (unsigned long long)tv.tv_sec : 0;
    unsigned long long usec = tv.tv_usec > 0 ? (unsigned long long)tv.tv_usec : 0;
    return sec * QID_TICKS_PER_SEC + usec * QID_TICKS_PER_SEC / 1000000ULL;
}

void queue_id_new(char id[QUEUE_ID_SIZE])
{
    static unsigned long long last_tick, seq;
    unsigned long long tick = qid_now_ticks();
    /* Within a process IDs strictly increase: in the same tick (or when the
     * clock steps back) the sequence number counts up, and when it runs out
     * the tick is advanced by one, about a microsecond. */
    if (tick > last_tick) {
        seq = 0;
    } else if (++seq < QID_SEQ_PER_TICK) {
        tick = last_tick;
    } else {
        tick = last_tick + 1;
        seq = 0;
    }
    last_tick = tick;
    unsigned long long pid = (unsigned long long)getpid() % QID_PID_MOD;
    qid_put(id, QID_SEC_WIDTH, tick / QID_TICKS_PER_SEC);
    qid_put(id + QID_SEC_WIDTH, QID_TICK_WIDTH, tick % QID_TICKS_PER_SEC);
    qid_put(id + QID_SEC_WIDTH + QID_TICK_WIDTH, QID_TAIL_WIDTH, pid * QID_SEQ_PER_TICK + seq);
    id[QUEUE_ID_LEN] = 0;
}

bool queue_id_valid(const char *s)
{
    if (!s || strnlen(s, QUEUE_ID_LEN + 1) != QUEUE_ID_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!memchr(qid_alphabet, *p, sizeof(qid_alphabet) - 1))
            return false;
    return true;
}

const struct qdir_spec queue_dirs[] = {
    { QDIR_MAILDROP, 0730, true },
    /* the message states */
    { QDIR_INCOMING, 0700, false }, { QDIR_ACTIVE, 0700, false }, { QDIR_DEFERRED, 0700, false },
    { QDIR_HOLD, 0700, false }, { QDIR_CORRUPT, 0700, false },
    /* per-message delivery logs */
    { QDIR_DEFER_LOG, 0700, false }, { QDIR_BOUNCE_LOG, 0700, false },
    { QDIR_PRIVATE, 0700, false }, { QDIR_PUBLIC, 0710, true },
    { QDIR_TMP, 0700, false }, { QDIR_SPARE, 0700, false },
};
const size_t queue_dirs_count = sizeof(queue_dirs) / sizeof(queue_dirs[0]);
