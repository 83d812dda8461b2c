/*
 * Who may submit and read jobs (docs/signing.md): the X-Api-Key of a
 * request and its ID, signed requests, and whose job a record is.
 *
 * A signed request (v2) carries keyid=, expires= (UNIX seconds) and
 * sig=hex(HMAC-SHA256(secret of keyid, canonical string)), and optionally
 * sha256= (the upload's digest, checked once the body is read). The
 * canonical string is these seven lines joined by "\n" (none after the
 * last, which is empty without sha256=):
 *
 *   IMGNODE-HMAC-V2
 *   KEYID
 *   EXPIRES
 *   METHOD                    POST, GET (HEAD is signed as GET), DELETE
 *   PATH                      /v1/jobs, /v1/jobs/ID, /v1/jobs/ID/result,
 *                             /v1/images, /v1/images/ID[/VARIANT], decoded
 *   pipeline=TEXT | preset=NAME | (empty, for a GET)
 *   SHA256                    64 lowercase hex digits, or empty
 *
 * Values are the decoded query values; any of them with a control
 * character (a NUL included) is refused, so no line can hold another.
 * Everything is checked in the request's first call, before a body is
 * read: a pipeline in a form part cannot be signed and is refused when
 * signing is on (except v1, below).
 *
 * v1 (deprecated, [ingress] hmac_v1 = yes): sig=hex(HMAC-SHA256(hmac_key,
 * pipeline or preset)), no expiry, replayable forever; kept for clients
 * not yet moved.
 */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingress.h"
#include "node_conf.h"

#define SIG_BAD "bad signature"

static const char *arg(struct request *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
	                                   name);
}

/*
 * The arguments a signature covers, and the pipeline, must be text: one
 * with a control character (?pipeline=png%00x, whose C string would end
 * at the NUL, or a "\n" that would add a line to the canonical string) is
 * a 400. 0 or -1 with the failure noted.
 */
static int args_clean(struct request *r)
{
	static const char *const names[] = {"pipeline", "preset", "keyid",
	                                    "expires",  "sig",    "sha256"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *v = NULL;
		size_t len = 0;

		if (MHD_lookup_connection_value_n(
		            r->conn, MHD_GET_ARGUMENT_KIND, names[i],
		            strlen(names[i]), &v, &len) != MHD_YES ||
		    !v)
			continue;
		for (size_t k = 0; k < len; k++)
			if ((unsigned char)v[k] < 0x20 || v[k] == 0x7f)
				return ingress_fail(
				        r, MHD_HTTP_BAD_REQUEST, "bad request",
				        "%s= has a control character (byte 0x%02x at %zu): only text is accepted",
				        names[i], (unsigned char)v[k], k);
	}
	return 0;
}

static bool hex_decode(const char *hex, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < 2 * n; i++) {
		char c = hex[i];
		int v = c >= '0' && c <= '9'   ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                               : -1;

		if (v < 0)
			return false;
		out[i / 2] = (unsigned char)(i % 2 ? out[i / 2] << 4 | v : v);
	}
	return hex[2 * n] == '\0';
}

/* sig (64 hex digits) is HMAC-SHA256(key, text); in constant time. */
static bool hmac_ok(const char *key, size_t keylen, const char *text,
                    size_t len, const char *sig)
{
	unsigned char want[EVP_MAX_MD_SIZE], got[32];
	unsigned int wlen = 0;

	if (!sig || strlen(sig) != 64 || !hex_decode(sig, got, sizeof(got)))
		return false;
	if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)text,
	          len, want, &wlen) ||
	    wlen != sizeof(got))
		return false;
	return CRYPTO_memcmp(want, got, sizeof(got)) == 0;
}

/* The secret of id in [ingress] hmac_keys (ID:SECRET items), or NULL. */
static const char *find_secret(const struct imgnode_list *keys, const char *id)
{
	size_t n = strlen(id);

	for (size_t i = 0; i < keys->n; i++)
		if (strncmp(keys->items[i], id, n) == 0 &&
		    keys->items[i][n] == ':')
			return keys->items[i] + n + 1;
	return NULL;
}

/*
 * Checks a v2 signature of method and path, with what ("pipeline=TEXT",
 * "preset=NAME" or "") as the covered request. 0, or -1 with the failure
 * noted (403, or 400 for malformed arguments). Notes a signed sha256=.
 */
