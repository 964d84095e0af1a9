/* pipe_copy.c: the message as a pipe service's command reads it on its
 * standard input: the envelope lines its flags ask for (From_,
 * Return-Path:, Delivered-To:, X-Original-To:), then the content with
 * every line ended by eol=, "." and ">" quoting at line starts, and a blank
 * line at the end for B. The content comes in chunks cut anywhere, so the
 * start of a line is held back until it is known whether it is "From ". */
#include <string.h>

#include "mailbox.h"
#include "pipe.h"
#include "util.h"

static void append_address(struct strbuf *out, const char *address, unsigned flags)
{
    struct strbuf a = STRBUF_INIT(0);
    pipe_expand_address(address, flags, &a);
    mailbox_append_clean(out, sb_str(&a));
    sb_free(&a);
}

void pipe_copy_prefix(struct strbuf *out, unsigned flags, const char *eol, const char *sender,
                      const char *delivered_to, const char *original_to, long long now_sec)
{
    if (flags & PIPE_FLAG_FROM) {
        mailbox_from_line(out, sender, now_sec);
        sb_appends(out, eol);
    }
    if (flags & PIPE_FLAG_RETURN) {
        sb_appends(out, "Return-Path: <");
        if (*sender)
            append_address(out, sender, PIPE_FLAG_QUOTE);
        sb_appendf(out, ">%s", eol);
    }
    if (flags & PIPE_FLAG_DELIVERED) {
        sb_appends(out, "Delivered-To: ");
        append_address(out, delivered_to, PIPE_FLAG_QUOTE | PIPE_FLAG_FOLD_USER | PIPE_FLAG_FOLD_HOST);
        sb_appends(out, eol);
    }
    if (flags & PIPE_FLAG_ORIG) {
        sb_appends(out, "X-Original-To: ");
        append_address(out, original_to, PIPE_FLAG_QUOTE);
        sb_appends(out, eol);
    }
}

void pipe_copy_init(struct pipe_copy *c, unsigned flags, const char *eol)
{
    memset(c, 0, sizeof(*c));
    c->flags = flags;
    c->eol = eol;
    c->at_line_start = true;
    c->last = '\n';
}

/* The held start of a line is complete enough to decide its quoting: emit
 * the quote, then the held bytes. */
static int release_held(struct pipe_copy *c, struct strbuf *out)
{
    if ((c->flags & PIPE_FLAG_DOT) && c->nheld > 0 && c->held[0] == '.')
        sb_appendc(out, '.');
    if ((c->flags & PIPE_FLAG_QUOTE_FROM) && c->nheld == 5 && memcmp(c->held, "From ", 5) == 0)
        sb_appendc(out, '>');
    int rc = sb_append(out, c->held, c->nheld);
    c->nheld = 0;
    c->at_line_start = false;
    return rc;
}

/* Could the held bytes still become "From " (and does that matter)? */
static bool may_be_from(const struct pipe_copy *c)
{
    return (c->flags & PIPE_FLAG_QUOTE_FROM) && c->nheld < 5
           && memcmp(c->held, "From ", c->nheld) == 0;
}

int pipe_copy_feed(struct pipe_copy *c, const char *data, size_t len, struct strbuf *out)
{
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        c->last = ch;
        if (c->at_line_start && ch != '\n') {
            c->held[c->nheld++] = ch;
            if (!may_be_from(c) && release_held(c, out) < 0)
                return -1;
            continue;
        }
        if (ch == '\n') {
            if (c->at_line_start && c->nheld > 0 && release_held(c, out) < 0)
                return -1;
            if (sb_appends(out, c->eol) < 0)
                return -1;
            c->at_line_start = true;
            continue;
        }
        /* the rest of the line up to its end in one piece */
        const char *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) : len;
        if (sb_append(out, data + i, end - i) < 0)
            return -1;
        c->last = data[end - 1];
        i = end - 1;
    }
    return 0;
}

int pipe_copy_finish(struct pipe_copy *c, struct strbuf *out)
{
    if (c->nheld > 0 && release_held(c, out) < 0)
        return -1;
    if (c->last != '\n' && sb_appends(out, c->eol) < 0)
        return -1;
    if ((c->flags & PIPE_FLAG_BLANK) && sb_appends(out, c->eol) < 0)
        return -1;
    return 0;
}
