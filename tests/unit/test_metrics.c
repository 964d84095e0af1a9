/* test_metrics.c: unit tests of the metrics pieces: the client's batching
 * (reports held in memory and sent as one frame per flush, nothing sent
 * and nothing waited for when the collector is missing), the sample
 * decoder's strictness, the Prometheus exposition, the collector's store
 * (domain bound, series limit, history, the state file round trip) and
 * the HTTP endpoint's verdict on request heads. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "attr.h"
#include "check.h"
#include "metrics.h"
#include "metrics_client.h"
#include "metrics_http.h"
#include "metrics_store.h"
#include "strbuf.h"
#include "util.h"

static char dir[] = "/tmp/test_metrics.XXXXXX";

static int listen_at(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    str_copy(sun.sun_path, sizeof(sun.sun_path), path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 4) < 0)
        return -1;
    return fd;
}

/* Decode one update frame into a store; the number of samples, -1 malformed. */
static int frame_into(struct metrics_store *st, const struct strbuf *frame)
{
    struct attr_reader r;
    const char *req, *why = NULL;
    struct metric_sample s;
    int n = 0, rc;
    if (attr_reader_init(&r, frame->data, frame->len) < 0 || attr_get_str(&r, "request", &req) < 0
        || strcmp(req, "update") != 0)
        return -1;
    while ((rc = metrics_get_sample(&r, &s, &why)) == 1) {
        metrics_store_apply(st, &s);
        n++;
    }
    return rc == 0 && attr_reader_done(&r) == 0 ? n : -1;
}

static const struct metric_sample *find(struct metrics_store *st, enum metric_id id, const char *l0)
{
    for (size_t i = 0; i < metrics_store_count(st); i++) {
        const struct metric_sample *s = metrics_store_sample(st, i);
        if (s->id == id && (!l0 || strcmp(s->labels[0], l0) == 0))
            return s;
    }
    return NULL;
}

static void test_client_batching(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/metrics.sock", dir);
    metrics_add(M_SMTPD_ACCEPTED, 1, NULL);     /* before the start: ignored */
    CHECK(metrics_client_held() == 0);
    int lfd = listen_at(path);
    CHECK(lfd >= 0);
    metrics_client_start(NULL, path);
    for (int i = 0; i < 1000; i++) {
        METRICS_ADD(M_SMTPD_REJECTS, 1, "recipient", "reject_unlisted_recipient");
        metrics_add(M_SMTPD_RECEIVED_BYTES, 100, NULL);
        metrics_observe(M_QMGR_DELAY, i, NULL);
    }
    METRICS_ADD(M_SMTPD_REJECTS, 2, "relay", "reject_unauth_destination");
    METRICS_ADD(M_SMTPD_TLS, 1, "TLS\"v1.3\n");     /* made safe for a label */
    metrics_set(M_MASTER_PROCESSES, 7, METRICS_LABELS("smtp"));
    CHECK(metrics_client_held() == 6);
    metrics_flush_due();                 /* not due yet: nothing sent */
    CHECK(metrics_client_held() == 6 && metrics_client_frames_sent() == 0);
    metrics_flush();
    CHECK(metrics_client_held() == 0 && metrics_client_frames_sent() == 1);
    int cfd = accept(lfd, NULL, NULL);
    CHECK(cfd >= 0);
    struct strbuf frame = STRBUF_INIT(METRICS_FRAME_LIMIT);
    CHECK(attr_read(cfd, &frame, METRICS_FRAME_LIMIT, 5) == 0);
    struct metrics_store_limits lim = { 100, 10, 5 };
    struct metrics_store *st = metrics_store_create(&lim);
    CHECK(frame_into(st, &frame) == 6);
    const struct metric_sample *s = find(st, M_SMTPD_REJECTS, "recipient");
    CHECK(s && s->value == 1000 && strcmp(s->labels[1], "reject_unlisted_recipient") == 0);
    CHECK((s = find(st, M_SMTPD_REJECTS, "relay")) && s->value == 2);
    CHECK((s = find(st, M_SMTPD_RECEIVED_BYTES, NULL)) && s->value == 100000);
    CHECK((s = find(st, M_SMTPD_TLS, NULL)) && strcmp(s->labels[0], "TLS_v1.3_") == 0);
    CHECK((s = find(st, M_QMGR_DELAY, NULL)) && s->value == 1000 && s->sum == 999 * 1000 / 2);
    CHECK(s && s->buckets[0] == 101 && s->buckets[1] == 400 && s->buckets[2] == 499);
    /* a second flush sends only what changed since */
    metrics_add(M_SMTPD_ACCEPTED, 3, NULL);
    metrics_flush();
    CHECK(attr_read(cfd, &frame, METRICS_FRAME_LIMIT, 5) == 0 && frame_into(st, &frame) == 1);
    CHECK((s = find(st, M_SMTPD_ACCEPTED, NULL)) && s->value == 3);
    /* nothing held: no frame */
    metrics_flush();
    CHECK(metrics_client_frames_sent() == 2);
    /* the collector goes away: reports are dropped at once, without waiting */
    close(cfd);
    close(lfd);
    unlink(path);
    long long t0 = now_usec();
    for (int round = 0; round < 3; round++) {
        metrics_add(M_SMTPD_ACCEPTED, 1, NULL);
        CHECK(metrics_client_held() == 1 && metrics_flush_deadline() > 0);
        errno = EINTR;      /* a caller's errno (master's poll) is kept */
        metrics_flush();
        CHECK(errno == EINTR);
        CHECK(metrics_client_held() == 0 && metrics_flush_deadline() == 0);
    }
    CHECK(now_usec() - t0 < 500000);
    sb_free(&frame);
    metrics_store_free(st);
}

