/* tern_control.c: start, stop, abort, reload and status: the commands that
 * drive master through its pid/lock file and signals. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "strbuf.h"
#include "tern.h"
#include "util.h"

static int simple_usage(int argc, char **argv, const char *text)
{
    struct strbuf usage = STRBUF_INIT(1024);
    sb_appendf(&usage, "usage: tern [-c CONFDIR] %s\n  %s\n", argv[0], text);
    tern_no_arguments(argc, argv, sb_str(&usage), "");
    sb_free(&usage);
    tern_load_config();
    return 0;
}

/* Wait until master's lock is released (bounded). */
static bool wait_gone(int seconds)
{
    for (int i = 0; i < seconds * 10; i++) {
        if (tern_master_pid() == 0)
            return true;
        usleep(100000);
    }
    return false;
}

/* master forks, and its parent exits once the child holds the lock and
 * listens; still, wait (bounded) until the lock shows a live master. */
static int run_master(const char *program)
{
    if (access(program, X_OK) < 0) {
        fprintf(stderr, "tern: cannot run %s: %s (check daemon_directory in %s/main.cf)\n",
                program, strerror(errno), cfg_confdir());
        return 1;
    }
    const char *args[] = { program, "-c", cfg_confdir(), NULL };
    if (tern_run(args) != 0) {
        fprintf(stderr, "tern: the mail system did not start\n");
        return 1;
    }
    for (int i = 0; i < 100 && tern_master_pid() == 0; i++)
        usleep(100000);
    if (tern_master_pid() == 0) {
        fprintf(stderr, "tern: master exited after start; see the mail log\n");
        return 1;
    }
    return 0;
}

int tern_cmd_start(int argc, char **argv)
{
    simple_usage(argc, argv, "start the mail system (master detaches once it runs)");
    pid_t pid = tern_master_pid();
    if (pid) {
        fprintf(stderr, "tern: the mail system is already running (master pid %ld)\n", (long)pid);
        return 1;
    }
    /* Unknown parameters are warnings: they must be seen, never silently
     * ignored, but a typo in an optional setting need not keep mail down. */
    int warnings;
    int errors = tern_check_config(stderr, false, &warnings);
    if (errors) {
        fprintf(stderr, "tern: the mail system was not started: %d configuration error(s); "
                "see above, or run `tern check`\n", errors);
        return 1;
    }
    struct strbuf master = STRBUF_INIT(4096);
    sb_appendf(&master, "%s/master", cfg_str(P_daemon_directory));
    int rc = run_master(master.data);
    sb_free(&master);
    if (rc == 0)
        printf("tern: the mail system is started\n");
    return rc;
}

static int signal_master(int sig, const char *what)
{
    pid_t pid = tern_master_pid();
    if (!pid) {
        fprintf(stderr, "tern: the mail system is not running\n");
        return 1;
    }
    if (kill(pid, sig) < 0) {
        fprintf(stderr, "tern: cannot signal master pid %ld: %s\n", (long)pid, strerror(errno));
        return 1;
    }
    if (what)
        printf("tern: %s\n", what);
    return 0;
}

int tern_cmd_stop(int argc, char **argv)
{
    simple_usage(argc, argv, "stop the mail system: master ends its daemons and exits");
    if (signal_master(SIGTERM, NULL))
        return 1;
    if (!wait_gone(30)) {
        fprintf(stderr, "tern: master did not stop within 30 seconds; try `tern abort`\n");
        return 1;
    }
    printf("tern: the mail system is stopped\n");
    return 0;
}

int tern_cmd_abort(int argc, char **argv)
{
    simple_usage(argc, argv, "kill master at once; its daemons exit when they notice");
    if (signal_master(SIGKILL, NULL))
        return 1;
    if (!wait_gone(10))
        return 1;
    printf("tern: the mail system is aborted\n");
    return 0;
}

int tern_cmd_reload(int argc, char **argv)
{
    simple_usage(argc, argv, "re-read main.cf and master.cf; running sessions finish first");
    return signal_master(SIGHUP, "refreshing the mail system");
}

int tern_cmd_status(int argc, char **argv)
{
    simple_usage(argc, argv, "exit 0 when the mail system runs, 1 when it does not");
    pid_t pid = tern_master_pid();
    if (pid) {
        printf("tern: the mail system is running: PID: %ld\n", (long)pid);
        return 0;
    }
    printf("tern: the mail system is not running\n");
    return 1;
}
