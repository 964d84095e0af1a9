/* showq.c: the showq service, which lists the queue to users who may not
 * read it, like Postfix's showq(8). It listens on public/showq (reachable
 * by the setgid_group only, so through the set-group-ID tern-mailq), runs
 * as mail_owner, and answers one request per connection: after the
 * protocol name "showq" the client sends {json, sender, recipient,
 * domain, state} (all optional; doc/PROTOCOLS.md) and gets the listing of
 * lib/global/mailq.c as plain text, then end of file. Only envelopes and delay
 * reasons are shown, never message contents. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "mailq.h"
#include "server.h"
#include "strbuf.h"
#include "util.h"

#define SHOWQ_REQUEST_LIMIT 8192
#define SHOWQ_TIMEOUT 30        /* seconds for the request, and per write */
#define SHOWQ_ARG_LIMIT 1024

/* An optional filter attribute: NULL when absent or empty; -1 when bad. */
static int filter_arg(struct attr_reader *r, const char *name, const char **out)
{
    const char *v = NULL;
    if (attr_opt_str(r, name, &v) < 0)
        return -1;
    if (v && strlen(v) > SHOWQ_ARG_LIMIT)
        return -1;
    *out = v && *v ? v : NULL;
    return 0;
}

static void showq_serve(int fd)
{
    struct strbuf in = STRBUF_INIT(SHOWQ_REQUEST_LIMIT);
    struct attr_reader r;
    struct queue_filter f = { .state = -1 };
    const char *state = NULL;
    long long json = 0;
    if (attr_send_protocol(fd, "showq", SHOWQ_TIMEOUT) < 0
        || attr_read(fd, &in, SHOWQ_REQUEST_LIMIT, SHOWQ_TIMEOUT) < 0
        || attr_reader_init(&r, in.data, in.len) < 0
        || attr_get_int(&r, "json", 0, 1, &json) < 0
        || filter_arg(&r, "sender", &f.sender) < 0
        || filter_arg(&r, "recipient", &f.recipient) < 0
        || filter_arg(&r, "domain", &f.domain) < 0
        || filter_arg(&r, "state", &state) < 0
        || attr_reader_done(&r) < 0
        || (state && (f.state = queue_state_parse(state)) < 0)) {
        msg_warn("malformed request from a client; closing its connection");
        sb_free(&in);
        return;
    }
    /* a client that stops reading costs at most SHOWQ_TIMEOUT per write */
    struct timeval tv = { SHOWQ_TIMEOUT, 0 };
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int out_fd = dup(fd);
    FILE *out = out_fd >= 0 ? fdopen(out_fd, "w") : NULL;
    if (!out) {
        msg_warn("cannot write the listing: %m");
        if (out_fd >= 0)
            close(out_fd);
    } else {
        if (mailq_print(out, &f, json != 0) < 0)
            msg_warn("listing cut short: the client went away or stopped reading");
        fclose(out);
    }
    sb_free(&in);
}

SERVER_MAIN("showq", .mode = SERVER_SINGLE, .serve = showq_serve)