static int decode_one(const char *metric, const char *labels, long long value, const char *buckets)
{
    struct strbuf f = STRBUF_INIT(0);
    struct attr_writer w;
    attr_begin(&w, &f);
    attr_put_str(&w, "metric", metric);
    attr_put_str(&w, "labels", labels);
    attr_put_int(&w, "value", value);
    if (buckets) {
        attr_put_int(&w, "sum", 10);
        attr_put_str(&w, "buckets", buckets);
    }
    attr_end(&w);
    struct attr_reader r;
    struct metric_sample s;
    const char *why = NULL;
    attr_reader_init(&r, f.data, f.len);
    int rc = metrics_get_sample(&r, &s, &why);
    if (rc == 1 && attr_reader_done(&r) < 0)
        rc = -1;
    sb_free(&f);
    return rc;
}

static void test_decoder(void)
{
    CHECK(decode_one("smtpd_rejects_total", "relay,reject_unauth_destination", 1, NULL) == 1);
    CHECK(decode_one("smtpd_rejects_total", "relay", 1, NULL) == -1);
    CHECK(decode_one("smtpd_rejects_total", "relay,a,b", 1, NULL) == -1);
    CHECK(decode_one("smtpd_rejects_total", "relay,", 1, NULL) == -1);
    CHECK(decode_one("smtpd_rejects_total", "re\"lay,x", 1, NULL) == -1);
    CHECK(decode_one("smtpd_rejects_total", "relay,x", -1, NULL) == -1);
    CHECK(decode_one("no_such_total", "", 1, NULL) == -1);
    CHECK(decode_one("smtpd_messages_accepted_total", "x", 1, NULL) == -1);
    CHECK(decode_one("master_processes", "smtp", -3, NULL) == 1);
    CHECK(decode_one("cleanup_message_size_bytes", "", 3, "1 1 1 0 0 0 0 0 0 0") == 1);
    CHECK(decode_one("cleanup_message_size_bytes", "", 3, "1 1 1 0 0 0 0 0 0") == -1);
    CHECK(decode_one("cleanup_message_size_bytes", "", 4, "1 1 1 0 0 0 0 0 0 0") == -1);
    CHECK(decode_one("cleanup_message_size_bytes", "", 3, "1 1 1 0 0 0 0 0 0 0 0") == -1);
    CHECK(decode_one("cleanup_message_size_bytes", "", 3, "1 1 -1 2 0 0 0 0 0 0") == -1);
    CHECK(decode_one("cleanup_message_size_bytes", "", 3, NULL) == -1);
}

