/* dsn.c: finding an enhanced status code at the start of a text (dsn.h). */
#include <string.h>

#include "dsn.h"

size_t dsn_prefix_len(const char *text, const char *classes)
{
    if (!text[0] || !strchr(classes, text[0]) || text[1] != '.')
        return 0;
    size_t i = 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;
        while (text[i] >= '0' && text[i] <= '9' && digits < 3)
            i++, digits++;
        if (digits == 0 || (part == 0 && text[i++] != '.'))
            return 0;
    }
    return text[i] == ' ' || !text[i] ? i : 0;
}
