/* tern-drop.c: tern-drop, the only program that writes into maildrop/. It is
 * installed setgid setgid_group (mode 2755) and runs as the user who ran
 * sendmail. It reads one submission on its standard input (queue-file
 * records, doc/PROTOCOLS.md "tern-drop"), checks every record, and writes
 * a maildrop file (lib/global/QUEUE.md, "Maildrop files") that records the real
 * uid of the caller, taken from getuid() and never from the input: under a
 * temporary name, fsynced, then renamed. Then it pokes pickup through
 * public/pickup; when Tern is stopped the file waits there.
 *
 * A user must not fill the queue disk with submissions that never end:
 * the unfinished file holds an flock() for as long as tern-drop lives (so
 * pickup knows a dead writer's file at once, however it died), and it has
 * a second name, maildrop/.uUID.K, one of maildrop_partial_file_limit
 * slots per uid. maildrop/ cannot be listed by the setgid_group, but these
 * names can be tried: when every slot is taken, or the slots hold more than
 * maildrop_partial_size_limit bytes, the submission is refused. On
 * SIGHUP, SIGINT, SIGTERM or SIGPIPE the file is removed and that is
 * logged with the uid. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "mail_owner.h"
#include "maildrop.h"
#include "queue.h"
#include "safe_open.h"
#include "setgid_config.h"
#include "strbuf.h"
#include "util.h"

#define EX_USAGE_ 64
#define EX_DATAERR_ 65
#define EX_NOUSER_ 67
#define EX_SOFTWARE_ 70
#define EX_CANTCREAT_ 73
#define EX_TEMPFAIL_ 75
#define EX_NOPERM_ 77
#define EX_CONFIG_ 78
#define POKE_TIMEOUT 2

static struct qfile_writer drop_qf;
static char drop_temp[PATH_MAX];             /* for the signal handler */
static char drop_slot[PATH_MAX];             /* maildrop/.uUID.K, "" when none */
static volatile sig_atomic_t drop_armed;
static volatile sig_atomic_t drop_signal;    /* a signal to act on, outside the handler */

static void drop_interrupted(void);

static void __attribute__((noreturn, format(printf, 2, 3)))
drop_fatal(int status, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (drop_armed)
        qfile_abort(&drop_qf);
    if (drop_slot[0])
        unlink(drop_slot);
    fprintf(stderr, "tern-drop: %s\n", text);
    exit(status);
}

/* Interrupted: nothing half-written stays behind. Before the file exists
 * there is nothing to do; after, the main line removes it and logs (the
 * blocking read returns EINTR: no SA_RESTART). A second signal, or one
 * that arrives while nothing reads, ends it here. */
static void on_signal(int sig)
{
    if (!drop_armed)
        _exit(EX_TEMPFAIL_);
    if (drop_signal) {
        unlink(drop_temp);
        if (drop_slot[0])
            unlink(drop_slot);
        _exit(EX_TEMPFAIL_);
    }
    drop_signal = sig;
}

static void catch_signals(void)
{
    static const int sigs[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGXFSZ, SIGPIPE };
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
}

static void drop_interrupted(void)
{
    if (!drop_signal || !drop_armed)
        return;
    struct stat st;
    long long size = fstat(drop_qf.fd, &st) == 0 ? (long long)st.st_size : -1;
    int sig = drop_signal;
    qfile_abort(&drop_qf);
    drop_armed = 0;
    if (drop_slot[0])
        unlink(drop_slot);
    msg_warn("maildrop: partial file %s/.%s from uid %ld (%lld bytes) removed: tern-drop got "
             "signal %d (%s)", QDIR_MAILDROP, drop_qf.id, (long)getuid(), size, sig,
             strsignal(sig));
    _exit(EX_TEMPFAIL_);
}

static void block_signals(bool block)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &all, NULL);
}

/* ---- configuration ---- */

/* The configuration decides where we write with the setgid_group's rights:
 * see setgid_config.h for which one a caller may name. */
static void load_config(const char *confdir)
{
    struct strbuf err = STRBUF_INIT(4096);
    enum setgid_config_status st = setgid_config_enter(confdir, &err);
    if (st != SETGID_CONFIG_OK)
        drop_fatal(st == SETGID_CONFIG_DENIED ? EX_NOPERM_ : EX_CONFIG_, "%s", sb_str(&err));
    sb_free(&err);
}