static void test_exposition(void)
{
    struct metric_sample s[3];
    metric_sample_init(&s[0], M_SMTPD_REJECTS, METRICS_LABELS("relay", "reject_unauth_destination"));
    s[0].value = 4;
    metric_sample_init(&s[1], M_QMGR_DELAY, NULL);
    metric_sample_observe(&s[1], 250);
    metric_sample_observe(&s[1], 7000);
    metric_sample_observe(&s[1], 100000000);
    metric_sample_init(&s[2], M_QUEUE_MESSAGES, METRICS_LABELS("deferred"));
    s[2].value = 2;
    struct strbuf out = STRBUF_INIT(0);
    CHECK(metrics_format_exposition(&out, s, 3) == 0);
    const char *text = sb_str(&out);
    CHECK(strstr(text, "# HELP tern_smtpd_rejects_total Commands smtpd refused") != NULL);
    CHECK(strstr(text, "# TYPE tern_smtpd_rejects_total counter\n"
                       "tern_smtpd_rejects_total{class=\"relay\",restriction=\"reject_unauth_destination\"} 4\n"
                       "# HELP") != NULL);
    CHECK(strstr(text, "# TYPE tern_qmgr_delivery_delay_seconds histogram\n"
                       "tern_qmgr_delivery_delay_seconds_bucket{le=\"0.1\"} 0\n"
                       "tern_qmgr_delivery_delay_seconds_bucket{le=\"0.5\"} 1\n"
                       "tern_qmgr_delivery_delay_seconds_bucket{le=\"1\"} 1\n"
                       "tern_qmgr_delivery_delay_seconds_bucket{le=\"5\"} 1\n"
                       "tern_qmgr_delivery_delay_seconds_bucket{le=\"10\"} 2\n") != NULL);
    CHECK(strstr(text, "tern_qmgr_delivery_delay_seconds_bucket{le=\"86400\"} 2\n"
                       "tern_qmgr_delivery_delay_seconds_bucket{le=\"+Inf\"} 3\n"
                       "tern_qmgr_delivery_delay_seconds_sum 100007.25\n"
                       "tern_qmgr_delivery_delay_seconds_count 3\n") != NULL);
    CHECK(strstr(text, "tern_queue_messages{state=\"deferred\"} 2\n") != NULL);
    /* metrics without labels are shown at zero; labelled ones without series are not */
    CHECK(strstr(text, "\ntern_smtpd_messages_accepted_total 0\n") != NULL);
    CHECK(strstr(text, "tern_cleanup_message_size_bytes_bucket{le=\"1024\"} 0\n") != NULL);
    CHECK(strstr(text, "tern_smtpd_auth_total{") == NULL);
    CHECK(strstr(text, "# TYPE tern_smtpd_auth_total counter\n") != NULL);
    /* a limit that is hit is reported */
    struct strbuf small = STRBUF_INIT(200);
    CHECK(metrics_format_exposition(&small, s, 3) == -1);
    sb_free(&small);
    sb_free(&out);
}

