/* fuzz_maillog.c: libFuzzer target for the log line reader of tern report
 * (lib/global/maillog.c): the input, split at line ends, is taken apart
 * line by line as `tern report` does with a log file that anyone who could
 * put a line in it (a peer's address, a reply, a forged file) shaped.
 * Besides crashes and sanitizer reports, every field found is a string
 * inside the line, and a line that is not a log line has no fields.
 * sources: lib/global/maillog.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz/fuzz.h"
#include "maillog.h"

static void inside(const char *field, const char *buf, size_t len)
{
    if (!field || (field >= buf && field <= buf + len))
        return;
    /* the words the parser puts in fields itself */
    static const char *const words[] = { "", "hold", "header", "body", "content" };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcmp(field, words[i]) == 0)
            return;
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size, 65536);
    if (!text)
        return 0;
    struct maillog_clock clock;
    maillog_clock_init(&clock, 1796551201);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(line);
        struct maillog_line l;
        if (maillog_split(line, "tern", &clock, &l) != 1)
            continue;
        struct maillog_event ev;
        maillog_parse((char *)l.text, &ev);
        const char *fields[] = { ev.id, ev.client, ev.addr, ev.orig_to, ev.relay, ev.dsn, ev.status,
                                 ev.reason, ev.action, ev.stage, ev.sender, ev.rcpt,
                                 ev.sasl_username, ev.tls_version, ev.new_id, l.host, l.tag,
                                 l.program, l.text };
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            inside(fields[i], line, len);
            if (fields[i] && strlen(fields[i]) > len)
                abort();
        }
        if (ev.kind == MAILLOG_DELIVERY && (!ev.addr || !ev.status || !ev.reason))
            abort();
        if (ev.kind == MAILLOG_REJECT && (!ev.action || !ev.stage || !ev.reason))
            abort();
    }
    free(text);
    return 0;
}
