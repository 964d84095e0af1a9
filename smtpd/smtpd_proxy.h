/* smtpd_proxy.h: the before-queue proxy filter (smtpd_proxy_filter,
 * smtpd_proxy.c): when it is set, smtpd hands each message to that SMTP
 * server instead of cleanup, and the filter's answers become smtpd's.
 *
 * Each *_wait function returns false when there is nothing to wait for
 * (no filter, or speed_adjust has not connected yet), or true when the
 * proxy took the command over: the session reads no input (PAUSE_PROXY)
 * until next runs with the filter's reply (code, text; text may hold "\n"
 * between the lines of a multi-line reply). A filter that cannot be
 * reached, times out or answers badly gives 451 4.3.0 instead. */
#ifndef TERN_SMTPD_PROXY_H
#define TERN_SMTPD_PROXY_H

#include <stdbool.h>
#include <stddef.h>

struct smtpd_session;

typedef void (*smtpd_proxy_next)(struct smtpd_session *s, int code, const char *text);

#define SMTPD_PROXY_FAIL_CODE 451
#define SMTPD_PROXY_FAIL_TEXT "4.3.0 Error: queue file write error"

void smtpd_proxy_init(void);
bool smtpd_proxy_enabled(void);

/* MAIL FROM passed smtpd's checks: connect, EHLO, XFORWARD, MAIL FROM
 * (false with speed_adjust: the filter is connected at the end of data). */
bool smtpd_proxy_mail_wait(struct smtpd_session *s, smtpd_proxy_next next);
/* RCPT TO of s->rcpts[i] (false with speed_adjust). */
bool smtpd_proxy_rcpt_wait(struct smtpd_session *s, size_t i, smtpd_proxy_next next);
/* DATA or the first BDAT: next gets 354 once content may follow (false
 * with speed_adjust: the content is spooled at once). */
bool smtpd_proxy_data_wait(struct smtpd_session *s, smtpd_proxy_next next);
/* Content (lines end in LF) as it arrives; the proxy writes it CR LF and
 * dot-stuffed after its own Received: header. */
void smtpd_proxy_send(struct smtpd_session *s, const char *data, size_t len);
/* True while more content waits for the filter than we want to hold
 * (the session pauses with PAUSE_BACKLOG and is resumed when it drains). */
bool smtpd_proxy_backlogged(struct smtpd_session *s);
/* End of data: "." (with speed_adjust: the whole transaction, from the
 * connection on); next gets the filter's final answer. */
void smtpd_proxy_eod(struct smtpd_session *s, smtpd_proxy_next next);
/* The transaction is over (end of data, RSET, QUIT, a refusal, the client
 * left): the filter gets QUIT, or the connection is closed without
 * ending a message that smtpd refused itself. */
void smtpd_proxy_end(struct smtpd_session *s);

#endif
