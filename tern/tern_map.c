/* tern_map.c: lookup tables from the shell: `tern map build` compiles a
 * table's source file into NAME.db and `tern map query` looks keys up in any
 * table type, as Postfix's postmap does; `tern aliases` rebuilds the alias
 * tables named in alias_database, as newaliases does. */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "maps.h"
#include "safe_open.h"
#include "strbuf.h"
#include "tern.h"
#include "util.h"

#define KEY_LENGTH_LIMIT 65536      /* one key read from standard input */

#define MAP_SYNOPSIS \
    "usage: tern map build [-a] [TYPE:]FILE...\n" \
    "       tern map query [TYPE:]FILE KEY...\n" \
    "       tern map query [TYPE:]FILE -\n"

/* Bad usage gets the synopsis; --help the whole description. */
static void map_usage_error(void)
{
    fprintf(stderr, MAP_SYNOPSIS "`tern map --help` describes them.\n");
}

static void map_help(void)
{
    printf(MAP_SYNOPSIS
        "\n"
        "Lookup tables, named as in main.cf (TYPE:NAME; a name without a type is hash:),\n"
        "as Postfix's postmap does:\n"
        "  build   compile the source FILE of a hash: or btree: table into FILE.db, read\n"
        "          in postmap(1) syntax (\"key value\" lines; lines that begin with white\n"
        "          space continue the one before; '#' comments). Keys are stored in lower\n"
        "          case; for a repeated key the first entry wins. The new FILE.db replaces\n"
        "          the old one atomically, so running deliveries see one or the other.\n"
        "          Run as root on a FILE that root does not own, the table is built with\n"
        "          the owner's privileges, so it stays theirs.\n"
        "    -a, --aliases  the source has aliases(5) syntax (\"name: value, value\")\n"
        "  query   look each KEY up, for every table type: hash, btree, pcre, regexp,\n"
        "          texthash, inline, unix, cidr, static, sqlite, pgsql, ldap, proxy. With one\n"
        "          KEY the value is printed; with several, or with - (keys read from\n"
        "          standard input, one a line), \"KEY<tab>VALUE\" for each key found.\n"
        "          Keys of hash, btree, texthash, inline, sqlite, pgsql and ldap tables\n"
        "          are case-insensitive. A proxy:TYPE:NAME table is asked of the running\n"
        "          proxymap service, as the daemons ask it (so Tern must be running, and\n"
        "          the table listed in proxy_read_maps); query TYPE:NAME to open the\n"
        "          table directly.\n"
        "\n"
        "Exit status: build: 0, or 1 when a table could not be built (the reason, with\n"
        "FILE:LINE for a bad source line, on stderr); query: 0 every key found, 1 a key\n"
        "not found (nothing printed for it), 2 the table could not be opened or a lookup\n"
        "failed (with the reason). 2 also for bad usage.\n");
}

/* "hash:" is the type of a bare file name, as for postmap. */
static char *table_spec(const char *arg)
{
    struct strbuf spec = STRBUF_INIT(0);
    sb_appendf(&spec, "%s%s", strchr(arg, ':') ? "" : "hash:", arg);
    char *out = xstrdup(sb_str(&spec));
    sb_free(&spec);
    return out;
}

/* Run map_build with the effective ids of the source file's owner when root
 * runs it on a file root does not own, as postmap does: the table then
 * belongs to that owner, whose privileges (not default_privs) its commands
 * and files get from local delivery, and root never writes into a
 * directory on someone else's behalf. */
static int build_table(const char *spec, int flags, struct strbuf *err)
{
    const char *colon = strchr(spec, ':');
    struct stat st;
    if (geteuid() != 0 || !colon || stat(colon + 1, &st) < 0 || st.st_uid == 0)
        return map_build(spec, flags, err);
    if (ids_assume(st.st_uid, st.st_gid) < 0) {
        sb_appendf(err, "cannot take the ids %ld:%ld of the owner of %s: %s", (long)st.st_uid,
                   (long)st.st_gid, colon + 1, strerror(errno));
        return -1;
    }
    int rc = map_build(spec, flags, err);
    if (rc < 0)
        sb_appendf(err, " (built with the privileges of uid %ld, the owner of %s)",
                   (long)st.st_uid, colon + 1);
    if (ids_restore() < 0)
        msg_fatal("cannot restore the root privileges: %s", strerror(errno));
    return rc;
}

/* build_table, saying why on stderr when it fails: the exit status, 0 built
 * or 1 not. */
static int build_reported(const char *spec, int flags)
{
    struct strbuf err = STRBUF_INIT(4096);
    int rc = 0;
    if (build_table(spec, flags, &err) < 0) {
        fprintf(stderr, "tern: %s\n", sb_str(&err));
        rc = 1;
    }
    sb_free(&err);
    return rc;
}

static int map_build_command(int argc, char **argv)
{
    int flags = 0, first = 1, rc = 0;
    if (argc > 1 && (strcmp(argv[1], "-a") == 0 || strcmp(argv[1], "--aliases") == 0)) {
        flags |= MAP_BUILD_ALIASES;
        first = 2;
    }
    if (first >= argc) {
        map_usage_error();
        return 2;
    }
    for (int i = first; i < argc; i++) {
        char *spec = table_spec(argv[i]);
        if (build_reported(spec, flags | MAP_BUILD_PROGRESS))
            rc = 1;
        free(spec);
    }
    return rc;
}

