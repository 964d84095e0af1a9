/* test_user_lists.c: unit tests of what users and senders give the
 * quarantine and the user lists: the subject as shown (RFC 2047 decoding,
 * folding, control characters, the bound; lib/global/subject_decode.c),
 * and the checks of users and patterns (lib/global/user_lists.c). */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "quarantine.h"
#include "strbuf.h"
#include "user_lists.h"

static const char *subject(const char *in)
{
    static char out[QUARANTINE_SUBJECT_MAX + 8];
    quarantine_subject_decode(in, strlen(in), out);
    return out;
}

static void test_subject(void)
{
    CHECK_STR(subject(" plain text"), "plain text");
    CHECK_STR(subject("=?UTF-8?B?w6k=?="), "\xc3\xa9");
    CHECK_STR(subject("=?utf-8?q?a_b=3F?="), "a b?");
    CHECK_STR(subject("=?iso-8859-1?q?na=EFve?="), "na\xc3\xafve");
    /* blanks between encoded words go, folding goes, other blanks stay */
    CHECK_STR(subject("=?utf-8?q?a?= \r\n =?utf-8?q?b?= c  =?utf-8?q?d?="), "ab c  d");
    /* unknown charsets and broken words are shown as written */
    CHECK_STR(subject("=?koi8-r?q?x?= =?utf-8?q?open"), "=?koi8-r?q?x?= =?utf-8?q?open");
    CHECK_STR(subject("=?utf-8?b?###?="), "=?utf-8?b?###?=");
    /* empty encoded words, first or later, with or without blanks between */
    CHECK_STR(subject("=?utf-8?q?" "?==?utf-8?q?" "?="), "");
    CHECK_STR(subject("=?utf-8?b?" "?= =?utf-8?q?" "?="), "");
    CHECK_STR(subject("=?utf-8?q?" "?= =?utf-8?q?x?= =?utf-8?b?" "?=y"), "xy");
    CHECK_STR(subject(""), "");
    /* control characters, also decoded ones, and invalid UTF-8 become ? */
    CHECK_STR(subject("a\x1b[1mb\x7f\tc"), "a?[1mb? c");
    CHECK_STR(subject("=?utf-8?q?=1B=00x?="), "??x");
    CHECK_STR(subject("\xff\xc3(\xe2\x82"), "?" "?(?" "?");
    CHECK_STR(subject("=?utf-8?b?7aCA?="), "???");          /* a surrogate */
    CHECK_STR(subject("a\xc2\x9b" "2Jb \xc2\xa0"), "a?2Jb \xc2\xa0");   /* C1 CSI; NBSP stays */
    /* the bound, on a character boundary */
    char in[1000];
    memset(in, 'a', 199);
    strcpy(in + 199, "\xc3\xa9xyz");
    const char *out = subject(in);
    CHECK(strlen(out) == 199 + 3);
    CHECK(strcmp(out + 199, "...") == 0);
}

static int check_pattern(const char *p, bool user)
{
    char buf[600];
    struct strbuf err = STRBUF_INIT(1024);
    snprintf(buf, sizeof(buf), "%s", p);
    int rc = user ? user_lists_check_user(buf, &err) : user_lists_check_pattern(buf, &err);
    sb_free(&err);
    return rc;
}

static void test_patterns(void)
{
    CHECK(check_pattern("a@b.example", false) == 0);
    CHECK(check_pattern("@b.example", false) == 0);
    CHECK(check_pattern("@b.example", true) < 0);
    CHECK(check_pattern("A@B.Example", true) == 0);
    const char *bad[] = { "", "a b@c", "a@b,c", "a:b@c", "a@", "@", "a@b@c", "a@.b", "a@b.",
                          "<a@b>", "a\"@b", "a\\@b", "a@b\n", "\xc3\xa9@b", "a@b;c" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        CHECK(check_pattern(bad[i], false) < 0);
    char longp[400];
    memset(longp, 'a', sizeof(longp));
    memcpy(longp + 250, "@b.example", 11);
    CHECK(check_pattern(longp, false) < 0);
    char buf[64] = "Alice@Corp.Test";
    struct strbuf err = STRBUF_INIT(1024);
    CHECK(user_lists_check_user(buf, &err) == 0);
    CHECK_STR(buf, "alice@corp.test");
    sb_free(&err);
}

int main(void)
{
    test_subject();
    test_patterns();
    return check_summary();
}
