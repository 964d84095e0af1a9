/* queue.h: the on-disk queue: directory names, queue IDs, and the queue file
 * record format. The state machine (which files exist in each state, the
 * commit point, what recovery does) is written down in lib/global/QUEUE.md.
 *
 * A queue file is a sequence of records:
 *     uint8 type, uint32 BE length, length bytes of data
 * Recipient records are marked done in place by overwriting their type byte
 * (QREC_RCPT -> QREC_DONE), so a crashed process never delivers one twice
 * (see lib/global/QUEUE.md for the power-loss window).
 * Every complete file ends with a QREC_END record; a file without one is
 * incomplete (still being written) or corrupt. */
#ifndef TERN_QUEUE_H
#define TERN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct strbuf;

/* Queue subdirectories, relative to queue_directory. */
#define QDIR_MAILDROP "maildrop"
#define QDIR_INCOMING "incoming"
#define QDIR_ACTIVE   "active"
#define QDIR_DEFERRED "deferred"
#define QDIR_HOLD     "hold"
#define QDIR_CORRUPT  "corrupt"
#define QDIR_DEFER_LOG "defer"    /* per-message delivery logs of deferred recipients */
#define QDIR_BOUNCE_LOG "bounce"  /* per-message logs of bounced recipients */
#define QDIR_PRIVATE  "private"   /* sockets for mail_owner only */
#define QDIR_PUBLIC   "public"    /* sockets for the setgid_group */
#define QDIR_TMP      "tmp"       /* anonymous spool files (content held for milters) */
#define QDIR_SPARE    "spare"     /* emptied queue files kept for reuse (QUEUE.md) */

/* Every queue subdirectory with its mode; owner is mail_owner, the group is
 * setgid_group where group_is_setgid, else mail_owner's group. master creates
 * them; `tern check` verifies them. */
struct qdir_spec {
    const char *name;
    unsigned mode;
    bool group_is_setgid;
};
extern const struct qdir_spec queue_dirs[];
extern const size_t queue_dirs_count;

/* ---- queue IDs ----
 * 16 characters from "0123456789BCDFGHJKLMNPQRSTVWXYZ" (ASCII-sorted, so IDs
 * sort by arrival): 7 for the seconds, 4 for the microseconds (scaled to
 * 31^4 steps per second), 5 from the process ID and a per-process counter.
 * Safe as file names. */
#define QUEUE_ID_LEN 16
#define QUEUE_ID_SIZE (QUEUE_ID_LEN + 1)
void queue_id_new(char id[QUEUE_ID_SIZE]);
bool queue_id_valid(const char *s);     /* exact alphabet and length */

/* ---- record types ---- */
enum qrec_type {
    QREC_VERSION  = 'V',  /* "1"; first record */
    QREC_TIME     = 'T',  /* arrival time "SECONDS.MICROSECONDS" */
    QREC_SIZE     = 'Z',  /* content size in bytes (decimal), written after the content */
    QREC_SENDER   = 'S',  /* envelope sender, "" for the null sender */
    QREC_ATTR     = 'A',  /* "name=value": client_name, client_addr, client_port, helo_name,
                             protocol, sasl_method, sasl_username, envid, ret, body, smtputf8, requiretls, ...;
                             after the content: content_filter (cleanup's checks) */
    QREC_RCPT     = 'R',  /* pending recipient, see qrec_rcpt_* below */
    QREC_DONE     = 'D',  /* recipient already delivered or bounced (was 'R') */
    QREC_CONTENT  = 'C',  /* a chunk of message content: header + body, lines end in LF */
    QREC_CONTENT_END = 'X', /* after the last content chunk */
    QREC_WARN     = 'W',  /* when a delay warning was sent: QREC_WARN_WIDTH digits, 0 = not yet */
    QREC_END      = 'E',  /* mandatory last record, empty */
};

