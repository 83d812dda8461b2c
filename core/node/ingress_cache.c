/*
 * HTTP caching of results (RFC 9110, RFC 9111): what a GET or HEAD of a
 * variant (/v1/images/ID/VARIANT) or of a done job's result
 * (/v1/jobs/ID/result) says to caches, and its conditional requests.
 *
 * Such a URL names its bytes for ever: a variant's its image's content
 * and its pipeline, a job's result its job, which never changes once
 * done. So the answer carries
 *
 *   ETag            "HEX", HEX the result key's (out/HEX): the content's
 *                   key, strong (the same key is the same bytes)
 *   Last-Modified   the stored object's mtime (the storage's stat)
 *   Cache-Control   public, max-age=31536000, immutable   (no API keys)
 *                   private, max-age=31536000, immutable  (an X-Api-Key:
 *                      the node decides who may read it, a shared cache
 *                      would answer anyone)
 *                   public, max-age=SECONDS_LEFT          (a signed URL:
 *                      no cache keeps it past its expires=)
 *
 * If-None-Match (a list of tags compared weakly, or *) matching the ETag
 * is a 304 without a body, with the ETag, Cache-Control and Vary the 200
 * would carry; without If-None-Match, If-Modified-Since at or after the
 * Last-Modified is one too. Both are looked at only once the request may
 * read what it names (a 401 or 404 comes first: a 304 never tells that
 * something exists). Errors carry Cache-Control: no-store
 * (ingress_respond).
 */
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ingress.h"

#define YEAR_S 31536000 /* the longest max-age caches are asked to take */

static bool get_or_head(const struct request *r)
{
	return strcmp(r->method, MHD_HTTP_METHOD_GET) == 0 ||
	       strcmp(r->method, MHD_HTTP_METHOD_HEAD) == 0;
}

/* The opaque tag of res, quoted ("HEX"), into buf; false if res has no
 * key to make one of. */
static bool etag_of(const struct ingress_result *res, char *buf, size_t len)
{
	const char *slash = strrchr(res->key, '/');
	const char *hex = slash ? slash + 1 : res->key;
	int n;

	if (!*hex)
		return false;
	n = snprintf(buf, len, "\"%s\"", hex);
	return n > 0 && (size_t)n < len;
}

/* ---- If-None-Match ---- */

struct tag_match {
	const char *etag; /* ours, quoted */
	bool seen; /* an If-None-Match was sent */
	bool match;
};

/*
 * True if the field value list (#entity-tag, or *) holds a tag equal to
 * etag by the weak comparison: the opaque tags alike, W/ or not. A
 * malformed member ends the list (what came before still counts).
 */
static bool tag_listed(const char *list, const char *etag)
{
	size_t elen = strlen(etag);
	const char *p = list;

	for (;;) {
		const char *end;

		p += strspn(p, " \t,");
		if (!*p)
			return false;
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (*p != '"')
			return false;
		end = strchr(p + 1, '"');
		if (!end)
			return false;
		if ((size_t)(end + 1 - p) == elen && memcmp(p, etag, elen) == 0)
			return true;
		p = end + 1;
	}
}

/* Each If-None-Match field of the request (there may be several lines,
 * one list). */
static enum MHD_Result each_header(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value)
{
	struct tag_match *m = cls;

	(void)kind;
	if (!key || strcasecmp(key, MHD_HTTP_HEADER_IF_NONE_MATCH) != 0)
		return MHD_YES;
	m->seen = true;
	if (value && tag_listed(value, m->etag))
		m->match = true;
	return MHD_YES;
}

/* ---- If-Modified-Since ---- */

/* An HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms
 * every recipient takes) in seconds since the epoch; -1 if it is none. */
static time_t http_date(const char *s)
{
	static const char *const forms[] = {"%a, %d %b %Y %H:%M:%S GMT",
	                                    "%A, %d-%b-%y %H:%M:%S GMT",
	                                    "%a %b %e %H:%M:%S %Y"};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct tm tm;
		const char *end;

		memset(&tm, 0, sizeof(tm));
		end = strptime(s, forms[i], &tm);
		if (end && !*end)
			return timegm(&tm);
	}
	return -1;
}

/* True if the request's If-Modified-Since is a date at or after mtime_ms
 * (Last-Modified has whole seconds). */
static bool unmodified_since(const struct request *r, int64_t mtime_ms)
{
	const char *v = MHD_lookup_connection_value(
	        r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_MODIFIED_SINCE);
	time_t since;

	if (!v || mtime_ms <= 0)
		return false;
	since = http_date(v);
	return since >= 0 && (int64_t)since >= mtime_ms / 1000;
}

/* ---- the answer ---- */

bool ingress_cache_not_modified(const struct request *r,
                                const struct ingress_result *res)
{
	char etag[IMGNODE_KEY_MAX + 3];
	struct tag_match m = {.etag = etag};

	if (!get_or_head(r) || res->ret || !etag_of(res, etag, sizeof(etag)))
		return false;
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, each_header, &m);
	if (m.seen) /* If-Modified-Since is then ignored */
		return m.match;
	return unmodified_since(r, res->mtime_ms);
}

/* The Cache-Control of r's answer (see the top of the file). */
static void cache_control(const struct request *r, char *buf, size_t len)
{
	int64_t left;

	if (r->signed_read && r->signed_expires > 0) {
		left = r->signed_expires - (int64_t)time(NULL);
		if (left < 0)
			left = 0;
		if (left > YEAR_S)
			left = YEAR_S;
		snprintf(buf, len, "public, max-age=%lld", (long long)left);
		return;
	}
	snprintf(buf, len, "%s, max-age=%d, immutable",
	         r->key_id[0] && !r->signed_read ? "private" : "public",
	         YEAR_S);
}

void ingress_cache_headers(const struct request *r, struct MHD_Response *resp,
                           const struct ingress_result *res, bool not_modified)
{
	char etag[IMGNODE_KEY_MAX + 3], value[64];
	time_t t;
	struct tm tm;

	if (!get_or_head(r))
		return;
	if (etag_of(res, etag, sizeof(etag)))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	cache_control(r, value, sizeof(value));
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, value);
	/* a 304 carries the validator the cache matched on, the ETag */
	if (not_modified || res->mtime_ms <= 0)
		return;
	t = (time_t)(res->mtime_ms / 1000);
	if (gmtime_r(&t, &tm) &&
	    strftime(value, sizeof(value), "%a, %d %b %Y %H:%M:%S GMT", &tm))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED,
		                        value);
}

/* The body of a 304, which libmicrohttpd never asks for (were it to, the
 * connection is closed rather than a body sent). */
static ssize_t no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls;
	(void)pos;
	(void)buf;
	(void)max;
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

/*
 * libmicrohttpd sends the Content-Length of a 304's response object and
 * no body; RFC 9110 allows one only if it is the 200's, so the response
 * is made as long as the result.
 */
enum MHD_Result
ingress_cache_answer_not_modified(struct request *r,
                                  const struct ingress_result *res)
{
	struct MHD_Response *resp = MHD_create_response_from_callback(
	        res->size, 4096, no_body, NULL, NULL);

	if (resp) {
		ingress_cache_headers(r, resp, res, true);
		ingress_job_headers(resp, r->id, false);
	}
	return ingress_respond(r, MHD_HTTP_NOT_MODIFIED, resp, 0);
}
