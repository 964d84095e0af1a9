/* received_header.c: the Received: header (received_header.h). A pure
 * function: no configuration, no I/O. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "received_header.h"

/* Received: must stay one header: no line breaks from the envelope. */
static const char *received_word(const char *s)
{
    return s && *s && !strpbrk(s, "\r\n") ? s : NULL;
}

int received_header_append(struct strbuf *out, const struct received_info *ri)
{
    const char *helo = received_word(ri->helo_name);
    const char *name = received_word(ri->client_name);
    const char *addr = received_word(ri->client_addr);
    const char *proto = received_word(ri->protocol);
    const char *uid = received_word(ri->uid);
    const char *tls = received_word(ri->tls);
    const char *tls_client = received_word(ri->tls_client);
    const char *rcpt = received_word(ri->rcpt);
    int rc = sb_appends(out, "Received: ");
    if (addr) {
        bool v6 = strchr(addr, ':') && strncasecmp(addr, "IPv6:", 5) != 0;
        rc |= sb_appendf(out, "from %s (%s [%s%s])\n\t", helo ? helo : name ? name : "unknown",
                         name ? name : "unknown", v6 ? "IPv6:" : "", addr);
    } else if (helo) {
        rc |= sb_appendf(out, "from %s\n\t", helo);
    }
    if (tls && (addr || helo))
        rc |= sb_appendf(out, "(using %s)\n\t(%s)\n\t", tls,
                         tls_client ? tls_client : "No client certificate requested");
    rc |= sb_appendf(out, "by %s (%s%s%s)", ri->hostname, ri->mail_name,
                     uid ? ", from userid " : "", uid ? uid : "");
    if (addr || helo)
        rc |= sb_appendf(out, " with %s", proto ? proto : "SMTP");
    if (ri->queue_id)
        rc |= sb_appendf(out, addr || helo ? " id %s" : "\n\tid %s", ri->queue_id);
    if (rcpt)
        rc |= sb_appendf(out, "\n\tfor <%s>", rcpt);
    rc |= sb_appendf(out, "; %s\n", ri->date);
    return rc ? -1 : 0;
}
