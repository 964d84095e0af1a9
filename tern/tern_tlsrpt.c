/* tern_tlsrpt.c: `tern tlsrpt send` and `tern tlsrpt show`: the daily SMTP
 * TLS reports (RFC 8460) from the records the smtp client appends to
 * DATA_DIRECTORY/smtp_tls_report_directory/YYYY-MM-DD (smtp_tlsrpt.c).
 *
 * send: for each complete UTC day with records (or the day --date names),
 * for each policy domain of that day: the _smtp._tls TXT record (exactly
 * one "v=TLSRPTv1" record), the JSON report of section 4, gzip'ed, to each
 * of its rua destinations: mailto: as a message submitted through Tern's
 * own cleanup service (section 5.3: multipart/report; report-type=tlsrpt
 * with an application/tlsrpt+gzip part, "TLS-Required: No" so that the
 * report goes out whatever the TLS of the moment, RFC 8689 section 5),
 * https: as a POST with libcurl (section 5.4). A domain that was handled
 * is written to YYYY-MM-DD.sent, so that a day is never reported twice; a
 * domain whose TXT lookup failed for the moment, or whose destinations
 * all failed, is tried again by the next run, for up to two days; then the
 * day's records are removed.
 *
 * The records belong to mail_owner: as root the command reads the CA
 * certificates and then does everything as mail_owner (doc/SECURITY.md),
 * each step from data_directory down opened without following links. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/x509.h>
#include <zlib.h>

#include "base64.h"
#include "cleanup_client.h"
#include "config.h"
#include "data_dir.h"
#include "dns.h"
#include "log.h"
#include "server.h"
#include "strbuf.h"
#include "tern.h"
#include "tlsrpt.h"
#include "util.h"

#define DAY 86400LL
#define RETRY_DAYS 2                  /* a day's records are kept this long for retries */
#define SENT_KEEP_DAYS 31             /* the list of reported domains of a day, kept this long */
#define CA_MAX (8 * 1024 * 1024)
#define REPORT_MAX (64 * 1024 * 1024) /* one JSON report */

static const char usage[] =
    "usage: tern [-c CONFDIR] tlsrpt send [--date YYYY-MM-DD]\n"
    "       tern [-c CONFDIR] tlsrpt show [--date YYYY-MM-DD] [DOMAIN]\n"
    "  send: the daily SMTP TLS reports (RFC 8460) of every complete UTC day with\n"
    "        records, or of the day --date names, to the rua destinations of each\n"
    "        policy domain's _smtp._tls TXT record (mailto: through Tern, https: POST);\n"
    "        run it once a day, some hours after midnight UTC, from cron or a systemd\n"
    "        timer, as root or mail_owner\n"
    "  show: print the JSON report of each domain for a day (default: today, so far)\n"
    "        without sending anything\n";

struct ctx {
    int dir_fd;                       /* the records directory */
    struct dns_resolver *dns;
    char *ca;                         /* PEM: smtp_tls_CAfile and the system's CA file */
    size_t ca_len;
    const char *organization, *contact, *sender, *submitter;
    long timeout;
    int failures;
};

/* ---- days ---- */

static bool day_parse(const char *s, long long *start)
{
    struct tm tm = { 0 };
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    const char *end = strptime(s, "%Y-%m-%d", &tm);
    if (!end || *end)
        return false;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    char back[16];
    struct tm chk;
    gmtime_r(&t, &chk);
    strftime(back, sizeof(back), "%Y-%m-%d", &chk);
    *start = t;
    return strcmp(back, s) == 0;      /* no 2026-02-30 */
}

static void day_name(long long t, char out[16])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static long long today_start(void)
{
    long long now = now_usec() / 1000000;
    return now - now % DAY;
}

/* ---- reading a day ---- */

