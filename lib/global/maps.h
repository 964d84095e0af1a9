/* maps.h: lookup tables named "type:name" as in Postfix: hash: and btree:
 * (Berkeley DB files NAME.db built by `tern map build`), pcre: and regexp:
 * (PCRE2 pattern files), texthash: (a source file read into memory),
 * inline:{ key=value, { key = value with spaces } }, unix:passwd.byname,
 * pgsql: and ldap: (a query file: pgsql_table(5), ldap_table(5)), and
 * proxy:TYPE:NAME (TYPE:NAME looked up by the proxymap service, which
 * opens it once for every process: map_proxy.c).
 *
 * Keys of hash, btree, texthash and inline tables are case-folded to lower
 * case when built and when looked up. Source files follow postmap(1): "key
 * value" per line, '#' comment lines, lines starting with white space
 * continue the previous one; as in Postfix, an entry without a value is
 * skipped and, for a repeated key, the first entry wins (both with a warning).
 *
 * Database convention (compatible with Postfix both ways): like postmap,
 * map_build stores every key and value with its terminating NUL byte; a
 * lookup tries the key with the NUL first, then without it, and a value's
 * trailing NUL is dropped. A damaged database must never answer "not
 * found" or crash the reader: map_build turns on Berkeley DB page checksums
 * (damage inside a page makes lookups fail with -1), and map_open reads the
 * file once (under 1 ms per MB) to refuse pages that are not what they claim
 * to be. Files written without checksums (by Postfix's postmap, say) are
 * read, but get only the second check: rebuild them with map_build. */
#ifndef TERN_MAPS_H
#define TERN_MAPS_H

#include <stdbool.h>

#include "config.h"

struct strbuf;
struct map;

/* Open a table; NULL with a message in err ("file:line: ...") on failure. */
struct map *map_open(const char *spec, struct strbuf *err);
/* 1 found (result holds the value), 0 not found, -1 lookup error (logged);
 * callers must treat -1 as a temporary failure, never as "not found". */
int map_lookup(struct map *m, const char *key, struct strbuf *result);
void map_close(struct map *m);
const char *map_spec(const struct map *m);
/* Whether the file of any open table was rebuilt or changed since it was
 * opened (logged once per table). A long-lived process that sees true
 * finishes its work and exits so that a fresh one reads the new tables,
 * as Postfix's daemons do; so does a changed certificate or key file
 * (lib/util/file_watch.h). Looks at the files at most once per second. */
bool maps_changed(void);

/* The table spec names with any proxy: prefix taken off: its users treat
 * proxy:pcre:/x as the pcre: table it is (keys are matched as patterns). */
const char *map_spec_inner(const char *spec);

/* From now on, this process opens each proxy:TYPE:NAME table as TYPE:NAME
 * itself, as Postfix's local delivery agent does: its tables' answers
 * (commands, files, addresses run or written with a user's privileges)
 * must not come from a process of mail_owner's uid. */
void maps_proxy_direct(void);

/* Compile the source file NAME of "hash:NAME" or "btree:NAME" into NAME.db
 * (written under a temporary name, then renamed). With MAP_BUILD_ALIASES the
 * source has aliases(5) syntax: "name: value, value". 0 ok, -1 with err. */
#define MAP_BUILD_ALIASES 1
/* With MAP_BUILD_PROGRESS a progress bar shows on a terminal how much of the
 * source has been read (lib/util/progress.h). */
#define MAP_BUILD_PROGRESS 2
int map_build(const char *spec, int flags, struct strbuf *err);

/* A list of tables as in "alias_maps = hash:/etc/aliases, texthash:/x":
 * looked up in order, the first answer wins. */
struct maplist;
struct maplist *maplist_open(const char *value, struct strbuf *err);
/* The list a daemon's main.cf parameter names, opened at start-up: NULL
 * when the parameter is empty; a list that cannot be opened is fatal
 * ("main.cf: NAME: why"). */
struct maplist *maplist_open_param(enum param_id id);
int maplist_lookup(struct maplist *l, const char *key, struct strbuf *result);
/* The same, and *which is the index of the table that answered or failed
 * (for callers that keep something per table). */
int maplist_lookup_which(struct maplist *l, const char *key, struct strbuf *result, size_t *which);
size_t maplist_size(const struct maplist *l);
struct map *maplist_map(const struct maplist *l, size_t i);
void maplist_close(struct maplist *l);

/* Read a postmap-style source file: calls fn(key, value, line, ctx) for
 * each entry; continuation lines, comments and blank lines are handled.
 * fn returns 0 to go on, -1 to stop with an error. 0 ok, -1 with err. */
int map_read_source(const char *path, int flags,
                    int (*fn)(const char *key, const char *value, int line, void *ctx),
                    void *ctx, struct strbuf *err);

#endif
