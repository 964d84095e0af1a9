/* smtpd_check.h: what the files of smtpd's restriction engine share: the
 * compiled restriction lists, one evaluation in progress (a job, which can
 * wait for DNS or a policy server without stopping the event loop), the
 * per-session state (client name, message actions) and the predicates that
 * live in their own files (access tables, DNS blocklists, the policy
 * client, the client's name). The rest of smtpd sees only the
 * smtpd_check_* functions declared in smtpd.h. */
#ifndef TERN_SMTPD_CHECK_H
#define TERN_SMTPD_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "address.h"
#include "dns.h"
#include "smtpd_action.h"
#include "strbuf.h"

struct map;
struct maplist;
struct dnsev;
struct smtpd_session;

enum smtpd_check_stage {
    STAGE_CONNECT, STAGE_HELO, STAGE_SENDER, STAGE_RELAY, STAGE_RECIPIENT,
    STAGE_DATA, STAGE_EOD, STAGE_ETRN, STAGE_COUNT
};

/* Outcome of one restriction, and of a list. */
enum smtpd_check_result { CHK_DUNNO, CHK_OK, CHK_REJECT, CHK_WAIT };

/* The types of restriction (smtpd_restrictions.def), then a restriction
 * class's name and an entry that did not compile. */
enum smtpd_restriction_type {
#define RESTRICTION(type, takes_argument, name, evaluator) type,
#define SYNONYM(type, name)
#include "smtpd_restrictions.def"
#undef RESTRICTION
#undef SYNONYM
    R_CLASS, R_CONFIG_ERROR,
};

struct smtpd_restriction {
    enum smtpd_restriction_type type;
    char *name;            /* as written, for log lines */
    char *arg;             /* table spec, blocklist domain, policy endpoint, class name */
    char *rbl_filter;      /* "=127.0.0.2" part of a blocklist, without '=' */
    struct map *map;       /* check_*_access */
    struct smtpd_policy_service *policy;
};

struct smtpd_restriction_list {
    struct smtpd_restriction *items;
    size_t n;
};

#define CHECK_STACK_MAX 8   /* nesting of classes and table results */
#define SMTPD_MARK_HEADER "X-Tern-Allowlisted"   /* check_recipient_lists' mark */
#define CHECK_TEXT_MAX 1024

struct smtpd_check_reply {
    int code;
    char text[CHECK_TEXT_MAX];   /* "X.Y.Z text" */
};

struct smtpd_check_job {
    struct smtpd_session *s;
    enum smtpd_check_stage stages[6];
    size_t nstages, stage_i;
    enum smtpd_check_stage stage;      /* the one being evaluated */
    struct smtpd_check_frame {
        const struct smtpd_restriction_list *list;
        size_t i;
        struct smtpd_restriction_list *owned;   /* a list from a table result */
    } stack[CHECK_STACK_MAX];
    int depth;
    bool warn_next;              /* warn_if_reject before the current restriction */
    bool warn_this;
    /* what is being checked */
    const char *rcpt;            /* RCPT TO address, NULL at other stages */
    struct address rcpt_addr;
    bool have_rcpt_addr;
    const char *implicit;        /* the check after the lists that refused (reject_unlisted_*) */
    char *arg;                   /* the command's argument, to run it again; ETRN's domain */
    bool ehlo;
    char *helo_arg;              /* HELO name while HELO is checked */
    /* results */
    struct smtpd_check_reply reply;
    bool defer_if_permit, defer_if_reject;
    struct smtpd_check_reply dip, dir;
    /* a lookup under way */
    bool waiting;
    bool resumed;                /* the current restriction's answer is in */
    struct dnsev_query *dns;
    struct smtpd_policy_request *preq;
    struct smtpd_verify_request *vreq;     /* reject_unverified_* (smtpd_verify.c) */
    int async_status;            /* answer of the lookup, see each predicate */
    char async_text[CHECK_TEXT_MAX];
    int dns_step;                /* multi-query predicates */
    const struct smtpd_restriction *async_r;   /* the restriction that waits */
    char rbl_addr[64];           /* the blocklist answer that matched */
    void (*finish)(struct smtpd_check_job *j, enum smtpd_check_result r);
    /* the continuation of the command that started the job, called when
     * the restrictions accept (smtpd_check_command.c) */
    void (*helo_next)(struct smtpd_session *s, char *name, bool ehlo);
    void (*next)(struct smtpd_session *s);                  /* MAIL, DATA */
    void (*rcpt_next)(struct smtpd_session *s, const char *arg);
    void (*etrn_next)(struct smtpd_session *s, const char *domain);
    void (*eod_next)(struct smtpd_session *s, int code, const char *text);
};