/* The day's records summed up. false when the file cannot be read. */
static bool day_load(struct ctx *c, const char *day, struct tlsrpt_summary *s)
{
    int fd = openat(c->dir_fd, day, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    long long limit = cfg_size(P_smtp_tls_report_file_size_limit);
    long long bad = 0, total = 0;
    char buf[65536];
    struct strbuf line = STRBUF_INIT(TLSRPT_LINE_MAX), why = STRBUF_INIT(256);
    bool skipping = false;
    ssize_t n;
    while ((limit <= 0 || total < limit + TLSRPT_LINE_MAX) && (n = read(fd, buf, sizeof(buf))) > 0) {
        total += n;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (!skipping && sb_appendc(&line, buf[i]) < 0) {
                    skipping = true;        /* too long: no record of ours */
                    bad++;
                }
                continue;
            }
            if (!skipping) {
                struct tlsrpt_record r;
                tlsrpt_record_init(&r);
                if (tlsrpt_record_parse(line.data ? line.data : "", line.len, &r, &why) == 0)
                    tlsrpt_summary_add(s, &r);
                else
                    bad++;
                tlsrpt_record_free(&r);
            }
            sb_reset(&line);
            skipping = false;
        }
    }
    close(fd);
    if (bad)
        msg_warn("TLS reporting: %s: %lld malformed records skipped", day, bad);
    if (s->dropped)
        msg_warn("TLS reporting: %s: %lld records of domains beyond the first %d skipped", day,
                 s->dropped, TLSRPT_DOMAINS_MAX);
    sb_free(&line);
    sb_free(&why);
    tlsrpt_summary_sort(s);
    return true;
}

/* Mark the domains already reported for day (its .sent file, one name a
 * line, at most as many as a summary holds). */
static void sent_load(struct ctx *c, const char *day, struct tlsrpt_summary *s)
{
    char name[32];
    snprintf(name, sizeof(name), "%s.sent", day);
    int fd = openat(c->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    struct strbuf text = STRBUF_INIT((size_t)TLSRPT_DOMAINS_MAX * (TLSRPT_DOMAIN_MAX + 1));
    char buf[8192];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0 && sb_append(&text, buf, (size_t)n) == 0)
        ;
    close(fd);
    for (char *p = text.data; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = 0;
        struct tlsrpt_domain *d = tlsrpt_summary_find(s, p);
        if (d)
            d->reported = true;
        p = nl ? nl + 1 : NULL;
    }
    sb_free(&text);
}

static void sent_add(struct ctx *c, const char *day, const char *domain)
{
    char name[32];
    snprintf(name, sizeof(name), "%s.sent", day);
    int fd = openat(c->dir_fd, name, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    struct strbuf line = STRBUF_INIT(0);
    sb_appendf(&line, "%s\n", domain);
    if (fd < 0 || write_all(fd, line.data, line.len) != (ssize_t)line.len || fsync(fd) < 0)
        msg_warn("TLS reporting: cannot note %s as reported in %s: %s", domain, name, strerror(errno));
    if (fd >= 0)
        close(fd);
    sb_free(&line);
}

/* ---- the report ---- */

static int gzip_bytes(const char *data, size_t len, struct strbuf *out)
{
    z_stream z = { 0 };
    if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t bound = deflateBound(&z, (uLong)len) + 64;
    unsigned char *buf = xmalloc(bound);
    z.next_in = (unsigned char *)data;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH) == Z_STREAM_END ? 0 : -1;
    if (rc == 0)
        rc = sb_append(out, buf, z.total_out);
    deflateEnd(&z);
    free(buf);
    return rc;
}

