/* cache_store.h: a small read/write cache shared by several hosts, for
 * the state that a fleet of MX hosts must agree on (postscreen's
 * temporary allowlist, the address verification cache): get, put with a
 * time to live, delete, on a memcached server (memcache:/file, configured
 * as in Postfix's memcache_table(5)) or a redis server (redis:/file,
 * redis_table(5)). Keys and values are bounded; every network wait is
 * bounded by the file's timeout; a server that is down or answers badly
 * makes a lookup miss and an update be lost, with a warning at most once
 * a minute, never an error for the mail.
 *
 * The caches that stay on one host keep their table in the daemon's
 * memory and save it in a file of their own format: the one local file
 * store of those (cache_file.c) is at the end. */
#ifndef TERN_CACHE_STORE_H
#define TERN_CACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct strbuf;

#define CACHE_KEY_MAX 250          /* memcached's own key limit */
#define CACHE_VALUE_MAX 4096       /* the largest value a caller stores */
#define CACHE_LINE_MAX 512         /* a status or header line of a reply */

struct cache_store;

/* Whether spec names a shared cache ("memcache:..." or "redis:..."). */
bool cache_store_shared(const char *spec);

/* Open the cache spec names for what (the parameter, for messages): the
 * configuration file is read and the server's address resolved now (as
 * root, before a chroot); the connection is made at the first use. NULL
 * with the reason in err. After a failure the server is not asked for
 * retry_pause seconds, doubled with each further failure in a row (at
 * most a minute); lookups meanwhile miss. */
struct cache_store *cache_store_open(const char *spec, const char *what, struct strbuf *err);
void cache_store_close(struct cache_store *cs);
/* A process that serves many clients from one event loop (postscreen,
 * verify) caps each request's whole wait at ms: a slow or dead server
 * must not hold all its clients for the file's timeout (seconds). */
#define CACHE_EVENT_LOOP_WAIT_MS 300
void cache_store_limit_wait(struct cache_store *cs, long ms);
/* cache_store_open for such a process, with the wait capped at
 * CACHE_EVENT_LOOP_WAIT_MS; NULL after a warning that the cache is kept
 * in the process's memory only. */
struct cache_store *cache_store_open_event_loop(const char *spec, const char *what);
const char *cache_store_name(const struct cache_store *cs);

/* The value of key into value (size bytes, NUL-terminated): 1 found, 0
 * not found, -1 the server failed (the caller takes it as not found). A
 * value that does not fit is not found. */
int cache_store_get(struct cache_store *cs, const char *key, char *value, size_t size);
/* Store value under key for ttl seconds (capped by the file's ttl when it
 * sets one): 0, or -1 when the server failed. */
int cache_store_put(struct cache_store *cs, const char *key, const char *value, long ttl);
/* Remove key: 0 (also when it was not there), -1 when the server failed. */
int cache_store_del(struct cache_store *cs, const char *key);

/* ---- the reply parsers (cache_reply.c), strict and bounded ---- */

enum cache_reply_kind {
    CACHE_REPLY_STATUS,        /* RESP +text; memcache STORED, DELETED, NOT_FOUND, ... */
    CACHE_REPLY_ERROR,         /* RESP -text; memcache ERROR, CLIENT_ERROR, SERVER_ERROR */
    CACHE_REPLY_INTEGER,       /* RESP :number */
    CACHE_REPLY_VALUE,         /* RESP $N bulk string; memcache VALUE ... END */
    CACHE_REPLY_NIL,           /* RESP $-1; memcache END alone */
};

struct cache_reply {
    enum cache_reply_kind kind;
    const char *data;          /* into the parsed buffer: the text, or the value */
    size_t len;
    long long number;          /* CACHE_REPLY_INTEGER */
    const char *key;           /* memcache VALUE: the key it names */
    size_t key_len;
};

/* One reply at the start of buf[0..len): the number of bytes it takes
 * (> 0) with *r filled, 0 when it is not complete yet, -1 when it is
 * malformed or larger than value_max (a value) or CACHE_LINE_MAX (a line):
 * the connection is then of no further use. */
long cache_resp_parse(const char *buf, size_t len, size_t value_max, struct cache_reply *r);
long cache_memcache_parse(const char *buf, size_t len, size_t value_max, struct cache_reply *r);

/* ---- the local file store (cache_file.c) ---- */

/* Writes every entry of the cache, one line each. */
typedef void (*cache_file_writer)(FILE *fp, void *ctx);
/* Takes one line back (without its newline): false when it is malformed. */
typedef bool (*cache_file_reader)(char *line, void *ctx);

/* Save the cache as the file name inside the folder dir_fd (AT_FDCWD: name
 * is a path): written by fn as name.tmp (0600, no link followed), flushed
 * to disk and renamed over name, so that a crash leaves the old file or
 * the new one. 0, or -1 after the warning "what: cannot save NAME: ERROR". */
int cache_file_save(int dir_fd, const char *name, const char *what, cache_file_writer fn,
                    void *ctx);
/* Read the file back line by line into fn: empty lines and '#' comments
 * are skipped, a line longer than line_max counts as malformed; malformed
 * lines are skipped with one warning that counts them. A missing file is
 * an empty cache; one that cannot be read is warned about. */
void cache_file_load(int dir_fd, const char *name, const char *what, size_t line_max,
                     cache_file_reader fn, void *ctx);

#endif
