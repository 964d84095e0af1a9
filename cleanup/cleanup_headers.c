/* cleanup_headers.c: what cleanup writes into and logs from the header
 * section (parsed by lib/global/header_section.c): header text made safe
 * for log lines (the Received: header comes from lib/global/received_header.c). Pure functions: no configuration, no
 * I/O. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"

void cleanup_log_safe(struct strbuf *out, const char *s, size_t len, size_t max)
{
    sb_reset(out);
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (sb_appendc(out, c < 32 || c == 127 ? '?' : c) < 0)
            break;
    }
}
