/* pipe_status.c: what a pipe service's command said, as Postfix reads it:
 * exit status 0 is delivered; output that starts with an enhanced status
 * code 4.X.Y or 5.X.Y decides; else the exit status by <sysexits.h> (each
 * code with its status code and text, EX_TEMPFAIL and EX_OSERR deferred,
 * the others returned to the sender); a signal or the time limit defers,
 * and any other status returns the mail. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "dsn.h"
#include "pipe.h"
#include "soft_bounce.h"
#include "util.h"

static const struct {
    int code;
    const char *dsn;
    const char *text;
} sysexits[] = {
    { 64, "5.3.0", "command line usage error" },
    { 65, "5.6.0", "data format error" },
    { 66, "5.3.0", "cannot open input" },
    { 67, "5.1.1", "user unknown" },
    { 68, "5.1.2", "host name unknown" },
    { 69, "5.3.0", "service unavailable" },
    { 70, "5.3.0", "internal software error" },
    { 71, "4.3.0", "system resource problem" },
    { 72, "5.3.0", "critical OS file missing" },
    { 73, "5.2.0", "can't create user output file" },
    { 74, "5.3.0", "input/output error" },
    { 75, "4.3.0", "temporary failure" },
    { 76, "5.5.0", "remote error in protocol" },
    { 77, "5.7.0", "permission denied" },
    { 78, "5.3.5", "local configuration error" },
};

void pipe_status_map(int wstatus, bool timed_out, const char *line, const char *service,
                     const char *command, struct delivery_status *o)
{
    const char *sep = *line ? ". Command output: " : "";
    const char *text;
    size_t dsn_len;
    char dsn[16];
    if (timed_out) {
        delivery_status_set(o, 4, "4.3.0", "command time limit exceeded: \"%s\"%s%s", command, sep,
                            line);
    } else if (WIFSIGNALED(wstatus)) {
        delivery_status_set(o, 4, "4.3.0", "Command died with signal %d: \"%s\"%s%s",
                            WTERMSIG(wstatus), command, sep, line);
    } else if (WEXITSTATUS(wstatus) == 0) {
        if (*line)
            delivery_status_set(o, 2, "2.0.0", "delivered via %s service (%s)", service, line);
        else
            delivery_status_set(o, 2, "2.0.0", "delivered via %s service", service);
    } else if ((dsn_len = dsn_prefix_len(line, "45")) > 0 && dsn_len < sizeof(dsn)) {
        /* "4.X.Y text" or "5.X.Y text" */
        memcpy(dsn, line, dsn_len);
        dsn[dsn_len] = 0;
        text = line + dsn_len + (line[dsn_len] == ' ');
        delivery_status_set(o, dsn[0] - '0', dsn, "%s", *text ? text : "command failed");
    } else {
        int code = WEXITSTATUS(wstatus);
        for (size_t i = 0; i < sizeof(sysexits) / sizeof(sysexits[0]); i++)
            if (sysexits[i].code == code) {
                delivery_status_set(o, sysexits[i].dsn[0] - '0', sysexits[i].dsn, "%s%s%s",
                                    sysexits[i].text, sep, line);
                return;
            }
        delivery_status_set(o, 5, "5.3.0", "Command died with status %d: \"%s\"%s%s", code, command,
                            sep, line);
    }
}
