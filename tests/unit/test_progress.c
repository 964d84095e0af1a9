/* test_progress.c: the text of the progress bar (lib/util/progress.c) for
 * a terminal of a given width, and that nothing is drawn when standard
 * error is not a terminal (the whole-instance test test_report.py runs the
 * commands on a pseudo-terminal). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "progress.h"

int main(void)
{
    char buf[512];
    size_t n = progress_format(buf, sizeof(buf), "reading", 50, 100, false, 40);
    CHECK_STR(buf, "reading [########........]  50%  50/100");
    CHECK(n == strlen(buf) && n < 40);
    progress_format(buf, sizeof(buf), "building big", 543100, 10000000, true, 60);
    CHECK_STR(buf, "building big [#....................]   5%  543.1 kB/10.0 MB");
    CHECK(strlen(buf) == 59);
    /* past the total, a narrow terminal, no total, a long label */
    progress_format(buf, sizeof(buf), "x", 200, 100, false, 10);
    CHECK_STR(buf, "x [##########] 100%  100/100");
    progress_format(buf, sizeof(buf), "tern delete", 12, 0, false, 80);
    CHECK_STR(buf, "tern delete  12 done");
    char label[200];
    memset(label, 'l', sizeof(label) - 1);
    label[sizeof(label) - 1] = 0;
    progress_format(buf, sizeof(buf), label, 1, 2, false, 80);
    CHECK(strlen(buf) < 80 + PROGRESS_WHAT_MAX);
    CHECK(strncmp(buf + PROGRESS_WHAT_MAX, " [", 2) == 0);
    progress_format(buf, 8, "reading", 1, 2, false, 80);
    CHECK(strlen(buf) == 7);

    /* standard error not a terminal: nothing written */
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    int saved = dup(2);
    dup2(pipefd[1], 2);
    struct progress p;
    progress_begin(&p, "quiet", 10, false);
    for (int i = 0; i <= 10; i++)
        progress_update(&p, (unsigned long long)i);
    progress_interrupt();
    progress_end(&p);
    dup2(saved, 2);
    close(pipefd[1]);
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    CHECK(!p.on && read(pipefd[0], buf, sizeof(buf)) <= 0);
    return check_summary();
}
