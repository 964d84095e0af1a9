/* dsn.h: enhanced status codes (RFC 3463, "X.Y.Z") at the start of a text
 * that decides a delivery's outcome: the output of a pipe service's
 * command, the next hop of a discard transport. */
#ifndef TERN_DSN_H
#define TERN_DSN_H

#include <stddef.h>

/* The length of a leading "C.S.D" followed by a space or the end of text,
 * C one of the class digits in classes (say "45"), S and D one to three
 * digits; 0 when text does not start with one. */
size_t dsn_prefix_len(const char *text, const char *classes);

#endif
