/* smtp_tlsrpt.c: the SMTP client's part of SMTP TLS Reporting (RFC 8460):
 * for each TLS session (or attempt) under a policy, one line appended to
 * the day's record file, DATA_DIRECTORY/smtp_tls_report_directory/
 * YYYY-MM-DD (UTC), which `tern tlsrpt send` sums up into the daily
 * reports. The policy is the one that applied to the server: its DANE
 * TLSA records, else the next hop's MTA-STS policy; sessions under no
 * policy are not recorded.
 *
 * Many smtp processes append at once, as mail_owner, inside any chroot
 * and under the system call filter: the records directory is opened once
 * after the privilege drop (data_directory's descriptor is taken as root
 * before), each record is one write(2) of one line shorter than PIPE_BUF
 * to a file opened with O_APPEND and O_NOFOLLOW, so lines of different
 * processes never interleave. Nothing is synced: a record lost in a crash
 * costs a count in a report, never a message. A record that cannot be
 * written is logged (once per process) and delivery goes on. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "config.h"
#include "data_dir.h"
#include "dns.h"
#include "log.h"
#include "smtp.h"
#include "util.h"

static struct {
    bool on;
    int data_fd;            /* data_directory, opened before any chroot */
    int dir_fd;             /* the records directory, -1: not recording */
    long long size_limit;   /* of one day's file */
    bool warned;            /* a failure to record was logged */
} rpt = { .data_fd = -1, .dir_fd = -1 };

/* ---- setup ---- */

void smtp_tlsrpt_init(void)
{
    rpt.on = !smtp_cfg.lmtp && cfg_bool(P_smtp_tls_report_enable);
    if (!rpt.on)
        return;
    (void)data_dir_folder_name(P_smtp_tls_report_directory);
    rpt.size_limit = cfg_size(P_smtp_tls_report_file_size_limit);
    rpt.data_fd = data_dir_open("TLS reporting", "TLS sessions are not recorded");
}

void smtp_tlsrpt_post_init(void)
{
    if (rpt.on)
        rpt.dir_fd = data_dir_folder(&rpt.data_fd, cfg_str(P_smtp_tls_report_directory),
                                     "TLS reporting", "TLS sessions are not recorded");
}

void smtp_tlsrpt_exit(void)
{
    if (rpt.dir_fd >= 0)
        close(rpt.dir_fd);
    if (rpt.data_fd >= 0)
        close(rpt.data_fd);
    rpt.dir_fd = rpt.data_fd = -1;
    rpt.on = false;
}

/* ---- the record file ---- */

static void warn_once(const char *what, const char *day)
{
    if (rpt.warned)
        return;
    rpt.warned = true;
    msg_warn("TLS reporting: cannot record a TLS session in %s/%s/%s: %s (not logged again by "
             "this process)", cfg_str(P_data_directory), cfg_str(P_smtp_tls_report_directory), day,
             what);
}

static void append(const struct tlsrpt_record *r)
{
    struct strbuf line = STRBUF_INIT(TLSRPT_LINE_MAX);
    char day[16];
    time_t t = (time_t)r->time;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(day, sizeof(day), "%Y-%m-%d", &tm) == 0)
        goto out;
    if (tlsrpt_record_format(r, &line) < 0) {
        warn_once("record too long", day);
        goto out;
    }
    int fd = openat(rpt.dir_fd, day, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                    0600);
    if (fd < 0) {
        warn_once(strerror(errno), day);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
        warn_once("not a plain file of this account", day);
    else if (rpt.size_limit > 0 && st.st_size + (long long)line.len > rpt.size_limit)
        warn_once("the file reached smtp_tls_report_file_size_limit", day);
    else if (write(fd, line.data, line.len) != (ssize_t)line.len)
        warn_once(errno ? strerror(errno) : "short write", day);
    close(fd);
out:
    sb_free(&line);
}

/* ---- what a record says ---- */

static void sts_policy_items(const struct sts_policy *p, struct tlsrpt_record *r)
{
    char item[STS_NAME_MAX + 16];
    tlsrpt_item_add(&r->policy, "version: STSv1");
    snprintf(item, sizeof(item), "mode: %s", sts_mode_name(p->mode));
    tlsrpt_item_add(&r->policy, item);
    for (size_t i = 0; i < p->nmx && i < STS_MX_MAX; i++) {
        snprintf(item, sizeof(item), "mx: %s", p->mx[i]);
        tlsrpt_item_add(&r->policy, item);
        tlsrpt_item_add(&r->mx, p->mx[i]);
    }
    snprintf(item, sizeof(item), "max_age: %ld", p->max_age);
    tlsrpt_item_add(&r->policy, item);
}

/* Each TLSA record in presentation form (RFC 6698 section 2.3); the data
 * of a full certificate is cut with the item. */
static void tlsa_items(const struct dns_tlsa *tlsa, size_t n, const char *base, int port,
                       struct tlsrpt_record *r)
{
    for (size_t i = 0; i < n; i++) {
        char item[TLSRPT_ITEM_MAX + 1];
        int len = snprintf(item, sizeof(item), "_%d._tcp.%s. IN TLSA %u %u %u ", port, base,
                           tlsa[i].usage, tlsa[i].selector, tlsa[i].mtype);
        for (size_t j = 0; j < tlsa[i].len && len >= 0 && (size_t)len + 3 < sizeof(item); j++)
            len += snprintf(item + len, sizeof(item) - (size_t)len, "%02X", tlsa[i].data[j]);
        tlsrpt_item_add(&r->policy, item);
    }
}

