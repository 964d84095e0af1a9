/* test_spawn.c: unit tests of the spawn daemon's master.cf attributes
 * (user= and argv=, each required, nothing else accepted), of the account
 * checks it shares with pipe (no root, no unknown user or group), and of
 * running a command on a connection: the command talks to the peer on its
 * standard input and output, and is killed at the time limit. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "pipe_command.h"
#include "spawn.h"
#include "util.h"

static int parse(const char *line, struct spawn_attr *a, struct strbuf *err)
{
    char *copy = strdup(line), *words[64];
    int n = 0;
    for (char *w = strtok(copy, " "); w && n < 64; w = strtok(NULL, " "))
        words[n++] = w;
    sb_reset(err);
    int rc = spawn_attr_parse(words, n, a, err);
    free(copy);
    return rc;
}

static void test_attributes(void)
{
    struct spawn_attr a;
    struct strbuf err = STRBUF_INIT(0);
    CHECK(parse("user=nobody argv=/usr/bin/policyd-spf /etc/spf.conf", &a, &err) == 0);
    CHECK_STR(a.user, "nobody");
    CHECK(a.group == NULL);
    CHECK(a.argc == 2);
    CHECK_STR(a.argv[0], "/usr/bin/policyd-spf");
    CHECK_STR(a.argv[1], "/etc/spf.conf");
    CHECK(a.argv[2] == NULL);
    spawn_attr_free(&a);
    /* argv= is last: what follows is the command's, even "user=" */
    CHECK(parse("user=nobody:nogroup argv=/bin/cmd user=root", &a, &err) == 0);
    CHECK_STR(a.group, "nogroup");
    CHECK_STR(a.argv[1], "user=root");
    spawn_attr_free(&a);

    CHECK(parse("argv=/bin/cmd", &a, &err) < 0);
    CHECK(strstr(sb_str(&err), "user= is required") != NULL);
    spawn_attr_free(&a);
    CHECK(parse("user=nobody", &a, &err) < 0);
    CHECK(strstr(sb_str(&err), "argv= is required") != NULL);
    spawn_attr_free(&a);
    CHECK(parse("user=nobody argv=cmd", &a, &err) < 0);
    CHECK(strstr(sb_str(&err), "absolute path") != NULL);
    spawn_attr_free(&a);
    CHECK(parse("user=nobody argv=", &a, &err) < 0);
    spawn_attr_free(&a);
    CHECK(parse("user=nobody flags=R argv=/bin/cmd", &a, &err) < 0);
    CHECK(strstr(sb_str(&err), "unknown attribute \"flags=R\"") != NULL);
    spawn_attr_free(&a);
    CHECK(parse("user=:grp argv=/bin/cmd", &a, &err) < 0);
    spawn_attr_free(&a);
    CHECK(parse("user=nobody: argv=/bin/cmd", &a, &err) < 0);
    spawn_attr_free(&a);
    sb_free(&err);
}

static void test_account(void)
{
    struct strbuf why = STRBUF_INIT(0);
    uid_t uid;
    gid_t gid;
    CHECK(pipe_command_account("root", NULL, &uid, &gid, &why) < 0);
    CHECK(strstr(sb_str(&why), "refusing to run commands as root") != NULL);
    sb_reset(&why);
    CHECK(pipe_command_account("no-such-user-here", NULL, &uid, &gid, &why) < 0);
    CHECK(strstr(sb_str(&why), "no such user") != NULL);
    sb_reset(&why);
    CHECK(pipe_command_account("nobody", NULL, &uid, &gid, &why) == 0);
    CHECK(uid != 0 && gid != 0);
    CHECK(pipe_command_account("nobody", "root", &uid, &gid, &why) < 0);
    CHECK(strstr(sb_str(&why), "group root") != NULL);
    sb_reset(&why);
    CHECK(pipe_command_account("nobody", "no-such-group-here", &uid, &gid, &why) < 0);
    sb_free(&why);
}

static char *const no_env[] = { "PATH=/usr/bin:/bin", NULL };

static void test_connect(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    /* the command answers on the connection: stdin to stdout */
    char *const argv[] = { "/bin/sh", "-c", "read line; echo \"got $line\"", NULL };
    struct pipe_command c = {
        .path = "/bin/sh", .argv = argv, .envp = no_env, .user_name = NULL,
        .uid = getuid(), .gid = getgid(), .time_limit = 10,
    };
    CHECK(write(sv[1], "hello\n", 6) == 6);
    struct pipe_command_status st;
    CHECK(pipe_command_connect(&c, sv[0], &st) == 0);
    CHECK(!st.timed_out && WIFEXITED(st.wstatus) && WEXITSTATUS(st.wstatus) == 0);
    char buf[64] = "";
    ssize_t n = read(sv[1], buf, sizeof(buf) - 1);
    CHECK(n == 10 && memcmp(buf, "got hello\n", 10) == 0);
    close(sv[0]);
    close(sv[1]);

    /* a command that outlives its time limit is killed with its group */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    char *const slow[] = { "/bin/sleep", "30", NULL };
    c.path = "/bin/sleep";
    c.argv = slow;
    c.time_limit = 1;
    time_t t0 = time(NULL);
    CHECK(pipe_command_connect(&c, sv[0], &st) == 0);
    CHECK(st.timed_out && WIFSIGNALED(st.wstatus) && WTERMSIG(st.wstatus) == SIGKILL);
    CHECK(time(NULL) - t0 < 10);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    test_attributes();
    test_account();
    test_connect();
    return check_summary();
}
