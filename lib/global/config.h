/* config.h: main.cf with Postfix's syntax, resolved against the single
 * parameter table in params.def. Every program reads its parameters here;
 * `tern conf -d` and the main.cf(5) page are generated from the same table. */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum param_type { PT_STR, PT_INT, PT_BOOL, PT_TIME, PT_SIZE, PT_LIST, PT_REPLY_CODE, PT_DEFER_CODE };

/* PT_TIME values are Postfix time values: a number with optional unit
 * s, m, h, d, w (default unit given per parameter in the table as the
 * suffix of its default, e.g. "300s"). PT_SIZE is a byte count.
 * PT_LIST is a string holding a list separated by commas and/or white space.
 * PT_REPLY_CODE is an SMTP reply code that refuses (400 to 599), PT_DEFER_CODE
 * one that only defers (400 to 499). */

enum param_id {
#define PARAM(name, type, def, desc) P_##name,
#include "params.def"
#undef PARAM
    P__COUNT
};

struct param_def {
    const char *name;
    enum param_type type;
    const char *default_value;   /* may contain $name references */
    const char *description;     /* one line */
};

const struct param_def *param_table(void);     /* P__COUNT entries, by id */
const struct param_def *param_find(const char *name); /* NULL if unknown */

/* The configuration directory the environment names: $TERN_CONFIG_DIRECTORY,
 * else Postfix's $MAIL_CONFIG (so that an administrator's scripts work
 * unchanged), else NULL. Empty values count as unset. */
const char *cfg_env_confdir(void);

/* Load CONFDIR/main.cf (CONFDIR NULL = cfg_env_confdir(), else TERN_SYSCONFDIR).
 * Returns 0, or -1 with a message in err (file:line: what is wrong). Unknown
 * parameter names are kept and can be listed with cfg_unknown(). */
struct strbuf;
int cfg_load(const char *confdir, struct strbuf *err);
const char *cfg_confdir(void);

/* Override a parameter as master.cf "-o name=value" does. Must be called after
 * cfg_load and before the first cfg_* read; user-defined names are allowed. */
void cfg_override(const char *name, const char *value);

/* Typed reads of table parameters, with $name / ${name} expansion done. A value
 * that does not parse for its type is fatal at first read (msg_fatal names the
 * parameter, the value and main.cf). */
const char *cfg_str(enum param_id id);
/* Logging as main.cf says: syslog_name, syslog_facility, maillog_file and
 * how that file is made (lib/util/log.h). */
void cfg_log_configure(void);
long cfg_int(enum param_id id);
bool cfg_bool(enum param_id id);
long cfg_time(enum param_id id);        /* seconds */
long long cfg_size(enum param_id id);   /* bytes */
int cfg_reply_code(enum param_id id);    /* PT_REPLY_CODE or PT_DEFER_CODE */

/* Any name, including user-defined ones ($mua_client_restrictions);
 * expanded; NULL when neither set nor in the table. */
const char *cfg_get(const char *name);

/* Raw (unexpanded) value as written in main.cf or -o; NULL if not set there. */
const char *cfg_get_raw_set(const char *name);

/* Validate all table parameters parse for their type; returns number of
 * problems, each appended to err as a line. */
int cfg_validate(struct strbuf *err);

/* Call fn for every name set in main.cf or -o that is not in the table and
 * is not referenced as $name by any other value (user-defined macros are fine). */
void cfg_unknown(void (*fn)(const char *name, const char *file, int line, void *ctx), void *ctx);

/* Per-transport settings as in Postfix: TRANSPORT_destination_recipient_limit
 * and the like, read by qmgr for the master.cf service TRANSPORT. true when
 * name has such a suffix (table parameters are looked up first). */
bool cfg_is_per_transport(const char *name);
/* The table parameter whose value applies while a per-transport setting is
 * not set (default_destination_recipient_limit for
 * relay_destination_recipient_limit); NULL when name is not per-transport. */
const char *cfg_per_transport_default(const char *name);
/* Whether value suits the per-transport setting name: a time for
 * TRANSPORT_time_limit, else a number 0..1000000. 0 yes, -1 no. */
int cfg_per_transport_check(const char *name, const char *value);

/* Check the current value of one parameter, a table or a per-transport one,
 * the way its readers will: expansion, then its type. 0 when it is fine (or
 * the name is neither), -1 with "parameter NAME: ..." appended to err. */
int cfg_check_param(const char *name, struct strbuf *err);

/* Iterate over names explicitly set (main.cf + overrides), in file order. */
void cfg_each_set(void (*fn)(const char *name, const char *raw_value, void *ctx), void *ctx);

/* Split a PT_LIST value into words (comma / white space separated). The
 * returned array and strings are owned by the caller: free with cfg_list_free. */
char **cfg_list_split(const char *value, size_t *count);
void cfg_list_free(char **list, size_t count);
/* Whether word is one of the words of a list value (exactly, case and all). */
bool cfg_list_has(const char *value, const char *word);
/* The bits a list of words stands for, as in "canonical_classes =
 * envelope_sender, header_sender": each word is looked up in names (a
 * name_code table whose end entry has code 0); a word it does not know is
 * warned about ("WHAT: unknown word "x" ignored") and adds nothing. */
struct name_code;
unsigned cfg_list_bits(const char *value, const struct name_code *names, const char *what);

/* Parse a Postfix time value with a default unit; -1 if invalid. */
long parse_time_value(const char *s, char default_unit);
/* Parse a size value (plain byte count, optional k/m/g suffix); -1 if invalid. */
long long parse_size_value(const char *s);

#endif
