/* mailq.h: the queue listed as mailq shows it (mailq.c), by `tern queue`
 * and by the showq service. */
#ifndef TERN_MAILQ_H
#define TERN_MAILQ_H

#include <stdbool.h>
#include <stdio.h>

#include "queue_scan.h"

/* List the messages that match filter on out (text, or JSON lines);
 * the working directory is queue_directory. 0 ok, -1 write error. */
int mailq_print(FILE *out, const struct queue_filter *filter, bool json);

#endif
