/* milter_proto.h: the wire format of the milter protocol (version 6, as
 * sendmail's libmilter and Postfix speak it), MTA side: packets of a 4-byte
 * length, a command byte and a payload; the encoders of every command an
 * MTA sends and strict decoders of every reply and modification request a
 * filter may send, including the option negotiation with its macro lists.
 * Free of I/O so that it is unit-tested and fuzzed byte by byte. */
#ifndef TERN_MILTER_PROTO_H
#define TERN_MILTER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct strbuf;

/* MTA -> filter (mfdef.h SMFIC_*) */
#define SMFIC_ABORT   'A'
#define SMFIC_BODY    'B'
#define SMFIC_CONNECT 'C'
#define SMFIC_MACRO   'D'
#define SMFIC_BODYEOB 'E'
#define SMFIC_HELO    'H'
#define SMFIC_QUIT_NC 'K'
#define SMFIC_HEADER  'L'
#define SMFIC_MAIL    'M'
#define SMFIC_EOH     'N'
#define SMFIC_OPTNEG  'O'
#define SMFIC_QUIT    'Q'
#define SMFIC_RCPT    'R'
#define SMFIC_DATA    'T'
#define SMFIC_UNKNOWN 'U'

/* filter -> MTA (SMFIR_*) */
#define SMFIR_ADDRCPT     '+'
#define SMFIR_DELRCPT     '-'
#define SMFIR_ADDRCPT_PAR '2'
#define SMFIR_SHUTDOWN    '4'
#define SMFIR_ACCEPT      'a'
#define SMFIR_REPLBODY    'b'
#define SMFIR_CONTINUE    'c'
#define SMFIR_DISCARD     'd'
#define SMFIR_CHGFROM     'e'
#define SMFIR_CONN_FAIL   'f'
#define SMFIR_ADDHEADER   'h'
#define SMFIR_INSHEADER   'i'
#define SMFIR_SETSYMLIST  'l'
#define SMFIR_CHGHEADER   'm'
#define SMFIR_PROGRESS    'p'
#define SMFIR_QUARANTINE  'q'
#define SMFIR_REJECT      'r'
#define SMFIR_SKIP        's'
#define SMFIR_TEMPFAIL    't'
#define SMFIR_REPLYCODE   'y'

/* actions a filter may take (SMFIF_*) */
#define SMFIF_ADDHDRS     0x001
#define SMFIF_CHGBODY     0x002
#define SMFIF_ADDRCPT     0x004
#define SMFIF_DELRCPT     0x008
#define SMFIF_CHGHDRS     0x010
#define SMFIF_QUARANTINE  0x020
#define SMFIF_CHGFROM     0x040
#define SMFIF_ADDRCPT_PAR 0x080
#define SMFIF_SETSYMLIST  0x100
#define SMFI_CURR_ACTS    0x1FF

/* protocol steps (SMFIP_*) */
#define SMFIP_NOCONNECT   0x000001
#define SMFIP_NOHELO      0x000002
#define SMFIP_NOMAIL      0x000004
#define SMFIP_NORCPT      0x000008
#define SMFIP_NOBODY      0x000010
#define SMFIP_NOHDRS      0x000020
#define SMFIP_NOEOH       0x000040
#define SMFIP_NR_HDR      0x000080
#define SMFIP_NOUNKNOWN   0x000100
#define SMFIP_NODATA      0x000200
#define SMFIP_SKIP        0x000400
#define SMFIP_RCPT_REJ    0x000800
#define SMFIP_NR_CONN     0x001000
#define SMFIP_NR_HELO     0x002000
#define SMFIP_NR_MAIL     0x004000
#define SMFIP_NR_RCPT     0x008000
#define SMFIP_NR_DATA     0x010000
#define SMFIP_NR_UNKN     0x020000
#define SMFIP_NR_EOH      0x040000
#define SMFIP_NR_BODY     0x080000
#define SMFIP_HDR_LEADSPC 0x100000
/* What Tern can honour when it offers version 6: Postfix's V6 mask less
 * SMFIP_RCPT_REJ (refused recipients are not shown to filters). */
