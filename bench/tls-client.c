/* tls-client.c: the load generator of bench/tls-handshakes: THREADS threads,
 * each in a loop for SECONDS: connect to 127.0.0.1:PORT, read the greeting,
 * EHLO, STARTTLS, a full TLS handshake (a fresh SSL object, no session
 * resumption), EHLO inside TLS, QUIT. Prints "DONE FAILED" on exit. Built
 * by the script with the system compiler; OpenSSL's ciphers, TLS 1.3. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

static int port;
static double stop_at;
static SSL_CTX *ctx;
static long done_total, failed_total;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Read one whole SMTP reply (clear text or TLS); its code, or -1. */
static int reply(int fd, SSL *ssl)
{
    char buf[4096];
    size_t len = 0;
    for (;;) {
        int n = ssl ? SSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len))
                    : (int)read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = 0;
        /* the last line is complete and has a space after the code */
        if (len >= 2 && buf[len - 1] == '\n') {
            char *last = buf + len - 2;
            while (last > buf && last[-1] != '\n')
                last--;
            if (strlen(last) > 3 && last[3] == ' ')
                return atoi(last);
        }
        if (len >= sizeof(buf) - 1)
            len = 0;    /* a long multi-line reply: keep only its tail */
    }
}

static int say(int fd, SSL *ssl, const char *text)
{
    int n = (int)strlen(text);
    return (ssl ? SSL_write(ssl, text, n) : (int)write(fd, text, (size_t)n)) == n ? 0 : -1;
}

static int one_session(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, rc = -1;
    SSL *ssl = NULL;
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || reply(fd, NULL) != 220
        || say(fd, NULL, "EHLO bench.client\r\n") < 0 || reply(fd, NULL) != 250
        || say(fd, NULL, "STARTTLS\r\n") < 0 || reply(fd, NULL) != 220)
        goto out;
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1 || say(fd, ssl, "EHLO bench.client\r\n") < 0
        || reply(fd, ssl) != 250 || say(fd, ssl, "QUIT\r\n") < 0 || reply(fd, ssl) != 221)
        goto out;
    rc = 0;
out:
    if (ssl)
        SSL_free(ssl);
    close(fd);
    return rc;
}

static void *worker(void *arg)
{
    long done = 0, failed = 0;
    while (now() < stop_at) {
        if (one_session() == 0)
            done++;
        else
            failed++;
    }
    pthread_mutex_lock(&lock);
    done_total += done;
    failed_total += failed;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: tls-client PORT THREADS SECONDS\n");
        return 2;
    }
    port = atoi(argv[1]);
    int threads = atoi(argv[2]);
    if (threads < 1 || threads > 1000)
        return 2;
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    stop_at = now() + atof(argv[3]);
    pthread_t *t = calloc((size_t)threads, sizeof(*t));
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("%ld %ld\n", done_total, failed_total);
    return 0;
}
