/* smtpd.h: what the files of the SMTP server share: its configuration, the
 * per-connection session, and the functions each file offers the others
 * (session I/O and replies, commands, DATA/BDAT, the cleanup client, the
 * relay check, the client limits of smtpd_limits.h). */
#ifndef TERN_SMTPD_H
#define TERN_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "smtpd_content.h"
#include "smtp_command.h"
#include "strbuf.h"

struct event;
struct event_base;
struct bufferevent;
struct evbuffer;
struct match_list;
struct smtpd_cleanup;
struct smtpd_check_state;
struct smtpd_sasl;
struct smtpd_milter;
struct smtpd_etrn;
struct smtpd_proxy;
struct attr_writer;

/* smtpd_forbid_bare_newline (bare LF) and smtpd_forbid_bare_cr (bare CR):
 * normal refuses a message that has one, reject also a command line, no
 * accepts it as a line end. */
enum smtpd_bare_lf_policy { BARE_LF_NORMAL, BARE_LF_REJECT, BARE_LF_ALLOW };

struct smtpd_config {
    const char *myhostname;
    const char *banner;
    long timeout;                /* seconds */
    long greet_pause;
    long error_sleep;
    long soft_error_limit, hard_error_limit;
    long recipient_limit;
    long client_limit;
    long long size_limit;        /* 0 = no limit */
    size_t line_limit;
    enum smtpd_bare_lf_policy bare_lf;
    enum smtpd_bare_lf_policy bare_cr;
    bool forbid_unauth_pipelining;
    bool disable_vrfy;
    bool smtputf8;
    bool requiretls;            /* requiretls_enable: REQUIRETLS on TLS sessions */
    bool strict_rfc821;          /* strict_rfc821_envelopes */
    bool helo_required;
    char *cleanup_path;          /* UNIX socket of the cleanup service */
    size_t ipc_frame_limit;
    long ipc_timeout;
    struct match_list *mynetworks;
};
extern struct smtpd_config smtpd_cfg;

/* Why input is not being processed right now (bits of session.pause). */
#define PAUSE_GREET    0x01   /* greeting not yet sent */
#define PAUSE_CLEANUP  0x02   /* waiting for the cleanup service */
#define PAUSE_TARPIT   0x04   /* error delay running */
#define PAUSE_OUTPUT   0x08   /* client is not reading its replies */
#define PAUSE_BACKLOG  0x10   /* cleanup is not taking content fast enough */
#define PAUSE_LIMITS   0x20   /* waiting for anvil's count (smtpd_limits.c) */
#define PAUSE_CHECK    0x40   /* a restriction waits for DNS or a policy server */
#define PAUSE_TLS      0x80   /* STARTTLS reply going out, or the TLS handshake running */
#define PAUSE_AUTH     0x100  /* AUTH waits for the authentication back-end */
#define PAUSE_MILTER   0x200  /* a milter has not answered yet (smtpd_milter.c) */
#define PAUSE_FLUSH    0x400  /* ETRN waits for the flush service (smtpd_etrn.c) */
#define PAUSE_PROXY    0x800  /* the proxy filter has not answered yet (smtpd_proxy.c) */

enum smtpd_session_state {
    ST_CMD,       /* reading command lines */
    ST_DATA,      /* reading DATA content */
    ST_BDAT,      /* reading (or skipping) a BDAT chunk */
    ST_CLOSING,   /* final reply queued; free once it is written */
};

struct smtpd_rcpt {
    char *address;
    char *orcpt;     /* "" when not given */
    char *notify;    /* "" when not given */
};

/* What smtpd_user_lists_peek saw of a message's header section, one byte
 * at a time as the content passes (all zero at the start of a message). */
struct smtpd_header_peek {
    char line[48];              /* the start of the current header line */
    unsigned char len;
    bool mid_line;              /* not at the start of a line */
    bool skipping;              /* the rest of this line does not matter */
    bool done;                  /* the header section has ended */
    bool automatic;             /* an auto-reply or bulk mail */
};

