/* flush_proto.h: the request smtpd sends the flush service for ETRN
 * (flush/flush.c; doc/PROTOCOLS.md): after the server's {protocol=flush}
 * the client sends {request=send_site, site=DOMAIN} and gets
 * {status=FLUSH_STAT_*} back, one request per connection. The status
 * values are Postfix's flush(8) ones. */
#ifndef TERN_FLUSH_PROTO_H
#define TERN_FLUSH_PROTO_H

#define FLUSH_PROTOCOL "flush"
#define FLUSH_REQ_SEND_SITE "send_site"
#define FLUSH_SOCKET "private/flush"    /* relative to queue_directory */
#define FLUSH_FRAME_LIMIT 1024          /* either way */

enum flush_status {
    FLUSH_STAT_OK = 0,      /* deferred mail for the site is made due now */
    FLUSH_STAT_FAIL = 1,    /* fast_flush_domains could not be looked up */
    FLUSH_STAT_BAD = 3,     /* malformed request or site name */
    FLUSH_STAT_DENY = 4,    /* the site is not in fast_flush_domains */
};

#endif