/* Per session (s->check). */
struct smtpd_check_state {
    char name[DNS_NAME_MAX + 1];          /* verified client name, or "unknown" */
    char reverse_name[DNS_NAME_MAX + 1];  /* PTR result, or "unknown" */
    int name_status;                      /* 2 ok, 4 temporary failure, 5 not found */
    int reverse_status;
    struct dnsev_query *resolve_q;
    int resolve_step;
    size_t resolve_i;
    char *access_denied;                  /* client restrictions refused the connection */
    struct smtpd_check_job *job;
    /* message actions from restrictions, reset with the transaction */
    bool discard, hold;
    char *filter;
    struct strbuf prepend;
    /* X-Tern-Allowlisted: fields (check_recipient_lists), written before
     * everything else in the content; cleanup keeps only these nmarks
     * and removes every such field the message itself carries */
    struct strbuf marks;
    size_t nmarks;
    bool lists_asked;                     /* check_recipient_lists ran for this message */
    char instance[64];                    /* policy "instance": one per message */
};

/* ---- shared configuration (smtpd_check_config.c) ---- */
struct smtpd_check_config {
    bool delay_reject;
    struct smtpd_restriction_list lists[STAGE_COUNT];
    bool reject_unlisted_sender, reject_unlisted_rcpt;
    struct maplist *local_rcpt_maps, *relay_rcpt_maps;
    struct maplist *virtual_mailbox_maps;   /* NULL: empty (not checked, as Postfix) */
    unsigned receive_overrides;           /* RECEIVE_* of receive_override_options */
    char *content_filter;                 /* this service's content_filter, or NULL */
    struct maplist *rbl_reply_maps;
    struct maplist *sender_login_maps;    /* smtpd_sender_login_maps */
    struct maplist *relay_clientcerts;    /* permit_tls_clientcerts */
    const char *default_rbl_reply;
    struct dnsev *dns;
    const char *recipient_delimiter;
};
extern struct smtpd_check_config smtpd_check_cfg;
/* A class of smtpd_restriction_classes by name, or NULL. */
const struct smtpd_restriction_list *smtpd_check_class_list(const char *name);
/* A compiled list from text; unknown names become R_CONFIG_ERROR (warned). */
void smtpd_restriction_list_parse(struct smtpd_restriction_list *l, const char *text, const char *param);
void smtpd_restriction_list_free(struct smtpd_restriction_list *l);
/* Whether a stage's list or a class names a restriction of this type. */
bool smtpd_check_uses(enum smtpd_restriction_type type);

/* ---- the evaluation (smtpd_check_engine.c) ---- */
/* The session's check state, made on first use. */
struct smtpd_check_state *smtpd_check_state_of(struct smtpd_session *s);
/* A job for session s; finish(j, verdict) runs once all its stages are
 * evaluated (a refusal is logged by then), and the job is freed after. */
struct smtpd_check_job *smtpd_check_job_new(struct smtpd_session *s,
                                            void (*finish)(struct smtpd_check_job *j,
                                                           enum smtpd_check_result r));
void smtpd_check_job_add(struct smtpd_check_job *j, enum smtpd_check_stage st);
/* Evaluate until a verdict or a lookup to wait for. */
void smtpd_check_job_run(struct smtpd_check_job *j);
/* "NOQUEUE: WHAT: VERB from name[addr]: TEXT; from=<> to=<> ..." */
void smtpd_check_log(struct smtpd_check_job *j, const char *what, const char *text);
/* Reject with code and "DSN text" (the DSN made to agree with the code);
 * honours warn_if_reject. Returns CHK_REJECT, or CHK_DUNNO for a warning. */
