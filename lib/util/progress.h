/* progress.h: a progress bar on standard error for long work done from the
 * shell (`tern map build` of a large source, bulk queue changes, `tern
 * report` over large logs): drawn only when standard error is a terminal,
 * redrawn at most five times a second, and wiped when the work ends, so
 * that nothing extra is printed when the output goes to a file or a pipe. */
#ifndef TERN_PROGRESS_H
#define TERN_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

#define PROGRESS_WHAT_MAX 48          /* bytes of the label that are shown */
#define PROGRESS_INTERVAL_USEC 200000 /* between two redraws */

struct progress {
    bool on;                      /* standard error is a terminal */
    bool drawn;                   /* a bar is on the screen (to wipe) */
    bool bytes;                   /* done and total count bytes */
    char what[PROGRESS_WHAT_MAX + 1];
    unsigned long long total, done;
    long long last_usec;          /* the last redraw */
};

/* Start a bar labelled what for total units (bytes when bytes is true, else
 * items; total 0: not known, only the count is shown). Nothing is drawn when
 * standard error is not a terminal. */
void progress_begin(struct progress *p, const char *what, unsigned long long total, bool bytes);
/* done units of total are finished: redraws when the last redraw is older
 * than PROGRESS_INTERVAL_USEC. Cheap enough to call for every line. */
void progress_update(struct progress *p, unsigned long long done);
/* Wipe the bar (until the next redraw) so that a message printed now
 * starts on a clean line. */
void progress_clear(struct progress *p);
/* The same for the bar on the screen now, if any: what prints messages on
 * standard error (log.c with log_to_stderr) calls it first. */
void progress_interrupt(void);
/* The work is over: the bar is wiped from the terminal. */
void progress_end(struct progress *p);

/* The bar's text for a terminal of width columns (without the leading
 * carriage return): "what [#####.....]  45%  1.2/2.6 MB". Exposed for the
 * unit test. Returns the length written (always < size). */
size_t progress_format(char *buf, size_t size, const char *what, unsigned long long done,
                       unsigned long long total, bool bytes, unsigned width);

#endif
