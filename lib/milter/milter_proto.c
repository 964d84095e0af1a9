/* milter_proto.c: encoders of the MTA's milter commands and strict decoders
 * of a filter's replies (see milter_proto.h). A filter is a peer program:
 * every length is bounded, every string must be terminated inside the
 * packet, and nothing may be left over after the last field. */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

#include "milter_proto.h"
#include "strbuf.h"

/* ---- encoding ---- */

static void put32(unsigned char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

int milter_put_packet(struct strbuf *out, char cmd, const void *data, size_t len)
{
    unsigned char head[5];
    if (len >= MILTER_PACKET_LIMIT)
        return -1;
    size_t mark = out->len;
    put32(head, (uint32_t)len + 1);
    head[4] = (unsigned char)cmd;
    if (sb_append(out, head, 5) < 0 || (len && sb_append(out, data, len) < 0)) {
        sb_truncate(out, mark);
        return -1;
    }
    return 0;
}

int milter_put_optneg(struct strbuf *out, uint32_t version, uint32_t actions, uint32_t protocol)
{
    unsigned char p[12];
    put32(p, version);
    put32(p + 4, actions);
    put32(p + 8, protocol);
    return milter_put_packet(out, SMFIC_OPTNEG, p, sizeof(p));
}

/* Packs strings into a payload buffer, then frames it once. */
static int put_payload(struct strbuf *out, char cmd, struct strbuf *pl)
{
    int rc = pl->len >= MILTER_PACKET_LIMIT ? -1 : milter_put_packet(out, cmd, pl->data, pl->len);
    sb_free(pl);
    return rc;
}

int milter_put_macros(struct strbuf *out, char stage, const char *const *names,
                      const char *const *values, size_t n)
{
    struct strbuf pl = STRBUF_INIT(MILTER_PACKET_LIMIT);
    int rc = sb_appendc(&pl, stage);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!names[i] || !*names[i] || !values[i] || !*values[i])
            continue;
        rc = sb_append(&pl, names[i], strlen(names[i]) + 1);
        if (rc == 0)
            rc = sb_append(&pl, values[i], strlen(values[i]) + 1);
    }
    if (rc < 0) {
        sb_free(&pl);
        return -1;
    }
    return put_payload(out, SMFIC_MACRO, &pl);
}

int milter_put_connect(struct strbuf *out, const char *host, char family, unsigned port,
                       const char *addr)
{
    struct strbuf pl = STRBUF_INIT(MILTER_PACKET_LIMIT);
    unsigned char pb[2] = { (unsigned char)(port >> 8), (unsigned char)port };
    int rc = sb_append(&pl, host, strlen(host) + 1);
    if (rc == 0)
        rc = sb_appendc(&pl, family);
    if (rc == 0 && family != 'U') {
        rc = sb_append(&pl, pb, 2);
        if (rc == 0)
            rc = sb_append(&pl, addr, strlen(addr) + 1);
    }
    if (rc < 0) {
        sb_free(&pl);
        return -1;
    }
    return put_payload(out, SMFIC_CONNECT, &pl);
}

int milter_put_argv(struct strbuf *out, char cmd, const char *const *argv, size_t argc)
{
    struct strbuf pl = STRBUF_INIT(MILTER_PACKET_LIMIT);
    for (size_t i = 0; i < argc; i++) {
        if (sb_append(&pl, argv[i], strlen(argv[i]) + 1) < 0) {
            sb_free(&pl);
            return -1;
        }
    }
    return put_payload(out, cmd, &pl);
}

/* ---- decoding ---- */

ssize_t milter_packet_size(const void *buf, size_t avail, size_t limit)
{
    if (avail < 4)
        return 0;
    uint32_t len = get32(buf);
    if (len < 1 || len > limit)
        return -1;
    if (avail < 4 + (size_t)len)
        return 0;
    return (ssize_t)(4 + (size_t)len);
}

/* A cursor over a payload: each string must end inside it. */
struct cursor {
    const unsigned char *p;
    size_t left;
};

static int take_str(struct cursor *c, const char **s)
{
    const unsigned char *nul = memchr(c->p, 0, c->left);
    if (!nul)
        return -1;
    *s = (const char *)c->p;
    c->left -= (size_t)(nul - c->p) + 1;
    c->p = nul + 1;
    return 0;
}

static int take32(struct cursor *c, uint32_t *v)
{
    if (c->left < 4)
        return -1;
    *v = get32(c->p);
    c->p += 4;
    c->left -= 4;
    return 0;
}

static bool macro_list_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > MILTER_MACRO_LIST_MAX)
        return false;
    for (; *s; s++)
        if (!isprint((unsigned char)*s))
            return false;
    return true;
}

int milter_optneg_decode(const unsigned char *data, size_t len, struct milter_optneg *o,
                         const char **why)
{
    struct cursor c = { data, len };
    memset(o, 0, sizeof(*o));
    if (take32(&c, &o->version) < 0 || take32(&c, &o->actions) < 0
        || take32(&c, &o->protocol) < 0) {
        *why = "short option negotiation reply";
        return -1;
    }
    while (c.left > 0) {
        uint32_t stage;
        const char *list;
        if (take32(&c, &stage) < 0 || take_str(&c, &list) < 0) {
            *why = "malformed macro list in option negotiation";
            return -1;
        }
        if (stage >= MILTER_STAGE_COUNT || !macro_list_ok(list)) {
            *why = "bad macro stage or list in option negotiation";
            return -1;
        }
        o->macros[stage] = list;
    }
    return 0;
}

