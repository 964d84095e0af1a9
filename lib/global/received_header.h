/* received_header.h: the Received: header a server that takes mail in
 * writes first into a message (cleanup for queued mail, smtpd in front of
 * a before-queue proxy filter): one formatter so both say the same. */
#ifndef TERN_RECEIVED_HEADER_H
#define TERN_RECEIVED_HEADER_H

#include "strbuf.h"

/* What the Received: header says. NULL members are unknown and left out. */
struct received_info {
    const char *helo_name, *client_name, *client_addr;
    const char *protocol;      /* SMTP, ESMTP, ... */
    const char *tls;           /* "TLSv1.3 with cipher ... (256/256 bits)", or NULL */
    const char *tls_client;    /* "Client CN ..., Issuer ... (verified OK)", or NULL */
    const char *hostname;      /* our own name */
    const char *mail_name;     /* "Tern" */
    const char *uid;           /* local submissions: "from userid N" */
    const char *queue_id;      /* NULL: no queue file yet (a proxy filter takes the message) */
    const char *rcpt;          /* the recipient when there is exactly one */
    const char *date;
};
/* Append the complete "Received: ...\n" header (folded with tabs). */
int received_header_append(struct strbuf *out, const struct received_info *ri);

#endif
