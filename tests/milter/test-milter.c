/* test-milter.c: a libmilter filter for the whole-instance tests, driven by
 * the messages it sees so that one filter exercises every action an MTA
 * must carry out:
 *   RCPT TO <c-reject@...>       a multi-line 550 reply for that recipient
 *   X-Test-Action: reject        a multi-line 550 at the end of the message
 *   X-Test-Action: tempfail | discard | accept | progress
 *   X-Test-Action: addheader | insheader | chgheader | delheader
 *   X-Test-Action: addrcpt | addrcpt_par | delrcpt | chgfrom | replbody
 *   X-Test-Action: quarantine
 *   X-Test-Action: upcase        replaces the body by the same in capitals
 *                                (kept in a temporary file: bodies are large)
 * It negotiates the SKIP step (answers the first body chunk with SKIP when
 * the message asks for "skip"), leaves HELO unanswered (SMFIP_NR_HELO) and
 * asks for its own connect macro list, and adds an X-C-Milter header that
 * records what it saw: the macros j, {daemon_name} and {client_addr}, the
 * number of body bytes, and the envelope sender.
 * Usage: test-milter inet:PORT@127.0.0.1 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libmilter/mfapi.h>

#define ACTIONS_MAX 16

struct priv {
    char actions[ACTIONS_MAX][64];
    int nactions;
    unsigned long body_bytes;
    char sender[256];
    char conn_macros[512];
    int skip;
    FILE *body;                 /* the body, for upcase */
};

static struct priv *priv_of(SMFICTX *ctx)
{
    struct priv *p = smfi_getpriv(ctx);
    if (!p) {
        p = calloc(1, sizeof(*p));
        smfi_setpriv(ctx, p);
    }
    return p;
}

static const char *macro(SMFICTX *ctx, const char *name)
{
    const char *v = smfi_getsymval(ctx, (char *)name);
    return v ? v : "-";
}

static sfsistat t_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                            unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                            unsigned long *pf2, unsigned long *pf3)
{
    *pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT | SMFIF_ADDRCPT_PAR
                 | SMFIF_DELRCPT | SMFIF_CHGFROM | SMFIF_QUARANTINE | SMFIF_SETSYMLIST);
    *pf1 = f1 & (SMFIP_SKIP | SMFIP_NR_HELO);
    *pf2 = *pf3 = 0;
    if (f0 & SMFIF_SETSYMLIST)
        smfi_setsymlist(ctx, SMFIM_CONNECT, "j {daemon_name} {client_addr}");
    return SMFIS_CONTINUE;
}

static sfsistat t_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
    struct priv *p = priv_of(ctx);
    snprintf(p->conn_macros, sizeof(p->conn_macros), "j=%s daemon_name=%s client_addr=%s host=%s",
             macro(ctx, "j"), macro(ctx, "{daemon_name}"), macro(ctx, "{client_addr}"), host);
    return SMFIS_CONTINUE;
}

static sfsistat t_helo(SMFICTX *ctx, char *helo)
{
    return SMFIS_NOREPLY;
}

static sfsistat t_envfrom(SMFICTX *ctx, char **argv)
{
    struct priv *p = priv_of(ctx);
    p->nactions = 0;
    p->body_bytes = 0;
    p->skip = 0;
    if (p->body)
        fclose(p->body);
    p->body = NULL;
    snprintf(p->sender, sizeof(p->sender), "%s", argv[0]);
    return SMFIS_CONTINUE;
}

static sfsistat t_envrcpt(SMFICTX *ctx, char **argv)
{
    if (strncasecmp(argv[0], "<c-reject@", 10) == 0) {
        smfi_setmlreply(ctx, "550", "5.7.1", "refused by the C filter", "second line", NULL);
        return SMFIS_REJECT;
    }
    return SMFIS_CONTINUE;
}

static sfsistat t_header(SMFICTX *ctx, char *name, char *value)
{
    struct priv *p = priv_of(ctx);
    if (strcasecmp(name, "X-Test-Action") == 0 && p->nactions < ACTIONS_MAX) {
        snprintf(p->actions[p->nactions++], sizeof(p->actions[0]), "%s", value);
        if (strcmp(value, "skip") == 0)
            p->skip = 1;
        if (strcmp(value, "upcase") == 0 && !p->body && !(p->body = tmpfile()))
            return SMFIS_TEMPFAIL;
    }
    return SMFIS_CONTINUE;
}