bool milter_reply_is_edit(char cmd)
{
    return strchr("+-2ehimbq", cmd) != NULL && cmd != 0;
}

bool milter_header_name_ok(const char *name)
{
    if (!*name || strlen(name) > 998)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p <= ' ' || *p >= 127 || *p == ':')
            return false;
    return true;
}

bool milter_header_value_ok(const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\r' && p[1] == '\n')
            p++;
        else if (*p == '\r')
            return false;
        if (*p == '\n' && p[1] != ' ' && p[1] != '\t')
            return false;
    }
    return true;
}

static bool address_ok(const char *a)
{
    size_t n = strlen(a);
    if (n == 0 || n > 2000)
        return false;
    for (; *a; a++)
        if ((unsigned char)*a < ' ' || *a == 127)
            return false;
    return true;
}

static bool done(const struct cursor *c, const char **why)
{
    if (c->left) {
        *why = "unexpected data after the reply";
        return false;
    }
    return true;
}

int milter_reply_decode(const unsigned char *pkt, size_t len, struct milter_reply *r,
                        const char **why)
{
    memset(r, 0, sizeof(*r));
    if (len < 1) {
        *why = "empty packet";
        return -1;
    }
    r->cmd = (char)pkt[0];
    struct cursor c = { pkt + 1, len - 1 };
    switch (r->cmd) {
    case SMFIR_ACCEPT: case SMFIR_CONTINUE: case SMFIR_DISCARD: case SMFIR_REJECT:
    case SMFIR_TEMPFAIL: case SMFIR_PROGRESS: case SMFIR_SKIP: case SMFIR_SHUTDOWN:
        return done(&c, why) ? 0 : -1;
    case SMFIR_REPLYCODE:
        if (take_str(&c, &r->text) < 0 || !done(&c, why)) {
            *why = "malformed reply code";
            return -1;
        }
        return 0;
    case SMFIR_QUARANTINE:
        if (take_str(&c, &r->text) < 0 || !done(&c, why)) {
            *why = "malformed quarantine request";
            return -1;
        }
        return 0;
    case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER:
        if (take32(&c, &r->index) < 0) {
            *why = "malformed header request";
            return -1;
        }
        /* fall through */
    case SMFIR_ADDHEADER:
        if (take_str(&c, &r->name) < 0 || take_str(&c, &r->value) < 0 || !done(&c, why)
            || !milter_header_name_ok(r->name) || !milter_header_value_ok(r->value)) {
            *why = "malformed header request";
            return -1;
        }
        return 0;
    case SMFIR_ADDRCPT:
    case SMFIR_DELRCPT:
        if (take_str(&c, &r->text) < 0 || !done(&c, why) || !address_ok(r->text)) {
            *why = "malformed recipient request";
            return -1;
        }
        return 0;
    case SMFIR_ADDRCPT_PAR:
    case SMFIR_CHGFROM:
        if (take_str(&c, &r->text) < 0 || (c.left && take_str(&c, &r->args) < 0)
            || !done(&c, why)
            || (r->cmd == SMFIR_ADDRCPT_PAR ? !address_ok(r->text) : strlen(r->text) > 2000)) {
            *why = r->cmd == SMFIR_CHGFROM ? "malformed sender change" : "malformed recipient request";
            return -1;
        }
        return 0;
    case SMFIR_REPLBODY:
        r->body = c.p;
        r->body_len = c.left;
        return 0;
    default:
        *why = "unknown reply code";
        return -1;
    }
}

/* One line "nnn x.y.z text" or "nnn-x.y.z text": code and enhanced status. */
static int reply_line(const char *line, size_t n, int *code, bool *more)
{
    if (n < 4 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1])
        || !isdigit((unsigned char)line[2]) || (line[3] != ' ' && line[3] != '-'))
        return -1;
    int c = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (line[0] != '4' && line[0] != '5')
        return -1;
    if (*code && c != *code)
        return -1;
    *code = c;
    *more = line[3] == '-';
    for (size_t i = 4; i < n; i++)
        if ((unsigned char)line[i] < ' ' && line[i] != '\t')
            return -1;
    return 0;
}

int milter_replycode_parse(const char *raw, int *code, struct strbuf *out)
{
    *code = 0;
    sb_reset(out);
    const char *p = raw;
    for (int lines = 0; ; lines++) {
        const char *eol = strstr(p, "\r\n");
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        bool more;
        if (lines >= 100 || reply_line(p, n, code, &more) < 0 || more != (eol != NULL))
            return -1;
        if (lines && sb_appendc(out, '\n') < 0)
            return -1;
        for (size_t i = 4; i < n; i++) {
            if (p[i] == '%') {
                if (i + 1 < n && p[i + 1] == '%')
                    i++;
                else
                    continue;       /* a lone % (sendmail formats the text) */
            }
            if (sb_appendc(out, p[i]) < 0)
                return -1;
        }
        if (!eol)
            break;
        p = eol + 2;
    }
    /* an enhanced status code must match the reply class */
    const char *t = sb_str(out);
    if (isdigit((unsigned char)t[0]) && t[1] == '.' && t[0] != '0' + *code / 100)
        return -1;
    return 0;
}
