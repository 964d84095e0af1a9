/* tern_mailq.c: `tern queue` (also `mailq`, `sendmail -bp`): the queue as
 * Postfix's mailq shows it (lib/global/mailq.c). Root reads the queue directly;
 * other users get the same listing from the showq service through the
 * set-group-ID tern-mailq program, as Postfix's postqueue does, so that
 * they see envelopes but never message contents. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "mailq.h"
#include "strbuf.h"
#include "tern.h"
#include "tern_queue.h"
#include "util.h"

/* Run DAEMON_DIRECTORY/tern-mailq with the same filters; its output is ours. */
static int mailq_through_showq(const struct queue_filter *f, bool json)
{
    tern_load_config();
    struct strbuf prog = STRBUF_INIT(0);
    sb_appendf(&prog, "%s/tern-mailq", cfg_str(P_daemon_directory));
    const char *argv[16];
    int n = 0;
    argv[n++] = "tern-mailq";
    if (tern_confdir) {
        argv[n++] = "-c";
        argv[n++] = tern_confdir;
    }
    if (json)
        argv[n++] = "--json";
    if (f->sender) { argv[n++] = "--sender"; argv[n++] = f->sender; }
    if (f->recipient) { argv[n++] = "--recipient"; argv[n++] = f->recipient; }
    if (f->domain) { argv[n++] = "--domain"; argv[n++] = f->domain; }
    if (f->state >= 0) { argv[n++] = "--state"; argv[n++] = queue_state_name(f->state); }
    argv[n] = NULL;
    fflush(stdout);
    execv(prog.data, (char *const *)argv);
    fprintf(stderr, "tern queue: cannot run %s: %s\n", prog.data, strerror(errno));
    return 1;
}

int tern_cmd_queue(int argc, char **argv)
{
    if (tern_help(argc, argv,
                  "usage: tern [-c CONFDIR] queue [--json] [--sender ADDR] [--recipient ADDR]\n"
                  "                              [--domain DOMAIN] [--state STATE]\n"
                  "  list the queued messages like mailq: queue ID (* active, ! on hold), size,\n"
                  "  arrival time, sender, then each recipient still to be delivered, after the\n"
                  "  reason of its last deferral in parentheses.\n"
                  "  --json            one JSON object per message and line (as postqueue -j)\n"
                  "  --sender ADDR     only messages from ADDR (<> for bounces)\n"
                  "  --recipient ADDR  only messages with ADDR among the recipients to deliver\n"
                  "  --domain DOMAIN   only messages with a recipient in DOMAIN to deliver\n"
                  "  --state STATE     incoming, active, deferred or hold\n"))
        return 0;
    struct queue_filter filter;
    bool json = false;
    int first;
    if (tern_queue_options(argc, argv, &filter, &json, &first) < 0)
        return 2;
    if (first < argc) {
        fprintf(stderr, "tern queue: unexpected argument \"%s\" (see tern queue --help)\n", argv[first]);
        return 2;
    }
    if (geteuid() != 0)
        return mailq_through_showq(&filter, json);
    tern_queue_enter();
    return mailq_print(stdout, &filter, json) == 0 ? 0 : 1;
}
