/* test_util.c: unit tests of lib/util/util.c helpers that guard against
 * hostile starting conditions: std_fds_open() puts /dev/null on a closed
 * 0, 1 or 2 (and leaves open ones alone), so that the next file opened
 * cannot become standard output. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util.h"

static bool is_dev_null(int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat("/dev/null", &b) == 0 && S_ISCHR(a.st_mode)
        && a.st_rdev == b.st_rdev;
}

static void test_std_fds_open(void)
{
    /* keep the real stderr to report through, then close 1 and 2 */
    int saved_out = dup(1), saved_err = dup(2);
    CHECK(saved_out > 2 && saved_err > 2);
    close(1);
    close(2);
    int rc = std_fds_open();
    bool out_null = is_dev_null(1), err_null = is_dev_null(2);
    int next = open("/dev/zero", O_RDONLY);     /* the next file lands above 2 */
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    CHECK(rc == 0);
    CHECK(out_null);
    CHECK(err_null);
    CHECK(next > 2);
    if (next >= 0)
        close(next);
    /* open descriptors are left as they are */
    struct stat before, after;
    CHECK(fstat(1, &before) == 0);
    CHECK(std_fds_open() == 0);
    CHECK(fstat(1, &after) == 0 && before.st_ino == after.st_ino && before.st_dev == after.st_dev);
}

int main(void)
{
    test_std_fds_open();
    return check_summary();
}
