/* smtpd_sasl_passwd.c: the "tern" authentication back-end of AUTH, run
 * off smtpd's event loop: the check itself (smtpd_sasl_password_maps and
 * crypt(3) hashes) is lib/global/passwd_check.h, shared with the console.
 *
 * A yescrypt check costs tens of milliseconds of CPU, too long to hold the
 * event loop (and every other session of the process): the table lookup is
 * done in the loop, the hash computation by a small pool of helper threads,
 * which hand the result back through a pipe the loop watches. The helpers
 * touch nothing but their job; a session that ends while its job runs
 * only marks it, and the loop drops the result. When the helpers cannot be
 * started, the check runs inline. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "passwd_check.h"
#include "smtpd.h"
#include "smtpd_sasl.h"
#include "strbuf.h"
#include "util.h"

#define HELPERS 2

struct smtpd_passwd_job {
    struct smtpd_session *s;     /* NULL once the session gave up (loop thread only) */
    char *user;
    char *password;
    char setting[PASSWD_HASH_MAX];      /* the user's hash, or the dummy setting */
    bool known;                  /* setting is the user's hash */
    bool ok, bad_hash;           /* results */
    struct smtpd_passwd_job *next;
};

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
    return passwd_check_open(maps, err);
}

/* ---- the check itself (any thread) ---- */

static void job_compute(struct smtpd_passwd_job *j)
{
    j->ok = passwd_check_verify(j->password, j->setting, j->known, &j->bad_hash);
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

struct smtpd_passwd_job *smtpd_passwd_check_start(struct smtpd_session *s, const char *user,
                                                  const char *password, const char **why)
{
    struct smtpd_passwd_job *j = xcalloc(1, sizeof(*j));
    if (passwd_check_setting(user, j->setting, sizeof(j->setting), &j->known) < 0) {
        free(j);
        *why = "Temporary lookup failure";
        return NULL;
    }
    j->s = s;
    j->user = xstrdup(user);
    j->password = xstrdup(password);
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
