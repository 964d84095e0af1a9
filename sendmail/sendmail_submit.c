/* sendmail_submit.c: the hand-over of one message to tern-drop, the small
 * setgid program that writes it into maildrop/: tern-drop is started with
 * a pipe on its standard input, gets the envelope and the content as
 * queue-file records (doc/PROTOCOLS.md, "tern-drop"), and answers with the
 * name of the maildrop file, or an error of its own on stderr. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sendmail.h"
#include "util.h"

static void put_record(struct sm_drop *d, int type, const void *data, size_t len)
{
    unsigned char hdr[5] = { (unsigned char)type, (unsigned char)(len >> 24),
                             (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                             (unsigned char)len };
    if (d->failed)
        return;
    if (write_all(d->to_drop, hdr, sizeof(hdr)) < 0
        || (len && write_all(d->to_drop, data, len) < 0))
        d->failed = true;
}

static void put_attr(struct sm_drop *d, const char *name, const char *value)
{
    struct strbuf rec = STRBUF_INIT(0);
    sb_appendf(&rec, "%s=%s", name, value);
    put_record(d, QREC_ATTR, rec.data, rec.len);
    sb_free(&rec);
}

/* The child: tern-drop with the pipes as stdin and stdout. */
static void __attribute__((noreturn)) exec_drop(const struct sm_options *o, int in, int out)
{
    const char *prog = sendmail_drop_program();
    const char *argv[] = { prog, "-c", o->confdir, o->verbose ? "-v" : NULL, NULL };
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0)
        _exit(SM_EX_SOFTWARE);
    execv(prog, (char *const *)argv);
    fprintf(stderr, "sendmail: cannot run %s: %s (it is installed with the daemons, in "
            "daemon_directory)\n", prog, strerror(errno));
    _exit(SM_EX_UNAVAILABLE);
}

int sendmail_drop_start(struct sm_drop *d, const struct sm_options *o, const char *sender,
                  const char *ret, const char *envid, const struct sm_rcpts *rcpts)
{
    int to[2], from[2];
    memset(d, 0, sizeof(*d));
    d->to_drop = d->from_drop = -1;
    if (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0) {
        fprintf(stderr, "sendmail: cannot make a pipe: %s\n", strerror(errno));
        return -1;
    }
    fflush(stdout);
    d->pid = fork();
    if (d->pid < 0) {
        fprintf(stderr, "sendmail: cannot fork: %s\n", strerror(errno));
        return -1;
    }
    if (d->pid == 0)
        exec_drop(o, to[0], from[1]);
    close(to[0]);
    close(from[1]);
    d->to_drop = to[1];
    d->from_drop = from[0];
    if (sender)
        put_record(d, QREC_SENDER, sender, strlen(sender));
    if (o->full_name)
        put_attr(d, "full_name", o->full_name);
    if (ret)
        put_attr(d, "ret", ret);
    if (envid)
        put_attr(d, "envid", envid);
    struct strbuf rec = STRBUF_INIT(0);
    for (size_t i = 0; i < rcpts->n; i++) {
        qrec_rcpt_encode(&rec, rcpts->addr[i], "", rcpts->notify[i]);
        put_record(d, QREC_RCPT, rec.data, rec.len);
    }
    sb_free(&rec);
    return 0;
}

void sendmail_drop_content(struct sm_drop *d, const char *data, size_t len)
{
    for (size_t off = 0; off < len; off += QREC_CONTENT_CHUNK) {
        size_t n = len - off < QREC_CONTENT_CHUNK ? len - off : QREC_CONTENT_CHUNK;
        put_record(d, QREC_CONTENT, data + off, n);
    }
}

static int wait_drop(struct sm_drop *d)
{
    int status;
    if (d->to_drop >= 0)
        close(d->to_drop);
    d->to_drop = -1;
    while (waitpid(d->pid, &status, 0) < 0)
        if (errno != EINTR)
            return SM_EX_SOFTWARE;
    if (d->from_drop >= 0)
        close(d->from_drop);
    d->from_drop = -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    fprintf(stderr, "sendmail: tern-drop was killed by signal %d\n", WTERMSIG(status));
    return SM_EX_TEMPFAIL;
}

int sendmail_drop_finish(struct sm_drop *d, char id[QUEUE_ID_SIZE])
{
    char answer[QUEUE_ID_SIZE + 2];
    size_t got = 0;
    ssize_t n;
    put_record(d, QREC_CONTENT_END, "", 0);
    close(d->to_drop);
    d->to_drop = -1;
    while (got < sizeof(answer) - 1
           && ((n = read(d->from_drop, answer + got, sizeof(answer) - 1 - got)) > 0
               || (n < 0 && errno == EINTR)))
        got += n > 0 ? (size_t)n : 0;
    answer[got] = 0;
    int rc = wait_drop(d);
    if (rc == 0) {
        answer[strcspn(answer, "\n")] = 0;
        if (!queue_id_valid(answer)) {
            fprintf(stderr, "sendmail: tern-drop gave no maildrop file name\n");
            return SM_EX_SOFTWARE;
        }
        str_copy(id, QUEUE_ID_SIZE, answer);
    }
    return rc;
}

void sendmail_drop_abort(struct sm_drop *d)
{
    if (d->pid <= 0)
        return;
    (void)wait_drop(d);           /* without the X record tern-drop keeps nothing */
}