static int check_v2(struct request *r, const char *method, const char *path,
                    const char *what)
{
	const struct ingress_conf *ic = &r->in->conf->app->ingress;
	const char *keyid = arg(r, "keyid"), *expires = arg(r, "expires");
	const char *sig = arg(r, "sig"), *sha = arg(r, "sha256");
	const char *secret;
	long long exp, now = (long long)time(NULL);
	char *text = NULL, *end;
	int len;
	bool ok;

	if (!keyid || !expires || !sig)
		return ingress_fail(
		        r, MHD_HTTP_FORBIDDEN, SIG_BAD,
		        "a signed request carries keyid=, expires= and sig= (docs/signing.md); missing: %s%s%s",
		        keyid ? "" : "keyid ", expires ? "" : "expires ",
		        sig ? "" : "sig");
	secret = find_secret(&ic->hmac_keys, keyid);
	if (!secret)
		return ingress_fail(r, MHD_HTTP_FORBIDDEN, SIG_BAD,
		                    "unknown keyid \"%.64s\"", keyid);
	errno = 0;
	exp = strtoll(expires, &end, 10);
	if (end == expires || *end || errno || exp < 0 || expires[0] < '0' ||
	    expires[0] > '9')
		return ingress_fail(
		        r, MHD_HTTP_BAD_REQUEST, "bad request",
		        "expires=%.32s is not a UNIX time in seconds", expires);
	if (exp < now)
		return ingress_fail(r, MHD_HTTP_FORBIDDEN, SIG_BAD,
		                    "the signature expired %lld s ago",
		                    now - exp);
	if (exp - now > ic->hmac_max_ttl / 1000)
		return ingress_fail(
		        r, MHD_HTTP_FORBIDDEN, SIG_BAD,
		        "expires= is %lld s ahead; [ingress] hmac_max_ttl allows %lld s",
		        exp - now, (long long)(ic->hmac_max_ttl / 1000));
	if (sha && (strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64))
		return ingress_fail(
		        r, MHD_HTTP_BAD_REQUEST, "bad request",
		        "sha256= is the upload's SHA-256 in 64 lowercase hex digits");
	len = asprintf(&text, "IMGNODE-HMAC-V2\n%s\n%s\n%s\n%s\n%s\n%s", keyid,
	               expires, method, path, what, sha ? sha : "");
	if (len < 0)
		return ingress_fail(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                    "internal error", "out of memory");
	ok = hmac_ok(secret, strlen(secret), text, (size_t)len, sig);
	free(text);
	if (!ok)
		return ingress_fail(
		        r, MHD_HTTP_FORBIDDEN, SIG_BAD,
		        "sig is not hex(HMAC-SHA256(secret of keyid %.64s, canonical string of %s %s)); see docs/signing.md",
		        keyid, method, path);
	if (sha) {
		r->want_sha = true;
		hex_decode(sha, r->signed_sha, sizeof(r->signed_sha));
	}
	return 0;
}

/* v1: sig=hex(HMAC-SHA256(hmac_key, text)). 0, or -1 with a 403 noted. */
static int check_v1(struct request *r, const char *text, bool preset)
{
	const char *key = r->in->conf->app->ingress.hmac_key;

	if (hmac_ok(key, strlen(key), text, strlen(text), arg(r, "sig")))
		return 0;
	return ingress_fail(
	        r, MHD_HTTP_FORBIDDEN, SIG_BAD,
	        "sig must be hex(HMAC-SHA256(key, %s text)) (v1), or sign the request v2 with keyid=, expires= and sig= (docs/signing.md)",
	        preset ? "preset" : "pipeline");
}

