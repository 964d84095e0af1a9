/* tern-mailq.c: tern-mailq, the set-group-ID (setgid_group) program
 * through which a user who is not root lists the queue: `tern queue`,
 * mailq and sendmail -bp run it for them. It connects to public/showq,
 * which only the setgid_group may reach, sends the filters of its command
 * line and copies the listing to its standard output. It reads no queue
 * file itself, so the group gives the caller nothing but the listing. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "config.h"
#include "log.h"
#include "mail_owner.h"
#include "queue.h"
#include "queue_scan.h"
#include "setgid_config.h"
#include "strbuf.h"
#include "util.h"

#define MAILQ_TIMEOUT 30
#define MAILQ_ARG_LIMIT 1024
#define MAILQ_REPLY_LIMIT 1024

static void __attribute__((noreturn)) usage(void)
{
    fprintf(stderr, "usage: tern-mailq [-c CONFDIR] [--json] [--sender ADDR] [--recipient ADDR] "
            "[--domain DOMAIN] [--state STATE]\n  (run by tern queue, mailq and sendmail -bp)\n");
    exit(2);
}

static const char *bounded(const char *arg)
{
    if (strlen(arg) > MAILQ_ARG_LIMIT) {
        fprintf(stderr, "tern-mailq: argument longer than %d bytes\n", MAILQ_ARG_LIMIT);
        exit(2);
    }
    return arg;
}

/* Copy the listing to stdout until the server closes; a server that stalls
 * for MAILQ_TIMEOUT seconds ends it with an error. */
static int copy_listing(int fd)
{
    char buf[8192];
    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        int rc = poll(&p, 1, MAILQ_TIMEOUT * 1000);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
            return -1;
    }
}

int main(int argc, char **argv)
{
    const char *confdir = NULL, *sender = "", *recipient = "", *domain = "", *state = "";
    int json = 0, c;
    command_start("tern-mailq", 1);
    while ((c = getopt_long(argc, argv, "c:", queue_filter_options, NULL)) != -1) {
        switch (c) {
        case 'c': confdir = bounded(optarg); break;
        case 's': sender = bounded(optarg); break;
        case 'r': recipient = bounded(optarg); break;
        case 'd': domain = bounded(optarg); break;
        case 'q': state = bounded(optarg); break;
        case 'j': json = 1; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    struct strbuf err = STRBUF_INIT(4096);
    if (setgid_config_enter(confdir, &err) != SETGID_CONFIG_OK) {
        fprintf(stderr, "tern-mailq: %s\n", sb_str(&err));
        return 1;
    }
    /* public/ is mail_owner's: root connects with mail_owner's ids */
    int fd = mail_owner_connect(QDIR_PUBLIC "/showq", MAILQ_TIMEOUT);
    if (fd < 0 && (errno == EACCES || errno == EPERM) && getuid() != 0) {
        fprintf(stderr, "tern queue: permission denied: only root and the group %s may list the "
                "queue (tern-mailq should be set-group-ID %s: run tern setup)\n",
                cfg_str(P_setgid_group), cfg_str(P_setgid_group));
        return 1;
    }
    if (fd < 0) {
        fprintf(stderr, "tern queue: cannot reach the showq service (%s): while Tern is stopped "
                "only root can list the queue\n", strerror(errno));
        return 1;
    }
    struct strbuf out = STRBUF_INIT(MAILQ_REPLY_LIMIT * 8);
    struct attr_writer w;
    attr_begin(&w, &out);
    attr_put_int(&w, "json", json);
    attr_put_strs(&w, "sender", sender, "recipient", recipient, "domain", domain, "state", state,
                  (char *)NULL);
    if (attr_end(&w) < 0 || attr_expect_protocol(fd, "showq", MAILQ_REPLY_LIMIT, MAILQ_TIMEOUT) < 0
        || attr_write(fd, &out, MAILQ_TIMEOUT) < 0 || copy_listing(fd) < 0) {
        fprintf(stderr, "tern queue: the showq service did not answer\n");
        return 1;
    }
    close(fd);
    sb_free(&out);
    sb_free(&err);
    return fflush(stdout) == 0 ? 0 : 1;
}