static void sending_ip(int fd, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    buf[0] = 0;
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)size);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)size);
}

/* The policy domain of rq: the next hop's domain (MX lookup), whose
 * policy applied. false when there is none (a relay host, a literal). */
static bool policy_domain(const struct smtp_request *rq, enum tlsrpt_policy_type type, char *out,
                          size_t size)
{
    if (type == TLSRPT_POLICY_STS) {
        if (!rq->sts || !rq->sts_domain[0])
            return false;
        str_copy(out, size, rq->sts_domain);
    } else {
        if (!rq->nh.use_mx || rq->nh.literal || rq->nh.path[0])
            return false;
        str_copy(out, size, rq->nh.host);
    }
    str_lower(out);
    return tlsrpt_domain_ok(out);
}

static void record(const struct smtp_request *rq, enum tlsrpt_policy_type type,
                   const struct dns_tlsa *tlsa, size_t ntlsa, const char *base, int port,
                   const char *host, const char *addr, int fd, enum tlsrpt_result result,
                   const char *reason)
{
    struct tlsrpt_record r;
    tlsrpt_record_init(&r);
    if (!policy_domain(rq, type, r.domain, sizeof(r.domain)))
        goto out;
    r.time = now_usec() / 1000000;
    r.type = type;
    r.result = result;
    sending_ip(fd, r.sending_ip, sizeof(r.sending_ip));
    str_copy(r.mx_host, sizeof(r.mx_host), host ? host : "");
    str_copy(r.receiving_ip, sizeof(r.receiving_ip), addr ? addr : "");
    if (result != TLSRPT_SUCCESS)
        str_copy(r.reason, sizeof(r.reason), reason ? reason : "");
    if (type == TLSRPT_POLICY_STS) {
        sts_policy_items(rq->sts, &r);
    } else {
        tlsa_items(tlsa, ntlsa, base && *base ? base : host ? host : "", port, &r);
        if (host && *host)
            tlsrpt_item_add(&r.mx, host);
    }
    append(&r);
out:
    tlsrpt_record_free(&r);
}

/* ---- the hooks ---- */

void smtp_tlsrpt_fail(struct smtp_session *s, enum tlsrpt_result result, const char *reason)
{
    if (s->rpt_result != TLSRPT_SUCCESS || result == TLSRPT_SUCCESS)
        return;
    s->rpt_result = result;
    str_copy(s->rpt_reason, sizeof(s->rpt_reason), reason ? reason : "");
}

void smtp_tlsrpt_session(const struct smtp_request *rq, const struct smtp_session *s)
{
    if (!rpt.on || rpt.dir_fd < 0)
        return;
    /* an MX host the policy does not name (mode testing) is the failure,
     * whatever its session did next */
    bool pending = rq->attempt.tlsrpt_pending != TLSRPT_SUCCESS;
    enum tlsrpt_result result = pending ? rq->attempt.tlsrpt_pending : s->rpt_result;
    if (result == TLSRPT_SUCCESS && !s->rpt_tls_ok)
        return;             /* TLS was never tried: the session failed before */
    const char *reason = pending ? "MX host not named by the MTA-STS policy" : s->rpt_reason;
    if (rq->tls.level == SMTP_TLS_DANE && rq->attempt.dane_ntlsa)
        record(rq, TLSRPT_POLICY_TLSA, rq->attempt.dane_tlsa, rq->attempt.dane_ntlsa, rq->attempt.dane_name, s->port,
               s->host, s->addr, s->fd, result, reason);
    else if (rq->attempt.sts_session)
        record(rq, TLSRPT_POLICY_STS, NULL, 0, NULL, s->port, s->host, s->addr, s->fd, result,
               reason);
}

void smtp_tlsrpt_failure(const struct smtp_request *rq, enum tlsrpt_policy_type type,
                         const struct dns_tlsa *tlsa, size_t ntlsa, const char *host,
                         const char *addr, int port, enum tlsrpt_result result, const char *reason)
{
    if (!rpt.on || rpt.dir_fd < 0 || result == TLSRPT_SUCCESS)
        return;
    record(rq, type, tlsa, ntlsa, host, port, host, addr, -1, result, reason);
}

void smtp_tlsrpt_sts_failure(const char *domain, enum tlsrpt_result result, const char *reason)
{
    if (!rpt.on || rpt.dir_fd < 0 || result == TLSRPT_SUCCESS)
        return;
    struct tlsrpt_record r;
    tlsrpt_record_init(&r);
    str_copy(r.domain, sizeof(r.domain), domain);
    str_lower(r.domain);
    if (tlsrpt_domain_ok(r.domain)) {
        r.time = now_usec() / 1000000;
        r.type = TLSRPT_POLICY_STS;
        r.result = result;
        str_copy(r.reason, sizeof(r.reason), reason ? reason : "");
        append(&r);
    }
    tlsrpt_record_free(&r);
}