enum smtpd_check_result smtpd_check_reject(struct smtpd_check_job *j, int code, const char *dsn,
                                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A temporary failure that must not become an accept: defer_if_permit. */
enum smtpd_check_result smtpd_check_defer_if_permit(struct smtpd_check_job *j, int code, const char *dsn,
                                                    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "<name>" and "Class" of the stage for reply texts. */
const char *smtpd_check_reply_name(const struct smtpd_check_job *j);
const char *smtpd_check_reply_class(const struct smtpd_check_job *j);
/* A lookup finished: evaluate on. */
void smtpd_check_job_continue(struct smtpd_check_job *j);
/* Apply an access(5) result (table or policy server); what names the source
 * for warnings, name and cls make "<name>: Cls rejected: text". */
enum smtpd_check_result smtpd_check_apply_action(struct smtpd_check_job *j, const char *value,
                                                 const char *what, const char *name, const char *cls);
/* The sender / recipient being checked, or NULL. */
const struct address *smtpd_check_sender(const struct smtpd_check_job *j);
const struct address *smtpd_check_recipient(struct smtpd_check_job *j);

/* ---- access tables and recipient validation (smtpd_access.c) ---- */
enum smtpd_check_result smtpd_access_check(struct smtpd_check_job *j, const struct smtpd_restriction *r);
enum smtpd_check_result smtpd_access_unlisted(struct smtpd_check_job *j, bool sender);
enum smtpd_check_result smtpd_access_relay(struct smtpd_check_job *j, const struct smtpd_restriction *r);
bool smtpd_access_destination_ok(struct smtpd_session *s, const struct address *a);
/* reject_*sender_login_mismatch (smtpd_sender_login_maps). */
enum smtpd_check_result smtpd_access_sender_login(struct smtpd_check_job *j,
                                                  const struct smtpd_restriction *r);

/* ---- client certificates (smtpd_ccert.c) ---- */
/* permit_tls_clientcerts and permit_tls_all_clientcerts (check_ccert_access is
 * an access table: smtpd_access.c) */
enum smtpd_check_result smtpd_ccert_check(struct smtpd_check_job *j, const struct smtpd_restriction *r);

/* ---- DNS based restrictions (smtpd_rbl.c) ---- */
enum smtpd_check_result smtpd_rbl_check(struct smtpd_check_job *j, const struct smtpd_restriction *r);
enum smtpd_check_result smtpd_rbl_unknown_domain(struct smtpd_check_job *j,
                                                 const struct smtpd_restriction *r);

/* ---- policy delegation (smtpd_policy.c) ---- */
struct smtpd_policy_service *smtpd_policy_service_get(const char *endpoint);
enum smtpd_check_result smtpd_policy_check(struct smtpd_check_job *j, const struct smtpd_restriction *r);
void smtpd_policy_request_cancel(struct smtpd_policy_request *p);
void smtpd_policy_init(void);

/* ---- address verification by probe (smtpd_verify.c) ---- */
/* reject_unverified_recipient and reject_unverified_sender; the answer
 * comes in async_status (enum verify_status, -1 none) and async_text. */
enum smtpd_check_result smtpd_verify_check(struct smtpd_check_job *j, const struct smtpd_restriction *r);
void smtpd_verify_cancel(struct smtpd_verify_request *v);
/* ---- the users' allow/deny lists and correspondents (smtpd_user_lists.c) ---- */
enum smtpd_check_result smtpd_user_lists_check(struct smtpd_check_job *j,
                                               const struct smtpd_restriction *r);

/* ---- the client's name (smtpd_resolve_client.c) ---- */
/* Start the lookup; done(s) runs once the name is known. false: nothing to
 * wait for (done is not called). */
bool smtpd_resolve_client_start(struct smtpd_session *s, void (*done)(struct smtpd_session *s));
void smtpd_resolve_client_cancel(struct smtpd_session *s);

#endif
