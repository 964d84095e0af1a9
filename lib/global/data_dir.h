/* data_dir.h: folders inside data_directory where an unprivileged daemon
 * keeps state of its own (the MTA-STS policy cache, the TLS session
 * records). */
#ifndef TERN_DATA_DIR_H
#define TERN_DATA_DIR_H

#include "config.h"

/* The value of param, a folder inside data_directory: fatal (a main.cf
 * mistake) unless it is one plain name. */
const char *data_dir_folder_name(enum param_id param);
/* As root, before the privilege drop: data_directory's descriptor (no link
 * followed), or -1 after the warning "what: cannot open data_directory
 * D: ERROR; consequence". */
int data_dir_open(const char *what, const char *consequence);
/* After the privilege drop, as the account that keeps the state: the
 * folder name inside *data_fd, made 0700 when missing, as a descriptor;
 * -1 after a warning ("what: ...; consequence") when it cannot be made or
 * opened, or belongs to another account. *data_fd is closed and -1. */
int data_dir_folder(int *data_fd, const char *name, const char *what, const char *consequence);
/* For a command that reads the state: the folder name inside
 * data_directory, opened without following a link and without making
 * it; -1 with errno set. */
int data_dir_folder_read(const char *name);

#endif
