/* smtpd_sasl_passwd.c: the "tern" authentication back-end of AUTH:
 * smtpd_sasl_password_maps maps a user name to a crypt(3) hash (yescrypt
 * $y$, SHA-512 $6$, ... whatever libcrypt knows), and a password is right
 * when crypt_r() of it with that hash as setting gives the hash again,
 * compared in constant time. A user the tables do not know costs a hash
 * computation too, so that timing does not tell which users exist. The
 * tables are opened as root before the privilege drop, so they may be
 * readable by root only. The hash is computed inline: a yescrypt check
 * holds the event loop for some tens of milliseconds. */
#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "maps.h"
#include "smtpd_sasl.h"
#include "strbuf.h"
#include "util.h"

#define HASH_MAX 512

static struct maplist *password_maps;
static char dummy_setting[CRYPT_GENSALT_OUTPUT_SIZE];

int passwd_open(const char *maps, struct strbuf *err)
{
    if (!*maps) {
        sb_appends(err, "smtpd_sasl_password_maps is empty");
        return -1;
    }
    password_maps = maplist_open(maps, err);
    if (!password_maps)
        return -1;
    /* the setting a user the tables do not know is hashed with */
    if (!crypt_gensalt_rn("$y$", 0, NULL, 0, dummy_setting, sizeof(dummy_setting))
        && !crypt_gensalt_rn("$6$", 0, NULL, 0, dummy_setting, sizeof(dummy_setting)))
        str_copy(dummy_setting, sizeof(dummy_setting), "$6$tern$");
    return 0;
}

/* Equal strings, in a time that depends only on the lengths. */
static bool same_text(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = na != nb;
    for (size_t i = 0; i < na; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)(i < nb ? b[i] : 0);
    return diff == 0;
}

/* The table's value: the hash, without surrounding white space. */
static bool take_hash(const char *value, char *out, size_t outsz)
{
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strcspn(value, " \t");
    if (n == 0 || n >= outsz)
        return false;
    memcpy(out, value, n);
    out[n] = 0;
    return true;
}

enum sasl_status passwd_check(const char *user, const char *password, const char **why)
{
    struct strbuf v = STRBUF_INIT(HASH_MAX * 2);
    char hash[HASH_MAX];
    int rc = password_maps ? maplist_lookup(password_maps, user, &v) : -1;
    if (rc < 0) {
        sb_free(&v);
        msg_warn("smtpd_sasl_password_maps: lookup of user %s failed", user);
        *why = "Temporary lookup failure";
        return SASL_TEMP;
    }
    bool known = rc > 0 && take_hash(sb_str(&v), hash, sizeof(hash));
    if (rc > 0 && !known)
        msg_warn("smtpd_sasl_password_maps: user %s: the value is not a password hash", user);
    sb_free(&v);
    struct crypt_data *cd = xcalloc(1, sizeof(*cd));
    const char *got = crypt_r(password, known ? hash : dummy_setting, cd);
    enum sasl_status st = SASL_FAIL;
    *why = "authentication failure";
    if (known && (!got || got[0] == '*')) {
        msg_warn("smtpd_sasl_password_maps: user %s: password hash of an unknown or "
                 "disabled method", user);
    } else if (known && same_text(got, hash)) {
        st = SASL_DONE;
    }
    memset(cd, 0, sizeof(*cd));     /* it held the password */
    free(cd);
    return st;
}