static void random_hex(char *out, size_t bytes)
{
    unsigned char r[32];
    if (bytes > sizeof(r))
        bytes = sizeof(r);
    if (getrandom(r, bytes, 0) != (ssize_t)bytes)
        for (size_t i = 0; i < bytes; i++)
            r[i] = (unsigned char)(now_usec() >> (i % 8 * 8)) ^ (unsigned char)(getpid() >> (i % 2 * 8));
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* ---- delivery ---- */

/* The message of section 5.3 for one mailto: destination. */
static void report_message(const struct ctx *c, const char *domain, const char *report_id,
                           const char *filename, const char *day, const struct strbuf *gz,
                           const char *to, struct strbuf *msg)
{
    char date[64], boundary[40];
    format_rfc5322_date(now_usec(), date, sizeof(date));
    char hex[25];
    random_hex(hex, 12);
    snprintf(boundary, sizeof(boundary), "=_tlsrpt_%s", hex);
    sb_appendf(msg, "From: %s\n", c->sender);
    sb_appendf(msg, "To: <%s>\n", to);
    sb_appendf(msg, "Date: %s\n", date);
    sb_appendf(msg, "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\n", domain, c->submitter,
               report_id);
    sb_appendf(msg, "Message-ID: <%s>\n", report_id);
    sb_appendf(msg, "TLS-Report-Domain: %s\n", domain);
    sb_appendf(msg, "TLS-Report-Submitter: %s\n", c->submitter);
    sb_appends(msg, "TLS-Required: No\n");
    sb_appends(msg, "Auto-Submitted: auto-generated\n");
    sb_appends(msg, "MIME-Version: 1.0\n");
    sb_appendf(msg, "Content-Type: multipart/report; report-type=\"tlsrpt\";\n\tboundary=\"%s\"\n\n",
               boundary);
    sb_appends(msg, "This is a multipart message in MIME format.\n\n");
    sb_appendf(msg, "--%s\n", boundary);
    sb_appends(msg, "Content-Type: text/plain; charset=\"us-ascii\"\nContent-Transfer-Encoding: 7bit\n\n");
    sb_appendf(msg, "This is an aggregate TLS report (RFC 8460) from %s for %s, %s UTC.\n\n",
               c->submitter, domain, day);
    sb_appendf(msg, "--%s\n", boundary);
    sb_appends(msg, "Content-Type: application/tlsrpt+gzip\nContent-Transfer-Encoding: base64\n");
    sb_appendf(msg, "Content-Disposition: attachment;\n\tfilename=\"%s\"\n\n", filename);
    struct strbuf b64 = STRBUF_INIT(0);
    base64_encode(&b64, gz->data, gz->len);
    for (size_t i = 0; i < b64.len; i += 76) {
        sb_append(msg, b64.data + i, b64.len - i < 76 ? b64.len - i : 76);
        sb_appendc(msg, '\n');
    }
    sb_free(&b64);
    sb_appendf(msg, "\n--%s--\n", boundary);
}

static int send_mail(struct ctx *c, const char *to, const struct strbuf *msg, char qid[QUEUE_ID_SIZE],
                     struct strbuf *why)
{
    const char *rcpts[1] = { to };
    struct cleanup_submission sub = {
        .sender = c->sender, .rcpts = rcpts, .nrcpt = 1, .content = msg->data, .content_len = msg->len,
    };
    return cleanup_submit(cfg_str(P_queue_directory), cfg_str(P_cleanup_service_name), &sub, qid, why);
}

/* The address of host for libcurl, from Tern's resolver (libcurl resolves
 * nothing itself). */
static int https_resolve(struct ctx *c, const char *host, long port, struct curl_slist **list,
                         struct strbuf *why)
{
    unsigned char tmp[16];
    if (inet_pton(AF_INET, host, tmp) == 1 || (host[0] == '[' && strchr(host, ']')))
        return 0;
    struct dns_addr *addrs;
    size_t n;
    struct strbuf dnswhy = STRBUF_INIT(256);
    if (dns_lookup_addr(c->dns, host, true, true, &addrs, &n, NULL, NULL, &dnswhy) != DNS_OK) {
        sb_appendf(why, "cannot resolve %s: %s", host, sb_str(&dnswhy));
        sb_free(&dnswhy);
        return -1;
    }
    sb_free(&dnswhy);
    struct strbuf entry = STRBUF_INIT(2048);
    sb_appendf(&entry, "%s:%ld:", host, port);
    for (size_t i = 0; i < n && i < 8; i++) {
        char text[INET6_ADDRSTRLEN];
        dns_addr_text(&addrs[i], text, sizeof(text));
        sb_appendf(&entry, addrs[i].family == AF_INET6 ? "%s[%s]" : "%s%s", i ? "," : "", text);
    }
    free(addrs);
    *list = curl_slist_append(*list, sb_str(&entry));
    sb_free(&entry);
    return 0;
}

/* Section 5.4: POST the gzip'ed report; a 2xx status is success. */
static int send_https(struct ctx *c, const char *uri, const struct strbuf *gz, struct strbuf *why)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    struct curl_slist *resolve = NULL, *headers = NULL;
    CURL *curl = NULL;
    int rc = -1;
    if (!u || curl_url_set(u, CURLUPART_URL, uri, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        sb_appends(why, "not a usable https: URI");
        goto out;
    }
    if (https_resolve(c, host, strtol(port, NULL, 10), &resolve, why) < 0)
        goto out;
    curl = curl_easy_init();
    headers = curl_slist_append(NULL, "Content-Type: application/tlsrpt+gzip");
    if (!curl || !headers) {
        sb_appends(why, "cannot set up the HTTPS client");
        goto out;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_blob ca = { c->ca, c->ca_len, CURL_BLOB_NOCOPY };
    curl_easy_setopt(curl, CURLOPT_URL, uri);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    if (resolve)
        curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, c->timeout);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, c->timeout);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_len)
        curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
    curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, gz->data);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)gz->len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "Tern TLSRPT");
    CURLcode res = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (res != CURLE_OK)
        sb_appends(why, errbuf[0] ? errbuf : curl_easy_strerror(res));
    else if (status < 200 || status > 299)
        sb_appendf(why, "HTTP status %ld", status);
    else
        rc = 0;