static sfsistat t_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
    struct priv *p = priv_of(ctx);
    p->body_bytes += len;
    if (p->body && fwrite(chunk, 1, len, p->body) != len)
        return SMFIS_TEMPFAIL;
    return p->skip ? SMFIS_SKIP : SMFIS_CONTINUE;
}

static sfsistat t_eom(SMFICTX *ctx)
{
    struct priv *p = priv_of(ctx);
    char seen[1024];
    snprintf(seen, sizeof(seen), "%s body=%lu from=%s", p->conn_macros, p->body_bytes, p->sender);
    for (int i = 0; i < p->nactions; i++) {
        const char *a = p->actions[i];
        if (strcmp(a, "reject") == 0) {
            smfi_setmlreply(ctx, "550", "5.7.0", "C filter says no", "really no", NULL);
            return SMFIS_REJECT;
        } else if (strcmp(a, "tempfail") == 0) {
            return SMFIS_TEMPFAIL;
        } else if (strcmp(a, "discard") == 0) {
            return SMFIS_DISCARD;
        } else if (strcmp(a, "accept") == 0) {
            return SMFIS_ACCEPT;
        } else if (strcmp(a, "progress") == 0) {
            smfi_progress(ctx);
        } else if (strcmp(a, "addheader") == 0) {
            smfi_addheader(ctx, "X-C-Added", "by the C filter");
        } else if (strcmp(a, "insheader") == 0) {
            smfi_insheader(ctx, 1, "X-C-Second", "inserted at index 1");
        } else if (strcmp(a, "chgheader") == 0) {
            smfi_chgheader(ctx, "Subject", 1, "changed by the C filter");
        } else if (strcmp(a, "delheader") == 0) {
            smfi_chgheader(ctx, "X-Delete-Me", 1, NULL);
        } else if (strcmp(a, "addrcpt") == 0) {
            smfi_addrcpt(ctx, "<c-added@example.com>");
        } else if (strcmp(a, "addrcpt_par") == 0) {
            smfi_addrcpt_par(ctx, "<c-param@example.com>", "NOTIFY=NEVER");
        } else if (strcmp(a, "delrcpt") == 0) {
            smfi_delrcpt(ctx, "<c-gone@example.com>");
        } else if (strcmp(a, "chgfrom") == 0) {
            smfi_chgfrom(ctx, "<c-sender@example.org>", NULL);
        } else if (strcmp(a, "replbody") == 0) {
            static unsigned char body[] = "body replaced by the C filter\r\n";
            smfi_replacebody(ctx, body, sizeof(body) - 1);
        } else if (strcmp(a, "quarantine") == 0) {
            smfi_quarantine(ctx, "C filter quarantine");
        } else if (strcmp(a, "upcase") == 0 && p->body) {
            unsigned char *buf = malloc(65536);    /* one per thread: libmilter is threaded */
            size_t n;
            int ok = buf != NULL;
            rewind(p->body);
            while (ok && (n = fread(buf, 1, 65536, p->body)) > 0) {
                for (size_t j = 0; j < n; j++)
                    if (buf[j] >= 'a' && buf[j] <= 'z')
                        buf[j] -= 'a' - 'A';
                ok = smfi_replacebody(ctx, buf, (int)n) == MI_SUCCESS;
            }
            free(buf);
            if (!ok)
                return SMFIS_TEMPFAIL;
        }
    }
    smfi_addheader(ctx, "X-C-Milter", seen);
    return SMFIS_CONTINUE;
}

static sfsistat t_close(SMFICTX *ctx)
{
    struct priv *p = smfi_getpriv(ctx);
    if (p && p->body)
        fclose(p->body);
    free(p);
    smfi_setpriv(ctx, NULL);
    return SMFIS_CONTINUE;
}

int main(int argc, char **argv)
{
    static struct smfiDesc desc = {
        "tern-test-milter", SMFI_VERSION,
        SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT | SMFIF_ADDRCPT_PAR
            | SMFIF_DELRCPT | SMFIF_CHGFROM | SMFIF_QUARANTINE | SMFIF_SETSYMLIST,
        t_connect, t_helo, t_envfrom, t_envrcpt, t_header, NULL, t_body, t_eom, NULL, t_close,
        NULL, NULL, t_negotiate,
    };
    if (argc != 2) {
        fprintf(stderr, "usage: test-milter inet:PORT@HOST\n");
        return 2;
    }
    if (smfi_setconn(argv[1]) == MI_FAILURE || smfi_register(desc) == MI_FAILURE) {
        fprintf(stderr, "test-milter: cannot set up %s\n", argv[1]);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