/* 0 found (printed), 1 not found, 2 lookup error. */
static int query_one(struct map *m, const char *key, bool with_key)
{
    struct strbuf value = STRBUF_INIT(0);
    int found = map_lookup(m, key, &value);
    if (found > 0) {
        if (with_key)
            printf("%s\t%s\n", key, sb_str(&value));
        else
            printf("%s\n", sb_str(&value));
    } else if (found < 0) {
        fprintf(stderr, "tern: %s: lookup of \"%s\" failed\n", map_spec(m), key);
    }
    sb_free(&value);
    return found > 0 ? 0 : found == 0 ? 1 : 2;
}

/* Keys from standard input, one a line; the worst status of all. */
static int query_stdin(struct map *m)
{
    struct strbuf key = STRBUF_INIT(KEY_LENGTH_LIMIT);
    int c, rc = 0;
    bool more = true;
    while (more) {
        sb_reset(&key);
        while ((c = getchar()) != EOF && c != '\n')
            if (sb_appendc(&key, c) < 0) {
                fprintf(stderr, "tern: a key on standard input is longer than %d bytes\n",
                        KEY_LENGTH_LIMIT);
                sb_free(&key);
                return 2;
            }
        more = c != EOF;
        if (key.len && key.data[key.len - 1] == '\r')
            sb_truncate(&key, key.len - 1);
        if (key.len == 0)
            continue;
        int one = query_one(m, sb_str(&key), true);
        if (one > rc)
            rc = one;
    }
    sb_free(&key);
    return rc;
}

/* A proxy: table is asked of the running proxymap service, as Postfix's
 * postmap -q does, so the answer is the one the daemons get (with
 * proxy_read_maps and the tables as proxymap opened them); that needs the
 * instance's main.cf (queue_directory) and a running master. true, with
 * the reason on stderr, when the service cannot be there. */
static bool proxy_query_unreachable(const char *spec)
{
    tern_load_config();
    if (tern_master_pid() > 0)
        return false;
    fprintf(stderr, "tern: %s: Tern is not running (configuration %s), so no proxymap "
            "service answers proxy: tables; start it, or query %s to open the table "
            "directly\n", spec, cfg_confdir(), spec + 6);
    return true;
}

static bool module_type(const char *spec)
{
    spec = map_spec_inner(spec);
    return strncmp(spec, "pgsql:", 6) == 0 || strncmp(spec, "ldap:", 5) == 0;
}

static int map_query_command(int argc, char **argv)
{
    if (argc < 3) {
        map_usage_error();
        return 2;
    }
    char *spec = table_spec(argv[1]);
    struct strbuf err = STRBUF_INIT(4096);
    /* pgsql: and ldap: are modules in the configured daemon_directory */
    if (module_type(spec))
        tern_load_config();
    if (strncmp(spec, "proxy:", 6) == 0 && proxy_query_unreachable(spec)) {
        sb_free(&err);
        free(spec);
        return 2;
    }
    struct map *m = map_open(spec, &err);
    int rc = 0;
    if (!m) {
        fprintf(stderr, "tern: %s\n", sb_str(&err));
        rc = 2;
    } else if (argc == 3 && strcmp(argv[2], "-") == 0) {
        rc = query_stdin(m);
    } else {
        for (int i = 2; i < argc; i++) {
            int one = query_one(m, argv[i], argc > 3);
            if (one > rc)
                rc = one;
        }
    }
    fflush(stdout);
    map_close(m);
    sb_free(&err);
    free(spec);
    return rc;
}

int tern_cmd_map(int argc, char **argv)
{
    if (argc < 2) {
        map_usage_error();
        return 2;
    }
    if (strcmp(argv[1], "help") == 0 || tern_wants_help(argc, argv)) {
        map_help();
        return 0;
    }
    if (strcmp(argv[1], "build") == 0)
        return map_build_command(argc - 1, argv + 1);
    if (strcmp(argv[1], "query") == 0)
        return map_query_command(argc - 1, argv + 1);
    fprintf(stderr, "tern: map: unknown action \"%s\" (build or query)\n", argv[1]);
    map_usage_error();
    return 2;
}

/* ---- tern aliases ---- */

int tern_cmd_aliases(int argc, char **argv)
{
    static const char usage[] =
        "usage: tern [-c CONFDIR] aliases\n"
        "  rebuild the alias tables named in alias_database (default hash:/etc/aliases)\n"
        "  from their aliases(5) source files, as Postfix's newaliases does: FILE.db\n"
        "  from FILE, replaced atomically, so local delivery sees the change at once.\n"
        "  Tables of other types than hash: and btree: are read from their source\n"
        "  directly and are skipped with a note. Exit status 1 when a table could not\n"
        "  be built (the reason, with FILE:LINE for a bad line, on stderr), else 0.\n";
    tern_no_arguments(argc, argv, usage, " (the tables are alias_database)");
    tern_load_config();
    size_t n;
    char **tables = cfg_list_split(cfg_str(P_alias_database), &n);
    int rc = 0;
    if (n == 0)
        fprintf(stderr, "tern: note: alias_database is empty: no table to build\n");
    for (size_t i = 0; i < n; i++) {
        char *spec = table_spec(tables[i]);
        if (strncmp(spec, "hash:", 5) != 0 && strncmp(spec, "btree:", 6) != 0)
            fprintf(stderr, "tern: note: alias_database: %s skipped: only hash: and btree: "
                    "tables are built\n", spec);
        else if (build_reported(spec, MAP_BUILD_ALIASES | MAP_BUILD_PROGRESS))
            rc = 1;
        free(spec);
    }
    cfg_list_free(tables, n);
    return rc;
}
