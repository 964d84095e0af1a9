/* test_postscreen_line.c: unit tests of postscreen's line reader and
 * non-SMTP command recognition: CR LF and bare LF line ends, lines cut at
 * the bound, NUL bytes, incomplete lines, and the forbidden commands and
 * header-like lines of the non-SMTP command test. */
#include <string.h>

#include "check.h"
#include "postscreen.h"

static void test_lines(void)
{
    char line[16];
    int flags;
    CHECK(postscreen_line_take("EHLO a\r\nMAIL", 12, line, sizeof(line), &flags) == 8);
    CHECK_STR(line, "EHLO a");
    CHECK(flags == 0);
    CHECK(postscreen_line_take("HELO b\nX", 8, line, sizeof(line), &flags) == 7);
    CHECK_STR(line, "HELO b");
    CHECK(flags == PSC_LINE_BARE_LF);
    CHECK(postscreen_line_take("\n", 1, line, sizeof(line), &flags) == 1);
    CHECK_STR(line, "");
    CHECK(flags == PSC_LINE_BARE_LF);
    /* no line end yet, room left: wait */
    CHECK(postscreen_line_take("MAIL FR", 7, line, sizeof(line), &flags) == 0);
    /* no line end within the bound: all of it is one too-long line */
    const char *big = "0123456789abcdefghij";
    CHECK(postscreen_line_take(big, 20, line, sizeof(line), &flags) == 20);
    CHECK(flags & PSC_LINE_TOO_LONG);
    CHECK(strlen(line) == 15);
    /* a line end beyond the bound */
    CHECK(postscreen_line_take("0123456789abcdefghij\r\n", 22, line, sizeof(line), &flags) == 22);
    CHECK(flags & PSC_LINE_TOO_LONG);
    CHECK(postscreen_line_take("A\0B\r\n", 5, line, sizeof(line), &flags) == 5);
    CHECK(flags & PSC_LINE_NUL);
    CHECK(postscreen_line_take("", 0, line, sizeof(line), &flags) == 0);
}

static void test_non_smtp(void)
{
    char *forbidden[] = { "CONNECT", "GET", "POST" };
    CHECK(postscreen_line_non_smtp("GET / HTTP/1.0", forbidden, 3));
    CHECK(postscreen_line_non_smtp("connect 1.2.3.4:25 HTTP/1.0", forbidden, 3));
    CHECK(postscreen_line_non_smtp("Subject: hello", forbidden, 3));
    CHECK(postscreen_line_non_smtp("X-Mailer: bot", forbidden, 3));
    CHECK(!postscreen_line_non_smtp("MAIL FROM:<a@b>", forbidden, 3));
    CHECK(!postscreen_line_non_smtp("RCPT TO:<a@b>", forbidden, 3));
    CHECK(!postscreen_line_non_smtp("GETX", forbidden, 3));
    CHECK(!postscreen_line_non_smtp("", forbidden, 3));
    CHECK(!postscreen_line_non_smtp(": x", forbidden, 3));
}

int main(void)
{
    test_lines();
    test_non_smtp();
    return check_summary();
}
