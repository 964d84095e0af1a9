/* fuzz_metrics_update.c: libFuzzer target for what the metrics collector
 * and its endpoint read from others: any byte string is offered as an
 * update frame from a daemon (every sample that decodes goes into a small
 * store, which must stay within its limits and encode each series again so
 * that it decodes to the same sample), and as an HTTP request head.
 * sources: lib/global/metrics.c lib/util/attr.c metrics/metrics_store.c metrics/metrics_http_judge.c lib/util/http_request.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "attr.h"
#include "metrics.h"
#include "metrics/metrics_http.h"
#include "metrics/metrics_store.h"
#include "strbuf.h"

static void check_round_trip(const struct metric_sample *s)
{
    struct strbuf out = STRBUF_INIT(0);
    struct attr_writer w;
    attr_begin(&w, &out);
    metrics_put_sample(&w, s);
    if (attr_end(&w) < 0)
        abort();
    struct attr_reader r;
    struct metric_sample again;
    const char *why = NULL;
    if (attr_reader_init(&r, out.data, out.len) < 0 || metrics_get_sample(&r, &again, &why) != 1
        || attr_reader_done(&r) < 0 || memcmp(&again, s, sizeof(again)) != 0)
        abort();
    sb_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the answers metrics_http.c documents: 431 also for a head with more
     * fields than the shared parser keeps; 503 only when memory runs out */
    int code = metrics_http_judge((const char *)data, size);
    if (code != 200 && code != 400 && code != 404 && code != 405 && code != 431 && code != 503
        && code != 505)
        abort();
    struct metrics_store_limits lim = { 8, 2, 2 };
    struct metrics_store *st = metrics_store_create(&lim);
    struct attr_reader r;
    if (attr_frame_size(data, size, METRICS_FRAME_LIMIT) == (ssize_t)size
        && attr_reader_init(&r, data, size) == 0) {
        struct metric_sample s;
        const char *why = NULL;
        while (metrics_get_sample(&r, &s, &why) == 1)
            metrics_store_apply(st, &s);
        metrics_store_note(st, 1000000);
    }
    if (metrics_store_count(st) > lim.series)
        abort();
    for (size_t i = 0; i < metrics_store_count(st); i++)
        check_round_trip(metrics_store_sample(st, i));
    metrics_store_free(st);
    return 0;
}
