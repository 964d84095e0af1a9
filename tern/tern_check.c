/* tern_check.c: `tern check`: configuration errors, unknown parameters,
 * missing daemon programs, and (as root) queue ownership and permissions,
 * each with the fix to apply. */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "mastercf.h"
#include "queue.h"
#include "server.h"
#include "strbuf.h"
#include "tern.h"
#include "util.h"

static int warnings, errors;

static void report_unknown(const char *name, const char *file, int line, void *ctx)
{
    if (strcmp(file, "main.cf") == 0)
        printf("tern: warning: %s/main.cf:%d: unknown parameter %s (misspelled, or not supported "
               "by Tern)\n", cfg_confdir(), line, name);
    else
        printf("tern: warning: unknown parameter %s set with -o\n", name);
    warnings++;
}

static void check_queue_dir(const char *path, unsigned mode, uid_t uid, gid_t gid)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        printf("tern: warning: %s does not exist yet (master creates it at start)\n", path);
        warnings++;
        return;
    }
    if (st.st_uid != uid || st.st_gid != gid) {
        printf("tern: error: %s is owned by %ld:%ld, expected %ld:%ld; fix: chown %ld:%ld %s\n",
               path, (long)st.st_uid, (long)st.st_gid, (long)uid, (long)gid, (long)uid,
               (long)gid, path);
        errors++;
    }
    if ((st.st_mode & 07777) != mode) {
        printf("tern: error: %s has mode %04o, expected %04o; fix: chmod %04o %s\n",
               path, st.st_mode & 07777, mode, mode, path);
        errors++;
    }
}

static void check_queue(void)
{
    uid_t uid;
    gid_t gid;
    const char *owner = cfg_str(P_mail_owner), *group = cfg_str(P_setgid_group);
    if (user_ids(owner, &uid, &gid) < 0) {
        printf("tern: error: mail_owner %s does not exist; fix: tern setup\n", owner);
        errors++;
        return;
    }
    struct group *gr = getgrnam(group);
    if (!gr) {
        printf("tern: error: setgid_group %s does not exist; fix: tern setup\n", group);
        errors++;
        return;
    }
    struct strbuf path = STRBUF_INIT(4096);
    for (size_t i = 0; i < queue_dirs_count; i++) {
        sb_reset(&path);
        sb_appendf(&path, "%s/%s", cfg_str(P_queue_directory), queue_dirs[i].name);
        check_queue_dir(path.data, queue_dirs[i].mode, uid,
                        queue_dirs[i].group_is_setgid ? gr->gr_gid : gid);
    }
    sb_free(&path);
}

int cmd_check(int argc, char **argv)
{
    if (tern_wants_help(argc, argv)) {
        printf("usage: tern [-c CONFDIR] check\n  report configuration errors, unknown "
               "parameters, missing daemons and queue permission problems; exit 1 on errors\n");
        return 0;
    }
    tern_load_config();
    struct strbuf err = STRBUF_INIT(65536);
    if (cfg_validate(&err) > 0) {
        printf("%s", sb_str(&err));
        errors++;
    }
    cfg_unknown(report_unknown, NULL);
    sb_reset(&err);
    sb_appendf(&err, "%s/master.cf", cfg_confdir());
    char *mpath = xstrdup(err.data);
    sb_reset(&err);
    struct master_service *svcs;
    size_t n;
    if (mastercf_load(mpath, (int)cfg_int(P_default_process_limit), &svcs, &n, &err) < 0) {
        printf("tern: error: %s\n", sb_str(&err));
        errors++;
    } else {
        for (size_t i = 0; i < n; i++) {
            sb_reset(&err);
            sb_appendf(&err, "%s/%s", cfg_str(P_daemon_directory), svcs[i].command);
            if (access(err.data, X_OK) < 0) {
                printf("tern: error: master.cf:%d: service %s: program %s is missing or not "
                       "executable\n", svcs[i].lineno, svcs[i].name, err.data);
                errors++;
            }
        }
        mastercf_free(svcs, n);
    }
    free(mpath);
    sb_free(&err);
    if (geteuid() == 0)
        check_queue();
    if (errors) {
        printf("tern: %d error(s), %d warning(s)\n", errors, warnings);
        return 1;
    }
    if (warnings)
        printf("tern: %d warning(s)\n", warnings);
    return 0;
}
