/*
 * What a request must be before the ingress reads it: HTTP framing it will
 * not guess at (RFC 9112 §6.3: a message with both Content-Length and
 * Transfer-Encoding, or with two Content-Lengths, is how requests are
 * smuggled past a proxy), text parameters in UTF-8 without control
 * characters (JSON answers and job records carry them), and the name of
 * the client a request counts against. Pure functions, so the unit tests
 * reach every branch.
 */
#ifndef IMGNODE_REQUEST_CHECK_H
#define IMGNODE_REQUEST_CHECK_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

struct imgnode_list;

/* The framing headers of one request, as counted by the ingress. */
struct request_framing {
	bool http11; /* HTTP/1.1 (or later): Host is required */
	unsigned host; /* how many Host headers */
	unsigned content_length; /* how many Content-Length headers */
	unsigned transfer_encoding; /* how many Transfer-Encoding headers */
	const char *te; /* the first Transfer-Encoding, or NULL */
};

/*
 * Why the framing f is refused, in one sentence for the "detail" of a
 * 400, or NULL when it is fine. The sentence is static.
 */
const char *request_framing_problem(const struct request_framing *f);

/*
 * True when the len bytes of s are UTF-8 (shortest forms, no surrogates)
 * with no control character (C0, DEL, C1). Otherwise false, with the
 * problem and its column (1-based, in bytes) written to why.
 */
bool request_text_ok(const char *s, size_t len, char *why, size_t whylen);

/* Parses an IPv4 or IPv6 literal into a (IPv4 as ::ffff:a.b.c.d); false
 * when text is neither. */
bool request_addr_parse(const char *text, struct in6_addr *a);

/*
 * The name of the client at peer (IPv4 as ::ffff:a.b.c.d) for the limits
 * per client, written to out: the address, an IPv6 one by its /64 (one
 * host's usual share). When peer is one of trusted (address literals) and
 * xff (the last X-Forwarded-For header, or NULL) ends with an address,
 * that address instead: the one the proxy added, which its client cannot
 * forge.
 */
void request_client_name(const struct in6_addr *peer, const char *xff,
                         const struct imgnode_list *trusted, char *out,
                         size_t outlen);

#endif