out:
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    curl_slist_free_all(resolve);
    curl_slist_free_all(headers);
    if (curl)
        curl_easy_cleanup(curl);
    return rc;
}

/* ---- one domain of one day ---- */

/* The JSON report of d, with its id. */
static void build_report(const struct ctx *c, const struct tlsrpt_domain *d, long long start,
                         const char *report_id, struct strbuf *json)
{
    struct tlsrpt_meta m = { c->organization, c->contact, report_id, start, start + DAY - 1 };
    tlsrpt_report_json(d, &m, json);
}

enum outcome { DONE, RETRY };

static enum outcome report_domain(struct ctx *c, const char *day, long long start,
                                  const struct tlsrpt_domain *d)
{
    char name[TLSRPT_DOMAIN_MAX + 16];
    snprintf(name, sizeof(name), "_smtp._tls.%s", d->name);
    char (*txt)[DNS_TXT_MAX + 1] = NULL;
    size_t n = 0;
    struct strbuf why = STRBUF_INIT(1024);
    enum dns_status st = dns_lookup_txt(c->dns, name, &txt, &n, &why);
    if (st == DNS_TEMPFAIL) {
        msg_warn("TLS reporting: %s %s: TXT lookup of %s failed: %s; trying again later", day, d->name,
                 name, sb_str(&why));
        printf("tern: %s %s: TXT lookup failed: %s; trying again later\n", day, d->name, sb_str(&why));
        sb_free(&why);
        c->failures++;
        return RETRY;
    }
    struct tlsrpt_rua rua = { 0 };
    int found = 0;
    sb_reset(&why);
    if (st == DNS_OK) {
        const char **list = xcalloc(n, sizeof(*list));
        for (size_t i = 0; i < n; i++)
            list[i] = txt[i];
        found = tlsrpt_txt_choose(list, n, &rua, &why);
        free(list);
    }
    free(txt);
    if (found <= 0) {
        const char *what = found < 0 ? sb_str(&why) : "no TLSRPT record";
        msg_info("TLS reporting: %s %s: %s%s; no report", day, d->name, found < 0 ? "invalid TLSRPT record: " : "", what);
        printf("tern: %s %s: %s%s; no report\n", day, d->name, found < 0 ? "invalid TLSRPT record: " : "", what);
        sb_free(&why);
        return DONE;
    }
    char hex[33], report_id[TLSRPT_DOMAIN_MAX + 64], filename[2 * TLSRPT_DOMAIN_MAX + 96];
    random_hex(hex, 8);
    snprintf(report_id, sizeof(report_id), "%s.%.4s%.2s%.2s@%s", hex, day, day + 5, day + 8, c->submitter);
    snprintf(filename, sizeof(filename), "%s!%s!%lld!%lld!%s.json.gz", c->submitter, d->name, start,
             start + DAY - 1, hex);
    struct strbuf json = STRBUF_INIT(REPORT_MAX), gz = STRBUF_INIT(REPORT_MAX);
    build_report(c, d, start, report_id, &json);
    int sent = 0;
    if (gzip_bytes(json.data, json.len, &gz) < 0) {
        msg_warn("TLS reporting: %s %s: cannot compress the report", day, d->name);
        rua.n = 0;
    }
    for (size_t i = 0; i < rua.n; i++) {
        sb_reset(&why);
        const char *dest = rua.dest[i].uri;
        if (rua.dest[i].https) {
            if (send_https(c, dest, &gz, &why) == 0) {
                sent++;
                msg_info("TLS reporting: %s %s: report %s posted to %s", day, d->name, report_id, dest);
                printf("tern: %s %s: report %s posted to %s\n", day, d->name, report_id, dest);
            } else {
                msg_warn("TLS reporting: %s %s: report %s to %s failed: %s", day, d->name, report_id, dest,
                         sb_str(&why));
                printf("tern: %s %s: report to %s failed: %s\n", day, d->name, dest, sb_str(&why));
            }
            continue;
        }
        struct strbuf msg = STRBUF_INIT(0);
        char qid[QUEUE_ID_SIZE];
        report_message(c, d->name, report_id, filename, day, &gz, dest, &msg);
        if (send_mail(c, dest, &msg, qid, &why) == 0) {
            sent++;
            msg_info("TLS reporting: %s %s: report %s mailed to <%s>: queued as %s", day, d->name,
                     report_id, dest, qid);
            printf("tern: %s %s: report %s mailed to <%s> (queued as %s)\n", day, d->name, report_id,
                   dest, qid);
        } else {
            msg_warn("TLS reporting: %s %s: report %s to <%s> failed: %s", day, d->name, report_id, dest,
                     sb_str(&why));
            printf("tern: %s %s: report to <%s> failed: %s\n", day, d->name, dest, sb_str(&why));
        }
        sb_free(&msg);
    }
    sb_free(&json);
    sb_free(&gz);
    sb_free(&why);
    if (!sent)
        c->failures++;
    return sent ? DONE : RETRY;
}

