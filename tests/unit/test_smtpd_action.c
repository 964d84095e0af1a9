/* test_smtpd_action.c: unit tests of smtpd's access(5) result and policy
 * reply parsers: every action word, codes with and without an enhanced
 * status code, restriction lists, malformed arguments and replies. */
#include <string.h>

#include "check.h"
#include "smtpd_action.h"

static char text[256];

static const struct smtpd_access_action *parse(const char *v)
{
    static struct smtpd_access_action a;
    smtpd_access_action_parse(v, &a);
    memcpy(text, a.text, a.text_len);
    text[a.text_len] = 0;
    return &a;
}

int main(void)
{
    CHECK(parse("OK")->kind == ACT_OK);
    CHECK(parse("permit")->kind == ACT_OK);
    CHECK(parse("  1234 ")->kind == ACT_OK);
    CHECK(parse("DUNNO")->kind == ACT_DUNNO);
    const struct smtpd_access_action *a = parse("REJECT 5.7.9 go away  ");
    CHECK(a->kind == ACT_REJECT);
    CHECK_STR(a->dsn, "5.7.9");
    CHECK_STR(text, "go away");
    a = parse("reject");
    CHECK(a->kind == ACT_REJECT && a->dsn[0] == 0 && a->text_len == 0);
    a = parse("450 4.2.0 Greylisted");
    CHECK(a->kind == ACT_CODE && a->code == 450);
    CHECK_STR(a->dsn, "4.2.0");
    CHECK_STR(text, "Greylisted");
    a = parse("550 no such user");
    CHECK(a->kind == ACT_CODE && a->code == 550 && a->dsn[0] == 0);
    CHECK_STR(text, "no such user");
    CHECK(parse("554")->kind == ACT_OK);             /* all-numerical: OK, as in Postfix */
    CHECK(parse("354 go ahead")->kind == ACT_RESTRICTIONS);
    CHECK(parse("DEFER_IF_PERMIT later")->kind == ACT_DEFER_IF_PERMIT);
    CHECK(parse("DEFER_IF_REJECT")->kind == ACT_DEFER_IF_REJECT);
    CHECK(parse("defer")->kind == ACT_DEFER);
    CHECK(parse("DISCARD")->kind == ACT_DISCARD);
    CHECK(parse("HOLD spam?")->kind == ACT_HOLD);
    a = parse("FILTER smtp:[127.0.0.1]:10025");
    CHECK(a->kind == ACT_FILTER);
    CHECK_STR(text, "smtp:[127.0.0.1]:10025");
    CHECK(parse("FILTER nocolon")->kind == ACT_INVALID);
    CHECK(parse("FILTER a:b c")->kind == ACT_INVALID);
    a = parse("PREPEND X-Test: yes");
    CHECK(a->kind == ACT_PREPEND);
    CHECK_STR(text, "X-Test: yes");
    CHECK(parse("PREPEND no header")->kind == ACT_INVALID);
    CHECK(parse("PREPEND : empty name")->kind == ACT_INVALID);
    CHECK(parse("WARN odd")->kind == ACT_WARN);
    CHECK(parse("REDIRECT")->kind == ACT_INVALID);
    CHECK(parse("permit_mynetworks, reject")->kind == ACT_RESTRICTIONS);
    CHECK(parse("")->kind == ACT_INVALID);

    CHECK(smtpd_dsn_prefix_len("5.7.1 x") == 5);
    CHECK(smtpd_dsn_prefix_len("4.7.25") == 6);
    CHECK(smtpd_dsn_prefix_len("3.1.1 x") == 0);
    CHECK(smtpd_dsn_prefix_len("5.1234.1") == 0);
    CHECK(smtpd_dsn_prefix_len("5.7.1x") == 0);

    const char *act;
    size_t alen, used;
    const char *r1 = "foo=bar\naction=DUNNO\n\nnext";
    CHECK(smtpd_policy_reply_parse(r1, strlen(r1), 4096, &act, &alen, &used) == 1);
    CHECK(alen == 5 && memcmp(act, "DUNNO", 5) == 0 && used == strlen(r1) - 4);
    const char *r2 = "action=REJECT\r\n\r\n";
    CHECK(smtpd_policy_reply_parse(r2, strlen(r2), 4096, &act, &alen, &used) == 1);
    CHECK(alen == 6);
    CHECK(smtpd_policy_reply_parse("action=DUN", 10, 4096, &act, &alen, &used) == 0);
    CHECK(smtpd_policy_reply_parse("\n", 1, 4096, &act, &alen, &used) == -1);
    CHECK(smtpd_policy_reply_parse("junk\n\n", 6, 4096, &act, &alen, &used) == -1);
    CHECK(smtpd_policy_reply_parse("action=x\0\n\n", 11, 4096, &act, &alen, &used) == -1);
    CHECK(smtpd_policy_reply_parse("aaaaaaaaaaaa", 12, 8, &act, &alen, &used) == -1);
    return check_summary();
}
