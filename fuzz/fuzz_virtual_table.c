/* fuzz_virtual_table.c: libFuzzer target for what the virtual agent does
 * with its tables' answers (virtual/virtual_lookup.c): the input is split
 * into a recipient and three answers (mailbox, uid, gid), which a stand-in
 * table gives back for every key, as a compromised or mistaken database
 * could. Besides crashes and sanitizer reports, an accepted answer must be
 * safe to deliver with: a path under the base with no ".." component and
 * no control character, and a uid at or above virtual_minimum_uid (never
 * root); anything else must be refused with a deferral (4.x.x) or an
 * unknown user (5.1.1).
 * sources: virtual/virtual_lookup.c */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "strbuf.h"
#include "virtual/virtual.h"

struct virtual_settings virtual_cfg;

/* The three tables: their answer (NULL: not found). */
struct maplist {
    const char *answer;
};

int maplist_lookup(struct maplist *l, const char *key, struct strbuf *result)
{
    (void)key;
    if (!l->answer)
        return 0;
    sb_set(result, l->answer);
    return 1;
}

void delivery_status_set(struct delivery_status *st, int status, const char *dsn,
                         const char *fmt, ...)
{
    va_list ap;
    st->status = status;
    snprintf(st->dsn, sizeof(st->dsn), "%s", dsn);
    va_start(ap, fmt);
    vsnprintf(st->reason, sizeof(st->reason), fmt, ap);
    va_end(ap);
}

/* The next field of the input, up to a NUL byte; NULL when it is "-". */
static const char *field(char **p, char *end)
{
    if (*p >= end)
        return NULL;
    char *s = *p;
    size_t n = strnlen(s, (size_t)(end - s));
    *p = s + n + 1;
    return strcmp(s, "-") == 0 ? NULL : s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char *p = text, *end = text + size + 1;
    const char *local = field(&p, end), *domain = field(&p, end);
    struct maplist mailbox = { field(&p, end) }, uid = { field(&p, end) }, gid = { field(&p, end) };
    virtual_cfg.base = "/v";
    virtual_cfg.recipient_delimiter = "+-";
    virtual_cfg.minimum_uid = 100;
    virtual_cfg.mailbox_maps = &mailbox;
    virtual_cfg.uid_maps = &uid;
    virtual_cfg.gid_maps = &gid;
    struct virtual_mailbox mb;
    struct delivery_status st = { 0 };
    if (virtual_lookup(&virtual_cfg, local ? local : "", domain ? domain : "", &mb, &st) == 0) {
        if (strncmp(mb.path, "/v/", 3) != 0 || strlen(mb.path) >= sizeof(mb.path)
            || mb.uid < 100 || mb.uid == (uid_t)-1 || mb.gid == (gid_t)-1)
            __builtin_trap();
        for (const char *c = mb.path; *c; c++)
            if ((unsigned char)*c < 0x20 || (c[0] == '/' && c[1] == '.' && c[2] == '.'
                                             && (c[3] == '/' || c[3] == 0)))
                __builtin_trap();
    } else if (!(st.status == 4 || (st.status == 5 && strcmp(st.dsn, "5.1.1") == 0))
               || st.dsn[0] != (char)('0' + st.status)) {
        __builtin_trap();
    }
    char path[64];
    bool maildir;
    struct strbuf why = STRBUF_INIT(256);
    if (mailbox.answer)
        (void)virtual_mailbox_path("/b", mailbox.answer, path, sizeof(path), &maildir, &why);
    sb_free(&why);
    free(text);
    return 0;
}
