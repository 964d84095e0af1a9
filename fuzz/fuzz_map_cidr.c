/* fuzz_map_cidr.c: libFuzzer target for the cidr: table parser
 * (lib/global/map_cidr.c, with netlist.c's network parser and maps.c's
 * line reader) on table files as an administrator or a generator might
 * write them, and for its lookups. The first line of the input holds up to
 * 8 keys separated by spaces; the rest is the table. Besides crashes,
 * leaks and sanitizer reports: a table either opens or fails with a
 * message, a lookup never fails with -1 (a cidr table has no I/O), and a
 * found value is never empty.
 * sources: lib/global/map_cidr.c lib/global/maps.c lib/util/progress.c lib/util/file_watch.c lib/global/map_proxy.c lib/global/mail_owner.c lib/util/safe_open.c lib/global/proxy_proto.c lib/util/attr.c lib/global/map_db.c lib/global/map_pcre.c lib/global/map_text.c lib/global/map_unix.c lib/global/map_static.c lib/global/map_sqlite.c lib/global/map_rules.c lib/global/map_query.c lib/global/map_query_domain.c lib/global/map_expand.c lib/global/map_module.c lib/global/module.c lib/global/match_list.c lib/global/address.c lib/global/chroot.c lib/global/config.c lib/util/mac_expand.c lib/util/netlist.c -ldb-5.3 -lpcre2-8 -lsqlite3 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/global/maps.h"
#include "lib/util/log.h"
#include "lib/util/strbuf.h"

#define KEYS_MAX 8

/* The table is rewritten for every input: on a tmpfs that costs no disk
 * I/O, where on a disk file system truncating and writing it takes most of
 * the time of a run. /tmp is the fallback where there is no /dev/shm. */
static char path[64];
static int fd = -1;

static void remove_table_file(void)
{
    unlink(path);
}

static int table_file(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        snprintf(path, sizeof(path), "%s", "/dev/shm/fuzz-map-cidr-XXXXXX");
        if ((fd = mkstemp(path)) < 0) {
            snprintf(path, sizeof(path), "%s", "/tmp/fuzz-map-cidr-XXXXXX");
            if ((fd = mkstemp(path)) < 0)
                abort();
        }
        atexit(remove_table_file);
        log_open("fuzz_map_cidr");
        log_configure("tern", "mail", "/dev/null");
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t klen = nl ? (size_t)(nl - data) : size;
    char *keys = malloc(klen + 1);
    memcpy(keys, data, klen);
    keys[klen] = 0;
    size_t off = nl ? klen + 1 : size;
    table_file(data + off, size - off);

    char spec[64];
    snprintf(spec, sizeof(spec), "cidr:%s", path);
    struct strbuf err = STRBUF_INIT(4096), value = STRBUF_INIT(0);
    struct map *m = map_open(spec, &err);
    if (!m && err.len == 0)
        abort();                /* a failure always says why */
    if (m) {
        char *save = NULL;
        int n = 0;
        for (char *k = strtok_r(keys, " ", &save); k && n < KEYS_MAX; k = strtok_r(NULL, " ", &save), n++) {
            int rc = map_lookup(m, k, &value);
            if (rc < 0 || (rc == 1 && value.len == 0))
                abort();
        }
        map_close(m);
    }
    sb_free(&err);
    sb_free(&value);
    free(keys);
    return 0;
}
