/* postscreen_handoff.c: the connection of a client that passed goes to an
 * smtpd process: postscreen connects to master's pass service
 * (private/$smtpd_service_name, master.cf "smtpd pass - - n - - smtpd")
 * and sends the client's socket with SCM_RIGHTS (lib/global/server.c takes
 * it there), so that smtpd talks to the real client and sees its real
 * address. Until an smtpd process has taken it (it closes the pass
 * connection), the client waits in the kernel; postscreen counts those
 * waits against postscreen_post_queue_limit and answers 421 beyond it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "metrics_client.h"
#include "postscreen.h"
#include "server.h"
#include "util.h"

#define PSC_PASS_WAIT 100           /* seconds an smtpd process may take to take a client */

static size_t waiting;              /* handed off, not yet taken by smtpd */

static int pass_connect(void)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "private/%s",
                         psc_cfg.smtpd_service) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int pass_send(int conn, int client)
{
    char byte = 0;
    struct iovec iov = { &byte, 1 };
    union {
        struct cmsghdr hdr;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &client, sizeof(int));
    return sendmsg(conn, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* EOF (smtpd took the client) or the time limit: the wait is over. */
static void pass_done(evutil_socket_t fd, short what, void *arg)
{
    struct postscreen_session *s = arg;
    if (what & EV_TIMEOUT)
        msg_warn("%s: no %s process took the connection within %d s", s->desc,
                 psc_cfg.smtpd_service, PSC_PASS_WAIT);
    postscreen_session_close(s, NULL);
}

static void handoff_refuse(struct postscreen_session *s, const char *why)
{
    msg_info("NOQUEUE: reject: CONNECT from %s: %s", s->desc, why);
    ssize_t n = send(s->fd, "421 4.3.2 All server ports are busy\r\n", 37,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
    METRICS_ADD(M_POSTSCREEN_REJECTS, 1, "handoff");
    postscreen_session_close(s, NULL);
}

void postscreen_handoff(struct postscreen_session *s, const char *kind)
{
    if (psc_cfg.post_queue_limit > 0 && waiting >= (size_t)psc_cfg.post_queue_limit) {
        handoff_refuse(s, "all server ports busy");
        return;
    }
    int conn = pass_connect();
    if (conn < 0) {
        msg_warn("%s: cannot connect to service private/%s: %m", s->desc, psc_cfg.smtpd_service);
        handoff_refuse(s, "all server ports busy");
        return;
    }
    if (pass_send(conn, s->fd) < 0) {
        msg_warn("%s: cannot pass the connection to service private/%s: %m", s->desc,
                 psc_cfg.smtpd_service);
        close(conn);
        handoff_refuse(s, "all server ports busy");
        return;
    }
    METRICS_ADD(M_POSTSCREEN_PASSED, 1, kind);
    close(s->fd);
    s->fd = -1;
    postscreen_session_handed(s);
    s->handed = true;
    waiting++;
    s->pass_fd = conn;
    s->pass_ev = event_new(server_event_base(), conn, EV_READ, pass_done, s);
    struct timeval tv = { PSC_PASS_WAIT, 0 };
    if (!s->pass_ev || event_add(s->pass_ev, &tv) < 0)
        msg_fatal("cannot create an event: out of memory");
}

void postscreen_handoff_free(struct postscreen_session *s)
{
    if (s->pass_ev) {
        event_free(s->pass_ev);
        s->pass_ev = NULL;
    }
    if (s->pass_fd >= 0) {
        close(s->pass_fd);
        s->pass_fd = -1;
    }
    if (waiting > 0)
        waiting--;
}