#define QREC_WARN_WIDTH 15           /* fixed, so qmgr can overwrite it in place */
#define QREC_MAX_LEN (1024 * 1024)   /* no record may be larger */
#define QREC_CONTENT_CHUNK 65536     /* content is written in chunks of at most this */

/* Recipient record data: "ADDRESS\0ORCPT\0NOTIFY" where ORCPT is the RFC 3461
 * original recipient ("rfc822;user@example" or ""), NOTIFY is "" or a comma
 * list of NEVER/SUCCESS/FAILURE/DELAY. */
struct qrcpt {
    const char *address;
    const char *orcpt;
    const char *notify;
    off_t offset;        /* file offset of the record's type byte */
    bool done;
};
int qrec_rcpt_encode(struct strbuf *out, const char *address, const char *orcpt, const char *notify);
int qrec_rcpt_decode(const char *data, size_t len, struct qrcpt *r);   /* pointers into data */

/* Answers of qmgr to `tern delete|hold|requeue` about a message in
 * active/ (doc/PROTOCOLS.md, "qmgr"). */
enum qmgr_admin_status {
    QMGR_ADMIN_DONE = 0,     /* carried out now */
    QMGR_ADMIN_LATER = 1,    /* carried out when its running deliveries end */
    QMGR_ADMIN_ABSENT = 2,   /* not in qmgr's memory: act on the queue file */
    QMGR_ADMIN_DENIED = 3,   /* the client is not root or mail_owner */
    QMGR_ADMIN_BAD = 4,      /* unknown operation or malformed ID */
};

/* ---- writing (cleanup) ---- */
struct qfile_writer {
    int fd;
    char id[QUEUE_ID_SIZE];
    char *queue_dir;
    const char *sub;     /* QDIR_INCOMING (cleanup) or QDIR_MAILDROP (tern-drop) */
    char *temp_path;     /* SUB/.ID while being written */
    char *final_path;    /* SUB/ID after commit */
    unsigned long long content_size;
    int error;           /* set once any write failed */
    unsigned char *wbuf; /* records are buffered here before write() */
    size_t wbuf_len;
    bool committed;      /* after qfile_commit succeeded the file is qmgr's */
};
/* Create incoming/.ID (mode 0600) with a new queue ID. 0 ok, -1 errno set. */
int qfile_create(struct qfile_writer *w, const char *queue_dir);
/* Spare files (QUEUE.md "Spare files"): with spares on, qfile_create and
 * qfile_create_preset first take an emptied file from spare/ instead of
 * making a new inode (cleanup turns them on; tern-drop, which may not
 * enter spare/, never does). */
void qfile_use_spares(bool on);
/* A message is finished: its file (a path such as "active/ID", relative
 * to queue_dir) is emptied and kept in spare/ while there is room there,
 * else removed. 0 ok, -1 errno set (the file is then gone or untouched). */
int qfile_retire(const char *queue_dir, const char *path);
/* The same in another queue subdirectory (a QDIR_* constant) with another
 * file mode: tern-drop writes maildrop/.ID with 0640. */
int qfile_create_in(struct qfile_writer *w, const char *queue_dir, const char *sub, mode_t mode);
/* incoming/.ID with the queue ID the submitter chose (smtpd names a message
 * before its milters see it, for their i macro and its log lines). An ID
 * that is not valid or already names a file in incoming/, active/,
 * deferred/ or hold/ is not taken: a new one is, as qfile_create. */
int qfile_create_preset(struct qfile_writer *w, const char *queue_dir, const char *id);
int qfile_put(struct qfile_writer *w, int type, const void *data, size_t len);
int qfile_put_str(struct qfile_writer *w, int type, const char *s);
int qfile_put_attr(struct qfile_writer *w, const char *name, const char *value);
/* Commit into another queue subdirectory than the one the file was created
 * in (cleanup puts a message that header or body checks held into hold/).
 * 0 ok, -1 (the writer's error is set). */
