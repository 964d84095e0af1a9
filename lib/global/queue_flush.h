/* queue_flush.h: making deferred mail due now and telling qmgr so
 * (queue_flush.c), the one way both `tern flush` and the flush service
 * (ETRN, flush/flush.c) do it. qmgr takes the modification time of a file
 * in deferred/ as the time of its next attempt, so a message is made due
 * by setting that time to now, on a descriptor of the file. The caller's
 * working directory is queue_directory and its effective uid mail_owner. */
#ifndef TERN_QUEUE_FLUSH_H
#define TERN_QUEUE_FLUSH_H

#include <stddef.h>

struct strbuf;

/* Open a queue file outside active/ to set its times: a plain file of this
 * process's effective uid (mail_owner) with one link, reached without
 * following a link. A descriptor, or -1 with errno (ENOENT: it has gone,
 * look again) and "PATH: why" in err. */
int queue_due_open(const char *path, struct strbuf *err);
/* Make the file open on fd due now and close fd: 0, or -1 with errno. */
int queue_due_set(int fd);
/* Both, for a file left where it is: 0, or -1 with errno (and err). */
int queue_flush_file(const char *path, struct strbuf *err);

/* Make due now every message in deferred/ that has a recipient not yet
 * done in domain (the whole domain, case-insensitive: what `tern flush
 * --domain` selects). *flushed counts those made due, *failed those that
 * could not be (each logged). */
void queue_flush_domain(const char *domain, size_t *flushed, size_t *failed);

/* {wakeup=queue} ("incoming", or "deferred": a scan of deferred/ that
 * also gives suspended destinations another chance) to qmgr over
 * public/qmgr, best effort: 0 sent, -1 qmgr could not be reached. */
int queue_wake_qmgr(const char *queue);

#endif
