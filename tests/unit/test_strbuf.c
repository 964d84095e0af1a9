/* test_strbuf.c: unit tests of the bounded buffer: limits are never
 * exceeded and a failed append leaves the buffer untouched. */
#include <string.h>

#include "check.h"
#include "strbuf.h"

int main(void)
{
    struct strbuf sb = STRBUF_INIT(10);
    CHECK_STR(sb_str(&sb), "");
    CHECK(sb_appends(&sb, "hello") == 0);
    CHECK(sb_appendf(&sb, "%d", 1234) == 0);
    CHECK_STR(sb_str(&sb), "hello1234");
    CHECK(sb_appends(&sb, "xy") == -1);          /* would be 11 > 10 */
    CHECK_STR(sb_str(&sb), "hello1234");
    CHECK(sb_appendc(&sb, '!') == 0);
    CHECK(sb.len == 10);
    CHECK(sb_appendc(&sb, '!') == -1);
    CHECK(sb_appendf(&sb, "%s", "") == 0);
    sb_consume(&sb, 5);
    CHECK_STR(sb_str(&sb), "1234!");
    sb_truncate(&sb, 2);
    CHECK_STR(sb_str(&sb), "12");
    CHECK(sb_set(&sb, "0123456789") == 0);
    CHECK(sb_set(&sb, "0123456789A") == -1);
    CHECK(sb.len == 0);                          /* set resets first */
    sb_free(&sb);

    struct strbuf big = STRBUF_INIT(0);
    int appended = 0;
    for (int i = 0; i < 10000; i++)
        appended += sb_append(&big, "abcdefgh", 8) == 0;
    CHECK(appended == 10000);
    CHECK(big.len == 80000);
    CHECK(big.data[big.len] == 0);
    sb_free(&big);
    return check_summary();
}
