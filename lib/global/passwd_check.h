/* passwd_check.h: the "tern" password back-end shared by smtpd's AUTH and
 * the web console's login: smtpd_sasl_password_maps maps a user name to a
 * crypt(3) hash (yescrypt $y$, SHA-512 $6$, ... whatever libcrypt knows),
 * and a password is right when crypt_r() of it with that hash as setting
 * gives the hash again, compared in constant time. A user the tables do
 * not know is checked against a dummy setting of the same method and cost
 * as the last known user's hash, so that timing does not tell which users
 * exist. The tables are opened as root before the
 * privilege drop, so they may be readable by root only. */
#ifndef TERN_PASSWD_CHECK_H
#define TERN_PASSWD_CHECK_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf;

#define PASSWD_HASH_MAX 512

/* Open the tables (maps: the parameter's value). 0 ok, -1 with err. */
int passwd_check_open(const char *maps, struct strbuf *err);

/* Look the user up: the setting to check a password with (the user's
 * hash, or the dummy one when *known is false). 0, or -1 when the lookup
 * failed (logged). A value that is not a hash is logged and not known. */
int passwd_check_setting(const char *user, char *setting, size_t size, bool *known);

/* Check password against setting (any thread): true when right. A known
 * hash of a method libcrypt does not have sets *bad_hash. */
bool passwd_check_verify(const char *password, const char *setting, bool known, bool *bad_hash);

/* Equal strings, in a time that depends only on the lengths. */
bool passwd_same_text(const char *a, const char *b);

#endif
