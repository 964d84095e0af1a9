/* qmgr_incoming.c: how messages enter qmgr's care (lib/global/QUEUE.md): recovery
 * of what a crash left in active/, removal of stale temporary files, and
 * the move of each complete message from incoming/ to active/, with files
 * that cannot be read set aside in corrupt/, and the passes over deferred/
 * that bring back the messages due for another attempt. Paths are
 * relative: qmgr runs in the queue directory. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "qmgr.h"
#include "qmgr_message.h"
#include "queue.h"
#include "strbuf.h"
#include "util.h"

#define LOG_ADDR_MAX 512

struct qmgr_queue qmgr_queue;

static void queue_file_path(struct strbuf *sb, const char *sub, const char *name)
{
    sb_reset(sb);
    sb_appendf(sb, "%s/%s", sub, name);
}

static int move_file(const char *from_sub, const char *to_sub, const char *id)
{
    struct strbuf from = STRBUF_INIT(0), to = STRBUF_INIT(0);
    queue_file_path(&from, from_sub, id);
    queue_file_path(&to, to_sub, id);
    int rc = rename(sb_str(&from), sb_str(&to));
    if (rc < 0 && errno != ENOENT)
        msg_warn("%s: cannot move %s to %s: %m", id, sb_str(&from), sb_str(&to));
    sb_free(&from);
    sb_free(&to);
    return rc;
}

/* Sender addresses come from a queue file: show them safely in the log. */
static void log_safe_addr(struct strbuf *out, const char *s)
{
    sb_reset(out);
    for (size_t i = 0; s[i] && i < LOG_ADDR_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        sb_appendc(out, c < 32 || c == 127 ? '?' : c);
    }
}

void qmgr_recover_active(void)
{
    DIR *d = opendir(QDIR_ACTIVE);
    struct dirent *de;
    long resumed = 0, stuck = 0;
    if (!d)
        msg_fatal("cannot open %s/: %m", QDIR_ACTIVE);
    while ((de = readdir(d)))
        if (queue_id_valid(de->d_name)) {
            if (move_file(QDIR_ACTIVE, QDIR_INCOMING, de->d_name) == 0)
                resumed++;
            else
                stuck++;
        }
    closedir(d);
    if (resumed)
        msg_info("resuming %ld message%s left in %s/", resumed, resumed == 1 ? "" : "s",
                 QDIR_ACTIVE);
    qmgr_queue.active_count = stuck;
}

void qmgr_remove_stale_temp(void)
{
    DIR *d = opendir(QDIR_INCOMING);
    struct dirent *de;
    struct strbuf path = STRBUF_INIT(0);
    time_t now = time(NULL);
    if (!d) {
        msg_warn("cannot open %s/: %m", QDIR_INCOMING);
        return;
    }
    while ((de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] != '.' || !queue_id_valid(de->d_name + 1))
            continue;
        queue_file_path(&path, QDIR_INCOMING, de->d_name);
        if (lstat(sb_str(&path), &st) == 0 && now - st.st_mtime > QMGR_TEMP_FILE_MAX_AGE) {
            if (unlink(sb_str(&path)) == 0)
                msg_info("removed stale temporary file %s", sb_str(&path));
            else if (errno != ENOENT)
                msg_warn("cannot remove stale temporary file %s: %m", sb_str(&path));
        }
    }
    closedir(d);
    sb_free(&path);
}

static void set_aside(const char *id, const char *why)
{
    msg_warn("%s: %s; moving it to %s/", id, why, QDIR_CORRUPT);
    move_file(QDIR_INCOMING, QDIR_CORRUPT, id);
}

/* Every recipient already done (a crash after the last delivery): the
 * message is finished. */
static bool all_done(const struct qmessage *m)
{
    for (size_t i = 0; i < m->nrcpts; i++)
        if (!m->rcpts[i].done)
            return false;
    return m->nrcpts > 0;
}

