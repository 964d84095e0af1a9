/* postscreen.h: what the files of postscreen share: one screening session
 * per client connection, the tests it runs (the early ones, pregreet and
 * DNSBL, during the greet wait; the deep ones in its own SMTP engine), the
 * actions of a failed test, and the temporary allowlist cache. */
#ifndef TERN_POSTSCREEN_H
#define TERN_POSTSCREEN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

struct event;
struct event_base;
struct bufferevent;
struct dnsev;
struct dnsev_query;

/* The tests, in the order of the cache entry's time stamps. */
enum postscreen_test {
    PSC_TEST_PREGREET, PSC_TEST_DNSBL, PSC_TEST_PIPELINING, PSC_TEST_NON_SMTP,
    PSC_TEST_BARE_NEWLINE, PSC_TEST_COUNT
};
#define PSC_DEEP_TESTS ((1u << PSC_TEST_PIPELINING) | (1u << PSC_TEST_NON_SMTP) \
                        | (1u << PSC_TEST_BARE_NEWLINE))

/* What a failed test does (postscreen_*_action). */
enum postscreen_action { PSC_ACT_IGNORE, PSC_ACT_ENFORCE, PSC_ACT_DROP };

#define PSC_DNSBL_SITES_MAX 32
#define PSC_ADDR_MAX 64             /* an address in text form */
#define PSC_DESC_MAX 80             /* "[address]:port" */

struct postscreen_dnsbl_site {
    char *domain;
    char *filter;                   /* NULL: any 127.x answer (dns_rbl_listing) */
    int weight;
};

/* The configuration, read once in post_init. */
struct postscreen_cfg {
    long greet_wait, command_time_limit;
    long ttl[PSC_TEST_COUNT];
    enum postscreen_action action[PSC_TEST_COUNT];
    enum postscreen_action deny_action;
    bool deep_enabled[PSC_TEST_COUNT];
    const char *greet_banner, *banner;
    struct postscreen_dnsbl_site sites[PSC_DNSBL_SITES_MAX];
    size_t nsites;
    long dnsbl_threshold, dnsbl_allow_threshold, dnsbl_timeout;
    struct maplist *dnsbl_reply_map;
    long conn_limit, pre_queue_limit, post_queue_limit, command_count_limit;
    char **forbidden;
    size_t nforbidden;
    struct dnsev *dns;
    const char *smtpd_service;
};
extern struct postscreen_cfg psc_cfg;

struct postscreen_session {
    int fd;
    char addr[PSC_ADDR_MAX];
    char desc[PSC_DESC_MAX];        /* [addr]:port, for the log */
    long long start_usec;
    unsigned todo;                  /* tests still to run (bits of enum postscreen_test) */
    unsigned failed;                /* tests failed (their action was not drop) */
    bool enforce;                   /* some failed test's action is enforce */
    bool denylisted, greeted;       /* a "220-" line went out */
    const char *reject_text;        /* the 550 text the engine gives */
    char reject_buf[256];
    /* early tests */
    struct event *timer, *read_ev;
    struct dnsev_query *queries[PSC_DNSBL_SITES_MAX];
    struct postscreen_dnsbl_ref {
        struct postscreen_session *s;
        size_t site;
    } refs[PSC_DNSBL_SITES_MAX];
    size_t dns_pending;
    int dnsbl_score;
    char dnsbl_name[128];           /* the heaviest listing list, for the reply */
    int dnsbl_name_weight;
    /* the SMTP engine (postscreen_smtp.c) */
    struct bufferevent *bev;
    int commands;
    bool ehlo, closing, rcpt_seen;
    const char *last_cmd;           /* for "... after CMD" */
    char helo[128], sender[128];
    /* the hand-off (postscreen_handoff.c) */
    int pass_fd;                    /* to the pass service, until smtpd took the client */
    struct event *pass_ev;
    bool handed;                    /* the client is smtpd's now */
    struct postscreen_session *next, *prev;
};

/* postscreen.c */
void postscreen_session_close(struct postscreen_session *s, const char *how);
/* Count and act on a failed test; false when its action (drop) ended the session. */
bool postscreen_test_failed(struct postscreen_session *s, enum postscreen_test t);
/* The session is no longer screened: its client went to smtpd. */
void postscreen_session_handed(struct postscreen_session *s);
void postscreen_tests_done(struct postscreen_session *s);
void postscreen_count_test(enum postscreen_test t, bool pass);
const char *postscreen_test_name(enum postscreen_test t);

/* postscreen_dnsbl.c: the sites of postscreen_dnsbl_sites, parsed (fatal
 * on a malformed entry), then for one session: start every query, and the
 * score once the answers are in (or the greet wait is over). */
void postscreen_dnsbl_configure(void);
void postscreen_dnsbl_start(struct postscreen_session *s);
void postscreen_dnsbl_cancel(struct postscreen_session *s);
/* Called by the DNSBL code when the last answer came in. */
void postscreen_dnsbl_all_answered(struct postscreen_session *s);
/* The "client [addr] blocked using NAME" part of the 550 reply. */
void postscreen_dnsbl_reply(struct postscreen_session *s);

/* postscreen_cache.c: the temporary allowlist, one entry per client
 * address with the time each test stays passed. */
void postscreen_cache_open(void);           /* as root, before the drop */
void postscreen_cache_load(struct event_base *base);
void postscreen_cache_save(void);
/* The tests whose pass has expired (or was never seen) for addr, among
 * those of mask. */
unsigned postscreen_cache_expired(const char *addr, unsigned mask, time_t now);
/* Remember that addr passed test t now. */
void postscreen_cache_pass(const char *addr, enum postscreen_test t, time_t now);
/* Every test passed for ttl seconds (a client allowlisted by its DNSBL score). */
void postscreen_cache_pass_all(const char *addr, time_t now, long ttl);

/* postscreen_smtp.c: postscreen's own small SMTP engine, for the deep
 * tests and for refusing the mail of enforced clients. */
/* End the SMTP engine's session with reply (no CR LF), written after the
 * replies already queued; the session closes once it is sent. */
void postscreen_smtp_drop(struct postscreen_session *s, const char *reply);
void postscreen_smtp_start(struct postscreen_session *s);
void postscreen_smtp_free(struct postscreen_session *s);

/* postscreen_handoff.c: the connection of a passed client goes to an
 * smtpd process by descriptor passing through master's pass service. */
void postscreen_handoff(struct postscreen_session *s, const char *kind);
/* A handed-off session ends: its wait for smtpd no longer counts. */
void postscreen_handoff_free(struct postscreen_session *s);

/* postscreen_line.c: the line reader of the engine, without I/O (fuzzed):
 * take one line from buf[0..len). Returns the bytes consumed (0: no whole
 * line yet and room left), the line in line (NUL-terminated, without the
 * line end, cut at size - 1), and in *flags what the line was. */
#define PSC_LINE_BARE_LF   0x1      /* ended in LF without CR */
#define PSC_LINE_TOO_LONG  0x2      /* longer than size - 1; the rest was skipped */
#define PSC_LINE_NUL       0x4      /* held a NUL byte */
size_t postscreen_line_take(const char *buf, size_t len, char *line, size_t size, int *flags);
/* Does the line look like a command of forbidden (CONNECT, GET, POST) or
 * a message header ("Subject: ...") sent instead of SMTP? */
bool postscreen_line_non_smtp(const char *line, char *const *forbidden, size_t nforbidden);

#endif
