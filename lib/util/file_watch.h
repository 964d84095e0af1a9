/* file_watch.h: files a daemon read at start that are not tables
 * (certificates, private keys, CA files), watched so that a changed file
 * makes the process finish its work and exit, and a fresh process read
 * it, as with a rebuilt table (maps_changed() in lib/global/maps.h asks
 * here too). The file is opened once, as root before the privilege drop,
 * and watched through that descriptor (replaced, rewritten or removed);
 * when its name is a symbolic link, the link is watched too (pointed at
 * a new file, as certificate renewal tools do). */
#ifndef TERN_FILE_WATCH_H
#define TERN_FILE_WATCH_H

#include <stdbool.h>

/* Watch path; what names it in the log line ("smtpd_tls_cert_file").
 * A file that cannot be opened is not watched (its user reports why it
 * cannot be read). At most 64 files. */
void file_watch_add(const char *what, const char *path);

/* Whether a watched file changed since file_watch_add (logged once, with
 * its name). Looks at the files each time: callers limit the rate. */
bool file_watch_changed(void);

#endif