/* Report one day; its records are removed when every domain was handled
 * (or the retries are over). */
static void send_day(struct ctx *c, const char *day, long long start)
{
    struct tlsrpt_summary s;
    tlsrpt_summary_init(&s);
    if (!day_load(c, day, &s)) {
        tlsrpt_summary_free(&s);
        return;
    }
    sent_load(c, day, &s);
    size_t retry = 0, done = 0;
    for (size_t i = 0; i < s.ndomains; i++) {
        const struct tlsrpt_domain *d = &s.domains[i];
        if (d->reported) {
            printf("tern: %s %s: already reported\n", day, d->name);
            continue;
        }
        if (report_domain(c, day, start, d) == RETRY) {
            retry++;
        } else {
            sent_add(c, day, d->name);
            done++;
        }
    }
    bool expired = today_start() - start > RETRY_DAYS * DAY;
    if (!retry || expired) {
        if (retry)
            msg_warn("TLS reporting: %s: %zu domains could not be reported within %d days; their "
                     "records are removed", day, retry, RETRY_DAYS);
        if (unlinkat(c->dir_fd, day, 0) < 0 && errno != ENOENT)
            msg_warn("TLS reporting: cannot remove the records of %s: %s", day, strerror(errno));
    }
    msg_info("TLS reporting: %s: %zu domains, %zu handled now, %zu to try again", day, s.ndomains,
             done, retry);
    tlsrpt_summary_free(&s);
}

/* .sent lists older than SENT_KEEP_DAYS, and record files left behind
 * longer than the retries last. */
