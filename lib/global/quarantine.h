/* quarantine.h: the quarantine as its users and administrators see it
 * (quarantine.c): messages in hold/ that a milter or a header or body
 * check held with a reason (the hold_reason attribute, lib/global/QUEUE.md),
 * listed for one recipient or for all, shown, released and deleted. This is
 * the interface `tern quarantine` and the web console both call.
 *
 * Who may do what: a recipient acts only on their own recipient records.
 * When a message has other pending recipients too, releasing it for one
 * user writes a copy for that user's recipients alone into incoming/ (with
 * its own queue ID) and marks them done in the held message, which stays
 * held for the others; deleting it for one user marks that user's
 * recipients done. The held message is removed once no recipient is left.
 * An administrator (recipient NULL) acts on the whole message.
 *
 * The caller's working directory is queue_directory and its effective uid
 * mail_owner (tern_queue_enter, or the console daemon). */
#ifndef TERN_QUARANTINE_H
#define TERN_QUARANTINE_H

#include <stdbool.h>
#include <stddef.h>

#include "queue.h"

struct strbuf;

#define QUARANTINE_SUBJECT_MAX 200   /* bytes of decoded subject kept (UTF-8) */
#define QUARANTINE_HEADER_SCAN (64 * 1024)   /* bytes of the header read to find Subject: */

struct quarantine_entry {
    char id[QUEUE_ID_SIZE];
    const char *sender;          /* envelope sender, "" for <> */
    const char **rcpts;          /* pending recipients (only the user's when filtered) */
    size_t nrcpts;
    size_t nall;                 /* pending recipients of the whole message */
    char subject[QUARANTINE_SUBJECT_MAX + 8];   /* decoded, printable UTF-8 */
    unsigned long long size;     /* bytes of content */
    long long arrival;           /* seconds since the epoch */
    const char *reason;          /* "milter: ...", "header_checks: ..." */
};

/* Call fn for every quarantined message, in arrival order; with recipient
 * set, only those with a pending recipient equal to it (case-insensitive),
 * and e->rcpts holds only those. fn returns 0 to go on. The strings in e
 * live until fn returns. Returns the number of messages given to fn. */
size_t quarantine_list(const char *recipient,
                       int (*fn)(const struct quarantine_entry *e, void *ctx), void *ctx);

/* One quarantined message: fn is called once as in quarantine_list, and
 * its header section (at most QUARANTINE_HEADER_SCAN bytes, made safe by
 * quarantine_printable) is appended to header when not NULL.
 * 0 ok; -1 with the reason in err: not quarantined, or not a recipient. */
int quarantine_show(const char *id, const char *recipient,
                    int (*fn)(const struct quarantine_entry *e, void *ctx), void *ctx,
                    struct strbuf *header, struct strbuf *err);

/* Release (to delivery) or delete the message, for recipient's records or
 * (NULL) wholly. 0 done (err then says what: "released", "released as ID
 * for RECIPIENT"...), -1 with the reason in err. qmgr is woken. */
int quarantine_release(const char *id, const char *recipient, struct strbuf *err);
int quarantine_delete(const char *id, const char *recipient, struct strbuf *err);

/* Delete the quarantined messages that arrived before cutoff (seconds):
 * how many; *failed counts those that could not be removed (logged). */
size_t quarantine_expire(long long cutoff, size_t *failed);

/* The value of a Subject: field (after the colon, folded lines included)
 * decoded for display: RFC 2047 encoded words in UTF-8, US-ASCII or
 * ISO-8859-1 (B and Q) decoded, other charsets left encoded, folding
 * undone, every control character (C0, DEL, C1) and invalid UTF-8 byte
 * made '?', at
 * most QUARANTINE_SUBJECT_MAX bytes (cut on a character boundary, "..."
 * added). out must have room for QUARANTINE_SUBJECT_MAX + 4 bytes. */
void quarantine_subject_decode(const char *in, size_t len, char *out);
/* Append in[0..len) to out as text safe on a terminal or a page: valid
 * UTF-8 without control characters (C0, DEL, C1); TAB becomes a space,
 * everything else not printable '?' (LF kept when lines). At most max
 * bytes are appended, cut on a character; the bytes of in used. */
size_t quarantine_printable(struct strbuf *out, const char *in, size_t len, size_t max, bool lines);

#endif