struct smtpd_session {
    struct event_base *base;
    struct bufferevent *bev;
    int fd;
    struct sockaddr_storage peer, local;
    char client_addr[INET6_ADDRSTRLEN];
    char client_port[8];
    const char *client_name;
    char client_desc[INET6_ADDRSTRLEN + 300];  /* "name[addr]", name up to 255 bytes */
    int client_trusted;                        /* matches mynetworks: 1, 0, -1 lookup error */

    enum smtpd_session_state state;
    unsigned pause;
    bool discard_line;          /* dropping the rest of an over-long line */
    bool line_crlf;             /* the last command line ended in CR LF */
    bool quit_seen;
    bool lingering;             /* last reply written; waiting for the client to close */
    size_t linger_bytes;
    enum smtp_verb verb;        /* command being answered */
    bool verb_counted;
    const char *where;          /* for "lost connection after WHERE" */

    char *helo_name;
    bool esmtp;

    /* the mail transaction */
    bool in_mail;
    struct smtp_mail_args mail;
    struct smtpd_rcpt *rcpts;
    size_t nrcpt, caprcpt;
    bool bdat_mode;             /* BDAT was used: DATA is no longer allowed */
    char queue_id[32];          /* named when the content starts (smtpd_data_queue_id); "" before */
    struct smtpd_content_decoder dec;
    struct strbuf content;      /* decoded content not yet sent to cleanup */
    bool too_big;
    long long bdat_left;        /* bytes of the current chunk still to read */
    bool bdat_last;
    bool bdat_skip;             /* chunk is read and thrown away */
    int bdat_skip_code;         /* reply after skipping; 0 for "250 Ok: n bytes" */
    char bdat_skip_text[200];
    long long bdat_chunk;
    long long bdat_total;       /* bytes announced by this message's chunks */
    struct smtpd_cleanup *cleanup;
    bool cleanup_ending;        /* the end frame was sent; next is the verdict */
    bool cleanup_late;          /* DATA without cleanup yet: content waits in content */
    bool cleanup_late_end;      /* ... and its end was seen: cleanup is being asked */
    int end_code;               /* reply owed at the end of this message, 0 if none */
    char end_text[200];
    struct smtpd_header_peek peek;  /* what the header section says of the message */

    /* replies and errors */
    long errors;
    struct strbuf delayed;      /* replies held back by the error delay */
    bool close_after_delay;
    struct event *tarpit_ev;
    struct event *greet_ev;
    unsigned cmd_ok[SMTP_VERB_COUNT], cmd_total[SMTP_VERB_COUNT];
    struct smtpd_limits *limits;  /* client limits and deadlines (smtpd_limits.c) */
    struct smtpd_check_state *check;  /* restriction engine (smtpd_check_*.c) */
    char *sasl_username;        /* set by AUTH; permit_sasl_authenticated */

    /* TLS (smtpd_starttls.c) */
    bool tls_active;            /* the handshake is done: the session is encrypted */
    bool tls_starting;          /* STARTTLS answered; the handshake follows once the reply is out */
    bool tls_handshaking;
    bool tls_bev;               /* s->bev is a TLS bufferevent (it closes the socket) */
    char tls_protocol[24];      /* "TLSv1.3" */
    char tls_cipher[64];        /* "TLS_AES_256_GCM_SHA384" */
    int tls_cipher_bits, tls_cipher_alg_bits;
    /* the client's certificate (smtpd_tls_ask_ccert), smtpd_ccert.c */
    bool tls_ccert_present;     /* it presented one */
    bool tls_ccert_trusted;     /* and it verified against smtpd_tls_CAfile / CApath */
    char tls_ccert_subject[256], tls_ccert_issuer[256];       /* CNs, made safe */
    char tls_ccert_fprint[200], tls_ccert_pkey_fprint[200];   /* "AB:CD:..." */

    /* AUTH (smtpd_sasl.c) */
    char *sasl_method;          /* the mechanism that AUTH succeeded with */
    struct smtpd_sasl *sasl;    /* an AUTH exchange under way */

