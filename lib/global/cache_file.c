/* cache_file.c: the local file store of the caches that one daemon owns
 * (postscreen's temporary allowlist, the address verification cache): the
 * table lives in the daemon's memory and is saved, in the daemon's own
 * line format, as a whole file written under a temporary name, flushed to
 * disk and renamed into place, then read back line by line at start. A
 * cache shared by several hosts uses cache_store.c instead. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache_store.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

int cache_file_save(int dir_fd, const char *name, const char *what, cache_file_writer fn,
                    void *ctx)
{
    struct strbuf tmp = STRBUF_INIT(4096);
    sb_appendf(&tmp, "%s.tmp", name);
    int fd = openat(dir_fd, sb_str(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                    0600);
    FILE *fp = fd < 0 ? NULL : fdopen(fd, "w");
    if (!fp) {
        msg_warn("%s: cannot save %s: %m", what, name);
        if (fd >= 0)
            close(fd);
        sb_free(&tmp);
        return -1;
    }
    fn(fp, ctx);
    bool ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    ok = fclose(fp) == 0 && ok;
    if (!ok || renameat(dir_fd, sb_str(&tmp), dir_fd, name) < 0) {
        /* name.tmp stays until the next save truncates it: no unlink,
         * which postscreen's system call filter does not allow */
        msg_warn("%s: cannot save %s: %m", what, name);
        sb_free(&tmp);
        return -1;
    }
    sb_free(&tmp);
    return 0;
}

void cache_file_load(int dir_fd, const char *name, const char *what, size_t line_max,
                     cache_file_reader fn, void *ctx)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    FILE *fp = fd < 0 ? NULL : fdopen(fd, "r");
    if (!fp) {
        if (fd >= 0)
            close(fd);
        else if (errno != ENOENT)
            msg_warn("%s: cannot read %s: %m; starting with an empty cache", what, name);
        return;
    }
    char *line = xmalloc(line_max + 2);
    size_t bad = 0;
    while (fgets(line, (int)(line_max + 2), fp)) {
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\n') {
            line[--n] = 0;
        } else if (!feof(fp)) {            /* too long: skip the rest of it */
            int c;
            while ((c = getc(fp)) != EOF && c != '\n')
                ;
            bad++;
            continue;
        }
        if (line[0] == '#' || line[0] == 0)
            continue;
        if (!fn(line, ctx))
            bad++;
    }
    if (bad)
        msg_warn("%s: %s: %zu malformed line%s ignored", what, name, bad, bad == 1 ? "" : "s");
    free(line);
    fclose(fp);
}