/* Check one committed message and move it to active/. */
static void activate(const char *id)
{
    struct strbuf path = STRBUF_INIT(0), err = STRBUF_INIT(1024), shown = STRBUF_INIT(0);
    struct qmessage m;
    struct stat st;
    queue_file_path(&path, QDIR_INCOMING, id);
    if (lstat(sb_str(&path), &st) < 0) {
        if (errno != ENOENT)
            msg_warn("%s: cannot stat %s: %m", id, sb_str(&path));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        set_aside(id, "not a regular file");
        goto done;
    }
    if (qmessage_load(sb_str(&path), &m, &err) < 0) {
        set_aside(id, err.len ? sb_str(&err) : "unreadable queue file");
        goto done;
    }
    if (!m.complete) {
        set_aside(id, "incomplete queue file (no end record)");
    } else if (m.nrcpts == 0) {
        set_aside(id, "queue file without recipients");
    } else if (all_done(&m)) {
        if (unlink(sb_str(&path)) == 0)
            msg_info("%s: removed", id);
    } else if (move_file(QDIR_INCOMING, QDIR_ACTIVE, id) == 0) {
        size_t pending = 0;
        for (size_t i = 0; i < m.nrcpts; i++)
            pending += !m.rcpts[i].done;
        qmgr_queue.active_count++;
        log_safe_addr(&shown, m.sender);
        msg_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", id, sb_str(&shown),
                 m.content_size, pending);
        qmgr_message_add(id, &m);
    }
    qmessage_free(&m);
done:
    sb_free(&path);
    sb_free(&err);
    sb_free(&shown);
}

bool qmgr_scan_incoming(void)
{
    DIR *d = opendir(QDIR_INCOMING);
    struct dirent *de;
    int taken = 0;
    if (!d) {
        msg_warn("cannot open %s/: %m", QDIR_INCOMING);
        return false;
    }
    while (qmgr_queue.active_count < qmgr_queue.active_limit && qmgr_message_may_take()
           && taken < QMGR_SCAN_BATCH
           && (de = readdir(d))) {
        if (!queue_id_valid(de->d_name))
            continue;                /* ".ID" files are being written; others are not ours */
        activate(de->d_name);
        taken++;
    }
    if (taken)
        qmgr_queue.new_mail_usec = now_usec();
    closedir(d);
    return taken == QMGR_SCAN_BATCH && qmgr_queue.active_count < qmgr_queue.active_limit
           && qmgr_message_may_take();
}

/* A pass over deferred/ is done in slices, between other events: with
 * 100,000 messages deferred for a dead site, one pass in one go kept qmgr
 * from new mail for seconds (each message is read, and deferred again).
 * A pass stopped at the active queue's limits goes on when room is made;
 * qmgr.c paces the slices while new mail arrives. */
static struct {
    DIR *dir;           /* the pass under way, or NULL */
    bool again;         /* asked for during the pass: one more after it */
} pass;

void qmgr_deferred_pass(void)
{
    if (pass.dir) {
        pass.again = true;
        return;
    }
    pass.dir = opendir(QDIR_DEFERRED);
    if (!pass.dir && errno != ENOENT)
        msg_warn("cannot open %s/: %m", QDIR_DEFERRED);
}

static void deferred_pass_end(void)
{
    closedir(pass.dir);
    pass.dir = NULL;
    if (pass.again) {
        pass.again = false;
        qmgr_deferred_pass();
    }
}

enum qmgr_pass qmgr_scan_deferred(void)
{
    if (!pass.dir)
        return QMGR_PASS_OVER;
    time_t now = time(NULL);
    struct strbuf from = STRBUF_INIT(0);
    int taken = 0, looked = 0;
    enum qmgr_pass left = QMGR_PASS_MORE;
    while (taken < QMGR_DEFERRED_SLICE && looked < QMGR_SCAN_BATCH) {
        if (qmgr_queue.active_count >= qmgr_queue.active_limit || !qmgr_message_may_take()) {
            left = QMGR_PASS_FULL;
            break;
        }
        struct dirent *de = readdir(pass.dir);
        if (!de) {
            deferred_pass_end();
            left = pass.dir ? QMGR_PASS_MORE : QMGR_PASS_OVER;
            break;
        }
        looked++;
        if (!queue_id_valid(de->d_name))
            continue;
        queue_file_path(&from, QDIR_DEFERRED, de->d_name);
        struct stat st;
        if (stat(sb_str(&from), &st) < 0 || st.st_mtime > now)
            continue;                /* gone, or not due yet */
        if (move_file(QDIR_DEFERRED, QDIR_ACTIVE, de->d_name) < 0)
            continue;
        qmgr_queue.active_count++;
        taken++;
        qmgr_message_add(de->d_name, NULL);
    }
    sb_free(&from);
    return left;
}
