/* smtpd_milter.h: smtpd's use of smtpd_milters (smtpd_milter.c): the hooks
 * the SMTP commands call. Each *_wait function returns false to go on at
 * once, or true when the milters took the command over: the session reads
 * no input until they answer, and then the continuation the command passed
 * (the command itself) runs again and this time passes, or the milters'
 * reply is sent. */
#ifndef TERN_SMTPD_MILTER_H
#define TERN_SMTPD_MILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "smtp_command.h"

struct smtpd_session;

void smtpd_milter_init(void);
bool smtpd_milter_enabled(void);
/* Before the greeting: the connect event. */
bool smtpd_milter_connect_wait(struct smtpd_session *s, void (*next)(struct smtpd_session *s));
/* A milter rejected the connection or HELO: answer every command (true). */
bool smtpd_milter_command_denied(struct smtpd_session *s, enum smtp_verb v);
bool smtpd_milter_helo_wait(struct smtpd_session *s, char *name, bool ehlo,     /* takes name on true */
                            void (*next)(struct smtpd_session *s, char *name, bool ehlo));
bool smtpd_milter_mail_wait(struct smtpd_session *s, void (*next)(struct smtpd_session *s));
bool smtpd_milter_rcpt_wait(struct smtpd_session *s, const char *arg, const struct smtp_rcpt_args *r,
                            void (*next)(struct smtpd_session *s, const char *arg));
bool smtpd_milter_data_wait(struct smtpd_session *s, void (*next)(struct smtpd_session *s));
/* The first BDAT: the DATA event; next gets code 0 when the milters passed
 * it, else their refusal. */
bool smtpd_milter_bdat_wait(struct smtpd_session *s,
                            void (*next)(struct smtpd_session *s, int code, const char *text));
/* An unknown command: the milters may answer it with their own reply;
 * otherwise it gets "500 5.5.2 Error: command not recognized". */
bool smtpd_milter_unknown_wait(struct smtpd_session *s, const char *line, size_t len);

/* The content of this message is spooled for the milters (a file in tmp/)
 * instead of being streamed to cleanup; it goes to cleanup once they have
 * edited it. content_add: -1 when the message is too big (a spool file
 * that cannot be written is reported at the end of data instead). */
bool smtpd_milter_holds_content(struct smtpd_session *s);
int smtpd_milter_content_add(struct smtpd_session *s, const char *data, size_t len);
/* End of data: run the content phase; done gets the verdict (enum
 * milter_verdict, lib/milter/milter.h). */
void smtpd_milter_eod(struct smtpd_session *s,
                      void (*done)(struct smtpd_session *s, int verdict, int code, const char *text));
/* The milters passed the message: the edited message goes to cleanup in
 * pieces (content_next: at most size bytes, *len 0 at the end; -1 when
 * the spool file cannot be read). */
bool smtpd_milter_has_result(struct smtpd_session *s);
int smtpd_milter_content_next(struct smtpd_session *s, char *buf, size_t size, size_t *len);
/* A milter asked for the hold queue; the reason is logged with the queue ID. */
bool smtpd_milter_holding(struct smtpd_session *s);
/* "milter: REASON" for the hold_reason attribute, or NULL. */
const char *smtpd_milter_hold_reason(struct smtpd_session *s);
void smtpd_milter_queued(struct smtpd_session *s, const char *queue_id);

void smtpd_milter_mail_reset(struct smtpd_session *s);
void smtpd_milter_session_end(struct smtpd_session *s);

#endif