static void test_store(void)
{
    struct metrics_store_limits lim = { 6, 2, 2 };
    struct metrics_store *st = metrics_store_create(&lim);
    struct metric_sample s;
    const char *domains[] = { "a.example", "b.example", "c.example", "d.example" };
    for (int i = 0; i < 4; i++) {
        metric_sample_init(&s, M_QMGR_DELIVERIES, METRICS_LABELS("sent", "smtp", domains[i]));
        s.value = 1;
        CHECK(metrics_store_apply(st, &s));
    }
    CHECK(metrics_store_count(st) == 3);    /* a, b, and other for c and d */
    const struct metric_sample *o = metrics_store_sample(st, 2);
    CHECK(o && strcmp(o->labels[2], "other") == 0 && o->value == 2);
    metric_sample_init(&s, M_MASTER_PROCESSES, METRICS_LABELS("smtp"));
    s.value = 5;
    CHECK(metrics_store_apply(st, &s));
    s.value = 3;                           /* a gauge is replaced */
    CHECK(metrics_store_apply(st, &s));
    CHECK(metrics_store_sample(st, 3)->value == 3);
    /* no total passes METRIC_FIGURE_MAX: the sample is refused whole */
    metric_sample_init(&s, M_QMGR_DELIVERIES, METRICS_LABELS("sent", "smtp", "a.example"));
    s.value = METRIC_FIGURE_MAX;
    CHECK(!metrics_store_apply(st, &s));
    CHECK(metrics_store_sample(st, 0)->value == 1);
    for (int i = 0; i < 3; i++) {
        metric_sample_init(&s, M_MASTER_RESTARTS, METRICS_LABELS(domains[i]));
        s.value = 1;
        CHECK(metrics_store_apply(st, &s) == (i < 2));   /* the series limit */
    }
    /* history: the first two series only; minutes carried over gaps */
    metric_sample_init(&s, M_QMGR_DELIVERIES, METRICS_LABELS("sent", "smtp", "a.example"));
    metrics_store_note(st, 6000);
    s.value = 2;
    metrics_store_apply(st, &s);
    metrics_store_note(st, 6000 + 180);
    struct strbuf pts = STRBUF_INIT(0);
    time_t first = 0;
    CHECK(metrics_store_history(st, &s, 60, 6000 - 60, 6000 + 240, &first, &pts) == 0);
    CHECK(first == 6000 - 60);
    CHECK_STR(sb_str(&pts), "- 1 1 1 3 -");
    struct metric_sample c;
    metric_sample_init(&c, M_QMGR_DELIVERIES, METRICS_LABELS("sent", "smtp", "other"));
    sb_reset(&pts);
    CHECK(metrics_store_history(st, &c, 60, 6000, 6060, &first, &pts) == -1);   /* no history */
    /* the state file round trip */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    const char *why = NULL;
    CHECK(metrics_store_save(st, dfd, "state", &why) == 0);
    struct metrics_store *back = metrics_store_create(&lim);
    CHECK(metrics_store_load(back, dfd, "state", &why) == 0);
    CHECK(metrics_store_count(back) == metrics_store_count(st));
    for (size_t i = 0; i < metrics_store_count(st); i++)
        CHECK(memcmp(metrics_store_sample(st, i), metrics_store_sample(back, i), sizeof(s)) == 0);
    sb_reset(&pts);
    CHECK(metrics_store_history(back, &s, 60, 6000 - 60, 6000 + 240, &first, &pts) == 0);
    CHECK_STR(sb_str(&pts), "- 1 1 1 3 -");
    /* a damaged state file is refused, what came before it kept */
    int fd = openat(dfd, "state", O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, "\0\0\0\5xxxxx", 9) == 9);
    close(fd);
    struct metrics_store *bad = metrics_store_create(&lim);
    CHECK(metrics_store_load(bad, dfd, "state", &why) == -1 && why != NULL);
    CHECK(metrics_store_count(bad) == metrics_store_count(st));
    CHECK(metrics_store_load(bad, dfd, "missing", &why) == 0);
    unlinkat(dfd, "state", 0);
    close(dfd);
    sb_free(&pts);
    metrics_store_free(bad);
    metrics_store_free(back);
    metrics_store_free(st);
}

static int judge(const char *head)
{
    return metrics_http_judge(head, strlen(head));
}

static void test_http_judge(void)
{
    CHECK(judge("GET /metrics HTTP/1.1\r\nHost: x\r\n") == 200);
    CHECK(judge("GET /metrics?x=1 HTTP/1.0\n") == 200);
    CHECK(judge("GET /metricsx HTTP/1.1\r\n") == 404);
    CHECK(judge("GET / HTTP/1.1\r\n") == 404);
    CHECK(judge("POST /metrics HTTP/1.1\r\n") == 405);
    CHECK(judge("HEAD /metrics HTTP/1.1\r\n") == 405);
    CHECK(judge("GET /metrics HTTP/2.0\r\n") == 505);
    CHECK(judge("GET /metrics\r\n") == 400);
    CHECK(judge("GET  /metrics HTTP/1.1\r\n") == 400);
    CHECK(judge("GET /metrics HTTP/1.1 x\r\n") == 400);
    CHECK(judge("G\"T /metrics HTTP/1.1\r\n") == 400);
    CHECK(judge("GET /me\x01trics HTTP/1.1\r\n") == 400);
    CHECK(judge("") == 400);
    CHECK(metrics_http_judge("GET /metrics HTTP/1.1", 3) == 400);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    test_decoder();
    test_exposition();
    test_store();
    test_http_judge();
    test_client_batching();
    char path[300];
    snprintf(path, sizeof(path), "%s/metrics.sock", dir);
    unlink(path);
    rmdir(dir);
    return check_summary();
}
