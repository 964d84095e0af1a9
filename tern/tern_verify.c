/* tern_verify.c: `tern verify ADDRESS...`, what the verify service's cache
 * holds for each address (the answer reject_unverified_recipient would
 * get), and with --probe a probe for an address without a fresh result.
 * It asks the running verify service over private/verify, as mail_owner
 * (tern_queue_enter), so that what it shows is the live state. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "strbuf.h"
#include "tern.h"
#include "tern_queue.h"
#include "verify_proto.h"

static const char verify_usage[] =
    "usage: tern verify [--probe] ADDRESS...\n"
    "  Show the address verification cache entry of each ADDRESS:\n"
    "  ADDRESS: STATUS [updated=TIME probed=TIME] REASON\n"
    "  STATUS is deliverable, undeliverable, deferred or unknown (no result).\n"
    "  --probe  send a probe for an address without a fresh result\n"
    "Exit status: 0 all deliverable, 1 any other, 2 usage, 3 the service cannot be asked.\n";

static void print_time(const char *name, long long t)
{
    char buf[64] = "never";
    if (t > 0) {
        time_t tt = (time_t)t;
        struct tm tm;
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&tt, &tm));
    }
    printf(" %s=%s", name, buf);
}

int tern_cmd_verify(int argc, char **argv)
{
    if (tern_help(argc, argv, verify_usage))
        return 0;
    int probe = 0, first = 1;
    if (argc > 1 && strcmp(argv[1], "--probe") == 0) {
        probe = 1;
        first = 2;
    }
    if (first >= argc || argv[first][0] == '-') {
        fputs(verify_usage, stderr);
        return 2;
    }
    tern_queue_enter();
    int rc = 0;
    for (int i = first; i < argc; i++) {
        struct verify_answer ans;
        struct strbuf why = STRBUF_INIT(1024);
        if (verify_client_query(argv[i], probe, &ans, 30, &why) < 0) {
            fprintf(stderr, "tern: verify %s: %s\n", argv[i], sb_str(&why));
            sb_free(&why);
            return 3;
        }
        sb_free(&why);
        printf("%s: %s", argv[i], verify_status_name(ans.status));
        if (ans.updated || ans.probed) {
            print_time("updated", ans.updated);
            print_time("probed", ans.probed);
        }
        if (*ans.reason)
            printf(" %s", ans.reason);
        putchar('\n');
        if (ans.status != VERIFY_STAT_OK)
            rc = 1;
    }
    return rc;
}
