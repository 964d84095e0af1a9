/* tern_sendmail.c: how `tern` commands mail what they make (`tern report
 * --mail`, `tern quarantine digest --mail`): the message handed to
 * command_directory/sendmail, as every local program submits mail. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "strbuf.h"
#include "tern.h"
#include "util.h"

#define ADDRESS_MAX 320

bool tern_sendmail_address_ok(const char *a)
{
    return *a && *a != '-' && strlen(a) <= ADDRESS_MAX && str_printable(a, ADDRESS_MAX)
           && !strpbrk(a, " \t<>\"\\,;");
}

int tern_sendmail(const char *what, const char *const *rcpts, size_t n, const struct strbuf *msg)
{
    if (n == 0 || n > TERN_SENDMAIL_RCPTS_MAX)
        return 1;
    struct strbuf prog = STRBUF_INIT(0);
    sb_appendf(&prog, "%s/sendmail", cfg_str(P_command_directory));
    const char **argv = xmalloc((n + 8) * sizeof(*argv));
    size_t k = 0;
    argv[k++] = prog.data;
    argv[k++] = "-C";
    argv[k++] = cfg_confdir();
    argv[k++] = "-i";
    argv[k++] = "--";
    for (size_t i = 0; i < n; i++)
        argv[k++] = rcpts[i];
    argv[k] = NULL;
    int fds[2], rc = 1;
    if (pipe(fds) < 0) {
        fprintf(stderr, "tern %s: pipe: %s\n", what, strerror(errno));
        goto out;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[0], 0);
        close(fds[0]);
        close(fds[1]);
        execv(prog.data, (char *const *)argv);
        fprintf(stderr, "tern %s: cannot run %s: %s (command_directory)\n", what, prog.data,
                strerror(errno));
        _exit(127);
    }
    close(fds[0]);
    if (pid < 0) {
        fprintf(stderr, "tern %s: fork: %s\n", what, strerror(errno));
        close(fds[1]);
        goto out;
    }
    /* a sendmail that ends early must not take this process with SIGPIPE */
    struct sigaction ign = { .sa_handler = SIG_IGN }, old;
    sigaction(SIGPIPE, &ign, &old);
    bool written = write_all(fds[1], msg->data, msg->len) == (ssize_t)msg->len;
    close(fds[1]);
    sigaction(SIGPIPE, &old, NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (written && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        rc = 0;
    else if (!(WIFEXITED(status) && WEXITSTATUS(status) == 127))
        fprintf(stderr, "tern %s: %s did not take the message (exit status %d)\n", what, prog.data,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
out:
    free(argv);
    sb_free(&prog);
    return rc;
}
