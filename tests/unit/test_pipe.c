/* test_pipe.c: unit tests of the pipe agent's parsers and rewriters: the
 * master.cf command attributes, the argv macros with the h, q and u flags
 * and one argument per recipient, the copy on the command's standard input
 * (eol, "." and ">" quoting on chunks cut anywhere, the envelope lines),
 * and the mapping of exit statuses to results. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "pipe.h"

static int parse(const char *line, struct pipe_attr *a, struct strbuf *err)
{
    char *copy = strdup(line), *words[64];
    int n = 0;
    for (char *w = strtok(copy, " "); w && n < 64; w = strtok(NULL, " "))
        words[n++] = w;
    sb_reset(err);
    int rc = pipe_attr_parse(words, n, a, err);
    free(copy);
    return rc;
}

static void test_attributes(void)
{
    struct pipe_attr a;
    struct strbuf err = STRBUF_INIT(0);
    CHECK(parse("flags=DRhu user=vmail:mail size=100 eol=\\r\\n null_sender= "
                "argv=/usr/bin/lda -f ${sender} -d ${user}@${nexthop}", &a, &err) == 0);
    CHECK(a.flags == (PIPE_FLAG_DELIVERED | PIPE_FLAG_RETURN | PIPE_FLAG_FOLD_HOST | PIPE_FLAG_FOLD_USER));
    CHECK_STR(a.user, "vmail");
    CHECK_STR(a.group, "mail");
    CHECK(a.size_limit == 100);
    CHECK_STR(a.eol, "\r\n");
    CHECK_STR(a.null_sender, "");
    CHECK(a.argc == 5);
    CHECK_STR(a.argv[0], "/usr/bin/lda");
    CHECK_STR(a.argv[4], "${user}@${nexthop}");
    CHECK(a.argv[5] == NULL);
    CHECK(pipe_expand_check(&a, &err) == 0);
    pipe_attr_free(&a);

    CHECK(parse("user=nobody argv=/bin/cat", &a, &err) == 0);
    CHECK_STR(a.eol, "\n");
    CHECK_STR(a.null_sender, "MAILER-DAEMON");
    pipe_attr_free(&a);
    CHECK(parse("flags=Z user=x argv=/bin/cat", &a, &err) == -1);
    CHECK(strstr(sb_str(&err), "unknown flag 'Z'") != NULL);
    pipe_attr_free(&a);
    CHECK(parse("user=x", &a, &err) == -1);
    CHECK(strstr(sb_str(&err), "argv= is required") != NULL);
    pipe_attr_free(&a);
    CHECK(parse("argv=/bin/cat", &a, &err) == -1);
    CHECK(strstr(sb_str(&err), "user= is required") != NULL);
    pipe_attr_free(&a);
    CHECK(parse("user=x argv=cat", &a, &err) == -1);
    pipe_attr_free(&a);
    CHECK(parse("colour=blue user=x argv=/bin/cat", &a, &err) == -1);
    CHECK(strstr(sb_str(&err), "unknown command attribute \"colour=blue\"") != NULL);
    pipe_attr_free(&a);
    CHECK(parse("user=x eol=\\q argv=/bin/cat", &a, &err) == -1);
    pipe_attr_free(&a);
    CHECK(parse("user=x size=lots argv=/bin/cat", &a, &err) == -1);
    pipe_attr_free(&a);
    CHECK(parse("user=x argv=/bin/cat ${recipient} $nosuch", &a, &err) == 0);
    CHECK(pipe_expand_check(&a, &err) == -1);
    CHECK(strstr(sb_str(&err), "unknown macro $nosuch") != NULL);
    pipe_attr_free(&a);
    sb_free(&err);
}

/* The client macros' source, as the queue file's attributes would give it. */
static const char *client_attr(const char *name, const void *context)
{
    (void)context;
    return strcmp(name, "client_addr") == 0 ? "192.0.2.1"
           : strcmp(name, "sasl_username") == 0 ? "ann" : NULL;
}

static void test_expand(void)
{
    struct pipe_attr a;
    struct strbuf err = STRBUF_INIT(0);
    struct pipe_rcpt rcpts[] = {
        { "Joe+Box@Example.COM", "Joe+Box@Example.COM" },
        { "ann smith@example.com", "alias@example.com" },
    };
    struct pipe_macros m = {
        .sender = "", .nexthop = "Example.COM", .queue_id = "QID", .client_attr = client_attr,
        .size = 1234, .rcpts = rcpts, .nrcpt = 2,
    };
    char **argv;
    CHECK(parse("flags=hq user=x argv=/bin/cmd -f $sender -n ${nexthop} --rcpt=${recipient} "
                "${user}/${extension}/${mailbox}/${domain} $size $queue_id ${client_address} ${sasl_username} <${client_helo}> $$ "
                "${original_recipient}", &a, &err) == 0);
    CHECK(pipe_expand_argv(&a, &m, "+", &argv, &err) == 0);
    const char *want[] = {
        "/bin/cmd", "-f", "MAILER-DAEMON", "-n", "example.com",
        "--rcpt=Joe+Box@example.com", "--rcpt=\"ann smith\"@example.com",
        "Joe/Box/Joe+Box/example.com", "ann smith//ann smith/example.com",
        "1234", "QID", "192.0.2.1", "ann", "<>", "$", "Joe+Box@example.com", "alias@example.com", NULL,
    };
    for (size_t i = 0; want[i]; i++)
        CHECK_STR(argv[i], want[i]);
    pipe_expand_free(argv);
    pipe_attr_free(&a);

    /* u folds local parts; the null sender replacement may be empty */
    CHECK(parse("flags=u null_sender= user=x argv=/bin/cmd -f ${sender} ${user}@${nexthop}",
                &a, &err) == 0);
    m.nrcpt = 1;
    CHECK(pipe_expand_argv(&a, &m, "+", &argv, &err) == 0);
    CHECK_STR(argv[2], "");
    CHECK_STR(argv[3], "joe@Example.COM");
    CHECK(argv[4] == NULL);
    pipe_expand_free(argv);
    pipe_attr_free(&a);
    sb_free(&err);
}

