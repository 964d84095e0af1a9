/* test_verify_proto.c: unit tests of the verify service's protocol
 * (lib/global/verify_proto.h): the query frame, the strict answer decoder
 * against hostile frames, the status names, and the blocking clients of
 * `tern verify` and qmgr against a scripted server on a real UNIX socket
 * (an answer, an update, a wrong greeting, no server). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attr.h"
#include "check.h"
#include "strbuf.h"
#include "util.h"
#include "verify_proto.h"

static void answer_frame(struct strbuf *out, long long status, const char *reason, bool extra)
{
    struct attr_writer w;
    sb_reset(out);
    attr_begin(&w, out);
    attr_put_int(&w, "status", status);
    attr_put_str(&w, "reason", reason);
    attr_put_int(&w, "updated", 1700000000);
    attr_put_int(&w, "probed", 1699999999);
    if (extra)
        attr_put_str(&w, "more", "x");
    attr_end(&w);
}

static void test_frames(void)
{
    struct strbuf out = STRBUF_INIT(VERIFY_FRAME_LIMIT);
    struct attr_reader r;
    const char *s;
    long long v;
    CHECK(verify_encode_query(&out, "User@Example.COM", 1) == 0);
    CHECK(attr_reader_init(&r, out.data, out.len) == 0);
    CHECK(attr_get_str(&r, "request", &s) == 0 && strcmp(s, VERIFY_REQ_QUERY) == 0);
    CHECK(attr_get_str(&r, "address", &s) == 0 && strcmp(s, "User@Example.COM") == 0);
    CHECK(attr_get_int(&r, "probe", 0, 1, &v) == 0 && v == 1);
    CHECK(attr_reader_done(&r) == 0);

    struct verify_answer ans;
    answer_frame(&out, VERIFY_STAT_BOUNCE, "host x said: 550 5.1.1 no", false);
    CHECK(verify_decode_answer(out.data, out.len, &ans) == 0);
    CHECK(ans.status == VERIFY_STAT_BOUNCE);
    CHECK_STR(ans.reason, "host x said: 550 5.1.1 no");
    CHECK(ans.updated == 1700000000 && ans.probed == 1699999999);
    /* hostile answers: a status out of range, a field too many, cut short */
    answer_frame(&out, 4, "", false);
    CHECK(verify_decode_answer(out.data, out.len, &ans) < 0);
    answer_frame(&out, -1, "", false);
    CHECK(verify_decode_answer(out.data, out.len, &ans) < 0);
    answer_frame(&out, 0, "", true);
    CHECK(verify_decode_answer(out.data, out.len, &ans) < 0);
    answer_frame(&out, 0, "ok", false);
    CHECK(verify_decode_answer(out.data, out.len - 3, &ans) < 0);
    CHECK(verify_decode_answer("", 0, &ans) < 0);
    /* a reason longer than the answer keeps is cut, never overrun */
    char *big = xmalloc(VERIFY_REASON_MAX * 2);
    memset(big, 'r', VERIFY_REASON_MAX * 2 - 1);
    big[VERIFY_REASON_MAX * 2 - 1] = 0;
    struct strbuf large = STRBUF_INIT(VERIFY_FRAME_LIMIT * 2);
    answer_frame(&large, 0, big, false);
    CHECK(verify_decode_answer(large.data, large.len, &ans) == 0);
    CHECK(strlen(ans.reason) == VERIFY_REASON_MAX - 1);
    free(big);
    sb_free(&large);
    sb_free(&out);

    CHECK_STR(verify_status_name(VERIFY_STAT_OK), "deliverable");
    CHECK_STR(verify_status_name(VERIFY_STAT_DEFER), "deferred");
    CHECK_STR(verify_status_name(VERIFY_STAT_BOUNCE), "undeliverable");
    CHECK_STR(verify_status_name(VERIFY_STAT_TODO), "unknown");
    CHECK(verify_status_of_delivery(2) == VERIFY_STAT_OK);
    CHECK(verify_status_of_delivery(4) == VERIFY_STAT_DEFER);
    CHECK(verify_status_of_delivery(5) == VERIFY_STAT_BOUNCE);
}

/* A server for one connection: greet with proto, read one request, answer
 * with a frame for status (or nothing when status < 0). */
static pid_t serve_once(int lfd, const char *proto, long long status)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    alarm(10);
    int fd = accept(lfd, NULL, NULL);
    struct strbuf in = STRBUF_INIT(VERIFY_FRAME_LIMIT), out = STRBUF_INIT(VERIFY_FRAME_LIMIT);
    if (fd < 0 || attr_send_protocol(fd, proto, 5) < 0
        || attr_read(fd, &in, VERIFY_FRAME_LIMIT, 5) < 0)
        _exit(1);
    struct attr_reader r;
    const char *req;
    if (attr_reader_init(&r, in.data, in.len) < 0 || attr_get_str(&r, "request", &req) < 0)
        _exit(1);
    if (strcmp(req, VERIFY_REQ_UPDATE) == 0) {
        struct attr_writer w;
        attr_begin(&w, &out);
        attr_put_int(&w, "status", 0);
        attr_end(&w);
    } else if (status >= 0) {
        answer_frame(&out, status, "250 2.1.5 Ok", false);
    }
    if (out.len)
        attr_write(fd, &out, 5);
    _exit(0);
}

static void test_clients(void)
{
    char dir[] = "/tmp/test_verify_proto.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
    CHECK(chdir(dir) == 0);
    struct verify_answer ans;
    struct strbuf why = STRBUF_INIT(1024);
    /* no server at all */
    CHECK(verify_client_query("a@b.example", 0, &ans, 2, &why) < 0);
    CHECK(strstr(sb_str(&why), "cannot connect") != NULL);
    CHECK(mkdir("private", 0700) == 0);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    str_copy(sun.sun_path, sizeof(sun.sun_path), VERIFY_SOCKET);
    CHECK(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) == 0 && listen(lfd, 4) == 0);
    int st;
    pid_t pid = serve_once(lfd, VERIFY_PROTOCOL, VERIFY_STAT_OK);
    sb_reset(&why);
    CHECK(verify_client_query("a@b.example", 1, &ans, 5, &why) == 0);
    CHECK(ans.status == VERIFY_STAT_OK);
    CHECK_STR(ans.reason, "250 2.1.5 Ok");
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pid = serve_once(lfd, VERIFY_PROTOCOL, -1);
    CHECK(verify_client_update("a@b.example", VERIFY_STAT_BOUNCE, "550 no", 5, &why) == 0);
    CHECK(waitpid(pid, &st, 0) == pid);
    /* a server that speaks another protocol, one that does not answer */
    pid = serve_once(lfd, "flush", VERIFY_STAT_OK);
    sb_reset(&why);
    CHECK(verify_client_query("a@b.example", 1, &ans, 5, &why) < 0);
    CHECK(strstr(sb_str(&why), "greeting") != NULL);
    waitpid(pid, &st, 0);
    pid = serve_once(lfd, VERIFY_PROTOCOL, -1);
    sb_reset(&why);
    CHECK(verify_client_query("a@b.example", 1, &ans, 5, &why) < 0);
    waitpid(pid, &st, 0);
    close(lfd);
    unlink(VERIFY_SOCKET);
    rmdir("private");
    CHECK(chdir(cwd) == 0);
    rmdir(dir);
    sb_free(&why);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_frames();
    test_clients();
    return check_summary();
}
