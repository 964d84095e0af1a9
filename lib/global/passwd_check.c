/* passwd_check.c: checking a password against smtpd_sasl_password_maps
 * (see passwd_check.h). Each check costs one crypt_r(): tens of
 * milliseconds for yescrypt; a caller with an event loop runs it off the
 * loop (smtpd's helper threads) or bounds how often it can be asked. */
#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "maps.h"
#include "passwd_check.h"
#include "strbuf.h"
#include "util.h"

static struct maplist *password_maps;
/* the setting an unknown user is checked with: at first a fresh yescrypt
 * (or SHA-512) one, then the hash of the last known user looked up */
static char dummy_setting[PASSWD_HASH_MAX];

int passwd_check_open(const char *maps, struct strbuf *err)
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

bool passwd_same_text(const char *a, const char *b)
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

int passwd_check_setting(const char *user, char *setting, size_t size, bool *known)
{
    struct strbuf v = STRBUF_INIT(PASSWD_HASH_MAX * 2);
    int rc = password_maps ? maplist_lookup(password_maps, user, &v) : -1;
    *known = false;
    if (rc < 0) {
        sb_free(&v);
        msg_warn("smtpd_sasl_password_maps: lookup of user %s failed", user);
        return -1;
    }
    *known = rc > 0 && take_hash(sb_str(&v), setting, size);
    if (rc > 0 && !*known)
        msg_warn("smtpd_sasl_password_maps: user %s: the value is not a password hash", user);
    sb_free(&v);
    if (*known && setting[0] == '$' && strchr(setting + 1, '$'))
        /* The next unknown user is hashed like this known one: a site whose
         * hashes are all $6$ (a few ms) must not have unknown users cost a
         * yescrypt (tens of ms), or the time of a failed login would tell
         * which names exist. A hash works as a setting as it stands; the
         * result of a dummy check is never used. (A value that is not of
         * the $method$ form is no model: crypt_r may refuse it at once.) */
        str_copy(dummy_setting, sizeof(dummy_setting), setting);
    else
        str_copy(setting, size, dummy_setting);
    return 0;
}

bool passwd_check_verify(const char *password, const char *setting, bool known, bool *bad_hash)
{
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    bool ok = false;
    *bad_hash = false;
    if (!cd) {
        *bad_hash = known;
        return false;
    }
    const char *got = crypt_r(password, setting, cd);
    if (known && (!got || got[0] == '*'))
        *bad_hash = true;
    else
        ok = known && got && passwd_same_text(got, setting);
    memset(cd, 0, sizeof(*cd));     /* it held the password */
    free(cd);
    return ok;
}
