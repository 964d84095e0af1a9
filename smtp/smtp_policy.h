/* smtp_policy.h: the pure parts of the SMTP client's TLS and SASL settings,
 * unit-tested and fuzzed on their own: TLS security levels, the values of
 * smtp_tls_policy_maps ("verify match=nexthop:.example.com ciphers=high"),
 * protocol lists (">=TLSv1.2", "!SSLv3, !TLSv1"), cipher grades, SASL
 * security options and the AUTH mechanisms a server offers in EHLO. No
 * OpenSSL and no I/O here: every input is a table value or a server's
 * reply, and so is treated as hostile (bounded, strictly checked). */
#ifndef TERN_SMTP_POLICY_H
#define TERN_SMTP_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* Postfix's levels, in increasing order of what they demand. */
enum smtp_tls_level {
    SMTP_TLS_NONE,       /* no STARTTLS */
    SMTP_TLS_MAY,        /* STARTTLS when offered; plaintext otherwise */
    SMTP_TLS_ENCRYPT,    /* TLS required, any certificate */
    SMTP_TLS_VERIFY,     /* TLS required, trusted chain, name matched (hostname) */
    SMTP_TLS_SECURE,     /* TLS required, trusted chain, name matched (nexthop) */
    SMTP_TLS_DANE,       /* RFC 7672: as a policy, TLSA records decide per MX host
                            (smtp_connect.c); for a session, TLS authenticated by
                            the host's DNSSEC-validated TLSA records */
    SMTP_TLS_DANE_ONLY,  /* a policy only: as dane, but no host without usable
                            TLSA records is used */
};

#define SMTP_TLS_PROTO_SSLV2   0x01   /* accepted in lists, never offered */
#define SMTP_TLS_PROTO_SSLV3   0x02
#define SMTP_TLS_PROTO_TLSV1   0x04
#define SMTP_TLS_PROTO_TLSV1_1 0x08
#define SMTP_TLS_PROTO_TLSV1_2 0x10
#define SMTP_TLS_PROTO_TLSV1_3 0x20
#define SMTP_TLS_PROTO_ALL     0x3f

#define SMTP_TLS_ATTR_MAX 512          /* one attribute value of a policy */
#define SMTP_TLS_POLICY_MAX 2048       /* a whole policy value */

/* One policy: a level and the attributes that override main.cf. */
struct smtp_tls_policy {
    enum smtp_tls_level level;
    bool has_protocols, has_ciphers, has_exclude, has_match, has_servername;
    unsigned protocols;                 /* SMTP_TLS_PROTO_* allowed */
    char ciphers[16];                   /* a grade: high, medium, low, export, null */
    char exclude[SMTP_TLS_ATTR_MAX];    /* cipher names, colon separated */
    char match[SMTP_TLS_ATTR_MAX];      /* match patterns, colon separated */
    char servername[256];               /* SNI: hostname, nexthop or a name */
};

/* "none", "may", "encrypt", "verify", "secure", "dane", "dane-only"
 * (case-insensitive). 0 ok; -1 with a reason in why ("fingerprint" is
 * known but not supported). */
int smtp_tls_level_parse(const char *name, enum smtp_tls_level *level, struct strbuf *why);
const char *smtp_tls_level_name(enum smtp_tls_level level);

/* A Postfix protocol list: names (TLSv1.2), exclusions (!SSLv3) and
 * bounds (>=TLSv1.2, <=TLSv1.3), separated by commas, colons or white
 * space. *mask gets the protocols allowed. 0 ok; -1 with why when a name
 * is unknown or nothing is left. An empty list allows all. */
int smtp_tls_protocols_parse(const char *value, unsigned *mask, struct strbuf *why);

/* The lowest and highest protocol of a mask, as SMTP_TLS_PROTO_* bits. */
unsigned smtp_tls_protocols_lowest(unsigned mask);
unsigned smtp_tls_protocols_highest(unsigned mask);

/* A cipher grade: high, medium, low, export or null. true when valid. */
bool smtp_tls_grade_valid(const char *grade);

/* A list of cipher names to exclude ("aNULL, MD5" or "aNULL:MD5"): true
 * when every name is made of letters, digits and "+-_.=". */
bool smtp_tls_exclude_valid(const char *value);

/* One smtp_tls_policy_maps value: a level, then name=value attributes
 * (protocols, ciphers, exclude, match, servername) separated by commas or
 * white space, as in Postfix. Attributes of level none are ignored, as
 * Postfix does. 0 ok; -1 with why (Postfix then defers the mail with
 * "client TLS configuration problem"). */
int smtp_tls_policy_parse(const char *value, struct smtp_tls_policy *p, struct strbuf *why);

/* One match pattern of a colon-separated list: its start and length in
 * *start, *len for index i; false past the end. Empty items are skipped. */
bool smtp_tls_match_item(const char *list, size_t i, const char **start, size_t *len);

/* ---- SASL ---- */
#define SMTP_SASL_NOANONYMOUS  0x01
#define SMTP_SASL_NOPLAINTEXT  0x02
#define SMTP_SASL_NOACTIVE     0x04
#define SMTP_SASL_NODICTIONARY 0x08
#define SMTP_SASL_MUTUAL_AUTH  0x10

/* smtp_sasl_security_options and friends: noanonymous, noplaintext,
 * noactive, nodictionary, mutual_auth. 0 ok; -1 with why. */
int smtp_sasl_options_parse(const char *value, unsigned *flags, struct strbuf *why);

/* The mechanisms Tern implements; both send the password itself, so any
 * of noplaintext, noactive, nodictionary and mutual_auth rules them out. */
#define SMTP_AUTH_PLAIN 0x01
#define SMTP_AUTH_LOGIN 0x02
unsigned smtp_sasl_mechs_allowed(unsigned options);

/* A list of mechanism names (the EHLO AUTH keyword's arguments, or
 * smtp_sasl_mechanism_filter): the SMTP_AUTH_* bits of the names Tern
 * knows; other names are skipped. At most len bytes are read. */
unsigned smtp_sasl_mechs_parse(const char *list, size_t len);
const char *smtp_sasl_mech_name(unsigned mech);

/* The mechanisms of the AUTH keyword ("AUTH PLAIN LOGIN", or the old
 * "AUTH=LOGIN PLAIN") in the text of an EHLO reply: lines separated by LF,
 * each with its "250-" or "250 " prefix; the first line is the greeting. */
unsigned smtp_ehlo_auth_mechs(const char *text, size_t len);

#endif
