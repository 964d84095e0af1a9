/* tls_protocols.h: small TLS syntax helpers shared by the SMTP server and
 * client: Postfix's TLS protocol list syntax (smtpd_tls_protocols,
 * smtpd_tls_mandatory_protocols and their client counterparts), turned into
 * the lowest and highest version OpenSSL may negotiate, and the lookup key
 * for a TLS server name (SNI) a peer sent. */
#ifndef TERN_TLS_PROTOCOLS_H
#define TERN_TLS_PROTOCOLS_H

#include <stddef.h>

struct strbuf;

/* spec: ">=TLSv1.2", "<=TLSv1.3", "!SSLv2, !SSLv3, !TLSv1", "TLSv1.2 TLSv1.3"
 * or any mix (separated by commas, colons or white space); empty: every
 * version OpenSSL supports. Returns 0 with the lowest and highest allowed
 * OpenSSL version numbers (TLS1_VERSION...) and, in *no_options, the
 * SSL_OP_NO_TLSv1... options for versions inside that range the spec
 * excludes (0 when none); or -1 with a message in err for an unknown
 * version name, a malformed item, or a spec that allows no version. */
int tls_protocols_parse(const char *spec, int *min_version, int *max_version,
                        unsigned long *no_options, struct strbuf *err);

/* The table key for a server name from the network: lower case, without
 * a trailing dot; NULL when it is empty, longer than 255 bytes, does not fit
 * bufsz, or is not a plausible host name (letters, digits, '-', '_', and
 * single dots inside). */
const char *tls_server_name_key(const char *name, char *buf, size_t bufsz);

#endif