static void expire_old(struct ctx *c)
{
    int fd = dup(c->dir_fd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(dir);
    long long today = today_start();
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        long long start;
        char day[16];
        if (strlen(e->d_name) != 15 || strcmp(e->d_name + 10, ".sent") != 0)
            continue;
        str_copy(day, 11, e->d_name);
        if (day_parse(day, &start) && today - start > SENT_KEEP_DAYS * DAY)
            (void)unlinkat(c->dir_fd, e->d_name, 0);
    }
    closedir(dir);
}

static int list_days(struct ctx *c, char ***days)
{
    int fd = dup(c->dir_fd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    *days = NULL;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    long long today = today_start(), start;
    int n = 0;
    struct dirent *e;
    rewinddir(dir);             /* the offset is shared with dir_fd */
    while ((e = readdir(dir)) != NULL && n < 1000)
        if (day_parse(e->d_name, &start) && start < today) {
            *days = xrealloc(*days, (size_t)(n + 1) * sizeof(**days));
            (*days)[n++] = xstrdup(e->d_name);
        }
    closedir(dir);
    for (int i = 1; i < n; i++)             /* few files: insertion sort */
        for (int j = i; j > 0 && strcmp((*days)[j - 1], (*days)[j]) > 0; j--) {
            char *t = (*days)[j];
            (*days)[j] = (*days)[j - 1];
            (*days)[j - 1] = t;
        }
    return n;
}

/* ---- setting up ---- */

static void ca_append(struct ctx *c, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0 && c->ca_len + (size_t)n + 2 < CA_MAX) {
        c->ca = xrealloc(c->ca, c->ca_len + (size_t)n + 2);
        memcpy(c->ca + c->ca_len, buf, (size_t)n);
        c->ca_len += (size_t)n;
        c->ca[c->ca_len++] = '\n';
        c->ca[c->ca_len] = 0;
    }
    close(fd);
}

static const char *setting(enum param_id id)
{
    const char *v = cfg_str(id);
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            fprintf(stderr, "tern: %s: control characters are not allowed (main.cf)\n",
                    param_table()[id].name);
            exit(1);
        }
    return v;
}

/* As root: the CA certificates, then mail_owner for everything else.
 * The records directory, or exit 1. */
static void setup(struct ctx *c)
{
    tern_load_config();
    cfg_log_configure();
    *c = (struct ctx){
        .organization = setting(P_smtp_tls_report_organization),
        .contact = setting(P_smtp_tls_report_contact),
        .sender = setting(P_smtp_tls_report_sender),
        .submitter = setting(P_smtp_tls_report_submitter),
    };
    if (!tlsrpt_domain_ok(c->submitter)) {
        fprintf(stderr, "tern: smtp_tls_report_submitter = %s: not a domain name (main.cf)\n",
                c->submitter);
        exit(1);
    }
    c->timeout = cfg_time(P_smtp_tls_report_https_timeout);
    if (c->timeout < 1)
        c->timeout = 1;
    const char *cafile = cfg_str(P_smtp_tls_CAfile);
    if (*cafile)
        ca_append(c, cafile);
    ca_append(c, X509_get_default_cert_file());
    struct strbuf err = STRBUF_INIT(1024);
    c->dns = dns_open(cfg_str(P_smtp_dns_servers), (int)cfg_time(P_smtp_dns_timeout), &err);
    if (!c->dns) {
        fprintf(stderr, "tern: smtp_dns_servers: %s (main.cf)\n", sb_str(&err));
        exit(1);
    }
    sb_free(&err);
    /* the records are mail_owner's: root works there only as mail_owner */
    if (geteuid() == 0 || getuid() == 0)
        drop_privileges(cfg_str(P_mail_owner));
    c->dir_fd = data_dir_folder_read(cfg_str(P_smtp_tls_report_directory));
    int saved = errno;
    if (c->dir_fd < 0) {
        fprintf(stderr, "tern: cannot open %s/%s: %s%s\n", cfg_str(P_data_directory),
                cfg_str(P_smtp_tls_report_directory), strerror(saved),
                saved == ENOENT ? " (no TLS session has been recorded yet)" : "");
        exit(saved == ENOENT ? 0 : 1);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "tern: cannot initialize libcurl\n");
        exit(1);
    }
}