/* pickup reads maildrop files through setgid_group: the file gets that
 * group even when we run without it as our effective group (root, or a
 * tern-drop that is not set-group-ID in an instance of an ordinary user). */
static void set_group(int fd)
{
    const char *name = cfg_str(P_setgid_group);
    struct group *gr = getgrnam(name);
    if (!gr)
        drop_fatal(EX_CONFIG_, "setgid_group %s does not exist", name);
    if (gr->gr_gid != getegid() && fchown(fd, (uid_t)-1, gr->gr_gid) < 0)
        drop_fatal(EX_NOPERM_, "cannot give the new file to group %s: %s (is tern-drop "
                   "set-group-ID %s?)", name, strerror(errno), name);
}

/* ---- the submission on stdin ---- */

struct drop_input {
    struct strbuf data;           /* the current record's data, NUL-terminated */
    int type;
    size_t envelope_bytes, nrcpt, attrs_seen;
    unsigned long long content, limit;
};

static int read_exact(void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(0, (char *)buf + got, n - got);
        drop_interrupted();
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return got == 0 && r == 0 ? 0 : -1;
        got += (size_t)r;
    }
    return 1;
}

/* The next record; the size is checked before anything is read. */
static void next_record(struct drop_input *in)
{
    unsigned char hdr[5];
    int rc = read_exact(hdr, sizeof(hdr));
    if (rc <= 0)
        drop_fatal(EX_DATAERR_, "the input ended before the end of the message; "
                   "nothing was queued");
    size_t len = (size_t)hdr[1] << 24 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 8 | hdr[4];
    in->type = hdr[0];
    if (len > (in->type == QREC_CONTENT ? QREC_CONTENT_CHUNK : QREC_MAX_LEN))
        drop_fatal(EX_DATAERR_, "record of %zu bytes is too long", len);
    sb_reset(&in->data);
    char buf[16384];
    while (len) {
        size_t n = len < sizeof(buf) ? len : sizeof(buf);
        if (read_exact(buf, n) <= 0)
            drop_fatal(EX_DATAERR_, "the input ended inside a record; nothing was queued");
        sb_append(&in->data, buf, n);
        len -= n;
    }
}

static void put(int type, const void *data, size_t len)
{
    drop_interrupted();
    if (qfile_put(&drop_qf, type, data, len) < 0)
        drop_fatal(EX_TEMPFAIL_, "cannot write %s/%s: %s", QDIR_MAILDROP, drop_qf.id,
                   strerror(errno));
}

/* A name=value attribute the submitter may give, each once. */
static void check_attr(struct drop_input *in)
{
    static const char *const names[] = { "full_name", "ret", "envid" };
    const char *s = sb_str(&in->data), *eq = strchr(s, '=');
    char name[16];
    if (!eq || (size_t)(eq - s) >= sizeof(name) || memchr(s, 0, in->data.len))
        drop_fatal(EX_DATAERR_, "malformed attribute record");
    str_copy(name, (size_t)(eq - s) + 1, s);
    const char *value = eq + 1;
    size_t i = 0;
    while (i < 3 && strcmp(name, names[i]) != 0)
        i++;
    if (i == 3 || (in->attrs_seen & (1u << i)))
        drop_fatal(EX_DATAERR_, "unknown or repeated attribute \"%.16s\"", name);
    in->attrs_seen |= 1u << i;
    bool ok = i == 0 ? maildrop_text_ok(value, MAILDROP_FULL_NAME_MAX)
            : i == 1 ? strcmp(value, "FULL") == 0 || strcmp(value, "HDRS") == 0
            : *value && maildrop_text_ok(value, MAILDROP_ENVID_MAX);
    if (!ok)
        drop_fatal(EX_DATAERR_, "bad %s value", name);
}

