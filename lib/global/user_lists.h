/* user_lists.h: the users' own allow and deny lists of senders, and the
 * correspondent allowlist smtpd learns from outgoing mail (user_lists.c).
 * Both are Berkeley DB files in data_directory/$user_lists_directory,
 * kept the way `tern map build` writes tables (keys lower case, key and
 * value stored with their NUL), so `tern map query` shows them:
 *
 *   hash:DIR/user_lists      key "user@domain", value a comma-separated
 *                            list of "allow:PATTERN" and "deny:PATTERN"
 *   btree:DIR/correspondents key "user@domain correspondent@domain",
 *                            value the time (seconds) the user last wrote
 *
 * A PATTERN is an address (local@domain) or a whole domain (@domain).
 * Writers are `tern lists` (and the console) for the lists, smtpd for the
 * correspondents; smtpd reads both. All run as mail_owner; the folder is
 * mail_owner's and 0700, so no other local user can reach the files, and
 * every operation opens the file under an flock(2) of NAME.lock (shared
 * to read, exclusive to write) and closes it again, so concurrent smtpd
 * processes never see or make a half-written page. */
#ifndef TERN_USER_LISTS_H
#define TERN_USER_LISTS_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;

#define USER_LISTS_ADDRESS_MAX 254   /* bytes of a user or a pattern */

enum user_list_kind { USER_LIST_ALLOW, USER_LIST_DENY };

/* data_directory/$user_lists_directory, made (0700) when missing; the
 * caller runs as mail_owner. NULL with err when it is not a plain folder
 * of this account with no access for others. */
const char *user_lists_dir(struct strbuf *err);

/* For a daemon under a system call filter that has no rename(2) (smtpd):
 * make the folder and both tables now, before the filter is applied
 * (Berkeley DB creates a file under a temporary name and renames it), and
 * refuse to create them later: a table removed meanwhile is then an error
 * (logged) until the process is replaced. fd: the folder, opened before a
 * chroot (data_dir_folder; kept), or -1 to use user_lists_dir. 0, or -1
 * with err. */
int user_lists_prepare(int fd, struct strbuf *err);

/* Check and lower-case what a user or an administrator gives: a user is
 * local@domain, a pattern local@domain or @domain, at most
 * USER_LISTS_ADDRESS_MAX printable ASCII bytes without blanks, commas,
 * colons, quotes, angle brackets or backslashes. 0, or -1 with err. */
int user_lists_check_user(char *user, struct strbuf *err);
int user_lists_check_pattern(char *pattern, struct strbuf *err);

/* Add or remove one entry (kind:pattern) of user's lists: 0 (err says
 * "added", "already listed", "removed"), -1 with err (not listed, list
 * full at max entries, the table cannot be written). */
int user_lists_add(const char *user, enum user_list_kind kind, const char *pattern, size_t max,
                   struct strbuf *err);
int user_lists_remove(const char *user, enum user_list_kind kind, const char *pattern,
                      struct strbuf *err);
/* The user's entries, "allow:x,deny:y" into out (empty: none). 0, -1 err. */
int user_lists_get(const char *user, struct strbuf *out, struct strbuf *err);

/* What recipient's lists say of sender: 1 allowed, 2 denied, 0 neither,
 * -1 the table could not be read (a temporary failure). An address entry
 * wins over a domain entry; at the same level, deny wins. The matching
 * entry goes to which. */
int user_lists_match(const char *recipient, const char *sender, struct strbuf *which);

/* Remember that users[i] wrote to rcpts[i] (n pairs, one opening of the
 * table) at now: the oldest entries go when there are more than max (and
 * those older than ttl). 0, -1 err. */
int correspondents_record(const char *const *users, const char *const *rcpts, size_t n,
                          long long now, size_t max, long ttl, struct strbuf *err);
/* Whether user wrote to correspondent within ttl: 1, 0, -1 error. */
int correspondents_known(const char *user, const char *correspondent, long long now, long ttl);

#endif
