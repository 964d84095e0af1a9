/* flush.c: the flush service, which makes deferred mail for one domain due
 * at once when a client asks with ETRN (RFC 1985), like Postfix's flush(8)
 * for ETRN. smtpd runs unprivileged, chrooted and without the right to
 * touch the queue, so it asks this service over private/flush (mail_owner
 * only): {request=send_site, site=DOMAIN} (lib/global/flush_proto.h;
 * doc/PROTOCOLS.md). A domain that fast_flush_domains does not list is
 * refused (FLUSH_STAT_DENY: smtpd answers 459); one it lists is answered
 * FLUSH_STAT_OK at once, then every message in deferred/ with a recipient
 * still to be delivered in that domain is made due now and qmgr is woken,
 * exactly as `tern flush --domain` does it (lib/global/queue_flush.h).
 * Postfix keeps a log file per domain to find those messages; here the
 * deferred queue is read instead, so there is nothing to refresh or purge. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "address.h"
#include "attr.h"
#include "config.h"
#include "flush_proto.h"
#include "log.h"
#include "match_list.h"
#include "queue_flush.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

#define FLUSH_TIMEOUT 30          /* seconds for the request and the reply */

static struct match_list *flush_domains;   /* NULL: fast_flush_domains cannot be used */

/* As root, before any chroot: the list's files and tables are opened
 * while they can be read. */
static void flush_pre_init(void)
{
    struct strbuf err = STRBUF_INIT(4096);
    flush_domains = match_list_open("fast_flush_domains", cfg_str(P_fast_flush_domains),
                                    MATCH_DOMAINS, MATCH_F_PARENT, &err);
    if (!flush_domains)
        msg_warn("main.cf: %s; ETRN is answered 458 until it is fixed (tern check)", sb_str(&err));
    sb_free(&err);
}

/* The site of a request: a domain name or an address literal, at most
 * ADDRESS_DOMAIN_MAX bytes; lower case without a trailing dot (malloc'd),
 * or NULL. */
static char *site_domain(const char *site)
{
    size_t n = strlen(site);
    if (n == 0 || n > ADDRESS_DOMAIN_MAX || !address_domain_valid(site, n, false))
        return NULL;
    return address_domain_normalize(site);
}

static enum flush_status site_status(const char *domain)
{
    if (!flush_domains) {
        msg_warn("fast_flush_domains cannot be used (see the warning at start-up): "
                 "ETRN %s is not served", domain);
        return FLUSH_STAT_FAIL;
    }
    int rc = match_list_domain(flush_domains, domain);
    if (rc < 0) {
        msg_warn("fast_flush_domains: lookup of %s failed; ETRN for it is not served now", domain);
        return FLUSH_STAT_FAIL;
    }
    return rc ? FLUSH_STAT_OK : FLUSH_STAT_DENY;
}

static void send_status(int fd, enum flush_status status)
{
    struct strbuf out = STRBUF_INIT(FLUSH_FRAME_LIMIT);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_int(&w, "status", status);
    if (attr_end(&w) < 0 || attr_write(fd, &out, FLUSH_TIMEOUT) < 0)
        msg_warn("cannot send the answer to a client: it went away");
    sb_free(&out);
}

static void flush_serve(int fd)
{
    struct strbuf in = STRBUF_INIT(FLUSH_FRAME_LIMIT);
    struct attr_reader r;
    const char *request, *site;
    if (attr_send_protocol(fd, FLUSH_PROTOCOL, FLUSH_TIMEOUT) < 0
        || attr_read(fd, &in, FLUSH_FRAME_LIMIT, FLUSH_TIMEOUT) < 0
        || attr_reader_init(&r, in.data, in.len) < 0
        || attr_get_str(&r, "request", &request) < 0
        || attr_get_str(&r, "site", &site) < 0
        || attr_reader_done(&r) < 0) {
        msg_warn("malformed request from a client; closing its connection");
        sb_free(&in);
        return;
    }
    char *domain = strcmp(request, FLUSH_REQ_SEND_SITE) == 0 ? site_domain(site) : NULL;
    if (!domain) {
        msg_warn("bad request from a client: %.20s %.100s", request, site);
        send_status(fd, FLUSH_STAT_BAD);
        sb_free(&in);
        return;
    }
    enum flush_status status = site_status(domain);
    /* "Queuing started" (RFC 1985): the client need not wait for the scan */
    send_status(fd, status);
    if (status == FLUSH_STAT_OK) {
        size_t flushed = 0, failed = 0;
        queue_flush_domain(domain, &flushed, &failed);
        msg_info("flush %s: %zu deferred message%s made due now%s", domain, flushed,
                 flushed == 1 ? "" : "s", failed ? " (some could not be; see above)" : "");
        if (queue_wake_qmgr("deferred") < 0)
            msg_warn("cannot wake qmgr; the messages wait for its next scan of deferred/");
    }
    free(domain);
    sb_free(&in);
}

SERVER_MAIN("flush", .mode = SERVER_SINGLE, .serve = flush_serve, .pre_init = flush_pre_init)