static void check_rcpt(struct drop_input *in)
{
    struct qrcpt r;
    char canon[MAILDROP_NOTIFY_MAX];
    if (qrec_rcpt_decode(sb_str(&in->data), in->data.len, &r) < 0
        || !maildrop_text_ok(r.address, MAILDROP_ADDR_MAX) || *r.orcpt
        || (*r.notify && (maildrop_notify_canon(r.notify, canon, sizeof(canon)) < 0
                          || strcmp(canon, r.notify) != 0)))
        drop_fatal(EX_DATAERR_, "malformed recipient record");
    if (++in->nrcpt > MAILDROP_RCPT_MAX)
        drop_fatal(EX_DATAERR_, "more than %d recipients", MAILDROP_RCPT_MAX);
}

/* S (optional, first), A..., R...: checked and written as they come; uid
 * and the login name as sender come from the system. Returns with the
 * first content record read. */
static void copy_envelope(struct drop_input *in)
{
    char uid[32];
    next_record(in);
    if (in->type == QREC_SENDER) {
        if (!maildrop_text_ok(sb_str(&in->data), MAILDROP_ADDR_MAX)
            || memchr(sb_str(&in->data), 0, in->data.len))
            drop_fatal(EX_DATAERR_, "malformed sender record");
        put(QREC_SENDER, sb_str(&in->data), in->data.len);
        next_record(in);
    } else {
        struct passwd *pw = getpwuid(getuid());
        if (!pw)
            drop_fatal(EX_NOUSER_, "no account has uid %ld, so there is no sender address; "
                       "give one with -f", (long)getuid());
        put(QREC_SENDER, pw->pw_name, strlen(pw->pw_name));
    }
    snprintf(uid, sizeof(uid), "uid=%ld", (long)getuid());
    put(QREC_ATTR, uid, strlen(uid));
    for (;; next_record(in)) {
        if (in->type == QREC_ATTR)
            check_attr(in);
        else if (in->type == QREC_RCPT)
            check_rcpt(in);
        else
            break;
        in->envelope_bytes += in->data.len;
        if (in->envelope_bytes > MAILDROP_ENVELOPE_MAX)
            drop_fatal(EX_DATAERR_, "envelope over %d bytes", MAILDROP_ENVELOPE_MAX);
        put(in->type, sb_str(&in->data), in->data.len);
    }
    if (in->nrcpt == 0)
        drop_fatal(EX_DATAERR_, "no recipients");
}

/* C... X, then the end of the input. */
static void copy_content(struct drop_input *in)
{
    for (; in->type == QREC_CONTENT; next_record(in)) {
        in->content += in->data.len;
        if (in->limit && in->content > in->limit)
            drop_fatal(EX_DATAERR_, "message too big: over message_size_limit (%llu bytes)",
                       in->limit);
        put(QREC_CONTENT, sb_str(&in->data), in->data.len);
    }
    char extra;
    if (in->type != QREC_CONTENT_END || in->data.len != 0)
        drop_fatal(EX_DATAERR_, "unexpected record type %d", in->type);
    if (read_exact(&extra, 1) != 0)
        drop_fatal(EX_DATAERR_, "data after the end of the message");
    put(QREC_CONTENT_END, "", 0);
}

/* One of the uid's slots for an unfinished file (see the top of this
 * file): a hard link to ours. Refuses when the uid has its limit of
 * unfinished files or bytes already. */
static void claim_slot(void)
{
    long limit = cfg_int(P_maildrop_partial_file_limit);
    unsigned long long bytes_limit = (unsigned long long)cfg_size(P_maildrop_partial_size_limit);
    unsigned long long bytes = 0;
    long used = 0;
    char name[PATH_MAX];
    if (limit <= 0)
        return;
    drop_slot[0] = 0;
    for (long k = 0; k < limit; k++) {
        struct stat st;
        snprintf(name, sizeof(name), "%s/.u%ld.%ld", QDIR_MAILDROP, (long)getuid(), k);
        if (!drop_slot[0] && link(drop_temp, name) == 0) {
            str_copy(drop_slot, sizeof(drop_slot), name);
            continue;
        }
        if (errno != EEXIST && !drop_slot[0])
            drop_fatal(EX_CANTCREAT_, "cannot create %s: %s", name, strerror(errno));
        if (lstat(name, &st) == 0) {
            used++;
            bytes += (unsigned long long)st.st_size;
        }
    }
    if (!drop_slot[0] || (bytes_limit && bytes > bytes_limit)) {
        msg_warn("maildrop: uid %ld refused: %ld unfinished submission%s (%llu bytes) in %s/ "
                 "already (maildrop_partial_file_limit = %ld, maildrop_partial_size_limit = "
                 "%llu); try again when they have ended", (long)getuid(), used,
                 used == 1 ? "" : "s", bytes, QDIR_MAILDROP, limit, bytes_limit);
        drop_fatal(EX_TEMPFAIL_, "too many unfinished submissions of uid %ld; nothing was queued",
                   (long)getuid());
    }
}