static void teardown(struct ctx *c)
{
    close(c->dir_fd);
    dns_close(c->dns);
    free(c->ca);
    curl_global_cleanup();
}

/* "--date YYYY-MM-DD" among args: its day (start) and name. */
static int parse_date_option(int argc, char **argv, int *i, char day[16], long long *start)
{
    if (strcmp(argv[*i], "--date") != 0)
        return 0;
    if (*i + 1 >= argc || !day_parse(argv[*i + 1], start)) {
        fprintf(stderr, "tern: tlsrpt: --date needs a day as YYYY-MM-DD\n%s", usage);
        exit(2);
    }
    str_copy(day, 16, argv[*i + 1]);
    (*i)++;
    return 1;
}

static int cmd_send(int argc, char **argv)
{
    char day[16] = "";
    long long start = 0;
    for (int i = 0; i < argc; i++)
        if (!parse_date_option(argc, argv, &i, day, &start)) {
            fprintf(stderr, "tern: tlsrpt send: unexpected argument %s\n%s", argv[i], usage);
            return 2;
        }
    if (day[0] && start >= today_start()) {
        fprintf(stderr, "tern: tlsrpt send: %s is not over yet (UTC); its report follows the day\n", day);
        return 2;
    }
    struct ctx c;
    setup(&c);
    if (!cfg_bool(P_smtp_tls_report_enable))
        printf("tern: smtp_tls_report_enable = no: no new TLS sessions are recorded\n");
    if (day[0]) {
        if (faccessat(c.dir_fd, day, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
            char name[32];
            snprintf(name, sizeof(name), "%s.sent", day);
            printf(faccessat(c.dir_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0
                   ? "tern: %s: already reported\n" : "tern: %s: no TLS sessions recorded\n", day);
        } else {
            send_day(&c, day, start);
        }
    } else {
        char **days;
        int n = list_days(&c, &days);
        if (!n)
            printf("tern: no TLS session records of past days to report\n");
        for (int i = 0; i < n; i++) {
            long long s;
            day_parse(days[i], &s);
            send_day(&c, days[i], s);
            free(days[i]);
        }
        free(days);
    }
    expire_old(&c);
    int failures = c.failures;
    teardown(&c);
    return failures ? 1 : 0;
}

static int cmd_show(int argc, char **argv)
{
    char day[16] = "";
    long long start = today_start();
    const char *only = NULL;
    for (int i = 0; i < argc; i++)
        if (!parse_date_option(argc, argv, &i, day, &start)) {
            if (only || argv[i][0] == '-') {
                fprintf(stderr, "tern: tlsrpt show: unexpected argument %s\n%s", argv[i], usage);
                return 2;
            }
            only = argv[i];
        }
    if (!day[0])
        day_name(start, day);
    struct ctx c;
    setup(&c);
    struct tlsrpt_summary s;
    tlsrpt_summary_init(&s);
    if (!day_load(&c, day, &s))
        fprintf(stderr, "tern: %s: no TLS sessions recorded\n", day);
    for (size_t i = 0; i < s.ndomains; i++) {
        if (only && strcasecmp(only, s.domains[i].name) != 0)
            continue;
        struct strbuf json = STRBUF_INIT(REPORT_MAX);
        build_report(&c, &s.domains[i], start, "(not sent)", &json);
        printf("%s\n", sb_str(&json));
        sb_free(&json);
    }
    tlsrpt_summary_free(&s);
    teardown(&c);
    return 0;
}

int tern_cmd_tlsrpt(int argc, char **argv)
{
    if (tern_help(argc, argv, usage))
        return 0;
    if (argc < 2) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    if (strcmp(argv[1], "send") == 0)
        return cmd_send(argc - 2, argv + 2);
    if (strcmp(argv[1], "show") == 0)
        return cmd_show(argc - 2, argv + 2);
    fprintf(stderr, "tern: tlsrpt: unknown subcommand %s\n%s", argv[1], usage);
    return 2;
}
