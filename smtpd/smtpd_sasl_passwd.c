/* smtpd_sasl_passwd.c: the "tern" authentication back-end of AUTH:
 * smtpd_sasl_password_maps maps a user name to a crypt(3) hash (yescrypt
 * $y$, SHA-512 $6$, ... whatever libcrypt knows), and a password is right
 * when crypt_r() of it with that hash as setting gives the hash again,
 * compared in constant time. A user the tables do not know costs a hash
 * computation too, so that timing does not tell which users exist. The
 * tables are opened as root before the privilege drop, so they may be
 * readable by root only.
 *
 * A yescrypt check costs tens of milliseconds of CPU, too long to hold the
 * event loop (and every other session of the process): the table lookup is
 * done in the loop, the hash computation by a small pool of helper threads,
 * which hand the result back through a pipe the loop watches. The helpers
 * touch nothing but their job; a session that ends while its job runs
 * only marks it, and the loop drops the result. When the helpers cannot be
 * started, the check runs inline. */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "maps.h"
#include "smtpd.h"
#include "smtpd_sasl.h"
#include "strbuf.h"
#include "util.h"

#define HASH_MAX 512
#define HELPERS 2

struct smtpd_passwd_job {
    struct smtpd_session *s;     /* NULL once the session gave up (loop thread only) */
    char *user;
    char *password;
    char setting[HASH_MAX];      /* the user's hash, or the dummy setting */
    bool known;                  /* setting is the user's hash */
    bool ok, bad_hash;           /* results */
    struct smtpd_passwd_job *next;
};

static struct maplist *password_maps;
static char dummy_setting[CRYPT_GENSALT_OUTPUT_SIZE];

static struct {
    bool running;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct smtpd_passwd_job *todo, *todo_tail, *done;
    int pipe_r, pipe_w;
    struct event *ev;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
           .pipe_r = -1, .pipe_w = -1 };

int smtpd_passwd_open(const char *maps, struct strbuf *err)
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

/* ---- the check itself (any thread) ---- */

/* Equal strings, in a time that depends only on the lengths. */
static bool same_text(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = na != nb;
    for (size_t i = 0; i < na; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)(i < nb ? b[i] : 0);
    return diff == 0;
}

static void job_compute(struct smtpd_passwd_job *j)
{
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    if (!cd) {
        j->bad_hash = j->known;
        return;
    }
    const char *got = crypt_r(j->password, j->setting, cd);
    if (j->known && (!got || got[0] == '*'))
        j->bad_hash = true;
    else
        j->ok = j->known && got && same_text(got, j->setting);
    memset(cd, 0, sizeof(*cd));     /* it held the password */
    free(cd);
}

static void job_free(struct smtpd_passwd_job *j)
{
    if (j->password) {
        memset(j->password, 0, strlen(j->password));
        free(j->password);
    }
    free(j->user);
    free(j);
}

/* Hand the result to the session (loop thread). */
static void job_answer(struct smtpd_passwd_job *j)
{
    struct smtpd_session *s = j->s;
    if (j->bad_hash)
        msg_warn("smtpd_sasl_password_maps: user %s: password hash of an unknown or "
                 "disabled method", j->user);
    enum smtpd_sasl_status st = j->ok ? SASL_DONE : SASL_FAIL;
    const char *text = j->ok ? j->user : "authentication failure";
    char *keep = xstrdup(text);
    job_free(j);
    if (s)
        smtpd_sasl_backend_answer(s, st, keep);
    free(keep);
}

/* ---- the helper threads ---- */

static void *helper_main(void *arg)
{
    for (;;) {
        pthread_mutex_lock(&pool.lock);
        while (!pool.todo)
            pthread_cond_wait(&pool.wake, &pool.lock);
        struct smtpd_passwd_job *j = pool.todo;
        pool.todo = j->next;
        if (!pool.todo)
            pool.todo_tail = NULL;
        pthread_mutex_unlock(&pool.lock);
        job_compute(j);
        pthread_mutex_lock(&pool.lock);
        j->next = pool.done;
        pool.done = j;
        pthread_mutex_unlock(&pool.lock);
        char b = 1;
        ssize_t w;
        do
            w = write(pool.pipe_w, &b, 1);      /* a full pipe is readable anyway */
        while (w < 0 && errno == EINTR);
    }
    return NULL;
}

static void results_ready(evutil_socket_t fd, short what, void *arg)
{
    char buf[256];
    while (read(pool.pipe_r, buf, sizeof(buf)) > 0)
        ;
    pthread_mutex_lock(&pool.lock);
    struct smtpd_passwd_job *list = pool.done;
    pool.done = NULL;
    pthread_mutex_unlock(&pool.lock);
    while (list) {
        struct smtpd_passwd_job *j = list;
        list = j->next;
        job_answer(j);
    }
}

void smtpd_passwd_start_helpers(struct event_base *base)
{
    int p[2];
    if (pipe(p) < 0)
        msg_fatal("SASL: cannot make a pipe for the password helpers: %s", strerror(errno));
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    pool.pipe_r = p[0];
    pool.pipe_w = p[1];
    pool.ev = event_new(base, pool.pipe_r, EV_READ | EV_PERSIST, results_ready, NULL);
    if (!pool.ev || event_add(pool.ev, NULL) < 0)
        msg_fatal("SASL: cannot watch the password helpers' pipe");
    /* signals stay with the event loop's thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int started = 0;
    for (int i = 0; i < HELPERS; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, helper_main, NULL) == 0) {
            pthread_detach(t);
            started++;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!started)
        msg_warn("SASL: cannot start the password helper threads; checking inline");
    pool.running = started > 0;
}

/* ---- requests (loop thread) ---- */

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

struct smtpd_passwd_job *smtpd_passwd_check_start(struct smtpd_session *s, const char *user,
                                                  const char *password, const char **why)
{
    struct strbuf v = STRBUF_INIT(HASH_MAX * 2);
    int rc = password_maps ? maplist_lookup(password_maps, user, &v) : -1;
    if (rc < 0) {
        sb_free(&v);
        msg_warn("smtpd_sasl_password_maps: lookup of user %s failed", user);
        *why = "Temporary lookup failure";
        return NULL;
    }
    struct smtpd_passwd_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->user = xstrdup(user);
    j->password = xstrdup(password);
    j->known = rc > 0 && take_hash(sb_str(&v), j->setting, sizeof(j->setting));
    if (rc > 0 && !j->known)
        msg_warn("smtpd_sasl_password_maps: user %s: the value is not a password hash", user);
    sb_free(&v);
    if (!j->known)
        str_copy(j->setting, sizeof(j->setting), dummy_setting);
    if (!pool.running) {
        job_compute(j);
        pthread_mutex_lock(&pool.lock);
        j->next = pool.done;
        pool.done = j;
        pthread_mutex_unlock(&pool.lock);
        event_active(pool.ev, EV_READ, 0);     /* answered from the loop, not from here */
        return j;
    }
    pthread_mutex_lock(&pool.lock);
    if (pool.todo_tail)
        pool.todo_tail->next = j;
    else
        pool.todo = j;
    pool.todo_tail = j;
    pthread_cond_signal(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    return j;
}

void smtpd_passwd_check_cancel(struct smtpd_passwd_job *j)
{
    if (j)
        j->s = NULL;
}