/* Best effort: pickup also scans maildrop/ on its timer. public/pickup is
 * a fifo (master.cf type fifo) or a socket (type unix). public/ is
 * mail_owner's: when root runs sendmail, the name is used with
 * mail_owner's effective ids, so that what mail_owner puts there, even
 * between the open and the connect, reaches nothing mail_owner could not
 * reach itself. */
static void poke_pickup(void)
{
    static const char path[] = QDIR_PUBLIC "/pickup";
    struct stat st;
    uid_t owner;
    gid_t group;
    mail_owner_ids(&owner, &group);
    if (ids_assume(owner, group) < 0)
        return;
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
            (void)!write(fd, "W", 1);
        close(fd);
    } else if (errno == ENXIO && (fd = unix_connect(path, POKE_TIMEOUT)) >= 0) {
        (void)!write(fd, "W", 1);
        close(fd);
    }
    if (ids_restore() < 0)
        drop_fatal(EX_SOFTWARE_, "cannot return to root after poking pickup: %s",
                   strerror(errno));
}

int main(int argc, char **argv)
{
    const char *confdir = TERN_SYSCONFDIR;
    int c;
    command_start("tern-drop", EX_SOFTWARE_);
    umask(027);
    while ((c = getopt(argc, argv, "c:v")) != -1) {
        switch (c) {
        case 'c': confdir = optarg; break;
        case 'v': msg_verbose++; break;
        default:
            drop_fatal(EX_USAGE_, "usage: tern-drop [-c config_dir] [-v] (started by sendmail, "
                       "with the message on standard input)");
        }
    }
    if (optind != argc)
        drop_fatal(EX_USAGE_, "unexpected argument \"%.100s\"", argv[optind]);
    catch_signals();
    load_config(confdir);
    struct drop_input in = { .data = STRBUF_INIT(0) };
    in.limit = (unsigned long long)cfg_size(P_message_size_limit);
    char when[64];
    long long now = now_usec();
    snprintf(when, sizeof(when), "%lld.%06lld", now / 1000000, now % 1000000);
    block_signals(true);
    if (qfile_create_in(&drop_qf, ".", QDIR_MAILDROP, 0640) < 0)
        drop_fatal(EX_CANTCREAT_, "cannot create a file in %s/%s: %s (is tern-drop set-group-ID "
                   "setgid_group?)", cfg_str(P_queue_directory), QDIR_MAILDROP, strerror(errno));
    str_copy(drop_temp, sizeof(drop_temp), drop_qf.temp_path);
    /* held until exit: pickup takes a file it can lock for abandoned */
    if (flock(drop_qf.fd, LOCK_EX | LOCK_NB) < 0)
        drop_fatal(EX_TEMPFAIL_, "cannot lock %s: %s", drop_temp, strerror(errno));
    drop_armed = 1;
    claim_slot();
    block_signals(false);
    set_group(drop_qf.fd);
    put(QREC_VERSION, "1", 1);
    put(QREC_TIME, when, strlen(when));
    copy_envelope(&in);
    copy_content(&in);
    block_signals(true);          /* committed and reported, or neither */
    drop_interrupted();
    if (drop_slot[0])
        unlink(drop_slot);        /* before the rename: pickup wants one link */
    drop_slot[0] = 0;
    if (qfile_commit(&drop_qf) < 0)
        drop_fatal(EX_TEMPFAIL_, "cannot write %s/%s: %s", QDIR_MAILDROP, drop_qf.id,
                   strerror(errno));
    drop_armed = 0;
    printf("%s\n", drop_qf.id);
    fflush(stdout);
    msg_debug("%s: %zu recipient%s, %llu bytes", drop_qf.id, in.nrcpt, in.nrcpt == 1 ? "" : "s",
              in.content);
    poke_pickup();
    return 0;
}