static char *copy_in_chunks(unsigned flags, const char *eol, const char *content, size_t chunk)
{
    struct pipe_copy c;
    struct strbuf out = STRBUF_INIT(0);
    pipe_copy_init(&c, flags, eol);
    for (size_t i = 0; i < strlen(content); i += chunk) {
        size_t n = strlen(content) - i < chunk ? strlen(content) - i : chunk;
        pipe_copy_feed(&c, content + i, n, &out);
    }
    pipe_copy_finish(&c, &out);
    char *s = strdup(sb_str(&out));
    sb_free(&out);
    return s;
}

static void test_copy(void)
{
    const char *content = "Subject: x\n\nFrom me\n.dot\nFro\n..\nlast";
    for (size_t chunk = 1; chunk <= 8; chunk++) {
        char *s = copy_in_chunks(PIPE_FLAG_DOT | PIPE_FLAG_QUOTE_FROM | PIPE_FLAG_BLANK, "\r\n",
                                 content, chunk);
        CHECK_STR(s, "Subject: x\r\n\r\n>From me\r\n..dot\r\nFro\r\n...\r\nlast\r\n\r\n");
        free(s);
        s = copy_in_chunks(0, "\n", content, chunk);
        CHECK_STR(s, "Subject: x\n\nFrom me\n.dot\nFro\n..\nlast\n");
        free(s);
    }
    struct strbuf out = STRBUF_INIT(0);
    pipe_copy_prefix(&out, PIPE_FLAG_RETURN | PIPE_FLAG_DELIVERED | PIPE_FLAG_ORIG, "\n",
                     "s@example.org", "Joe@Example.COM", "alias@example.com", 0);
    CHECK_STR(sb_str(&out), "Return-Path: <s@example.org>\nDelivered-To: joe@example.com\n"
              "X-Original-To: alias@example.com\n");
    sb_reset(&out);
    pipe_copy_prefix(&out, PIPE_FLAG_FROM | PIPE_FLAG_RETURN, "\r\n", "", "a@b", "a@b", 0);
    CHECK(strncmp(sb_str(&out), "From MAILER-DAEMON  ", 20) == 0);
    CHECK(strstr(sb_str(&out), "\r\nReturn-Path: <>\r\n") != NULL);
    sb_free(&out);
}

static void test_status(void)
{
    struct delivery_status o;
    pipe_status_map(0, false, "", "dovecot", "/bin/x", &o);
    CHECK(o.status == 2);
    CHECK_STR(o.reason, "delivered via dovecot service");
    pipe_status_map(75 << 8, false, "try later", "p", "/bin/x", &o);
    CHECK(o.status == 4);
    CHECK_STR(o.dsn, "4.3.0");
    CHECK_STR(o.reason, "temporary failure. Command output: try later");
    pipe_status_map(67 << 8, false, "no such user", "p", "/bin/x", &o);
    CHECK(o.status == 5);
    CHECK_STR(o.dsn, "5.1.1");
    CHECK_STR(o.reason, "user unknown. Command output: no such user");
    pipe_status_map(65 << 8, false, "", "p", "/bin/x", &o);
    CHECK_STR(o.dsn, "5.6.0");
    pipe_status_map(77 << 8, false, "", "p", "/bin/x", &o);
    CHECK_STR(o.dsn, "5.7.0");
    pipe_status_map(71 << 8, false, "", "p", "/bin/x", &o);
    CHECK(o.status == 4);
    pipe_status_map(1 << 8, false, "4.2.2 mailbox full", "p", "/bin/x", &o);
    CHECK(o.status == 4);
    CHECK_STR(o.dsn, "4.2.2");
    CHECK_STR(o.reason, "mailbox full");
    pipe_status_map(3 << 8, false, "", "p", "/bin/x", &o);
    CHECK(o.status == 5);
    CHECK_STR(o.reason, "Command died with status 3: \"/bin/x\"");
    pipe_status_map(9, false, "", "p", "/bin/x", &o);     /* killed by SIGKILL */
    CHECK(o.status == 4);
    pipe_status_map(9, true, "", "p", "/bin/x", &o);
    CHECK(o.status == 4);
    CHECK(strstr(o.reason, "time limit") != NULL);
}

int main(void)
{
    test_attributes();
    test_expand();
    test_copy();
    test_status();
    return check_summary();
}
