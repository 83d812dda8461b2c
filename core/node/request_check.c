/*
 * Checks on a request before the ingress reads it (see request_check.h):
 * its framing headers, its text parameters, and who it counts against.
 */
#include "request_check.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../plugin.h"

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

bool request_addr_parse(const char *text, struct in6_addr *a)
{
	struct in_addr a4;

	if (inet_pton(AF_INET6, text, a) == 1)
		return true;
	if (inet_pton(AF_INET, text, &a4) != 1)
		return false;
	memset(a, 0, sizeof(*a));
	a->s6_addr[10] = a->s6_addr[11] = 0xff;
	memcpy(&a->s6_addr[12], &a4, 4);
	return true;
}

static bool trusted_proxy(const struct imgnode_list *trusted,
                          const struct in6_addr *peer)
{
	struct in6_addr a;

	for (size_t i = 0; i < trusted->n; i++)
		if (request_addr_parse(trusted->items[i], &a) &&
		    memcmp(&a, peer, sizeof(a)) == 0)
			return true;
	return false;
}

void request_client_name(const struct in6_addr *peer, const char *xff,
                         const struct imgnode_list *trusted, char *out,
                         size_t outlen)
{
	char text[INET6_ADDRSTRLEN];
	struct in6_addr a = *peer, fwd;
	const char *last;
	size_t n;

	if (xff && trusted_proxy(trusted, peer)) {
		last = strrchr(xff, ',');
		last = last ? last + 1 : xff;
		last += strspn(last, " \t");
		n = strcspn(last, " \t");
		if (n < sizeof(text) &&
		    last[n + strspn(last + n, " \t")] == '\0') {
			memcpy(text, last, n);
			text[n] = '\0';
			if (request_addr_parse(text, &fwd))
				a = fwd;
		}
	}
	if (IN6_IS_ADDR_V4MAPPED(&a)) {
		inet_ntop(AF_INET, &a.s6_addr[12], text, sizeof(text));
		snprintf(out, outlen, "%s", text);
		return;
	}
	memset(&a.s6_addr[8], 0, 8);
	inet_ntop(AF_INET6, &a, text, sizeof(text));
	snprintf(out, outlen, "%s/64", text);
}
