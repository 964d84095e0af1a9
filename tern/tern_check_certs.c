/* tern_check_certs.c: `tern check` looks at the certificates Tern would
 * present (smtpd_tls_cert_file, smtpd_tls_eccert_file,
 * smtpd_tls_chain_files, and the SMTP and LMTP client's cert_file and
 * chain_files): one that expires within TLS_EXPIRY_WARN_DAYS is a
 * warning, one that has expired an error (for `tern start`, a warning:
 * mail without TLS still flows). Every certificate of a file counts, the
 * chain's too: an expired intermediate breaks verification as surely.
 * The same parameters given to a service with -o in master.cf (a
 * submission service with a certificate of its own) are checked too. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "mastercf.h"
#include "strbuf.h"
#include "tern.h"
#include "tls_certs.h"

#define TLS_EXPIRY_WARN_DAYS 30

static void check_file(FILE *out, const char *param, const char *file, bool strict, int *errors,
                       int *warnings)
{
    struct strbuf err = STRBUF_INIT(1024);
    char cn[TLS_CN_MAX], when[64];
    time_t not_after = 0, now = time(NULL);
    int n = tls_cert_file_expiry(file, &not_after, cn, sizeof(cn), &err);
    if (n <= 0) {
        fprintf(out, "tern: warning: %s %s: %s; its expiry date is not checked\n", param, file,
                n < 0 ? sb_str(&err) : "no certificate in the file");
        (*warnings)++;
        sb_free(&err);
        return;
    }
    sb_free(&err);
    struct tm tm;
    gmtime_r(&not_after, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (not_after <= now) {
        fprintf(out, "tern: %s: %s %s: certificate \"%s\" expired on %s; clients that verify "
                "it refuse it: renew it\n", strict ? "error" : "warning", param, file, cn, when);
        if (strict)
            (*errors)++;
        else
            (*warnings)++;
    } else if (not_after - now < (time_t)TLS_EXPIRY_WARN_DAYS * 86400) {
        long days = (long)((not_after - now) / 86400);
        fprintf(out, "tern: warning: %s %s: certificate \"%s\" expires on %s (in %ld day%s): "
                "renew it\n", param, file, cn, when, days, days == 1 ? "" : "s");
        (*warnings)++;
    }
}

static void check_list(FILE *out, const char *param, const char *value, bool strict,
                       int *errors, int *warnings)
{
    size_t n;
    if (!value || !*value)
        return;
    char **files = cfg_list_split(value, &n);
    for (size_t i = 0; i < n; i++)
        check_file(out, param, files[i], strict, errors, warnings);
    cfg_list_free(files, n);
}

/* each file parameter, and the chain list that replaces it when set */
static const struct { const char *param, *replaced_by; } cert_params[] = {
    { "smtpd_tls_chain_files", NULL },
    { "smtpd_tls_cert_file", "smtpd_tls_chain_files" },
    { "smtpd_tls_eccert_file", "smtpd_tls_chain_files" },
    { "smtp_tls_chain_files", NULL },
    { "smtp_tls_cert_file", "smtp_tls_chain_files" },
    { "lmtp_tls_chain_files", NULL },
    { "lmtp_tls_cert_file", "lmtp_tls_chain_files" },
};
#define NCERT_PARAMS (sizeof(cert_params) / sizeof(cert_params[0]))

/* "-o name=value" of a service for one of cert_params: the value, when it
 * is a file list of its own (a $name reference is main.cf's value, checked
 * already). */
static void check_service(FILE *out, const struct master_service *svc, bool strict, int *errors,
                          int *warnings)
{
    for (int a = 0; a + 1 < svc->argc; a++) {
        if (strcmp(svc->args[a], "-o") != 0)
            continue;
        const char *setting = svc->args[++a], *eq = strchr(setting, '=');
        if (!eq || eq[1] == '$')
            continue;
        for (size_t i = 0; i < NCERT_PARAMS; i++) {
            size_t len = strlen(cert_params[i].param);
            if ((size_t)(eq - setting) != len || strncmp(setting, cert_params[i].param, len) != 0)
                continue;
            char label[512];
            snprintf(label, sizeof(label), "%s/master.cf:%d: service %s: %s", cfg_confdir(),
                     svc->lineno, svc->name, cert_params[i].param);
            check_list(out, label, eq + 1, strict, errors, warnings);
        }
    }
}

static void check_services(FILE *out, bool strict, int *errors, int *warnings)
{
    struct strbuf path = STRBUF_INIT(4096), err = STRBUF_INIT(4096);
    struct master_service *svcs;
    size_t n;
    sb_appendf(&path, "%s/master.cf", cfg_confdir());
    /* a master.cf that does not parse is reported by tern_check.c */
    if (mastercf_load(sb_str(&path), 1, &svcs, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++)
            check_service(out, &svcs[i], strict, errors, warnings);
        mastercf_free(svcs, n);
    }
    sb_free(&path);
    sb_free(&err);
}

void tern_check_certificates(FILE *out, bool strict, int *errors, int *warnings)
{
    for (size_t i = 0; i < NCERT_PARAMS; i++) {
        const char *chain = cert_params[i].replaced_by ? cfg_get(cert_params[i].replaced_by) : NULL;
        if (!chain || !*chain)
            check_list(out, cert_params[i].param, cfg_get(cert_params[i].param), strict, errors,
                       warnings);
    }
    check_services(out, strict, errors, warnings);
}
