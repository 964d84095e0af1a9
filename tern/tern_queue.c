/* tern_queue.c: what the queue commands of `tern` share: the filters of
 * the command line, entering queue_directory, JSON lines on stdout, and
 * the wake-up sent to qmgr (requests to qmgr about one message are
 * lib/global/queue_admin.c). Reading the queue is lib/global/queue_scan.c. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "queue_flush.h"
#include "server.h"
#include "strbuf.h"
#include "tern.h"
#include "tern_queue.h"
#include "util.h"

/* ---- options and filters ---- */

int tern_queue_options(int argc, char **argv, struct queue_filter *f, bool *json, int *first)
{
    *f = (struct queue_filter){ .state = -1 };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+s:r:d:q:j", queue_filter_options, NULL)) != -1) {
        switch (c) {
        case 's': f->sender = optarg; break;
        case 'r': f->recipient = optarg; break;
        case 'd': f->domain = optarg; break;
        case 'q':
            f->state = queue_state_parse(optarg);
            if (f->state < 0) {
                fprintf(stderr, "tern %s: unknown state \"%s\" (incoming, active, deferred or hold)\n",
                        argv[0], optarg);
                return -1;
            }
            break;
        case 'j':
            if (!json)
                goto bad;
            *json = true;
            break;
        default:
        bad:
            fprintf(stderr, "tern %s: unknown option %s (see tern %s --help)\n", argv[0],
                    argv[optind - 1], argv[0]);
            return -1;
        }
    }
    *first = optind;
    return 0;
}

/* ---- the queue directories ---- */

void tern_queue_enter(void)
{
    tern_load_config();
    /* what tern does to the queue is logged where the daemons log */
    cfg_log_configure();
    const char *qdir = cfg_str(P_queue_directory);
    if (chdir(qdir) < 0) {
        fprintf(stderr, "tern: cannot enter the queue directory %s: %s\n", qdir, strerror(errno));
        exit(1);
    }
    for (int s = 0; s < QS_COUNT; s++)
        if (access(queue_state_dir(s), R_OK | X_OK) < 0) {
            if (errno == EACCES)
                fprintf(stderr, "tern: %s/%s: permission denied: the queue is readable only "
                        "by root and %s\n", qdir, queue_state_dir(s), cfg_str(P_mail_owner));
            else
                fprintf(stderr, "tern: %s/%s: %s (has Tern been started once?)\n", qdir,
                        queue_state_dir(s), strerror(errno));
            exit(1);
        }
    /* The queue belongs to mail_owner, who can put a link or anything else
     * under any name in it: root works there only as mail_owner, so what
     * is done by name can never reach further than mail_owner could. */
    if (geteuid() == 0 || getuid() == 0)
        drop_privileges(cfg_str(P_mail_owner));
}

/* ---- qmgr ---- */

bool tern_queue_tern_running(void)
{
    return tern_master_pid() > 0;
}

void tern_queue_wake_qmgr(const char *queue)
{
    if (tern_queue_tern_running())
        (void)queue_wake_qmgr(queue);
}

void tern_queue_log(const char *fmt, ...)
{
    va_list ap;
    log_to_stderr(0);
    va_start(ap, fmt);
    msg_vlog(LOG_INFO, fmt, ap);
    va_end(ap);
    log_to_stderr(1);
}

/* ---- JSON ---- */

void tern_json_print(struct strbuf *out)
{
    sb_appendc(out, '\n');
    fwrite(out->data, 1, out->len, stdout);
    sb_free(out);
}
