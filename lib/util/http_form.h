/* http_form.h: what a server of HTML pages needs besides the request
 * parser (http_request.h): the value of one field of a query string or an
 * application/x-www-form-urlencoded body, and escaping of every untrusted
 * value (an address or a subject from mail is hostile) put into a page. */
#ifndef TERN_HTTP_FORM_H
#define TERN_HTTP_FORM_H

#include <stddef.h>

struct strbuf;

/* Decode the value of the first field named name in data[0..len)
 * ("a=1&b=x+y%21") into out (reset first; '+' is a space, %XX a byte; a
 * malformed escape is kept as it is; a decoded NUL ends the value).
 * 1 found, 0 absent. */
int http_form_value(const char *data, size_t len, const char *name, struct strbuf *out);

/* Append s with & < > " ' escaped, for text and for quoted attributes. */
void html_escape(struct strbuf *out, const char *s);
/* The same for a value in a URL query: everything but [A-Za-z0-9-._~] as %XX. */
void url_escape(struct strbuf *out, const char *s);

#endif