int auth_submit(struct request *r, const char *path, const char *pipeline,
                const char *preset)
{
	const struct ingress_conf *ic = &r->in->conf->app->ingress;
	bool v2 = ic->hmac_keys.n > 0, v1 = ic->hmac_v1 && ic->hmac_key[0];
	bool keyid = arg(r, "keyid") != NULL;
	char *what;
	int ret;

	if (args_clean(r))
		return -1;
	if (keyid && !v2)
		return ingress_fail(
		        r, MHD_HTTP_FORBIDDEN, SIG_BAD,
		        "keyid= given, but this node has no [ingress] hmac_keys to check it with");
	if (v2 && (keyid || !v1)) {
		if (!pipeline && !preset)
			return ingress_fail(
			        r, MHD_HTTP_FORBIDDEN, SIG_BAD,
			        "a signed request carries its pipeline (or preset) in the query, where the signature covers it: a pipeline in a form part cannot be checked before the upload is read");
		if (asprintf(&what, "%s=%s", pipeline ? "pipeline" : "preset",
		             pipeline ? pipeline : preset) < 0)
			return ingress_fail(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
			                    "internal error", "out of memory");
		ret = check_v2(r, "POST", path, what);
		free(what);
		return ret;
	}
	if (v1 && (pipeline || preset))
		return check_v1(r, pipeline ? pipeline : preset, !pipeline);
	return 0; /* unsigned, or v1 with a form pipeline: auth_form */
}

int auth_form(struct request *r, const char *pipeline)
{
	const struct ingress_conf *ic = &r->in->conf->app->ingress;

	if (ic->hmac_v1 && ic->hmac_key[0])
		return check_v1(r, pipeline, false);
	if (ic->hmac_keys.n) /* refused by auth_submit already */
		return ingress_fail(
		        r, MHD_HTTP_FORBIDDEN, SIG_BAD,
		        "a pipeline in a form part cannot be signed");
	return 0;
}

bool auth_api_key(struct request *r)
{
	const struct imgnode_list *keys = &r->in->conf->app->ingress.api_keys;
	const char *key = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                              "X-Api-Key");
	const char *match = NULL, *match_item = NULL;
	unsigned char sha[EVP_MAX_MD_SIZE];
	unsigned int shalen = 0;
	size_t n;

	r->key_id[0] = '\0';
	if (!keys->n)
		return true;
	if (!key)
		return false;
	n = strlen(key);
	/* every item is compared, so the time says nothing of which one */
	for (size_t i = 0; i < keys->n; i++) {
		const char *item = keys->items[i], *colon = strchr(item, ':');
		const char *secret = colon ? colon + 1 : item;

		if (strlen(secret) == n && CRYPTO_memcmp(secret, key, n) == 0 &&
		    !match) {
			match = secret;
			match_item = item;
		}
	}
	if (!match)
		return false;
	if (match != match_item) {
		snprintf(r->key_id, sizeof(r->key_id), "%.*s",
		         (int)(match - match_item - 1), match_item);
		return true;
	}
	if (!EVP_Digest(match, n, sha, &shalen, EVP_sha256(), NULL) ||
	    shalen < 8)
		return false;
	snprintf(r->key_id, sizeof(r->key_id), "sha256-");
	for (unsigned i = 0; i < 8; i++)
		snprintf(r->key_id + 7 + 2 * i, 3, "%02x", sha[i]);
	return true;
}

int auth_read(struct request *r, const char *path)
{
	const struct ingress_conf *ic = &r->in->conf->app->ingress;

	if (args_clean(r))
		return -1;
	if (ic->hmac_keys.n && arg(r, "sig")) {
		bool del = strcmp(r->method, "DELETE") == 0;

		if (check_v2(r, del ? "DELETE" : "GET", path, ""))
			return -1;
		r->signed_read = true;
		return 0;
	}
	if (!auth_api_key(r))
		return ingress_fail(r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
		                    "missing or unknown X-Api-Key");
	return 0;
}

int auth_upload(struct request *r)
{
	const struct ingress_conf *ic = &r->in->conf->app->ingress;

	if (args_clean(r))
		return -1;
	if (ic->hmac_keys.n)
		return check_v2(r, "POST", "/v1/images", "");
	if (ic->hmac_v1 && ic->hmac_key[0])
		return ingress_fail(
		        r, MHD_HTTP_FORBIDDEN, SIG_BAD,
		        "v1 signatures cover a pipeline, and an image upload has none: sign it v2 ([ingress] hmac_keys, docs/signing.md)");
	return 0;
}

bool auth_may_read(const struct request *r, json_t *rec)
{
	const char *owner;

	if (r->signed_read || !r->key_id[0])
		return true;
	owner = json_string_value(json_object_get(rec, "api_key_id"));
	return !owner || strcmp(owner, r->key_id) == 0;
}

bool auth_sha_ok(const struct request *r, const unsigned char sha[32])
{
	return !r->want_sha || CRYPTO_memcmp(sha, r->signed_sha, 32) == 0;
}
