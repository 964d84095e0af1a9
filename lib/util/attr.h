/* attr.h: Tern's internal IPC: small framed records of named, typed
 * attributes over UNIX stream sockets. One encoder/decoder for everyone.
 *
 * Wire format of one frame:
 *   uint32 BE  payload length (bytes after this field; <= caller's limit)
 *   repeated:  uint8 name_len (1..64), name bytes ([a-z0-9_]),
 *              uint32 BE value_len, value bytes, one 0 byte
 * The 0 after each value lets decoded string values be used in place. The
 * reader is strict: attributes are read in the order the protocol defines,
 * a name mismatch, a missing or oversized attribute, or anything left over
 * at attr_reader_done() is an error.
 *
 * Every connection starts with the server sending {protocol=NAME}; clients
 * check it with attr_expect_protocol(). */
#ifndef TERN_ATTR_H
#define TERN_ATTR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct strbuf;

#define ATTR_NAME_MAX 64
#define ATTR_DEFAULT_LIMIT (1024 * 1024)

/* ---- encoding into a strbuf (appends; a frame may follow other frames) ---- */
struct attr_writer {
    struct strbuf *out;
    size_t start;   /* offset of the length field */
    int failed;     /* set when the strbuf limit was hit */
};
void attr_begin(struct attr_writer *w, struct strbuf *out);
void attr_put_str(struct attr_writer *w, const char *name, const char *value);
/* attr_put_str for each name, value pair given, up to a NULL name:
 *     attr_put_strs(&w, "sender", sender, "recipient", rcpt, (char *)NULL); */
void attr_put_strs(struct attr_writer *w, ...) __attribute__((sentinel));
void attr_put_bytes(struct attr_writer *w, const char *name, const void *v, size_t n);
void attr_put_int(struct attr_writer *w, const char *name, long long v);
int attr_end(struct attr_writer *w);   /* 0 ok, -1 if anything failed */
/* A whole frame of one string attribute (a greeting, a one-word request)
 * appended to out: 0, or -1 as attr_end. */
int attr_frame_str(struct strbuf *out, const char *name, const char *value);

/* ---- decoding ---- */
/* Given avail bytes at buf: >0 the full frame size (header included) when a
 * complete frame is present, 0 when more bytes are needed, -1 when the header
 * announces more than limit. */
ssize_t attr_frame_size(const void *buf, size_t avail, size_t limit);

struct attr_reader {
    const unsigned char *p;  /* payload */
    size_t len;
    size_t pos;
    const char *error;       /* first error, for log messages */
};
/* frame points at a whole frame (header included). 0 ok, -1 malformed. */
int attr_reader_init(struct attr_reader *r, const void *frame, size_t framelen);
/* Next attribute must be `name`. Returns 0 and the value (NUL-terminated in
 * place; *len may be NULL), -1 on mismatch/missing. get_str also rejects
 * values containing NUL bytes. */
int attr_get_str(struct attr_reader *r, const char *name, const char **value);
int attr_get_bytes(struct attr_reader *r, const char *name, const void **value, size_t *len);
int attr_get_int(struct attr_reader *r, const char *name, long long min, long long max, long long *value);
/* Optional attribute: returns 1 and the value if the next one is `name`,
 * 0 if the next one is something else (or none), -1 on malformed data. */
int attr_opt_str(struct attr_reader *r, const char *name, const char **value);
/* Peek at the next attribute's name (NULL at end). */
const char *attr_peek_name(struct attr_reader *r, char *buf, size_t bufsz);
/* 0 when everything was consumed, -1 otherwise. */
int attr_reader_done(struct attr_reader *r);
/* A decoder's refusal of a frame: *why = text (when why is not NULL), and
 * -1, so that a decoder can "return attr_refuse(why, "...");". */
int attr_refuse(const char **why, const char *text);

/* ---- blocking helpers for simple clients and single-client services ---- */
/* Write the whole buffer; timeout in seconds (0 = none). 0 ok, -1 error/timeout. */
int attr_write(int fd, const struct strbuf *frames, int timeout);
/* Read exactly one frame into buf (buf is reset first). 0 ok, -1 error, EOF,
 * timeout or frame over limit; errno set (ETIMEDOUT, EMSGSIZE, EPIPE for EOF). */
int attr_read(int fd, struct strbuf *buf, size_t limit, int timeout);

/* Send {protocol=name} / check the first frame is {protocol=name}. */
int attr_send_protocol(int fd, const char *name, int timeout);
int attr_expect_protocol(int fd, const char *name, size_t limit, int timeout);

/* Connect to a UNIX socket path (blocking), with timeout seconds. -1 on error. */
int unix_connect(const char *path, int timeout);

#endif