int qfile_set_destination(struct qfile_writer *w, const char *sub);
/* Write QREC_END, fsync the file, rename it to SUB/ID, fsync SUB/.
 * This is the commit point. 0 ok; on -1 the temporary file is removed. */
int qfile_commit(struct qfile_writer *w);
/* Remove the temporary file and release resources (after an error or reject). */
void qfile_abort(struct qfile_writer *w);
void qfile_writer_free(struct qfile_writer *w);

/* ---- reading ---- */
struct qrec {
    int type;
    const char *data;    /* NUL-terminated copy owned by the reader (valid until next call) */
    size_t len;
    off_t offset;        /* offset of the type byte */
};
struct qfile_reader {
    int fd;
    off_t pos;
    off_t file_size;
    struct strbuf *buf;
    unsigned char *ahead;  /* read-ahead window: a few syscalls per file, not two per record */
    off_t ahead_off;
    size_t ahead_len;
    bool skip_content;     /* QREC_CONTENT data is not read (rec->data is ""; len is right) */
    bool skipped;          /* the last record was content not read: the next header is read alone */
    bool seen_end;
    bool truncated;      /* the last qfile_next failed only because the file ends early */
    const char *error;   /* why the last qfile_next returned -1 (static text) */
};
/* O_RDONLY or O_RDWR; a symbolic link is not followed (ELOOP) and anything
 * but a plain file is refused (EINVAL). */
int qfile_open(struct qfile_reader *r, const char *path, int flags);
void qfile_reader_init_fd(struct qfile_reader *r, int fd);
/* 1 = a record, 0 = clean end (after QREC_END, nothing follows), -1 = corrupt
 * or I/O error (truncated record, unknown type, oversize, data after END). */
int qfile_next(struct qfile_reader *r, struct qrec *rec);
void qfile_close(struct qfile_reader *r);

/* Mark the recipient record at offset done (type byte R -> D); no fsync. */
int qfile_mark_done(int fd, off_t offset);

/* Record in the QREC_WARN record at offset that a delay warning was sent
 * at when (seconds); one pwrite, no fsync (a lost update repeats a warning). */
int qfile_set_warned(int fd, off_t offset, long long when);

/* A parsed view of a whole queue file, for qmgr and the tern command. */
struct qmessage {
    char id[QUEUE_ID_SIZE];
    long long arrival_usec;
    char *sender;
    char **attr_names, **attr_values;
    size_t nattrs;
    struct qrcpt *rcpts;   /* strings owned by the message */
    size_t nrcpts;
    off_t content_offset;  /* offset of the first QREC_CONTENT record */
    unsigned long long content_size;
    bool complete;         /* QREC_END seen */
    off_t warn_offset;     /* of the QREC_WARN record, 0 when there is none */
    long long warn_sent;   /* its value: when a delay warning was sent, 0 = never */
};
/* Read envelope and recipients (content is skipped, only located).
 * 0 ok, -1 corrupt/unreadable (err says why). Opens path as qfile_open
 * does; a privileged reader opens and checks the file itself (safe_open.h)
 * and uses qmessage_load_fd. */
int qmessage_load(const char *path, struct qmessage *m, struct strbuf *err);
/* The same from a file the caller has opened (and keeps); id names it. */
int qmessage_load_fd(int fd, const char *id, struct qmessage *m, struct strbuf *err);
const char *qmessage_attr(const struct qmessage *m, const char *name);
void qmessage_free(struct qmessage *m);

/* Stream the content of an open queue file from content_offset: calls fn for
 * each chunk. 0 ok, -1 on corruption or when fn returns non-zero. */
int qfile_read_content(int fd, off_t content_offset,
                       int (*fn)(const char *data, size_t len, void *ctx), void *ctx);

/* path helpers: QUEUE_DIR/SUB/ID into out. */
int queue_path(struct strbuf *out, const char *queue_dir, const char *sub, const char *id);

#endif