#define MILTER_V6_PROTO   (0x1FFFFF & ~SMFIP_RCPT_REJ)
#define MILTER_V2_PROTO   0x00007F

/* macro stages of the option negotiation (SMFIM_*) */
enum milter_stage {
    MILTER_STAGE_CONNECT, MILTER_STAGE_HELO, MILTER_STAGE_MAIL, MILTER_STAGE_RCPT,
    MILTER_STAGE_DATA, MILTER_STAGE_EOM, MILTER_STAGE_EOH, MILTER_STAGE_COUNT
};

#define MILTER_CHUNK_SIZE 65535          /* largest body packet we send */
#define MILTER_PACKET_LIMIT (1024 * 1024) /* largest reply packet we accept */
#define MILTER_MACRO_LIST_MAX 1024       /* longest macro list a filter may request */

/* ---- encoding (each appends one whole packet; -1 when out is full) ---- */
int milter_put_packet(struct strbuf *out, char cmd, const void *data, size_t len);
int milter_put_optneg(struct strbuf *out, uint32_t version, uint32_t actions, uint32_t protocol);
/* names[i]/values[i] pairs; pairs with a NULL or empty value are left out. */
int milter_put_macros(struct strbuf *out, char stage, const char *const *names,
                      const char *const *values, size_t n);
/* family: '4', '6', 'L' or 'U' (then port and addr are not sent). */
int milter_put_connect(struct strbuf *out, const char *host, char family, unsigned port,
                       const char *addr);
/* cmd with NUL-terminated strings argv[0..argc) (HELO, MAIL, RCPT, UNKNOWN, HEADER). */
int milter_put_argv(struct strbuf *out, char cmd, const char *const *argv, size_t argc);

/* ---- decoding ---- */

/* Size of the packet at buf (4 + length) once avail bytes cover it; 0 when
 * more bytes are needed; -1 when the length is 0 or above limit. */
ssize_t milter_packet_size(const void *buf, size_t avail, size_t limit);

struct milter_optneg {
    uint32_t version, actions, protocol;
    const char *macros[MILTER_STAGE_COUNT];  /* requested lists; NULL if none */
};
/* The filter's OPTNEG reply payload (after the command byte). */
int milter_optneg_decode(const unsigned char *data, size_t len, struct milter_optneg *o,
                         const char **why);

struct milter_reply {
    char cmd;
    uint32_t index;            /* INSHEADER, CHGHEADER */
    const char *name, *value;  /* headers */
    const char *text;          /* REPLYCODE raw text, QUARANTINE reason, rcpt, sender */
    const char *args;          /* ADDRCPT_PAR, CHGFROM (NULL when absent) */
    const unsigned char *body; /* REPLBODY */
    size_t body_len;
};
/* Decode a reply packet (command byte + payload; no length word). Every
 * string is checked to be terminated and the packet consumed exactly. */
int milter_reply_decode(const unsigned char *pkt, size_t len, struct milter_reply *r,
                        const char **why);

/* True for replies that request a modification (valid only at end of message). */
bool milter_reply_is_edit(char cmd);

/* Check a REPLYCODE text ("nnn x.y.z text", lines joined by CR LF, each
 * "nnn-" but the last) and turn it into a session reply: *code, and out
 * the lines without their codes joined by "\n", %% made %. Returns -1 when
 * it is not a valid 4xx/5xx reply. */
int milter_replycode_parse(const char *raw, int *code, struct strbuf *out);

/* Header name: printable ASCII, no colon, not empty. Value: no NUL, every
 * line end followed by white space (a folded header). */
bool milter_header_name_ok(const char *name);
bool milter_header_value_ok(const char *value);

#endif
