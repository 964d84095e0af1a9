/* tern_lists.c: `tern lists add|remove|show USER [allow|deny PATTERN]`,
 * the administrator's way to keep a user's allow and deny lists
 * (lib/global/user_lists.h, which the web console calls too), which
 * check_recipient_lists applies when mail comes for that user. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "server.h"
#include "strbuf.h"
#include "tern.h"
#include "user_lists.h"
#include "util.h"

#define USAGE \
    "usage: tern [-c CONFDIR] lists add USER allow|deny PATTERN\n" \
    "       tern [-c CONFDIR] lists remove USER allow|deny PATTERN\n" \
    "       tern [-c CONFDIR] lists show USER\n" \
    "  a user's own lists of senders: mail from a sender on USER's deny list is\n" \
    "  refused for USER, from one on the allow list accepted without the spam\n" \
    "  checks that follow check_recipient_lists in the restrictions. USER is an\n" \
    "  address (user@domain), PATTERN an address or a whole domain (@domain).\n" \
    "  At most user_lists_max_entries entries per user.\n"

int tern_cmd_lists(int argc, char **argv)
{
    int early = tern_action_start(argc, argv, USAGE, 3);
    if (early >= 0)
        return early;
    const char *action = argv[1];
    bool show = strcmp(action, "show") == 0, add = strcmp(action, "add") == 0;
    if (!show && !add && strcmp(action, "remove") != 0) {
        fprintf(stderr, "tern lists: unknown action \"%.100s\" (add, remove or show)\n", action);
        return 2;
    }
    if ((show && argc != 3) || (!show && argc != 5)) {
        fprintf(stderr, "tern lists %s: wrong number of arguments (see tern lists --help)\n", action);
        return 2;
    }
    struct strbuf err = STRBUF_INIT(2048);
    char user[USER_LISTS_ADDRESS_MAX + 2], pattern[USER_LISTS_ADDRESS_MAX + 2];
    enum user_list_kind kind = USER_LIST_ALLOW;
    /* one byte more than allowed is kept, so that the check sees it */
    str_copy(user, sizeof(user), argv[2]);
    int rc = strlen(argv[2]) > USER_LISTS_ADDRESS_MAX ? (sb_set(&err, "the user is too long"), -1)
                                                     : user_lists_check_user(user, &err);
    if (rc == 0 && !show) {
        if (strcmp(argv[3], "allow") == 0)
            kind = USER_LIST_ALLOW;
        else if (strcmp(argv[3], "deny") == 0)
            kind = USER_LIST_DENY;
        else {
            sb_set(&err, "the list is allow or deny");
            rc = -1;
        }
        str_copy(pattern, sizeof(pattern), argv[4]);
        if (rc == 0)
            rc = strlen(argv[4]) > USER_LISTS_ADDRESS_MAX ? (sb_set(&err, "the pattern is too long"), -1)
                                                         : user_lists_check_pattern(pattern, &err);
    }
    if (rc < 0) {
        fprintf(stderr, "tern lists %s: %s\n", action, sb_str(&err));
        sb_free(&err);
        return 2;
    }
    tern_load_config();
    /* The lists live in mail_owner's folder of data_directory: root works
     * there only as mail_owner. */
    if (geteuid() == 0 || getuid() == 0)
        drop_privileges(cfg_str(P_mail_owner));
    if (show) {
        struct strbuf list = STRBUF_INIT(0);
        rc = user_lists_get(user, &list, &err);
        if (rc == 0) {
            for (const char *p = sb_str(&list); *p;) {
                const char *c = strchr(p, ',');
                size_t len = c ? (size_t)(c - p) : strlen(p);
                const char *colon = memchr(p, ':', len);
                if (colon)
                    printf("%.*s %.*s\n", (int)(colon - p), p, (int)(len - (size_t)(colon + 1 - p)),
                           colon + 1);
                p += len + (c ? 1 : 0);
            }
            if (!list.len)
                printf("%s has no allow or deny list entries\n", user);
        }
        sb_free(&list);
    } else if (add) {
        rc = user_lists_add(user, kind, pattern, (size_t)cfg_int(P_user_lists_max_entries), &err);
    } else {
        rc = user_lists_remove(user, kind, pattern, &err);
    }
    if (rc < 0)
        fprintf(stderr, "tern lists %s: %s\n", action, sb_str(&err));
    else if (!show)
        printf("%s %s %s: %s\n", user, argv[3], pattern, sb_str(&err));
    sb_free(&err);
    return rc < 0 ? 1 : 0;
}
