/* tern.c: the `tern` command: one program with subcommands for everything an
 * administrator does from the shell; `tern [-c CONFDIR] COMMAND [ARGS]`. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "strbuf.h"
#include "tern.h"
#include "util.h"

const char *tern_confdir;

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    { "start", tern_cmd_start, "start the mail system" },
    { "stop", tern_cmd_stop, "stop the mail system gracefully" },
    { "abort", tern_cmd_abort, "stop the mail system at once (SIGKILL to master)" },
    { "reload", tern_cmd_reload, "re-read main.cf and master.cf without dropping the queue" },
    { "status", tern_cmd_status, "tell whether the mail system is running" },
    { "check", tern_cmd_check, "check configuration, daemon programs and queue permissions" },
    { "init", tern_cmd_init, "create a self-contained instance in a directory" },
    { "setup", tern_cmd_setup, "create the mail_owner account, groups and directories" },
    { "queue", tern_cmd_queue, "list the queue like mailq (--json, filters)" },
    { "show", tern_cmd_show, "print a queued message: envelope, recipients, content" },
    { "why", tern_cmd_why, "why a message is still queued: each attempt and the next one" },
    { "flush", tern_cmd_flush, "deliver deferred mail now (all, IDs, or a domain)" },
    { "delete", tern_cmd_delete, "remove messages from the queue" },
    { "hold", tern_cmd_hold, "keep messages from delivery" },
    { "release", tern_cmd_release, "let held messages be delivered" },
    { "requeue", tern_cmd_requeue, "route messages again through the queue manager" },
    { "conf", tern_cmd_conf, "print main.cf parameters, edit main.cf, print master.cf (postconf)" },
    { "tlsrpt", tern_cmd_tlsrpt, "send the daily SMTP TLS reports (RFC 8460), or show them" },
    { "map", tern_cmd_map, "build a lookup table, or query one (postmap)" },
    { "aliases", tern_cmd_aliases, "rebuild the alias tables of alias_database (newaliases)" },
    { "report", tern_cmd_report, "summarize the log and the queue: text, HTML, or mailed" },
    { "verify", tern_cmd_verify, "show the address verification cache of addresses (or probe them)" },
    { "quarantine", tern_cmd_quarantine, "list, show, release or delete quarantined mail; digests" },
    { "lists", tern_cmd_lists, "show or change a user's allow and deny lists of senders" },
};

static void usage(FILE *fp)
{
    fprintf(fp, "usage: tern [-c CONFDIR] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(fp, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(fp, "\n`tern COMMAND --help` describes one command.\n");
}

void tern_load_config(void)
{
    struct strbuf err = STRBUF_INIT(4096);
    if (cfg_load(tern_confdir, &err) < 0) {
        fprintf(stderr, "tern: %s\n", sb_str(&err));
        exit(1);
    }
    sb_free(&err);
}

pid_t tern_master_pid(void)
{
    struct strbuf path = STRBUF_INIT(4096);
    sb_appendf(&path, "%s/master.pid", cfg_str(P_data_directory));
    pid_t pid = lock_holder_pid(path.data);
    sb_free(&path);
    return pid;
}

int tern_run(const char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "tern: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool tern_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

int tern_action_start(int argc, char **argv, const char *usage, int min)
{
    if (tern_help(argc, argv, usage))
        return 0;
    if (argc < min) {
        fputs(usage, stderr);
        return 2;
    }
    return -1;
}

bool tern_help(int argc, char **argv, const char *usage)
{
    if (!tern_wants_help(argc, argv))
        return false;
    fputs(usage, stdout);
    return true;
}

void tern_no_arguments(int argc, char **argv, const char *usage, const char *note)
{
    if (tern_help(argc, argv, usage))
        exit(0);
    if (argc > 1) {
        fprintf(stderr, "tern: %s takes no arguments%s\n", argv[0], note);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    int c;
    command_start("tern", 1);
    /* getopt would take "--help" for a bundle of unknown short options */
    while (!(optind < argc && strcmp(argv[optind], "--help") == 0) &&
           (c = getopt(argc, argv, "+c:vh")) != -1) {
        switch (c) {
        case 'c': tern_confdir = optarg; break;
        case 'v': msg_verbose++; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[optind], "--help") == 0 || strcmp(argv[optind], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[optind], commands[i].name) == 0) {
            optind++;
            /* subcommands see argv[0] = their name */
            return commands[i].fn(argc - optind + 1, argv + optind - 1);
        }
    fprintf(stderr, "tern: unknown command \"%s\"\n", argv[optind]);
    usage(stderr);
    return 2;
}
