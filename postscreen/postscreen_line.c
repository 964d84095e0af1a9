/* postscreen_line.c: how postscreen's SMTP engine cuts hostile input into
 * bounded lines and recognizes what is not SMTP, without any I/O, so that
 * it can be tested and fuzzed alone (fuzz/fuzz_postscreen_line.c). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "postscreen.h"

size_t postscreen_line_take(const char *buf, size_t len, char *line, size_t size, int *flags)
{
    *flags = 0;
    if (size == 0)
        return 0;
    const char *nl = memchr(buf, '\n', len);
    size_t n, used;
    if (nl) {
        n = (size_t)(nl - buf);
        used = n + 1;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
        else
            *flags |= PSC_LINE_BARE_LF;
    } else if (len >= size - 1) {
        /* no end in sight within the bound: what came so far is one
         * (too long) line, and the reader hangs up */
        n = len;
        used = len;
    } else {
        return 0;
    }
    if (n > size - 1) {
        *flags |= PSC_LINE_TOO_LONG;
        n = size - 1;
    } else if (!nl) {
        *flags |= PSC_LINE_TOO_LONG;
    }
    if (memchr(buf, 0, n))
        *flags |= PSC_LINE_NUL;
    memcpy(line, buf, n);
    line[n] = 0;
    return used;
}

/* "Name:" at the start: a message header sent without MAIL, RCPT, DATA. */
static bool looks_like_header(const char *line)
{
    size_t n = 0;
    while (line[n] && (isalnum((unsigned char)line[n]) || line[n] == '-'))
        n++;
    return n > 0 && line[n] == ':';
}

bool postscreen_line_non_smtp(const char *line, char *const *forbidden, size_t nforbidden)
{
    size_t verb = strcspn(line, " \t");
    for (size_t i = 0; i < nforbidden; i++)
        if (strlen(forbidden[i]) == verb && strncasecmp(line, forbidden[i], verb) == 0)
            return true;
    return looks_like_header(line);
}
