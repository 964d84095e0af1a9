/* smtp_sts_fetch.c: the module sts_fetch.so (smtp_sts_fetch.h): one HTTPS
 * GET with libcurl, held to what RFC 8461 section 3.3 allows: HTTPS only,
 * no redirects, no proxy from the environment, the caller's addresses
 * only (libcurl never resolves names or reads /etc), a certificate that
 * verifies against the caller's CAs for the host of the URL, TLS 1.2 or
 * later, a bounded body and time. The program's own strbuf functions are
 * used (smtp exports its symbols). */
#include <strings.h>

#include <curl/curl.h>

#include "smtp_sts_fetch.h"
#include "strbuf.h"

struct fetch_body {
    struct strbuf *body;
    size_t max;
    bool too_big;
};

static size_t fetch_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct fetch_body *fb = arg;
    size_t n = size * nmemb;
    if (fb->body->len + n > fb->max || sb_append(fb->body, data, n) < 0) {
        fb->too_big = true;
        return 0;               /* makes libcurl stop with CURLE_WRITE_ERROR */
    }
    return n;
}

int sts_fetch_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void sts_fetch_exit(void)
{
    curl_global_cleanup();
}

int sts_fetch_get(const struct sts_fetch_request *rq, struct strbuf *body, struct strbuf *why,
                  bool *webpki_invalid)
{
    *webpki_invalid = false;
    CURL *curl = curl_easy_init();
    struct curl_slist *resolve = curl_slist_append(NULL, rq->resolve);
    char errbuf[CURL_ERROR_SIZE] = "";
    struct fetch_body fb = { body, rq->size_max, false };
    struct curl_blob ca = { (void *)rq->ca, rq->ca_len, CURL_BLOB_NOCOPY };
    int rc = -1;
    if (!curl || !resolve) {
        sb_appends(why, "cannot set up the HTTPS client");
        goto out;
    }
    curl_easy_setopt(curl, CURLOPT_URL, rq->url);
    /* RFC 8461 section 3.3: HTTPS only, no redirects */
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");                 /* no proxy from the environment */
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)rq->timeout);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)rq->timeout);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
    curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)rq->size_max);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, fetch_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &fb);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "Tern MTA-STS");
    CURLcode res = curl_easy_perform(curl);
    if (res == CURLE_PEER_FAILED_VERIFICATION)
        *webpki_invalid = true;
    long status = 0;
    char *type = NULL;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    if (fb.too_big || res == CURLE_FILESIZE_EXCEEDED)
        sb_appendf(why, "%s: policy larger than %zu kB", rq->url, rq->size_max / 1024);
    else if (res != CURLE_OK)
        sb_appendf(why, "%s: %s", rq->url, errbuf[0] ? errbuf : curl_easy_strerror(res));
    else if (status != 200)
        sb_appendf(why, "%s: HTTP status %ld", rq->url, status);
    else if (!type || strncasecmp(type, "text/plain", 10) != 0)
        sb_appendf(why, "%s: media type %.60s, not text/plain", rq->url, type ? type : "(none)");
    else
        rc = 0;
out:
    curl_slist_free_all(resolve);
    if (curl)
        curl_easy_cleanup(curl);
    return rc;
}
