/*
 * Checks on a request before the ingress reads it (see request_check.h):
 * its framing headers and its text parameters.
 */
#include "request_check.h"

#include <stdint.h>
#include <stdio.h>
#include <strings.h>

const char *request_framing_problem(const struct request_framing *f)
{
	if (f->content_length && f->transfer_encoding)
		return "both Content-Length and Transfer-Encoding: give one";
	if (f->content_length > 1)
		return "Content-Length given more than once";
	if (f->transfer_encoding > 1)
		return "Transfer-Encoding given more than once";
	if (f->transfer_encoding &&
	    (!f->te || strcasecmp(f->te, "chunked") != 0))
		return "Transfer-Encoding must be chunked (no other coding is accepted)";
	if (f->http11 && !f->host)
		return "an HTTP/1.1 request needs a Host header";
	if (f->host > 1)
		return "Host given more than once";
	return NULL;
}

/* The length of the UTF-8 sequence at s (n bytes left) and its code point,
 * or 0 when it is not one (truncated, overlong, a surrogate, > U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f, min = 0x80;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f, min = 0x800;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

bool request_text_ok(const char *s, size_t len, char *why, size_t whylen)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		uint32_t cp = 0;
		size_t n = utf8_seq(u + i, len - i, &cp);

		if (!n) {
			snprintf(why, whylen,
			         "byte 0x%02x at column %zu is not UTF-8", u[i],
			         i + 1);
			return false;
		}
		if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
			snprintf(why, whylen,
			         "control character U+%04X at column %zu",
			         (unsigned)cp, i + 1);
			return false;
		}
		i += n;
	}
	return true;
}