    struct smtpd_milter *milter;  /* smtpd_milters (smtpd_milter.c) */
    struct smtpd_etrn *etrn;      /* an ETRN request to the flush service (smtpd_etrn.c) */
    struct smtpd_proxy *proxy;    /* the transaction at smtpd_proxy_filter (smtpd_proxy.c) */
};

/* ---- smtpd_session.c ---- */
void smtpd_session_accept(int fd, struct event_base *base);
/* Greet now, or after smtpd_greet_pause (the pre-greeting talker check). */
void smtpd_session_start_greeting(struct smtpd_session *s);
/* A command line arrived: count it and remember it for log lines. */
void smtpd_session_begin_command(struct smtpd_session *s, enum smtp_verb v);
/* Queue a reply "CODE TEXT" (TEXT may hold "\n" for a multi-line reply).
 * Counts errors, applies the error delay and the hard error limit. */
/* smtpd_helo_required: false, after the 503 reply, when HELO/EHLO is
 * required and has not been given (MAIL and ETRN ask this first). */
bool smtpd_helo_given(struct smtpd_session *s);
void smtpd_session_reply(struct smtpd_session *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Queue the final reply and close once it is written. */
void smtpd_session_close_with(struct smtpd_session *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void smtpd_session_close(struct smtpd_session *s);
/* Resume processing buffered input (after a pause bit was cleared). */
void smtpd_session_resume(struct smtpd_session *s, unsigned pause_bit);
/* Does the client have bytes we have not processed (buffered or in the kernel)? */
bool smtpd_session_input_pending(struct smtpd_session *s);
/* Printable, bounded copy of the first pending input bytes, for log lines. */
void smtpd_session_pending_sample(struct smtpd_session *s, char *buf, size_t bufsz);
void smtpd_session_mail_reset(struct smtpd_session *s);
/* SMTP or ESMTP with S for TLS and A for AUTH (ESMTPSA...), for Received:
 * and the queue file. */
const char *smtpd_session_protocol(const struct smtpd_session *s);
/* Called at the end of every session entry point: once the session is
 * closing and its last reply is written, start the final half-closed wait
 * (the session is freed when the client closes). Returns true when s was
 * freed (never, at present; callers must not rely on s afterwards anyway). */
bool smtpd_session_finish_if_done(struct smtpd_session *s);

/* Replace the plain bufferevent by a TLS one accepting a handshake on the
 * same socket (STARTTLS once its reply is out, or implicit TLS); input not
 * yet processed is thrown away. The outcome comes to smtpd_tls_handshake_done()
 * or smtpd_tls_handshake_failed(). false: no TLS session could be made. */
bool smtpd_session_start_tls(struct smtpd_session *s);

/* ---- smtpd_tls.c: the process's TLS context ---- */
enum smtpd_tls_level { TLS_NONE, TLS_MAY, TLS_ENCRYPT };
struct ssl_st;
void smtpd_tls_server_pre_init(void);            /* as root: certificates, ticket secret, SNI */
void smtpd_tls_server_post_init(void);           /* after the drop: what can no longer be read */
enum smtpd_tls_level smtpd_tls_server_level(void);     /* wrappermode counts as encrypt */
bool smtpd_tls_server_wrappermode(void);
bool smtpd_tls_server_available(void);           /* false: certificate problem (logged at start) */
bool smtpd_tls_server_received_header(void);     /* smtpd_tls_received_header */
long smtpd_tls_server_loglevel(void);            /* smtpd_tls_loglevel */
const char *smtpd_tls_server_unavailable_reason(void);
bool smtpd_tls_server_ask_ccert(void);           /* smtpd_tls_ask_ccert, or req_ccert in force */
bool smtpd_tls_server_req_ccert(void);           /* smtpd_tls_req_ccert with TLS enforced */
const struct evp_md_st *smtpd_tls_server_fprint_digest(void);   /* smtpd_tls_fingerprint_digest */
struct ssl_st *smtpd_tls_server_new_ssl(struct strbuf *err);
void smtpd_tls_append_errors(struct strbuf *out); /* OpenSSL's error queue, emptied */

/* ---- smtpd_starttls.c ---- */
void smtpd_starttls_command(struct smtpd_session *s, const char *arg);
/* Implicit TLS: start the handshake before the greeting. */
void smtpd_tls_wrapper_start(struct smtpd_session *s);
void smtpd_tls_handshake_done(struct smtpd_session *s);
void smtpd_tls_handshake_failed(struct smtpd_session *s, short what);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" */
void smtpd_tls_session_summary(const struct smtpd_session *s, char *buf, size_t bufsz);

/* ---- smtpd_ccert.c: client certificates ---- */
/* After the handshake: the client's certificate into the session and its
 * log lines ("Trusted TLS connection established from ..."); false when
 * smtpd_tls_req_ccert refuses the session (the caller closes it). */
bool smtpd_ccert_handshake_done(struct smtpd_session *s);
/* The Received: header's comment about the client certificate
 * ("Client CN ..., Issuer ... (verified OK)"), or NULL for Postfix's
 * default "No client certificate requested". */
const char *smtpd_ccert_received(const struct smtpd_session *s, char *buf, size_t bufsz);

/* ---- smtpd_commands.c ---- */
void smtpd_command_dispatch(struct smtpd_session *s, const char *line, size_t len);
/* Run MAIL or RCPT again once the answer it waited for is in (smtpd_limits.c). */
void smtpd_command_resume(struct smtpd_session *s, enum smtp_verb v, const char *arg);
/* "from=<S> to=<R> proto=ESMTP helo=<H>" for reject log lines. */
void smtpd_command_log_reject(struct smtpd_session *s, const char *what, int code,
                              const char *text, const char *rcpt);
/* The same line for another outcome: "NOQUEUE: proxy-reject: ..." */
void smtpd_command_log_whatsup(struct smtpd_session *s, const char *whatsup, const char *what,
                               int code, const char *text, const char *rcpt);

/* ---- smtpd_etrn.c ---- */
/* ETRN (RFC 1985): the checks, smtpd_etrn_restrictions, then a request to
 * the flush service, answered 250, 458 or 459. */
void smtpd_etrn_command(struct smtpd_session *s, const char *arg);
/* The session ends: drop a request still under way. */
void smtpd_etrn_session_end(struct smtpd_session *s);

/* ---- smtpd_data.c ---- */
void smtpd_data_command(struct smtpd_session *s, const char *arg);
void smtpd_bdat_command(struct smtpd_session *s, const char *arg);
/* Consume buffered input in ST_DATA / ST_BDAT; returns true on progress. */
bool smtpd_data_feed(struct smtpd_session *s, struct evbuffer *in);
bool smtpd_bdat_feed(struct smtpd_session *s, struct evbuffer *in);
/* The queue ID of the message whose content starts now: named (and the
 * "ID: client=" line logged) at the first call of a transaction, then the
 * same; cleanup and the milters are given this ID. */
const char *smtpd_data_queue_id(struct smtpd_session *s);

/* ---- smtpd_cleanup.c ---- */
struct smtpd_cleanup_callbacks {
    void (*ready)(struct smtpd_session *s, bool ok);        /* envelope sent */
    void (*done)(struct smtpd_session *s, int status, const char *queue_id,
                 const char *reason);                        /* reply received */
    void (*drained)(struct smtpd_session *s);                /* backlog written */
};
/* Connect to cleanup and send the envelope of s's transaction; the outcome
 * arrives through cb->ready. */
struct smtpd_cleanup *smtpd_cleanup_open(struct smtpd_session *s, const struct smtpd_cleanup_callbacks *cb);
/* Send content (any length; framed in pieces of at most 65536 bytes). */
void smtpd_cleanup_send(struct smtpd_cleanup *c, const char *data, size_t len);
/* True while more content is buffered for cleanup than we want to hold. */
bool smtpd_cleanup_backlogged(struct smtpd_cleanup *c);
/* Send {end=ok|abort}; the outcome arrives through cb->done. */
void smtpd_cleanup_finish(struct smtpd_cleanup *c, bool commit);
void smtpd_cleanup_free(struct smtpd_cleanup *c);

/* The session may proceed to its greeting (name known, client checked). */
void smtpd_session_connected(struct smtpd_session *s);

/* ---- smtpd_check_*.c: the restriction engine ---- */
void smtpd_check_pre_init(void);          /* as root: tables, resolver configuration */
void smtpd_check_init(void);
/* 1 in mynetworks, 0 not, -1 a table of it could not be looked up. */
int smtpd_check_client_trusted(const struct sockaddr *sa);
/* Session start: the client's name, then (without smtpd_delay_reject) the
 * client restrictions; smtpd_session_connected() follows, now or later. */
void smtpd_check_connect(struct smtpd_session *s, void (*connected)(struct smtpd_session *s));
/* The client restrictions refused the client: the greeting says so
 * (true), and every command but QUIT gets 503 (true: answered). */
bool smtpd_check_greet_denied(struct smtpd_session *s);
bool smtpd_check_command_denied(struct smtpd_session *s, enum smtp_verb v);
/* Each returns false to go on at once, or true when the engine took the
 * command over: it replies to a refusal itself, and calls next, the
 * continuation the command gives, when the command passes (possibly later,
 * after a lookup; the session reads no input meanwhile). */
bool smtpd_check_helo_wait(struct smtpd_session *s, char *name, bool ehlo,   /* takes name on true */
                           void (*next)(struct smtpd_session *s, char *name, bool ehlo));
bool smtpd_check_mail_wait(struct smtpd_session *s, void (*next)(struct smtpd_session *s));
bool smtpd_check_data_wait(struct smtpd_session *s, void (*next)(struct smtpd_session *s));
/* End of data: next gets the refusal (code, text) or 0 and "". */
bool smtpd_check_eod_wait(struct smtpd_session *s,
                          void (*next)(struct smtpd_session *s, int code, const char *text));
/* RCPT TO always goes through the engine (relay control); next gets the
 * command's argument back. */
/* VRFY or EXPN of address (without its angle brackets): replies 252 or the
 * refusal reject_unlisted_recipient would give at RCPT. */
void smtpd_check_verify(struct smtpd_session *s, const char *address);
/* A message from an authenticated or mynetworks client was queued:
 * remember its recipients as the sender's correspondents
 * (smtpd_user_lists.c). */
void smtpd_user_lists_record(struct smtpd_session *s);
/* Content (LF line ends) on its way to cleanup: notes an auto-reply or
 * bulk mail (Auto-Submitted, Precedence, List-Id), whose recipients are
 * not correspondents. */
void smtpd_user_lists_peek(struct smtpd_session *s, const char *data, size_t len);
/* Write the correspondents that wait for their batch (before exit). */
void smtpd_user_lists_flush(void);
/* As root: data_directory's descriptor; after the privilege drop: the
 * folder and the tables' files (smtpd_user_lists.c). */
void smtpd_user_lists_pre_init(void);
void smtpd_user_lists_init(void);
void smtpd_check_rcpt(struct smtpd_session *s, const char *arg, const struct smtp_rcpt_args *r,
                      void (*next)(struct smtpd_session *s, const char *arg));
/* ETRN for domain: smtpd_etrn_restrictions (after the client and HELO
 * restrictions with smtpd_delay_reject); next gets the domain back. */
bool smtpd_check_etrn_wait(struct smtpd_session *s, const char *domain,
                           void (*next)(struct smtpd_session *s, const char *domain));
/* What restrictions asked of the current message. */
bool smtpd_check_discarding(struct smtpd_session *s);
bool smtpd_check_holding(struct smtpd_session *s);
void smtpd_check_content_start(struct smtpd_session *s, struct strbuf *content);  /* PREPEND */
/* Envelope attributes for cleanup (FILTER): count with w NULL, else write. */
int smtpd_check_cleanup_attrs(struct smtpd_session *s, struct attr_writer *w);
void smtpd_check_mail_reset(struct smtpd_session *s);
void smtpd_check_session_end(struct smtpd_session *s);

#endif
